"""One prepared GPU check of the large-network path, for a session that draws a device.

Run on the device machine from the repository root::

    pip install -e . && python benchmarks/gpu_check.py        # writes $OUT/gpu_check.json too

It compares every large-path quantity computed on CUDA against the CPU float64 route on a few
networks (float64 must agree to 1e-10 relative; float32 is reported, not judged), then times
the P ≈ 10⁵ and 10⁶ cases on the GPU. It exits 1 when a float64 comparison fails, 0 otherwise,
and 2 when no CUDA device is visible.
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
    from fisher_verify.fisher import large

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
