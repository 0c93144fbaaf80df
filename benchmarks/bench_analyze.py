"""Time, CPU time and peak memory of ``fv.analyze`` (the Eq. 3 route) against the number of
inputs M, and what it did: an exact answer, sampled norms (labelled estimates) or a refusal
naming the limit.

Run by hand from the repository root (not part of the tests):

    python benchmarks/bench_analyze.py [--inputs 1000,10000,100000] [--timeout 900]
        [--widths 4,8,3] [--time-budget 300] [--link mean-logstd]

Each M runs in a fresh subprocess (``--one M``) under ``--timeout`` seconds: wall seconds,
CPU seconds of the process (on a shared machine the wall time is mostly waiting), peak
resident memory (``ru_maxrss``), whether the thm-7/thm-8 norms were exact, and the refusal
message if any. The network is ``Network.random(widths, "tanh", categorical(K = n_L))``;
the inputs are standard normal. With ``--link NAME`` the network is a ``LinkedNetwork`` of
``Network.random(widths, "tanh", link.family, 0.5)`` and the link (n_L a multiple of the
link's unit width; the norms go through ``fisher/pair_norms.py``). Before issue 14 the route formed every input's
``(n_L, P, P)`` Hessians at once and summed the norms over all pairs of inputs in Python:
M = 10³ took 48–56 s and M = 10⁴ did not finish.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(M: int, widths: list[int], time_budget: float | None,
        link: str | None = None) -> dict[str, object]:
    """Run analyze once in this process and describe the outcome."""
    import numpy as np

    import fisher_verify as fv
    from fisher_verify.errors import FisherVerifyError

    if link is None:
        net = fv.Network.random(widths, "tanh", fv.family("categorical", K=widths[-1]), 1.0, 0)
    else:
        unit = fv.link(link)
        L = fv.link(link, widths[-1] // unit.n)
        net = fv.LinkedNetwork.random(widths, "tanh", L, 0.5, 0)
    X = np.random.default_rng(1).normal(size=(M, widths[0]))
    stages: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()

    def progress(stage: str, done: int, total: int) -> None:
        stages.setdefault(stage, round(time.perf_counter() - t0, 2))

    out: dict[str, object] = {"M": M, "P": int(net.num_params)}
    try:
        import inspect

        # the same script measures the code before issue 14 (no budgets, no progress)
        kw = ({"time_budget": time_budget, "progress": progress}
              if "progress" in inspect.signature(fv.analyze).parameters else {})
        a = fv.analyze(net, X, **kw)
        out.update(outcome="answer", norms_exact=getattr(a, "covariance_norms_exact", True),
                   norm_1=a.covariance_norm_1,
                   norm_1_se=getattr(a, "covariance_norm_1_stderr", 0.0),
                   norm_2=a.covariance_norm_2,
                   norm_2_se=getattr(a, "covariance_norm_2_stderr", 0.0), better=a.better)
    except FisherVerifyError as exc:
        out.update(outcome="refused", message=str(exc))
    out.update(wall_s=round(time.perf_counter() - t0, 2),
               cpu_s=round(time.process_time() - c0, 2),
               peak_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               stage_starts_s=stages)
    return out


def main() -> None:
    """Run every M in a subprocess and print one JSON line each."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", default="1000,10000,100000")
    p.add_argument("--widths", default="4,8,3")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--time-budget", type=float, default=None)
    p.add_argument("--link", default=None, help="a LinkedNetwork with this link")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    if args.one is not None:
        print(json.dumps(one(args.one, widths, args.time_budget, args.link)))
        return
    for M in (int(float(m)) for m in args.inputs.split(",")):
        cmd = [sys.executable, __file__, "--one", str(M), "--widths", args.widths]
        if args.time_budget is not None:
            cmd += ["--time-budget", str(args.time_budget)]
        if args.link is not None:
            cmd += ["--link", args.link]
        t0 = time.perf_counter()
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            line = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else json.dumps(
                {"M": M, "outcome": "crashed", "stderr": run.stderr[-400:]})
        except subprocess.TimeoutExpired:
            line = json.dumps({"M": M, "outcome": f"no answer after {args.timeout:g} s",
                               "wall_s": round(time.perf_counter() - t0, 1)})
        print(line, flush=True)


if __name__ == "__main__":
    main()
