"""``Var(Î₂)`` diagonal against ``diag I(θ)`` through every entry point, side by side (issue 19).

Run from the repository root (not part of the tests)::

    python benchmarks/bench_routes.py [--widths 784,1000,1000,10] [--M 32] [--rounds 5]

float64, one thread (``torch.set_num_threads(1)``), tanh, categorical K = n_L. In one process,
in alternating rounds (every task once per round, so a load change hits all tasks alike), it
times and reports medians of:

* ``model diag I`` / ``model Var2``: ``fv.exact_fisher(diagonal=True)`` and
  ``fv.variance(which="I2", diagonal=True)`` (before issue 19's face: ``model_fisher_diagonal``,
  ``model_variance_diagonal(estimator=2)``) on the MLP given as an ``nn.Sequential``;
* ``eq3 diag I`` / ``eq3 Var2``: the Eq. 3 rule of the engine on the same weights as a
  :class:`~fisher_verify.Network` (``fisher_diagonal`` / ``variance2_diagonal``);
* ``analyze_model`` (now ``fv.analyze`` of a module): everything (diag I, Var(Î₁), Var(Î₂),
  no norms) on the ``nn.Sequential``;

and the ratios ``Var2 / diag I`` per route (the target: at most 2 on one- and two-hidden-layer
MLPs). Timings on a shared machine move; ratios within a round do not.

Measured (issue 19, shared 2-core machine under load, same process, medians of 5–9 rounds):
784-1000-1000-10 at M = 32, ``model Var2 / model diag I`` 8.5–9.1 before the ``mlp`` rule
planned its own chunks (2 inputs at a time), 1.6–1.7 after (2.4 in one run at lower load,
where the fixed cost of preparing the working copy weighs more); ``eq3 Var2 / eq3 diag I``
1.4–1.5 before and after; ``analyze_model / model diag I`` 10.0 before, 3.0–3.1 after.

Second pass (2 Dec 2026, load 6–8, main and this branch alternately): the ``mlp`` rule now also
gives ``diag I``/``Var(Î₁)`` of the ``nn.Sequential`` (models/mlp_route.py) and the Linear sites'
self-check is made only where a route reads them. Seconds, main → branch (two runs each):
``model diag I`` 0.144 / 0.169 → 0.076 / 0.063 (now below ``eq3 diag I``, 0.08–0.10);
``model Var2`` 0.326 / 0.405 → 0.307 / 0.209; ``analyze_model`` 0.61 / 0.56 → 0.48 / 0.36.
So ``model Var2 / model diag I`` went from 2.3–2.4 to 3.3–4.0 because the denominator fell,
not because Var2 rose. With the eq3 sums then taken on the device (``mlp.layer_sums``, no NumPy
round trip of the result), a third run (load 7.5): main diag I 0.210 s, Var2 0.448 s (2.14);
branch diag I 0.104 s, Var2 0.276 s (2.66); ``analyze_model`` 0.85 → 0.51 s. What Var(Î₂) of a
module still pays beside the eq3 rule itself (``eq3 Var2`` 0.11–0.19 s) is the working copy and
its checks (~0.03 s) and building the Eq. 3 ``Network`` from the module (~0.03 s, NumPy
validation of every weight): the next step towards ≤ 2×.

Third pass (2 Dec 2026, load 3.7–4, medians of 7 rounds, main and this branch alternately): Var(Î₂)
of the ``nn.Sequential`` now borrows the user's module as diag I does (no working copy; the C²
detection runs it forward once, or reuses the calls recorded while preparing), builds its Eq. 3
``Network`` on the prepared weights without a second copy and finiteness scan, and scales its
sums in place. ``model Var2`` seconds and ``model Var2 / model diag I``, main → branch:
784-1000-1000-10: 0.120 / 0.076 / 0.082 (ratios 3.03 / 2.73 / 2.61) → 0.094 / 0.058 / 0.070
(2.13 / 1.90 / 2.18); 784-1000-10: 0.030 (2.42) → 0.019 (1.65). ``eq3 Var2 / eq3 diag I``
1.1–1.5 on both. What remains between ``model Var2`` and ``eq3 Var2`` (about 0.01–0.02 s at two
hidden layers): the model's checks and one forward pass at preparation, NumPy weight matrices
with the bias column (one copy), the per-tensor split of the per-layer sums (one copy of the
weight blocks), zero accumulators in ``mlp.layer_sums`` and the exact entries' zero standard
errors. The Var(Î₂) formula (``mlp.layer_sums``) runs its own forward and backward passes; it
does not reuse diag I's lemma-13 recursion (``mlp_route._unit_sums``), which has no σ''.

Fourth pass (2 Dec 2026, quiet machine, load < 1; main at e5143f5 and the new main run alternately
as separate processes, medians of 7–9 rounds each): Var(Î₂) of the ``nn.Sequential`` now comes
from the module's own tensors (``mlp_route.mlp_second_sums``: one forward pass with σ', σ'', the
products β_k and the Γ diagonals per chunk as large as the budget allows, no Eq. 3 ``Network``,
no bias columns, no zero accumulators, nothing for the last layer). ``model Var2`` seconds and
``model Var2 / model diag I``, before → after: 784-1000-1000-10: 0.086 / 0.084 / 0.088 (1.76 /
1.77 / 1.99) → 0.059 / 0.061 / 0.065 (1.33 / 1.29 / 1.26); 784-1000-10: 1.45–1.68 → 0.75–0.82.
Cache-sized chunks (as diag I's recursion uses) were slower here, where two GEMMs per layer
dominate: 1.73× diag I at 2¹⁶ numbers per chunk, 1.58× at 2¹⁷, 1.41× at one chunk.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _engine() -> Any:
    """The Eq. 3 rule's module (``fisher/large.py`` before issue 19: older checkouts carry their
    own copy of this script)."""
    from fisher_verify._src.models import mlp

    return mlp


def _tasks(widths: list[int], M: int) -> dict[str, Callable[[], Any]]:
    import torch
    from bench_depth import _sequential  # the same nn.Sequential as the depth table

    import fisher_verify as fv

    eng = _engine()
    fam = fv.family("categorical", K=widths[-1])
    net = fv.Network.random(widths, "tanh", fam, rng=0)
    X = np.random.default_rng(1).normal(size=(M, widths[0]))
    Xt = torch.as_tensor(X)
    model = _sequential(net)
    out: dict[str, Callable[[], Any]] = {
        "model diag I": lambda: fv.exact_fisher(model, Xt, fam, diagonal=True, progress=False),
        "model Var2": lambda: fv.variance(model, Xt, fam, which="I2", diagonal=True,
                                          progress=False),
        "eq3 diag I": lambda: eng.fisher_diagonal(net, X, device="cpu"),
        "eq3 Var2": lambda: eng.variance2_diagonal(net, X, device="cpu"),
    }
    out["analyze_model"] = lambda: fv.analyze(model, Xt, fam, progress=False, norms=False)
    return out


def main() -> int:
    """Time the routes in alternating rounds and print medians and ratios."""
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="784,1000,1000,10")
    p.add_argument("--M", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    widths = [int(w) for w in args.widths.split(",")]
    tasks = _tasks(widths, args.M)
    for fn in tasks.values():  # warm-up: kernels, autograd, torch.func, the family's kernels
        fn()
    times: dict[str, list[float]] = {k: [] for k in tasks}
    for _ in range(args.rounds):
        for name, fn in tasks.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"widths {args.widths}, M = {args.M}, 1 thread, float64, medians of {args.rounds} rounds")
    for k, v in med.items():
        print(f"  {k:<14} {v:8.4f} s")
    print(f"  model Var2 / model diag I = {med['model Var2'] / med['model diag I']:.2f}")
    print(f"  eq3 Var2 / eq3 diag I     = {med['eq3 Var2'] / med['eq3 diag I']:.2f}")
    if "analyze_model" in med:
        print(f"  analyze_model / model diag I = {med['analyze_model'] / med['model diag I']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
