"""Power and cost of the gate's estimator kinds (issue 16): for each kind's public faults, the
smallest R of a grid at which the gate (alpha = 1e-6, seed 0) rejects it, the cause it names,
and the time of one gate on the correct estimator.

Run: ``python benchmarks/bench_gate_kinds.py`` (a 3-4-4-3 tanh categorical MLP, M = 8, the
estimators in NumPy from the network's Jacobians; logits scaled x2 so the one-backward faults
are visible). Prints a Markdown table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

import fisher_verify as fv
from fisher_verify import check_estimator
from fisher_verify._src.fisher.kfac import kfac_factors, preactivation_jacobian
from fisher_verify._src.testing.gate_kinds import KFAC, OneBackward, Subsampled
from fisher_verify._src.testing.gate_onebackward import one_backward_roots

GRID = (50, 100, 200, 400, 800)


def main() -> None:
    fam = fv.family("categorical", K=3)
    net = fv.Network.random((3, 4, 4, 3), "tanh", fam, 2.0, rng=1)
    X = np.random.default_rng(2).normal(size=(8, 3))
    M = len(X)
    h, J = net.forward(X), net.jacobian(X)
    eta = np.asarray(fam.mean(h))
    y = np.random.default_rng(3).integers(0, 3, size=M)
    t_data = np.asarray(fam.statistic(y), dtype=float)
    F = fv.exact_fisher(net, X)
    P = net.num_params

    def gnb(scale=1.0, t=None, clip=None):  # type: ignore[no-untyped-def]
        def est(g):  # type: ignore[no-untyped-def]
            tt = fam.sample_statistic(h, 1, g)[0] if t is None else t
            gb = np.einsum("ma,map->p", tt - eta, J) / M
            if clip is not None:
                gb = gb * min(1.0, clip / float(np.linalg.norm(gb)))
            return scale * M * gb * gb
        return est

    def kfac(layer, scale=1.0, lay=None, t=None, order=None):  # type: ignore[no-untyped-def]
        Ja = preactivation_jacobian(net, X, layer if lay is None else lay)
        A = kfac_factors(net, X, layer)[0]

        def est(g):  # type: ignore[no-untyped-def]
            tt = fam.sample_statistic(h, 1, g)[0] if t is None else t
            s = np.einsum("ma,mar->mr", tt - eta, Ja)
            Gh = scale * s.T @ s / M
            if order is None:
                return Gh
            return np.kron(Gh, A) if order == "GA" else np.kron(A, Gh)
        return est

    def one_backward(centered=True, fault=""):  # type: ignore[no-untyped-def]
        a = np.einsum("mdk,mdp->mkp", one_backward_roots(fam, h, centered, fault), J)

        def est(g):  # type: ignore[no-untyped-def]
            gh = np.einsum("mkp,mk->mp", a, g.choice([-1.0, 1.0], size=a.shape[:2]))
            return (gh * gh).mean(axis=0)
        return est

    def hut(draw):  # type: ignore[no-untyped-def]
        return lambda g: (lambda v: v * (F @ v))(draw(g))

    per = [fv.exact_fisher(net, X[s : s + 1]) for s in range(M)]

    def ewc(norm, redraw=True):  # type: ignore[no-untyped-def]
        return lambda g: np.diag(sum(per[s] for s in (g.choice(M, 4, replace=False) if redraw
                                                       else range(4)))) / norm

    gclip = 0.5 * float(np.sqrt(np.trace(F) / M))
    cases: list[tuple[str, str, Callable[..., Any], Any, dict[str, Any]]] = [
        ("gnb", "correct", gnb(), "gnb", {"diagonal_only": True}),
        ("gnb", "missing B", gnb(1 / M), "gnb", {"diagonal_only": True}),
        ("gnb", "loss / 2 accumulation steps", gnb(1 / 4), "gnb", {"diagonal_only": True}),
        ("gnb", "per-rank B (W = 2)", gnb(1 / 2), "gnb", {"diagonal_only": True}),
        ("gnb", "data labels", gnb(t=t_data), "gnb", {"diagonal_only": True, "labels": y}),
        ("gnb", "clipped ĝ (c = ½√(tr I/M))", gnb(clip=gclip), "gnb", {"diagonal_only": True}),
        ("hutchinson", "correct (Rademacher)", hut(lambda g: g.choice([-1.0, 1.0], size=P)),
         "hutchinson-rademacher", {"diagonal_only": True}),
        ("hutchinson", "Gaussian declared Rademacher", hut(lambda g: g.normal(size=P)),
         "hutchinson-rademacher", {"diagonal_only": True}),
        ("hutchinson", "unit-norm probes", hut(lambda g: (lambda v: v / np.linalg.norm(v))(
            g.normal(size=P))), "hutchinson-gaussian", {"diagonal_only": True}),
        ("kfac", "correct G (layer 1)", kfac(1), KFAC(1), {}),
        ("kfac", "missing 1/M", kfac(1, M), KFAC(1), {}),
        ("kfac", "hook on a mean loss (1/M²)", kfac(1, 1 / M**2), KFAC(1), {}),
        ("kfac", "wrong layer's pre-activations", kfac(1, lay=0), KFAC(1), {}),
        ("kfac", "data labels (empirical G)", kfac(1, t=t_data), KFAC(1), {"labels": y}),
        ("kfac", "A ⊗ G instead of G ⊗ A", kfac(0, order="AG"), KFAC(0, "block"), {}),
        ("one-backward", "correct (Rademacher)", one_backward(), OneBackward(), {"diagonal_only": True}),
        ("one-backward", "p not detached", one_backward(fault="undetached"), OneBackward(),
         {"diagonal_only": True}),
        ("one-backward", "centring missing", one_backward(False), OneBackward(), {"diagonal_only": True}),
        ("one-backward", "√p missing", one_backward(fault="no_sqrt"), OneBackward(),
         {"diagonal_only": True}),
        ("one-backward", "uncentred, side='lower'", one_backward(False), OneBackward(centered=False),
         {"diagonal_only": True, "side": "lower"}),
        ("subsampled", "correct (exact Fisher of 4 of 8)", ewc(4), Subsampled(4, "exact"),
         {"diagonal_only": True}),
        ("subsampled", "divided by M, not m", ewc(M), Subsampled(4, "exact"), {"diagonal_only": True}),
        ("subsampled", "one fixed subset", ewc(4, False), Subsampled(4, "exact"), {"diagonal_only": True}),
    ]
    print("| kind | estimator | smallest R rejected (grid 50–800) | cause / factor at that R | "
          "at R = 200 | one gate at R = 200 |")
    print("|---|---|---|---|---|---|")
    for kind_name, what, est, kind, kw in cases:
        t0 = time.perf_counter()
        base = check_estimator(est, net, X, n=1, which=kind, rng=0, replications=200, **kw)
        secs = time.perf_counter() - t0
        found = "—"
        at200 = f"{base.cause} {base.factor}".strip() + (" (passes)" if base.passed else "")
        cause = "—"
        if what.startswith("correct"):
            found = "never" if all(check_estimator(est, net, X, n=1, which=kind, rng=0,
                                                          replications=R, **kw).passed
                                   for R in GRID) else "REJECTED"
        else:
            for R in GRID:
                rep = check_estimator(est, net, X, n=1, which=kind, rng=0, replications=R, **kw)
                if not rep.passed:
                    found, cause = str(R), f"{rep.cause} {rep.factor}".strip()
                    break
        print(f"| {kind_name} | {what} | {found} | {cause} | {at200} | {secs:.2f} s |")


if __name__ == "__main__":
    main()
