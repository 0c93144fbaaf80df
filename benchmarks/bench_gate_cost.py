"""The estimator gate's own cost beside the user's calls, on the issue-19 case.

A user's EWC routine (one label drawn per input from the model, per-input squared gradients,
as the continual-learning repositories write it) on a 784-128-10 tanh MLP (P = 101,770),
M = 32 inputs, R = 200 calls, float64, one thread. The time inside the user's function is
measured around each call; the gate's own cost is the rest (the exact statistics of eq-6 and
thm-4, Catoni's estimates, the spread and pooled tests, the report). Issue 19's target: the
gate's own cost at most half the user's calls.

    OMP_NUM_THREADS=1 python benchmarks/bench_gate_cost.py [--warm]

Measured 2 Dec 2026 on the shared 2-core machine (load 7-12), main (before) and the `speed`
branch (after) run at the same time, so that both see the same load:

    before: user 27.2 s, gate own 84.9 s (3.12x the user's calls); again 30.3 s, 101.6 s (3.35x)
    after:  user 26.1 s, gate own 68.4 s (2.63x; Catoni in place on contiguous rows)
            user 27.0 s, gate own 53.6 s (1.99x; Catoni on cache-sized blocks, 6x main's,
            J Diag(w) Jᵀ in blocks, no einsum loops)

Issue 19, second round, 2 Dec 2026 (load 8-10 on the 2 cores): main (before) and the `gatecost`
branch (after) alternated in one period, 3 rounds cold (a fresh process: the gate's first call
imports the rooms it uses) and 2 warm (`--warm`: a tiny gate first); medians, wall seconds, and
the process CPU seconds beside them (the steadier measure on a loaded machine):

    cold, before: user 24.2 s, gate own 51.2 s = 2.07x (CPU: user 7.1 s, own 14.7 s = 2.06x)
    cold, after:  user 25.5 s, gate own 11.1 s = 0.45x (CPU: user 7.5 s, own 3.5 s = 0.46x)
                  (rounds 0.49x, 0.45x, 0.44x; main's 1.51x, 2.07x, 2.12x)
    warm, before: 2.22x, 2.02x;  warm, after: 0.45x, 0.44x (CPU 0.46x, 0.47x)

What changed: an Eq. 3 network's diagonal-estimate statistics come from lemma-13's factors
(I_ii, the Gram matrices J_m Diag(w) J_mᵀ of the directions and pooled tests, the fourth
moments as matrix products with powers of h̄; the dense J is formed only if a diagnosis reads
it); the categorical fourth moments per input on cache-sized column blocks; Catoni's sums on
column blocks of the replicates in place (no transposed copy); the spread verdicts from the sign
of Catoni's sum at the two bounds (two passes instead of the Newton steps); the report's 101,778
statistics made when read; column means, sds and ranges in one blocked pass. Left, by a CPU
profile of the after state: Catoni's means (Newton on all 101,778 columns, ~1.0 s CPU, about a
third of the rest), the spread test's two passes (~0.5 s), the per-call isolation of the
user's model and RNGs plus the estimate's conversion (~0.3 s), and on a cold call the imports
of the rooms (~0.5 s).

No test asserts on these timings.
"""

from __future__ import annotations

import time
import warnings
from typing import Any


def main() -> None:
    import sys

    import torch

    import fisher_verify as fv

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    nn = torch.nn
    if "--warm" in sys.argv:
        # a gate on a tiny model first: the modules the gate imports on its first call are
        # then loaded, and the timed gate is one that a process has run before
        tiny = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
        fv.check_estimator(lambda model, data: {k: torch.zeros_like(p) for k, p in
                                                model.named_parameters()},
                           tiny, torch.randn(4, 3, dtype=torch.float64), family="categorical",
                           replications=60)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 128), nn.Tanh(), nn.Linear(128, 10)).double()
    X = torch.randn(32, 784, dtype=torch.float64)
    Y = torch.randint(0, 10, (32,))
    user = [0.0]

    def ewc(model: Any, data: Any) -> dict[str, Any]:
        start = time.perf_counter()
        x, _ = data
        y = torch.distributions.Categorical(logits=model(x)).sample()
        F = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
        for m in range(x.shape[0]):
            model.zero_grad()
            nn.functional.cross_entropy(model(x[m : m + 1]), y[m : m + 1]).backward()
            for k, p in model.named_parameters():
                F[k] += p.grad.detach() ** 2 / x.shape[0]
        user[0] += time.perf_counter() - start
        return F

    # the gate's one front door for a torch model (its name before and after issue 19)
    check = fv.check_estimator
    start = time.perf_counter()
    report = check(ewc, model, (X, Y), family="categorical", replications=200)
    total = time.perf_counter() - start
    own = total - user[0]
    print(f"passed={report.passed}: total {total:.2f} s, user's 201 calls {user[0]:.2f} s, "
          f"gate's own {own:.2f} s = {own / user[0]:.2f}x the user's calls")


if __name__ == "__main__":
    main()
