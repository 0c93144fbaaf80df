"""The cost of the second-order diagonals at depth, side by side (issue 11's table), by hand.

Run from the repository root (not part of the tests)::

    python benchmarks/bench_depth.py                 # 1 and 2 threads, the five rows
    python benchmarks/bench_depth.py --threads 1 --rounds 3 --rows 0,3
    python benchmarks/bench_depth.py --norms 10000   # thm-7 / thm-8 at M = 10⁴ as well

For each row (widths, M; tanh, categorical K = 10, float64, CPU) it times, in alternating
rounds (every task once per round, so a load change hits all tasks alike) and reports
medians of:

* ``backward``: one forward + backward pass of the batch through the same ``nn.Sequential``
  (``loss.backward()`` of the mean cross-entropy), the unit of cost;
* ``diag I``, ``Var(I1)``, ``Var(I2)``: :func:`fisher_verify._src.models.mlp.fisher_diagonal`,
  ``variance1_diagonal``, ``variance2_diagonal`` (eq-6, thm-4, thm-6);
* ``BackPACK``: ``DiagGGNExact`` of the cross-entropy (the exact Fisher diagonal, eq-6),
  when backpack-for-pytorch is installed;

and the ratios ``Var(I1)/diag I``, ``Var(I2)/diag I``, ``Var(I2)/BackPACK`` and each to one
backward pass. ``--norms M`` adds thm-7 and thm-8 (streamed, exact) on 784-128-10 at M
inputs with the cost model's advance estimate and the peak RSS growth. Each thread count
runs in its own subprocess. Timings on a shared machine move; ratios within a row do not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

ROWS: list[tuple[list[int], int]] = [
    ([784, 128, 10], 32),
    ([784, 1000, 1000, 10], 32),
    ([784, 128, 10], 1000),
    ([784, 300, 300, 300, 10], 32),
    ([784, 1000, 1000, 1000, 10], 8),
]
TASKS = ["backward", "diag I", "Var(I1)", "Var(I2)", "BackPACK"]


def _sequential(net: Any) -> Any:
    import torch

    layers: list[Any] = []
    for i, W in enumerate(net.weights):
        lin = torch.nn.Linear(W.shape[1] - 1, W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(W[:, :-1]))
            lin.bias.copy_(torch.as_tensor(W[:, -1]))
        layers.append(lin)
        if i < len(net.weights) - 1:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def _tasks(widths: list[int], M: int) -> dict[str, Callable[[], Any]]:
    import torch

    import fisher_verify as fv
    from fisher_verify._src.models import mlp

    net = fv.Network.random(widths, "tanh", fv.family("categorical", K=widths[-1]), rng=0)
    X = np.random.default_rng(1).normal(size=(M, widths[0]))
    Xt = torch.as_tensor(X)
    y = torch.zeros(M, dtype=torch.long)
    model = _sequential(net)

    def backward() -> None:
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(Xt), y).backward()

    out: dict[str, Callable[[], Any]] = {
        "backward": backward,
        "diag I": lambda: mlp.fisher_diagonal(net, X, device="cpu"),
        "Var(I1)": lambda: mlp.variance1_diagonal(net, X, device="cpu"),
        "Var(I2)": lambda: mlp.variance2_diagonal(net, X, device="cpu"),
    }
    try:
        from backpack import backpack, extend
        from backpack.extensions import DiagGGNExact
    except ImportError:
        return out
    bp_model = extend(_sequential(net))
    bp_loss = extend(torch.nn.CrossEntropyLoss())

    def diag_ggn() -> None:
        bp_model.zero_grad()
        loss = bp_loss(bp_model(Xt), y)
        with backpack(DiagGGNExact()):
            loss.backward()

    out["BackPACK"] = diag_ggn
    return out


def _row(widths: list[int], M: int, rounds: int) -> dict[str, Any]:
    tasks = _tasks(widths, M)
    for fn in tasks.values():  # warm-up: kernels, autograd, allocator
        fn()
    times: dict[str, list[float]] = {k: [] for k in tasks}
    for _ in range(rounds):
        for name, fn in tasks.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"widths": widths, "M": M, "seconds": med}


def _norms(M: int) -> list[dict[str, Any]]:
    import resource

    import fisher_verify as fv
    from fisher_verify._src.models import mlp_bounds, mlp_norms

    net = fv.Network.random([784, 128, 10], "tanh", fv.family("categorical", K=10), rng=0)
    X = np.random.default_rng(1).normal(size=(M, 784))
    out = []
    for statement, fn in (("thm-7", mlp_bounds.thm7_large), ("thm-8", mlp_bounds.thm8_large)):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cost = mlp_norms.norm_cost(net, X, statement, device="cpu")
        t0 = time.perf_counter()
        b = fn(net, X, 1, device="cpu", method="exact")
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out.append({"statement": statement, "M": M, "P": net.num_params, "seconds": wall,
                    "estimate_s": cost.seconds, "budget_MiB": cost.memory_budget / 2**20,
                    "planned_MiB": (cost.held_bytes + cost.block_bytes) / 2**20,
                    "peak_rss_MiB": peak / 1024, "rss_growth_MiB": (peak - before) / 1024,
                    "lhs": b.lhs, "rhs": b.rhs})
    return out


def _print(threads: int, rows: list[dict[str, Any]]) -> None:
    print(f"\n{threads} thread(s); medians of alternating rounds; ratios within a row")
    head = ["widths", "M", "backward s", "diag I/bw", "Var1/bw", "Var2/bw", "BackPACK/bw",
            "Var1/diagI", "Var2/diagI", "Var2/BackPACK"]
    print(" | ".join(head))
    for r in rows:
        s = r["seconds"]
        bw = s["backward"]
        bp = s.get("BackPACK")
        cells = ["-".join(map(str, r["widths"])), str(r["M"]), f"{bw:.4f}",
                 f"{s['diag I'] / bw:.2f}", f"{s['Var(I1)'] / bw:.2f}", f"{s['Var(I2)'] / bw:.2f}",
                 f"{bp / bw:.2f}" if bp else "-", f"{s['Var(I1)'] / s['diag I']:.2f}",
                 f"{s['Var(I2)'] / s['diag I']:.2f}", f"{s['Var(I2)'] / bp:.2f}" if bp else "-"]
        print(" | ".join(cells), flush=True)


def main() -> int:
    """Run each thread count in a subprocess and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rows", default=None, help="comma-separated row indices (default all)")
    p.add_argument("--norms", type=int, default=0, help="also thm-7/thm-8 at this M")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    rows = ROWS if args.rows is None else [ROWS[int(i)] for i in args.rows.split(",")]
    if args.child is not None:
        import torch

        torch.set_num_threads(args.child)
        res: dict[str, Any] = {"rows": [_row(w, M, args.rounds) for w, M in rows]}
        if args.norms:
            res["norms"] = _norms(args.norms)
        print(json.dumps(res))
        return 0
    for threads in (int(t) for t in args.threads.split(",")):
        cmd = [sys.executable, __file__, "--child", str(threads), "--rounds", str(args.rounds),
               "--norms", str(args.norms)] + (["--rows", args.rows] if args.rows else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{threads} thread(s) FAILED: {done.stderr.strip().splitlines()[-1:]}")
            continue
        res = json.loads(done.stdout.strip().splitlines()[-1])
        _print(threads, res["rows"])
        for n in res.get("norms", []):
            print(f"{n['statement']} M = {n['M']} P = {n['P']}: {n['seconds']:.1f} s (estimated "
                  f"{n['estimate_s']:.1f} s), planned {n['planned_MiB']:.0f} MiB of a "
                  f"{n['budget_MiB']:.0f} MiB budget, RSS growth {n['rss_growth_MiB']:.0f} MiB; "
                  f"lhs {n['lhs']:.6g} rhs {n['rhs']:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
