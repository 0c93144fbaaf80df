"""Time and peak memory of the large-network path (fisher_verify._src.models.mlp).

Run by hand from the repository root (not part of the tests):

    python benchmarks/bench_large.py [--device cpu|cuda] [--inputs M] [--quick]

Cases: P ≈ 10⁵ (widths [784, 128, 10], categorical, tanh) and P ≈ 10⁶ (widths
[100, 1000, 1000, 1], Bernoulli, tanh), each with the diagonal Fisher (eq-6), diag Var(Î₁)
(thm-4), diag Var(Î₂) (thm-6), ‖Cov(Î₁)‖_F with thm-7, and thm-8 (‖Cov(Î₂)‖_F) both exactly
by the closed-form traces tr(H^α H^β) (``thm8_exact``, no P × P) and by Hutchinson; the
reference is one forward + backward pass of the batch (``h_L.sum().backward()``) and
``n_L`` of them. The naive dense route (P × P arrays) runs at P ≈ 10⁴ with M = 1 for a side
by side comparison. Every measurement runs in a fresh subprocess: peak memory is the
growth of the process's resident set (sampled every ms) over its size after setup and a
warm-up run (CPU); timings are the best of 3 after the warm-up (one run for naive and
thm-8 Hutchinson) or ``torch.cuda.max_memory_allocated`` (GPU). ``--tasks a,b`` runs only the
named tasks (e.g. ``--tasks thm8_exact,thm8_hutchinson``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

CASES: dict[str, tuple[list[int], str, dict[str, Any]]] = {
    "P~1e4 categorical": ([100, 90, 10], "categorical", {"K": 10}),
    "P~1e4 bernoulli": ([100, 99, 1], "bernoulli", {}),
    "P~1e5 categorical": ([784, 128, 10], "categorical", {"K": 10}),
    "P~1e6 bernoulli": ([100, 1000, 1000, 1], "bernoulli", {}),
}

LARGE_TASKS = ["backward_1", "backward_nL", "fisher_diag", "var1_diag", "var2_diag", "all_diag",
               "cov1_norm_thm7", "thm8_exact", "thm8_hutchinson"]
NAIVE_TASKS = ["naive_fisher_diag", "naive_var1_diag", "naive_var2_diag", "naive_cov1_norm"]


def _build(case: str, M: int) -> tuple[Any, np.ndarray]:
    import fisher_verify as fv

    widths, fam, params = CASES[case]
    net = fv.Network.random(widths, "tanh", fv.family(fam, **params), rng=0)
    X = np.random.default_rng(1).normal(size=(M, widths[0]))
    return net, X


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class _PeakRSS:
    """Samples the current RSS every millisecond in a thread; ``peak`` is the maximum seen."""

    def __init__(self) -> None:
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.001)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _child(case: str, task: str, M: int, device: str, probes: int) -> dict[str, Any]:
    import torch

    from fisher_verify._src.fisher.covariance import cov1_frobenius, network_moments
    from fisher_verify._src.fisher.covariance import network_variance as variance
    from fisher_verify._src.models import mlp, mlp_bounds

    torch.set_num_threads(torch.get_num_threads())
    net, X = _build(case, M)
    cuda = device == "cuda"

    def backward(k: int) -> None:
        s = mlp._setup(net, X, device, None)
        theta = torch.cat([W.reshape(-1) for W in s.weights]).requires_grad_(True)
        h = mlp_bounds._batched_forward(s, theta)
        for a in range(k):
            (g,) = torch.autograd.grad(h[:, a].sum(), theta, retain_graph=a < k - 1)

    runs: dict[str, Callable[[], Any]] = {
        "backward_1": lambda: backward(1),
        "backward_nL": lambda: backward(net.widths[-1]),
        "fisher_diag": lambda: mlp.fisher_diagonal(net, X, device=device),
        "var1_diag": lambda: mlp.variance1_diagonal(net, X, device=device),
        "var2_diag": lambda: mlp.variance2_diagonal(net, X, device=device),
        "all_diag": lambda: mlp.diagonals(net, X, device=device),
        "cov1_norm_thm7": lambda: mlp_bounds.thm7_large(net, X, device=device),
        "thm8_exact": lambda: mlp_bounds.thm8_large(net, X, method="exact", device=device),
        "thm8_hutchinson": lambda: mlp_bounds.thm8_large(net, X, method="hutchinson", probes=probes,
                                                    device=device),
        "naive_fisher_diag": lambda: np.diag(__import__("fisher_verify").exact_fisher(net, X)),
        "naive_var1_diag": lambda: variance(net, X, 1, diagonal=True),
        "naive_var2_diag": lambda: variance(net, X, 2, diagonal=True),
        "naive_cov1_norm": lambda: cov1_frobenius(**{k: v for k, v in network_moments(  # type: ignore[arg-type]
            net, X, 1).items() if k in ("J", "K", "I")}),
    }
    fn = runs[task]
    if task.startswith(("fisher", "var", "all", "cov1", "thm")):
        mlp.diagonals(net, X[:1], device=device)  # warm the family kernels and torch
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    repeats = 1 if task.startswith(("naive", "thm8_h")) else 3
    if repeats > 1:
        fn()  # warm-up run (first-call costs of autograd and kernels)
    base_rss = _rss_mb()
    wall = float("inf")
    with _PeakRSS() as rss:
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            if cuda:
                torch.cuda.synchronize()
            wall = min(wall, time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else rss.peak - base_rss
    extra = ""
    if hasattr(out, "lhs"):
        extra = f"lhs={out.lhs:.4g} rhs={out.rhs:.4g}" + (
            "" if out.details.get("exact") else " (ESTIMATE)")
    return {"case": case, "task": task, "P": net.num_params, "M": M, "seconds": wall,
            "peak_mb": peak, "note": extra}


def main() -> int:
    """Run every (case, task) in a subprocess and print a table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None)
    p.add_argument("--inputs", type=int, default=32, help="M inputs for the large cases")
    p.add_argument("--probes", type=int, default=8, help="Hutchinson probes for thm-8")
    p.add_argument("--quick", action="store_true", help="skip the P ~ 1e6 case")
    p.add_argument("--tasks", default=None, help="comma-separated task names to run (default all)")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.device is None:
        from fisher_verify._src.models.device import default_device

        args.device = default_device()
    if args.child:
        case, task = args.child
        M = 1 if "1e4" in case else args.inputs  # side by side with the naive route at M = 1
        print(json.dumps(_child(case, task, M, args.device, args.probes)))
        return 0
    plan = [(c, t) for c in ("P~1e4 categorical", "P~1e4 bernoulli") for t in NAIVE_TASKS]
    plan += [(c, t) for c in ("P~1e4 categorical", "P~1e4 bernoulli") for t in LARGE_TASKS[:7]]
    for c in ("P~1e5 categorical", "P~1e6 bernoulli"):
        if not (args.quick and "1e6" in c):
            plan += [(c, t) for t in LARGE_TASKS]
    if args.tasks:
        wanted = set(args.tasks.split(","))
        plan = [(c, t) for c, t in plan if t in wanted]
    print(f"device {args.device}; P~1e5/1e6 cases M = {args.inputs}; P~1e4 cases M = 1")
    print(f"{'case':20s} {'task':18s} {'P':>9s} {'M':>3s} {'seconds':>9s} {'peak MB':>9s}  note")
    for case, task in plan:
        if task == "naive_var2_diag" and "categorical" in case:
            print(f"{case:20s} {task:18s} {'':>9s} {'':>3s} {'skipped: n_L P^2 Hessians = 8 GB':>20s}")
            continue
        cmd = [sys.executable, __file__, "--device", args.device, "--inputs", str(args.inputs),
               "--probes", str(args.probes), "--child", case, task]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"{case:20s} {task:18s} FAILED: {res.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{case:20s} {task:18s} {r['P']:>9d} {r['M']:>3d} {r['seconds']:>9.3f} "
              f"{r['peak_mb']:>9.1f}  {r['note']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
