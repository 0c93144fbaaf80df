"""One prepared GPU check of the large-network path and the models room, for a session that
draws a device.

Run on the device machine from the repository root::

    pip install -e . && python benchmarks/gpu_check.py        # writes $OUT/gpu_check.json too

Checks (float64 on the device must agree with the CPU float64 route to 1e-10 relative; float32
is reported, not judged):

* the large (Eq. 3) path: every diagonal and norm on a few networks, the Jacobian route of the
  deep Var(Î₂) diagonals against the CPU recursion, the streamed norms against one CPU block;
* the models room (any ``nn.Module``): an MLP (diag I(θ), Var(Î₁), Var(Î₂)) and a ReLU CNN
  (diag I(θ), Var(Î₁)), and diag I(θ) against BackPACK's ``DiagGGNExact`` when it imports.

Then timings: the deep rows of ``bench_depth.py``, the streamed thm-7 / thm-8 at
``FV_GPU_CHECK_NORMS_M`` inputs (default 2000), the P ≈ 10⁵ and 10⁶ large-path cases, and the
models room's MLP and CNN at P ≈ 10⁵ (M = 32, 1000) and 10⁶ (M = 32) next to one backward
pass and BackPACK (the rows of ``bench_models.py``). Timings stop, each skipped row named, once
``FV_GPU_CHECK_BUDGET_S`` seconds (default 420) have passed, so the whole script stays under
8 minutes on an H100. Exits 1 when a float64 comparison fails, 0 otherwise, and 2 when no CUDA
device is visible. ``FV_GPU_CHECK_DEVICE=cpu`` is a dry run on a machine without a GPU, with
smaller sizes (a couple of minutes on a loaded 2-core CPU).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_models import backward_once, cnn, mlp  # noqa: E402  (the bench_models.py cases)

TOL = 1e-10


def _rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def _rel_dict(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest error over parameter tensors, each relative to the largest |value| of all."""
    scale = max(float(v.abs().max()) for v in b.values())
    return max(float((a[k].detach().cpu() - b[k].detach().cpu()).abs().max()) for k in b) / max(
        scale, 1e-300)


class Run:
    """The device, the dry-run flag, the results and the timing deadline."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.device = os.environ.get("FV_GPU_CHECK_DEVICE", "cuda")
        self.cuda = self.device == "cuda"
        self.dry = not self.cuda
        self.start = time.perf_counter()
        self.budget = float(os.environ.get("FV_GPU_CHECK_BUDGET_S", "420"))
        name = torch.cuda.get_device_name(0) if self.cuda else "cpu (dry run)"
        self.results: dict[str, Any] = {"device": name, "checks": [], "timings": [],
                                        "skipped": []}
        self.failed = False

    def check(self, row: dict[str, Any], judged: bool = True) -> None:
        errors = [v for k, v in row.items() if isinstance(v, float) and k != "seconds"]
        row["ok"] = (max(errors) <= TOL) if judged else None
        self.failed |= row["ok"] is False
        self.results["checks"].append(row)
        print(row, flush=True)

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def timed(self, row: dict[str, Any], fn: Callable[[], Any], warm: bool = True) -> None:
        """Time ``fn`` once after a warm-up (kernels, allocator), unless the budget is spent."""
        if time.perf_counter() - self.start > self.budget:
            self.results["skipped"].append(row)
            print({"skipped (time budget)": row}, flush=True)
            return
        if warm:
            fn()
        self.sync()
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        fn()
        self.sync()
        row["seconds"] = time.perf_counter() - t0
        if self.cuda:
            row["peak_gpu_MB"] = self.torch.cuda.max_memory_allocated() / 2**20
        self.results["timings"].append(row)
        print(row, flush=True)


# --- the large (Eq. 3) path ---------------------------------------------------------------------


def check_large(run: Run, rng: np.random.Generator) -> None:
    import torch

    import fisher_verify as fv
    from fisher_verify._src.models import mlp, mlp_bounds, mlp_norms

    device = run.device
    cases = [
        ([20, 30, 3], "tanh", fv.family("categorical", K=3)),
        ([10, 40, 40, 1], "softplus", fv.family("bernoulli")),
        ([5, 16, 16, 16, 2], "gelu", fv.family("normal_unknown_variance")),
    ]
    for widths, act, fam in cases:
        net = fv.Network.random(widths, act, fam, 0.7, rng)
        x = rng.normal(size=(4, widths[0]))
        net = net.into_domain(x)
        for dtype in (torch.float64, torch.float32):
            row: dict[str, Any] = {"widths": widths, "activation": act, "family": fam.label,
                                   "dtype": str(dtype)}
            cpu = mlp.diagonals(net, x, 10, device="cpu")
            gpu = mlp.diagonals(net, x, 10, device=device, dtype=dtype)
            row["fisher"] = _rel(gpu.fisher, cpu.fisher)
            row["variance_1"] = _rel(gpu.variance_1, cpu.variance_1)
            row["variance_2"] = _rel(gpu.variance_2, cpu.variance_2)
            row["cov1_norm"] = _rel(mlp_bounds.covariance1_norm(net, x, 10, device=device, dtype=dtype),
                                    mlp_bounds.covariance1_norm(net, x, 10, device="cpu"))
            row["thm8_lhs"] = _rel(
                mlp_bounds.thm8_large(net, x, 10, method="exact", device=device, dtype=dtype).lhs,
                mlp_bounds.thm8_large(net, x, 10, method="exact", device="cpu").lhs)
            run.check(row, judged=dtype == torch.float64)
    # the deep rows of bench_depth.py: the Jacobian route of diag Γ against the recursion
    deep = [([50, 30, 30, 30, 10], 4)] if run.dry else [([784, 300, 300, 300, 10], 8)]
    for widths, M in [*deep, ([20, 16, 16, 16, 16, 3], 4)]:
        net = fv.Network.random(widths, "tanh", fv.family("categorical", K=widths[-1]), 1.0, rng)
        x = rng.normal(size=(M, widths[0]))
        s_gpu, s_cpu = mlp._setup(net, x, device, None), mlp._setup(net, x, "cpu", None)
        q_gpu = mlp._forward_backward(s_gpu, s_gpu.X)
        q_cpu = mlp._forward_backward(s_cpu, s_cpu.X)
        jac = mlp._gamma_diagonals_jacobian(s_gpu, q_gpu)
        rec = mlp._gamma_diagonals_recursive(s_cpu, q_cpu)
        run.check({"widths": widths, "check": "diag Gamma jacobian (device) vs recursion (cpu)",
                   "error": max(_rel(a.cpu().numpy(), b.numpy()) for a, b in zip(jac, rec))})
    # streamed norms: blocks of 3 inputs on the device against one block on the CPU
    net = fv.Network.random([12, 9, 4], "tanh", fv.family("categorical", K=4), 1.0, rng)
    x = rng.normal(size=(10, 12))
    for statement in ("thm-7", "thm-8"):
        s_gpu, s_cpu = mlp._setup(net, x, device, None), mlp._setup(net, x, "cpu", None)
        a, _ = mlp_norms.pair_sum(s_gpu, statement, mlp_norms._all_factors(s_gpu, statement, 10), 3)
        b, _ = mlp_norms.pair_sum(s_cpu, statement, mlp_norms._all_factors(s_cpu, statement, 10), 10)
        run.check({"check": f"{statement} streamed (device, blocks of 3) vs one block (cpu)",
                   "error": _rel(a, b)})


def time_large(run: Run, rng: np.random.Generator) -> None:
    import fisher_verify as fv
    from fisher_verify._src.models import mlp, mlp_bounds

    device = run.device
    deep = ([([100, 50, 50, 50, 10], 8)] if run.dry else
            [([784, 300, 300, 300, 10], 32), ([784, 1000, 1000, 1000, 10], 8)])
    for widths, M in deep:
        net = fv.Network.random(widths, "tanh", fv.family("categorical", K=10), 1.0, rng)
        x = rng.normal(size=(M, widths[0]))
        diagonal: list[tuple[str, Callable[..., Any]]] = [
            ("diag I", mlp.fisher_diagonal), ("Var(I1)", mlp.variance1_diagonal),
            ("Var(I2)", mlp.variance2_diagonal)]
        for name, fn in diagonal:
            run.timed({"widths": widths, "M": M, "task": name}, partial(fn, net, x, device=device))
    norms_M = int(os.environ.get("FV_GPU_CHECK_NORMS_M", "100" if run.dry else "2000"))
    net = fv.Network.random([784, 128, 10], "tanh", fv.family("categorical", K=10), 1.0, rng)
    x = rng.normal(size=(norms_M, 784))
    norms: list[tuple[str, Callable[..., Any]]] = [("thm7_streamed", mlp_bounds.thm7_large),
                                                   ("thm8_streamed", mlp_bounds.thm8_large)]
    for statement, fn in norms:
        run.timed({"M": norms_M, "task": statement},
                  partial(fn, net, x, 1, device=device, method="exact"), warm=False)
    big = [([784, 128, 10], fv.family("categorical", K=10))]
    if not run.dry:
        big.append(([100, 1000, 1000, 1], fv.family("bernoulli")))
    for widths, fam in big:
        net = fv.Network.random(widths, "tanh", fam, 1.0, rng)
        x = rng.normal(size=(8 if run.dry else 32, widths[0]))
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("diagonals", partial(mlp.diagonals, net, x, 10, device=device)),
            ("thm7", partial(mlp_bounds.thm7_large, net, x, 10, device=device)),
            ("thm8_exact", partial(mlp_bounds.thm8_large, net, x, 10, method="exact", device=device)),
        ]
        for name, call in calls:
            run.timed({"P": net.num_params, "task": name}, call)


# --- the models room (any nn.Module) ------------------------------------------------------------


def backpack_diag_ggn(model: Any, X: Any) -> dict[str, Any] | None:
    """BackPACK's exact GGN diagonal of the summed cross-entropy (= M · diag I(θ), categorical);
    None when BackPACK does not import."""
    import torch

    try:
        from backpack import backpack, extend
        from backpack.extensions import DiagGGNExact
    except ImportError:
        return None
    m = extend(copy.deepcopy(model))
    loss_fn = extend(torch.nn.CrossEntropyLoss(reduction="sum"))
    logits = m(X)
    with backpack(DiagGGNExact()):
        loss_fn(logits, logits.argmax(1)).backward()
    return {k: p.diag_ggn_exact.detach() for k, p in m.named_parameters()}


def _inputs(kind: str, M: int, device: str) -> Any:
    import torch

    shape = (M, 784) if kind == "mlp" else (M, 1, 28, 28)
    return torch.randn(*shape, dtype=torch.float64, device=device)


def check_models(run: Run) -> None:
    import torch

    import fisher_verify as fv

    fam = fv.family("categorical", K=10)
    torch.manual_seed(0)
    for kind in ("mlp", "cnn"):
        model_cpu = (mlp if kind == "mlp" else cnn)(False).double().eval()
        model_dev = copy.deepcopy(model_cpu).to(run.device)
        M = 4 if run.dry else 16
        X_cpu = _inputs(kind, M, "cpu")
        X_dev = X_cpu.to(run.device)
        tasks: list[tuple[str, Callable[..., Any]]] = [
            ("diag I", lambda m, X, **k: fv.exact_fisher(m, X, fam, progress=False, **k, diagonal=True)),
            ("Var(I1)", lambda m, X, **k: fv.variance(m, X, fam, n=3,
                                                                     progress=False, **k, diagonal=True)),
        ]
        if kind == "mlp":  # a ReLU CNN has no Î₂ quantities (refused: not C²)
            tasks.append(("Var(I2)", lambda m, X, **k: fv.variance(
                m, X, fam, which="I2", n=3, progress=False, **k, diagonal=True)))
        for task, fn in tasks:
            ref = fn(model_cpu, X_cpu)
            for dtype in (torch.float64, torch.float32):
                got = fn(model_dev, X_dev, dtype=dtype)
                row = {"model": kind, "M": M, "task": task, "dtype": str(dtype),
                       "exact": all(got.exact.values()), "error": _rel_dict(got, ref)}
                run.check(row, judged=dtype == torch.float64)
            if task == "diag I":
                ggn = backpack_diag_ggn(model_dev, X_dev)
                if ggn is not None:
                    run.check({"model": kind, "M": M, "check": "diag I (device) vs BackPACK "
                               "DiagGGNExact / M (device)",
                               "error": _rel_dict({k: v * M for k, v in ref.items()}, ggn)})


def time_models(run: Run) -> None:
    import torch

    import fisher_verify as fv

    fam = fv.family("categorical", K=10)
    torch.manual_seed(0)
    rows = ([("mlp", False, 8), ("cnn", False, 8)] if run.dry else
            [("mlp", False, 32), ("mlp", False, 1000), ("cnn", False, 32), ("cnn", False, 1000),
             ("mlp", True, 32), ("cnn", True, 32)])
    for kind, big, M in rows:
        model = (mlp if kind == "mlp" else cnn)(big).double().to(run.device).eval()
        P = sum(q.numel() for q in model.parameters())
        X = _inputs(kind, M, run.device)
        base = {"model": kind, "P": P, "M": M}
        run.timed({**base, "task": "backward"}, partial(backward_once, model, X))
        if backpack_diag_ggn(model, X[:2]) is not None:
            run.timed({**base, "task": "BackPACK DiagGGNExact"}, partial(backpack_diag_ggn, model, X))
        run.timed({**base, "task": "diag I"},
                  partial(fv.exact_fisher, model, X, fam, diagonal=True, progress=False))
        run.timed({**base, "task": "Var(I1)"},
                  partial(fv.variance, model, X, fam, n=1, diagonal=True, progress=False))
        if kind == "mlp":
            run.timed({**base, "task": "Var(I2)"}, partial(fv.variance, model, X, fam,
                                                           which="I2", n=1, diagonal=True,
                                                           progress=False))


def main() -> int:
    import torch

    warnings.filterwarnings("ignore")
    if os.environ.get("FV_GPU_CHECK_DEVICE", "cuda") == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible", file=sys.stderr)
        return 2
    run = Run()
    rng = np.random.default_rng(0)
    # every check first (they are what a failed run must still report), then the timings
    check_large(run, rng)
    check_models(run)
    time_large(run, rng)
    time_models(run)
    run.results["total_seconds"] = time.perf_counter() - run.start
    print({"total_seconds": run.results["total_seconds"], "failed": run.failed}, flush=True)
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, "gpu_check.json").write_text(json.dumps(run.results, indent=2, default=str))
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
