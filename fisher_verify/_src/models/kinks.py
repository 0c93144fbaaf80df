"""Where a piecewise-smooth ``nn.Module`` is smooth in θ: the data's distance to every kink (thm-3-ae).

ReLU-like activations and max pooling are not C² (remark-3.1), but at an input where no
argument of theirs lies at a kink (ReLU at 0, hardtanh at its two limits, a tie between the
largest two entries of a max-pooling window that are not both ReLU-clamped zeros, ...) the
model is smooth in θ on a neighbourhood of θ: its output Hessians exist (σ'' = 0 on every
linear piece) and thm-3, thm-6 hold at that input. So second-order quantities are computed on
such models and refused only at an input where an argument lies within rounding of a kink,
naming the input, the module, the function and the element.

How near is "at": for an arbitrary module the rounding of the argument's own computation is not
known, so the radius is ``KINK_ULPS · eps(dtype) · max(1, max|z|)`` with ``z`` the argument's
entries for that input (for float64: 2⁻³⁹ times the argument's scale, the worst-case rounding
bound γ_n of a dot product of n = 2¹⁴ terms of that size; the typical error is far smaller). The Eq. 3 path
(:mod:`fisher_verify._src.networks.kinks`) uses the exact forward error bound instead.

The scan runs one forward pass over the data under a :class:`~torch.overrides.TorchFunctionMode`
that sees every call of a kinked function, with forward pre-hooks on the working copy (never on
the user's module) naming the innermost module that made it. Arguments that do not depend on θ
(a ReLU or a max pooling of the raw input) are skipped: a function of the data alone has no
kink in θ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

#: The radius of "at a kink" in units of the working dtype's machine epsilon (module docstring).
KINK_ULPS = 2.0**13


def _points(*values: float) -> Callable[[tuple[Any, ...], dict[str, Any]], tuple[float, ...]]:
    return lambda args, kwargs: values


def _arg(index: int, name: str, default: float) -> Callable[[tuple[Any, ...], dict[str, Any]], float]:
    def get(args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
        value = kwargs.get(name, args[index] if len(args) > index else default)
        return float(value)

    return get


def _hardtanh(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, ...]:
    return (_arg(1, "min_val", -1.0)(args, kwargs), _arg(2, "max_val", 1.0)(args, kwargs))


def _shrink(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, ...]:
    lam = _arg(1, "lambd", 0.5)(args, kwargs)
    return (-lam, lam)


def _threshold(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, ...]:
    return (_arg(1, "threshold", 0.0)(args, kwargs),)


def _clamp(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, ...]:
    out = []
    for index, name in ((1, "min"), (2, "max")):
        value = kwargs.get(name, args[index] if len(args) > index else None)
        if value is not None:
            if hasattr(value, "numel"):
                raise _Unchecked("clamp with tensor limits")
            out.append(float(value))
    return tuple(out)


class _Unchecked(Exception):
    """A call whose kinks this module does not locate (refused as not C², with the reason)."""


#: Elementwise functions, by the name a TorchFunctionMode sees, and the points of their kinks.
ELEMENTWISE_KINKS: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], tuple[float, ...]]] = {
    **{name: _points(0.0) for name in (
        "relu", "relu_", "leaky_relu", "leaky_relu_", "prelu", "elu", "elu_", "celu", "celu_",
        "selu", "selu_", "abs", "abs_", "absolute")},
    "relu6": _points(0.0, 6.0),
    "hardtanh": _hardtanh, "hardtanh_": _hardtanh,
    "hardswish": _points(-3.0, 3.0), "hardsigmoid": _points(-3.0, 3.0),
    "hardshrink": _shrink, "softshrink": _shrink,
    "threshold": _threshold, "threshold_": _threshold,
    "clamp": _clamp, "clamp_": _clamp, "clip": _clamp, "clip_": _clamp,
    "clamp_min": lambda a, k: (_arg(1, "min", 0.0)(a, k),),
    "clamp_max": lambda a, k: (_arg(1, "max", 0.0)(a, k),),
}
#: Max pooling: the kink is a tie between the two largest entries of a window.
MAX_POOL = frozenset({"max_pool1d", "max_pool2d", "max_pool1d_with_indices",
                      "max_pool2d_with_indices"})


@dataclass(frozen=True)
class ModelKink:
    """One argument of a kinked function within rounding of a kink, at one input (thm-3-ae)."""

    input: int
    module: str
    function: str
    element: tuple[int, ...]
    distance: float
    tolerance: float

    def describe(self) -> str:
        """One line naming the input, the module, the function and the element."""
        return (f"input {self.input}: {self.function} in module {self.module}, element "
                f"{list(self.element)}, lies {self.distance:.3g} from a kink (within "
                f"{self.tolerance:.3g}, the rounding radius)")


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _pool_windows(x: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The windows of a 1d/2d max pooling as ``(B, C, L, window)`` (padding with −inf)."""
    import torch
    import torch.nn.functional as F

    two = "2d" in name
    k: Any = kwargs.get("kernel_size", args[1] if len(args) > 1 else None)
    s = kwargs.get("stride", args[2] if len(args) > 2 else None) or k
    p = kwargs.get("padding", args[3] if len(args) > 3 else 0)
    d = kwargs.get("dilation", args[4] if len(args) > 4 else 1)
    if kwargs.get("ceil_mode", args[5] if len(args) > 5 else False):
        raise _Unchecked(f"{name} with ceil_mode=True")
    batched = x.dim() == (4 if two else 3)
    if not batched:
        raise _Unchecked(f"{name} on an unbatched input")
    if two:
        k, s, p, d = _pair(k), _pair(s), _pair(p), _pair(d)
        xp = F.pad(x, (p[1], p[1], p[0], p[0]), value=-torch.inf)
        B, C = x.shape[:2]
        cols = F.unfold(xp.reshape(B * C, 1, *xp.shape[2:]).nan_to_num(neginf=-1e308),
                        kernel_size=k, dilation=d, stride=s)  # (B·C, window, L)
        return cols.reshape(B, C, cols.shape[1], cols.shape[2]).transpose(2, 3)
    k, s, p, d = (v[0] if isinstance(v, (tuple, list)) else v for v in (k, s, p, d))
    xp = F.pad(x, (p, p), value=-1e308)
    span = d * (k - 1) + 1
    win = xp.unfold(-1, span, s)[..., ::d]  # (B, C, L, k)
    return win


def _distances(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Per-element distance of the argument to the nearest kink, shaped like the batch."""
    import torch

    x: Any = args[0] if args else kwargs["input"]
    if name in MAX_POOL:
        win = _pool_windows(x.detach(), name, args, kwargs)
        top2 = torch.topk(win, 2, dim=-1).values
        gap = top2[..., 0] - top2[..., 1]
        # two exact zeros are ReLU-clamped (or padded) entries: constant in θ near θ, so the
        # max over them is smooth; a unit at its own kink is caught at its ReLU
        both_zero = (top2[..., 0] == 0) & (top2[..., 1] == 0)
        return gap.masked_fill(both_zero, torch.inf), x.detach()
    points = ELEMENTWISE_KINKS[name](args, kwargs)
    z = x.detach()
    dist = torch.full_like(z, torch.inf)
    for point in points:
        dist = torch.minimum(dist, (z - point).abs())
    return dist, z


def scan_kinks(module: Any, params: dict[str, Any], fixed: dict[str, Any], batches: Iterable[Any],
               *, output: Callable[[Any], Any] | None = None, limit: int = 5) -> list[ModelKink]:
    """Every argument of a kinked function within rounding of a kink over the data (thm-3-ae).

    ``module`` is the working copy (hooks are added to it for the scan and removed after).
    Returns at most ``limit`` kinks (the first ones met); empty when the model is smooth in θ
    at every input.

    Raises:
        UnsupportedError: a kinked call whose kinks are not located here (tensor clamp limits,
            ceil-mode or unbatched pooling).
    """
    import torch
    from torch.func import functional_call
    from torch.overrides import TorchFunctionMode

    found: list[ModelKink] = []
    unchecked: list[str] = []
    stack: list[str] = []
    offset = [0]
    names = {mod: name or "<root>" for name, mod in module.named_modules()}
    eps = float(torch.finfo(next(iter(params.values())).dtype).eps)

    class _Scanner(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            x = args[0] if args else kwargs.get("input")
            # an argument that does not depend on θ (the raw input, say) has no kink in θ
            depends = isinstance(x, torch.Tensor) and x.requires_grad
            if (name in ELEMENTWISE_KINKS or name in MAX_POOL) and depends and len(found) < limit:
                with torch._C.DisableTorchFunction():
                    try:
                        dist, z = _distances(name, tuple(args), kwargs)
                    except _Unchecked as exc:
                        unchecked.append(str(exc))
                        return func(*args, **kwargs)
                    B = int(z.shape[0])
                    flat = z.reshape(B, -1).abs().amax(dim=1).clamp(min=1.0)
                    tol = KINK_ULPS * eps * flat
                    near = dist.reshape(B, -1) <= tol[:, None]
                    for b, j in near.nonzero().tolist():
                        if len(found) >= limit:
                            break
                        element = tuple(int(i) for i in
                                        torch.unravel_index(torch.tensor(j), dist.shape[1:]))
                        found.append(ModelKink(offset[0] + b, stack[-1] if stack else "<root>",
                                               name, element, float(dist.reshape(B, -1)[b, j]),
                                               float(tol[b])))
            return func(*args, **kwargs)

    def enter(mod: Any, _inputs: Any) -> None:
        stack.append(names.get(mod, type(mod).__name__))

    def leave(mod: Any, _inputs: Any, _out: Any) -> None:
        if stack:
            stack.pop()

    handles = [m.register_forward_pre_hook(enter) for m in module.modules()]
    handles += [m.register_forward_hook(leave) for m in module.modules()]
    # θ requires grad so that an argument's dependence on θ shows; nothing is differentiated
    tracked = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    try:
        for X in batches:
            with _Scanner():
                out = functional_call(module, (tracked, fixed), (X,))
                if output is not None:
                    output(out)
            del out
            offset[0] += int(X.shape[0])
            if len(found) >= limit:
                break
    finally:
        for h in handles:
            h.remove()
    if unchecked:
        from ..errors import UnsupportedError

        raise UnsupportedError(
            f"the model is not C² and the kinks of {unchecked[0]} are not located, so no second-"
            "order quantity can be trusted at any input (thm-3-ae covers ReLU-like functions and "
            "1d/2d max pooling without ceil_mode)")
    return found


def checkable(name: str) -> bool:
    """Whether the kinks of the torch function ``name`` are located by :func:`scan_kinks`."""
    return name in ELEMENTWISE_KINKS or name in MAX_POOL
