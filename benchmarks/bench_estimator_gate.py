"""Overhead of the estimator gate (fisher_verify._src.testing.estimator_gate) itself.

Run by hand from the repository root (not part of the tests):

    python benchmarks/bench_estimator_gate.py [--quick]

The estimator is a constant (the exact diagonal, or a fixed P x P matrix), so the timings are
the gate's own cost: the exact values, variances and fourth moments of the S = P + directions
statistics (eq-6, thm-4, thm-6; the PyTorch path for Î₂ when the output Hessians are too
large), R reductions of the estimate, Catoni's estimates and the spread test. Your estimator's
R calls come on top. ``--power`` prints the acceptance radius in standard errors (Catoni vs the
former median of means) and the R at which a 16/15 factor at n = 16 is caught. ``--detectable``
measures the detectable bias at R = 200: the smallest constant factor ``1 + b`` the gate rejects
with probability >= 0.9 (the 0.9 quantile over seeds of the smallest rejected factor, found by
bisection on the same replicates scaled), for the whole gate and for its per-statistic tests
alone (the gate before the pooled tests). ``--kinds`` times the gate for the kinds of
``fisher_verify._src.testing.gate_kinds`` (GNB, Hutchinson, subsampled inputs).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import fisher_verify as fv
from fisher_verify import check_estimator


def run(widths: tuple[int, ...], M: int, kind: int, diagonal_only: bool, R: int) -> dict:
    fam = fv.family("categorical", K=widths[-1])
    net = fv.Network.random(widths, "tanh", fam, rng=0)
    x = np.random.default_rng(1).normal(size=(M, widths[0]))
    if diagonal_only:
        from fisher_verify._src.models.mlp import fisher_diagonal

        const = fisher_diagonal(net, x)
    else:
        const = fv.exact_fisher(net, x)
    t = time.perf_counter()
    rep = check_estimator(
        lambda g: const, net, x, n=10, which=f"I{kind}", replications=R, diagonal_only=diagonal_only  # type: ignore[arg-type]
    )
    return {
        "widths": widths, "P": net.num_params, "M": M, "kind": kind, "diagonal_only": diagonal_only,
        "R": R, "seconds": round(time.perf_counter() - t, 3), "passed": rep.passed,
    }


def power() -> None:
    """Radii in standard errors, and the R needed for an N/(N-1) bias at n = 16."""

    from fisher_verify._src.testing.calibrated import median_of_means_radius
    from fisher_verify._src.testing.catoni import catoni_radius_factor

    for R in (100, 200, 1000):
        for S in (40, 2611):
            per = 0.9e-6 / (2 * S)  # the gate: 90% of alpha over S means and S spreads
            print({"R": R, "statistics": S, "catoni_se": round(catoni_radius_factor(R, per) * math.sqrt(R), 2),
                   "median_of_means_se": round(median_of_means_radius(1.0, R, per) * math.sqrt(R), 2)})
    fam = fv.family("categorical", K=3)
    net = fv.Network.random((3, 4, 3), "tanh", fam, rng=1)
    x = np.random.default_rng(2).normal(size=(4, 3))
    X, _ = net.inputs(x)
    J, h, eta = net.jacobian(X), net.forward(X), np.asarray(fam.mean(net.forward(X)))

    def biased(g: np.random.Generator) -> np.ndarray:
        r = fam.sample_statistic(h, 16, g) - eta[None]
        S = np.einsum("nma,nmb->mab", r, r) / 16
        return 16 / 15 * np.einsum("map,mab,mbq->pq", J, S, J) / X.shape[0]

    for R in (100, 150, 200, 400):
        caught = sum(
            not check_estimator(biased, net, x, n=16, replications=R, rng=s).passed
            for s in range(3)
        )
        print({"bias": "16/15 at n=16", "R": R, "caught_of_3": caught})


def _fast_net(name: str, M: int, **params: object) -> tuple[fv.Network, np.ndarray]:
    fam = fv.family(name, **params)
    net = fv.Network.random((3, 4, fam.dim), "tanh", fam, rng=1)
    x = np.random.default_rng(2).normal(size=(M, 3))
    return net, x


def detectable(seeds: int = 30, R: int = 200, n: int = 16) -> None:
    """Smallest factor 1 + b rejected with probability >= 0.9 at R (see the module doc)."""
    from fisher_verify._src.testing import estimator_gate as gate_mod

    real = gate_mod.kind_statistics
    cache: dict[bytes, object] = {}

    def exact(kind, net, X, n_, V, diag, **kw):  # type: ignore[no-untyped-def]
        # the same seed draws the same directions: the exact law is computed once per seed
        key = V.tobytes() + X.tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = real(kind, net, X, n_, V, diag)
        return cache[key]

    gate_mod.kind_statistics = exact  # type: ignore[assignment]
    cases = [("categorical", {"K": 3}, 4), ("bernoulli", {}, 4), ("poisson", {}, 4), ("normal", {}, 4),
             ("categorical", {"K": 3}, 32), ("bernoulli", {}, 32), ("poisson", {}, 32),
             ("categorical", {"K": 3}, 64), ("bernoulli", {}, 64), ("poisson", {}, 64)]
    try:
        for name, params, M in cases:
            net, x = _fast_net(name, M, **params)
            X, _ = net.inputs(x)
            fam = net.family
            J, h = net.jacobian(X), net.forward(X)
            eta = np.asarray(fam.mean(h))
            t0 = time.perf_counter()
            whole, per_stat = [], []
            for seed in range(seeds):
                gen = np.random.default_rng(seed)
                gen.normal(size=(8, net.num_params))  # the gate's directions come first
                reps = []
                for _ in range(R):
                    r = fam.sample_statistic(h, n, gen) - eta[None]
                    S = np.einsum("nma,nmb->mab", r, r) / n
                    reps.append(np.einsum("map,mab,mbq->pq", J, S, J) / M)

                def verdicts(b: float, reps: list = reps, net: fv.Network = net,
                             x: np.ndarray = x, seed: int = seed) -> tuple[bool, bool]:
                    it = iter(reps)
                    rep = check_estimator(
                        lambda g: (1 + b) * next(it), net, x, n=n, replications=R, rng=seed
                    )
                    return (not rep.passed,
                            bool(rep.failures) or bool(rep.spread_failures))

                out = []
                for which in (0, 1):
                    lo, hi = math.log(1e-4), math.log(2.0)
                    if not verdicts(math.exp(hi))[which]:
                        out.append(math.inf)
                        continue
                    for _ in range(10):
                        mid = 0.5 * (lo + hi)
                        lo, hi = (lo, mid) if verdicts(math.exp(mid))[which] else (mid, hi)
                    out.append(math.exp(hi))
                whole.append(out[0])
                per_stat.append(out[1])
            q = lambda v: float(np.quantile(v, 0.9, method="higher"))  # noqa: E731
            print({"family": fam.label, "M": M, "n": n, "R": R, "seeds": seeds,
                   "detectable_bias_gate": f"{100 * q(whole):.2f}%",
                   "detectable_bias_per_statistic_only": f"{100 * q(per_stat):.2f}%",
                   "M/(M-1)": f"{100 / (M - 1):.2f}%",
                   "seconds": round(time.perf_counter() - t0, 1)}, flush=True)
    finally:
        gate_mod.kind_statistics = real


def kinds(R: int = 200) -> None:
    """Gate cost for the kinds of gate_kinds (the correct estimator, R = 200, M = 10)."""
    for widths in [(3, 4, 3), (10, 40, 40, 3)]:
        _kinds_on(widths, R)


def _kinds_on(widths: tuple[int, ...], R: int) -> None:
    from fisher_verify._src.testing.gate_kinds import Subsampled

    fam = fv.family("categorical", K=3)
    net = fv.Network.random(widths, "tanh", fam, rng=1)
    x = np.random.default_rng(2).normal(size=(10, widths[0]))
    X, _ = net.inputs(x)
    J, h = net.jacobian(X), net.forward(X)
    eta = np.asarray(fam.mean(h))
    F = fv.exact_fisher(net, X)
    P, M = net.num_params, X.shape[0]
    per = [np.diag(fv.exact_fisher(net, X[s : s + 1])) for s in range(M)]

    def gnb(g):  # type: ignore[no-untyped-def]
        gb = np.einsum("ma,map->p", fam.sample_statistic(h, 1, g)[0] - eta, J) / M
        return M * gb * gb

    cases = [("gnb", gnb),
             ("hutchinson-rademacher", lambda g: (lambda v: v * (F @ v))(g.choice([-1.0, 1.0], size=P))),
             ("hutchinson-gaussian", lambda g: (lambda v: v * (F @ v))(g.normal(size=P))),
             (Subsampled(5, "exact"), lambda g: sum(per[s] for s in g.choice(M, 5, replace=False)) / 5)]
    for kind, est in cases:
        t0 = time.perf_counter()
        rep = check_estimator(est, net, x, n=1, which=kind, diagonal_only=True,  # type: ignore[arg-type]
                                     replications=R, rng=0)
        print({"P": P, "kind": str(kind), "passed": rep.passed,
               "seconds": round(time.perf_counter() - t0, 2)}, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--power", action="store_true")
    ap.add_argument("--detectable", action="store_true")
    ap.add_argument("--kinds", action="store_true")
    args = ap.parse_args()
    if args.kinds:
        kinds()
        return
    if args.detectable:
        detectable()
        return
    if args.power:
        power()
        return
    cases = [((3, 4, 3), 4, 1, False), ((3, 4, 3), 4, 2, False), ((20, 40, 40, 3), 10, 1, False),
             ((20, 40, 40, 3), 10, 2, False), ((20, 40, 40, 3), 10, 2, True)]
    if not args.quick:
        cases += [((784, 128, 10), 10, 1, True), ((784, 128, 10), 10, 2, True)]
    for widths, M, kind, diag in cases:
        print(run(widths, M, kind, diag, 200))


if __name__ == "__main__":
    main()
