"""Overhead of the estimator gate (fisher_verify.testing.estimator_gate) itself.

Run by hand from the repository root (not part of the tests):

    python benchmarks/bench_estimator_gate.py [--quick]

The estimator is a constant (the exact diagonal, or a fixed P x P matrix), so the timings are
the gate's own cost: the exact values and variances of the S = P + directions statistics
(eq-6, thm-4, thm-6; the PyTorch path for Î₂ when the output Hessians are too large) plus R
reductions of the estimate. Your estimator's R calls come on top.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    cases = [((3, 4, 3), 4, 1, False), ((3, 4, 3), 4, 2, False), ((20, 40, 40, 3), 10, 1, False),
             ((20, 40, 40, 3), 10, 2, False), ((20, 40, 40, 3), 10, 2, True)]
    if not args.quick:
        cases += [((784, 128, 10), 10, 1, True), ((784, 128, 10), 10, 2, True)]
    for widths, M, kind, diag in cases:
        print(run(widths, M, kind, diag, 200))


if __name__ == "__main__":
    main()
