"""Overhead of the estimator gate (fisher_verify.testing.estimator_gate) itself.

Run by hand from the repository root (not part of the tests):

    python benchmarks/bench_estimator_gate.py [--quick]

The estimator is a constant (the exact diagonal, or a fixed P x P matrix), so the timings are
the gate's own cost: the exact values, variances and fourth moments of the S = P + directions
statistics (eq-6, thm-4, thm-6; the PyTorch path for Î₂ when the output Hessians are too
large), R reductions of the estimate, Catoni's estimates and the spread test. Your estimator's
R calls come on top. ``--power`` prints the acceptance radius in standard errors (Catoni vs the
former median of means) and the R at which a 16/15 factor at n = 16 is caught.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fisher_verify as fv
from fisher_verify.testing.estimator_gate import check_fisher_estimator


def run(widths: tuple[int, ...], M: int, kind: int, diagonal_only: bool, R: int) -> dict:
    fam = fv.family("categorical", K=widths[-1])
    net = fv.Network.random(widths, "tanh", fam, rng=0)
    x = np.random.default_rng(1).normal(size=(M, widths[0]))
    if diagonal_only:
        from fisher_verify.fisher.large import fisher_diagonal

        const = fisher_diagonal(net, x)
    else:
        const = fv.exact_fisher(net, x)
    t = time.perf_counter()
    rep = check_fisher_estimator(
        lambda g: const, net, x, n=10, kind=kind, replications=R, diagonal_only=diagonal_only  # type: ignore[arg-type]
    )
    return {
        "widths": widths, "P": net.num_params, "M": M, "kind": kind, "diagonal_only": diagonal_only,
        "R": R, "seconds": round(time.perf_counter() - t, 3), "passed": rep.passed,
    }


def power() -> None:
    """Radii in standard errors, and the R needed for an N/(N-1) bias at n = 16."""
    import math

    from fisher_verify.testing.calibrated import median_of_means_radius
    from fisher_verify.testing.catoni import catoni_radius_factor

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
            not check_fisher_estimator(biased, net, x, n=16, replications=R, rng=s).passed
            for s in range(3)
        )
        print({"bias": "16/15 at n=16", "R": R, "caught_of_3": caught})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--power", action="store_true")
    args = ap.parse_args()
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
