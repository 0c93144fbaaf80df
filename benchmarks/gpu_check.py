"""One prepared GPU check of the large-network path, for a session that draws a device.

Run on the device machine from the repository root::

    pip install -e . && python benchmarks/gpu_check.py        # writes $OUT/gpu_check.json too

It compares every large-path quantity computed on CUDA against the CPU float64 route on a few
networks (float64 must agree to 1e-10 relative; float32 is reported, not judged), the
Jacobian route of the deep Var(Î₂) diagonals against the CPU recursion and the streamed norms
against one CPU block, then times the deep rows of ``bench_depth.py``, the streamed thm-7 /
thm-8 at ``FV_GPU_CHECK_NORMS_M`` inputs (default 2000) and the P ≈ 10⁵ and 10⁶ cases. It
exits 1 when a float64 comparison fails, 0 otherwise, and 2 when no CUDA device is visible.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def _rel(a: np.ndarray | float, b: np.ndarray | float) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def main() -> int:
    import torch

    import fisher_verify as fv
    from fisher_verify.fisher import large, large_norms

    # FV_GPU_CHECK_DEVICE=cpu is a dry run of this script on a machine without a GPU
    device = os.environ.get("FV_GPU_CHECK_DEVICE", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible", file=sys.stderr)
        return 2
    cuda = device == "cuda"
    rng = np.random.default_rng(0)
    cases = [
        ([20, 30, 3], "tanh", fv.family("categorical", K=3)),
        ([10, 40, 40, 1], "softplus", fv.family("bernoulli")),
        ([5, 16, 16, 16, 2], "gelu", fv.family("normal_unknown_variance")),
    ]
    name = torch.cuda.get_device_name(0) if cuda else "cpu (dry run)"
    results: dict[str, object] = {"device": name, "checks": [], "timings": []}
    failed = False
    for widths, act, fam in cases:
        net = fv.Network.random(widths, act, fam, 0.7, rng)
        x = rng.normal(size=(4, widths[0]))
        net = net.into_domain(x)
        for dtype in (torch.float64, torch.float32):
            row: dict[str, object] = {"widths": widths, "activation": act, "family": fam.label, "dtype": str(dtype)}
            cpu = large.diagonals(net, x, 10, device="cpu")
            gpu = large.diagonals(net, x, 10, device=device, dtype=dtype)
            row["fisher"] = _rel(gpu.fisher, cpu.fisher)
            row["variance_1"] = _rel(gpu.variance_1, cpu.variance_1)
            row["variance_2"] = _rel(gpu.variance_2, cpu.variance_2)
            row["cov1_norm"] = _rel(large.covariance1_norm(net, x, 10, device=device, dtype=dtype),
                                    large.covariance1_norm(net, x, 10, device="cpu"))
            row["thm8_lhs"] = _rel(large.thm8_large(net, x, 10, method="exact", device=device, dtype=dtype).lhs,
                                   large.thm8_large(net, x, 10, method="exact", device="cpu").lhs)
            errors = [v for k, v in row.items() if isinstance(v, float)]
            row["ok"] = max(errors) <= 1e-10 if dtype == torch.float64 else None
            failed |= row["ok"] is False
            results["checks"].append(row)  # type: ignore[union-attr]
            print(row, flush=True)
    # the deep rows of bench_depth.py: the Jacobian route of diag Γ against the recursion
    for widths, M in (([784, 300, 300, 300, 10], 8), ([20, 16, 16, 16, 16, 3], 4)):
        net = fv.Network.random(widths, "tanh", fv.family("categorical", K=widths[-1]), 1.0, rng)
        x = rng.normal(size=(M, widths[0]))
        s_gpu, s_cpu = large._setup(net, x, device, None), large._setup(net, x, "cpu", None)
        q_gpu, q_cpu = large._forward_backward(s_gpu, s_gpu.X), large._forward_backward(s_cpu, s_cpu.X)
        jac = large._gamma_diagonals_jacobian(s_gpu, q_gpu)
        rec = large._gamma_diagonals_recursive(s_cpu, q_cpu)
        row = {"widths": widths, "check": "diag Gamma jacobian (device) vs recursion (cpu)",
               "error": max(_rel(a.cpu().numpy(), b.numpy()) for a, b in zip(jac, rec))}
        row["ok"] = row["error"] <= 1e-10
        failed |= not row["ok"]
        results["checks"].append(row)  # type: ignore[union-attr]
        print(row, flush=True)
    # streamed norms: blocks of 3 inputs on the device against one block on the CPU
    net = fv.Network.random([12, 9, 4], "tanh", fv.family("categorical", K=4), 1.0, rng)
    x = rng.normal(size=(10, 12))
    for statement in ("thm-7", "thm-8"):
        s_gpu, s_cpu = large._setup(net, x, device, None), large._setup(net, x, "cpu", None)
        q_gpu = large_norms._all_factors(s_gpu, statement, 10)
        q_cpu = large_norms._all_factors(s_cpu, statement, 10)
        a, _ = large_norms.pair_sum(s_gpu, statement, q_gpu, 3)
        b, _ = large_norms.pair_sum(s_cpu, statement, q_cpu, 10)
        row = {"check": f"{statement} streamed (device, blocks of 3) vs one block (cpu)",
               "error": _rel(a, b)}
        row["ok"] = row["error"] <= 1e-10
        failed |= not row["ok"]
        results["checks"].append(row)  # type: ignore[union-attr]
        print(row, flush=True)
    for widths, M in (([784, 300, 300, 300, 10], 32), ([784, 1000, 1000, 1000, 10], 8)):
        net = fv.Network.random(widths, "tanh", fv.family("categorical", K=10), 1.0, rng)
        x = rng.normal(size=(M, widths[0]))
        for name, fn in (("diag I", lambda n=net, xx=x: large.fisher_diagonal(n, xx, device=device)),
                         ("Var(I1)", lambda n=net, xx=x: large.variance1_diagonal(n, xx, device=device)),
                         ("Var(I2)", lambda n=net, xx=x: large.variance2_diagonal(n, xx, device=device))):
            fn()
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            row = {"widths": widths, "M": M, "task": name, "seconds": time.perf_counter() - t0}
            results["timings"].append(row)  # type: ignore[union-attr]
            print(row, flush=True)
    norms_M = int(os.environ.get("FV_GPU_CHECK_NORMS_M", "2000" if cuda else "200"))
    net = fv.Network.random([784, 128, 10], "tanh", fv.family("categorical", K=10), 1.0, rng)
    x = rng.normal(size=(norms_M, 784))
    for statement, fn in (("thm7_streamed", large.thm7_large), ("thm8_streamed", large.thm8_large)):
        t0 = time.perf_counter()
        fn(net, x, 1, device=device, method="exact")
        if cuda:
            torch.cuda.synchronize()
        row = {"M": norms_M, "task": statement, "seconds": time.perf_counter() - t0}
        results["timings"].append(row)  # type: ignore[union-attr]
        print(row, flush=True)
    big = (([784, 128, 10], fv.family("categorical", K=10)), ([100, 1000, 1000, 1], fv.family("bernoulli")))
    for widths, fam in big:
        net = fv.Network.random(widths, "tanh", fam, 1.0, rng)
        x = rng.normal(size=(32, widths[0]))
        for name, fn in (
            ("diagonals", lambda n=net, xx=x: large.diagonals(n, xx, 10, device=device)),
            ("thm7", lambda n=net, xx=x: large.thm7_large(n, xx, 10, device=device)),
            ("thm8_exact", lambda n=net, xx=x: large.thm8_large(n, xx, 10, method="exact", device=device)),
        ):
            fn()
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
            row = {"P": net.num_params, "task": name, "seconds": time.perf_counter() - t0, "peak_gpu_MB": peak}
            results["timings"].append(row)  # type: ignore[union-attr]
            print(row, flush=True)
    out = os.environ.get("OUT")
    if out:
        Path(out, "gpu_check.json").write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
