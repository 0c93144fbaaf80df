"""Time the any-model path (fisher_verify.models) against BackPACK and one backward pass.

Issue 9's targets, as ratios measured side by side in one run: diag I(θ) within 1.5× BackPACK's
``DiagGGNExact`` (the GGN of a summed cross-entropy is the categorical Fisher), ``Var(Î₁)``
diagonal within 2× of diag I(θ), ``Var(Î₂)`` diagonal of an MLP within 4× of diag I(θ). Models:
an MLP and a CNN at P ≈ 1e5 (``--large``: ≈ 1e6), categorical K = 10, M = 32 and M = 1000.
Run from the repository root:

    python benchmarks/bench_models.py [--M 32 1000] [--large] [--device cuda]

No test asserts on these timings.
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from collections.abc import Callable
from typing import Any


def mlp(large: bool) -> Any:
    import torch.nn as nn

    hidden = 1270 if large else 128
    return nn.Sequential(nn.Linear(784, hidden), nn.Tanh(), nn.Linear(hidden, 10))


def cnn(large: bool) -> Any:
    import torch.nn as nn

    ch = 32 if large else 16
    flat = 2 * ch * 12 * 12
    return nn.Sequential(nn.Conv2d(1, ch, 3), nn.ReLU(), nn.Conv2d(ch, 2 * ch, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(flat, 20 if not large else 100),
                         nn.ReLU(), nn.Linear(20 if not large else 100, 10))


REPEAT = 3


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """The fastest of REPEAT runs (the machine may be shared: the minimum is the least noisy)."""
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best


def backward_once(model: Any, X: Any) -> None:
    import torch

    m = copy.deepcopy(model)
    logits = m(X)
    torch.nn.functional.cross_entropy(logits, logits.argmax(1), reduction="sum").backward()


def backpack_diag_ggn(model: Any, X: Any) -> None:
    import torch
    from backpack import backpack, extend
    from backpack.extensions import DiagGGNExact

    m = extend(copy.deepcopy(model))
    loss_fn = extend(torch.nn.CrossEntropyLoss(reduction="sum"))
    logits = m(X)
    with backpack(DiagGGNExact()):
        loss_fn(logits, logits.argmax(1)).backward()


def main() -> int:
    """Run every case and print times and ratios."""
    import torch

    import fisher_verify as fv

    warnings.filterwarnings("ignore")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--M", type=int, nargs="+", default=[32, 1000])
    p.add_argument("--large", action="store_true", help="P ≈ 1e6 instead of 1e5")
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    p.add_argument("--memory", type=int, default=None, help="budget in MiB (default the library's)")
    p.add_argument("--repeat", type=int, default=3, help="runs per timing; the minimum is shown")
    args = p.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    fam = fv.family("categorical", K=10)
    mem = None if args.memory is None else args.memory << 20
    torch.manual_seed(0)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, float64, categorical K=10")
    print(f"{'model':<5} {'P':>9} {'M':>5} {'backward':>9} {'BackPACK':>9} {'diag I':>8} "
          f"{'Var I1':>8} {'Var I2':>8} | {'I/BP':>5} {'V1/I':>5} {'V2/I':>5}")
    for name in args.models:
        model = (mlp if name == "mlp" else cnn)(args.large).double().to(args.device).eval()
        P = sum(q.numel() for q in model.parameters())
        # warm-up: torch.func and BackPACK set themselves up on their first call
        shape1 = (2, 784) if name == "mlp" else (2, 1, 28, 28)
        X1 = torch.randn(*shape1, dtype=torch.float64, device=args.device)
        backpack_diag_ggn(model, X1)
        fv.variance(model, X1, fam, n=1, progress=False, diagonal=True)
        for M in args.M:
            shape = (M, 784) if name == "mlp" else (M, 1, 28, 28)
            X = torch.randn(*shape, dtype=torch.float64, device=args.device)
            t_bw = timed(backward_once, model, X)
            t_bp = timed(backpack_diag_ggn, model, X)
            t_f = timed(fv.exact_fisher, model, X, fam, diagonal=True, progress=False, memory=mem)
            t_v1 = timed(fv.variance, model, X, fam, n=1, diagonal=True, progress=False,
                         memory=mem)
            t_v2 = (timed(fv.variance, model, X, fam, which="I2", diagonal=True, progress=False,
                          memory=mem) if name == "mlp" else float("nan"))
            print(f"{name:<5} {P:>9} {M:>5} {t_bw:>9.3f} {t_bp:>9.3f} {t_f:>8.3f} {t_v1:>8.3f} "
                  f"{t_v2:>8.3f} | {t_f / t_bp:>5.2f} {t_v1 / t_f:>5.2f} {t_v2 / t_f:>5.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
