"""The structure of ``θ ↦ h_L`` behind the diagonal trade-off: which parameters ``h_L`` is affine
in, whether it is piecewise multilinear, and the layer before the last (``fisher.tradeoff``).

One forward pass under a :class:`~torch.overrides.TorchFunctionMode` follows every tensor that
depends on θ and records, per tensor:

- ``deps``: the parameters it depends on;
- ``affine``: parameters it is affine in, each with the others fixed (``d24-last-layer``:
  ``∂²h_L/∂θ_i∂θ_j = 0`` within such a group);
- ``multi``: on each linear piece, every parameter enters with degree at most 1 (``d24-pwl``:
  ``∂²_ii h_L = 0`` at inputs away from the kinks). Affine maps, sums, products of factors
  with disjoint ``deps`` and piecewise-linear functions (ReLU-like, max pooling) keep it; any
  other function of a θ-dependent tensor (tanh, layer_norm, softmax, ...) or a parameter that
  meets itself in a product (weights tied across layers in series) loses it;
- ``origin``: for ``d24-groups``, whether it is ``σ(linear(·, W, b))`` with a C² elementwise
  ``σ``.

Nothing numerical is looked at: the reasons follow from which functions are called on what.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__: list[str] = []  # nothing for other rooms

#: Affine in their tensor arguments jointly with the parameters passed to them (weight, bias).
_AFFINE_WITH_PARAMS = frozenset({
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "batch_norm", "instance_norm_eval", "embedding",
})
#: Bilinear: products of their operands.
_PRODUCTS = frozenset({"matmul", "mm", "bmm", "mul", "rmul", "imul", "einsum", "addmm",
                       "outer", "dot", "mv"})
#: Linear in their tensor arguments (shape ops, sums, averages, division by a constant).
_LINEAR = frozenset({
    "view", "reshape", "flatten", "permute", "transpose", "t", "contiguous", "squeeze",
    "unsqueeze", "getitem", "expand", "expand_as", "chunk", "split", "select", "narrow",
    "unflatten", "view_as", "reshape_as", "clone", "detach_copy", "add", "radd", "iadd", "sub",
    "rsub", "isub", "neg", "sum", "mean", "cat", "concat", "stack", "avg_pool1d", "avg_pool2d",
    "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "pad",
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "identity", "to",
    "double", "float", "truediv", "div", "movedim", "roll", "flip", "repeat", "tile",
})
#: Piecewise-linear functions whose kinks :mod:`.kinks` locates.
_PIECEWISE_LINEAR = frozenset({
    "relu", "relu_", "leaky_relu", "leaky_relu_", "relu6", "hardtanh", "hardtanh_",
    "threshold", "threshold_", "clamp", "clamp_", "clip", "clip_", "clamp_min", "clamp_max",
    "abs", "abs_", "absolute", "hardshrink", "softshrink", "max_pool1d", "max_pool2d",
    "max_pool1d_with_indices", "max_pool2d_with_indices",
})
#: C² elementwise activations (the σ of d24-groups).
_SMOOTH_ELEMENTWISE = frozenset({"tanh", "sigmoid", "softplus", "gelu", "silu", "mish",
                                 "logsigmoid", "tanh_", "sigmoid_"})


@dataclass
class _Info:
    deps: frozenset[str]
    affine: frozenset[str]
    multi: bool
    origin: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Structure:
    """What :func:`model_structure` found (module docstring).

    ``affine``: parameters ``h_L`` is affine in (each, the others fixed); ``piecewise_linear``:
    ``h_L`` is piecewise multilinear in θ (``d24-pwl``); ``before_last``: the parameters ``W, b``
    of ``σ(linear(h̄, W, b))`` that feeds the last ``linear`` directly, with a C² elementwise
    ``σ`` (``d24-groups``), else empty.
    """

    affine: frozenset[str]
    piecewise_linear: bool
    before_last: frozenset[str]


def _name(func: Any) -> str:
    return getattr(func, "__name__", "").strip("_")


def _tensors(obj: Any) -> list[Any]:
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def model_structure(module: Any, params: dict[str, Any], fixed: dict[str, Any], x: Any,
                    output: Callable[[Any], Any] | None = None) -> Structure:
    """Trace one forward pass of ``module`` on the batch ``x`` (module docstring); the reasons
    of :func:`fisher_verify._src.fisher.tradeoff.reason_for` for a model that is not an Eq. 3
    network (``d24-last-layer``, ``d24-pwl``, ``d24-groups``)."""
    import torch
    from torch.func import functional_call
    from torch.overrides import TorchFunctionMode

    names = {id(v): k for k, v in params.items()}
    info: dict[int, _Info] = {}
    keep: list[Any] = []  # the traced tensors stay alive, so their ids are not reused

    def of(t: Any) -> _Info | None:
        if id(t) in names:
            k = names[id(t)]
            return _Info(frozenset({k}), frozenset({k}), True)
        return info.get(id(t))

    def rule(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Info | None:
        ins = [i for i in (of(t) for t in _tensors(args) + _tensors(kwargs)) if i is not None]
        if not ins:
            return None
        deps = frozenset().union(*(i.deps for i in ins))
        disjoint = sum(len(i.deps) for i in ins) == len(deps)
        multi = all(i.multi for i in ins)
        affine = frozenset().union(*(i.affine for i in ins))
        if name in _LINEAR:
            first = of(args[0]) if args else None
            origin = first.origin if first is not None and len(ins) == 1 else ()
            return _Info(deps, affine, multi, origin)
        if name in _AFFINE_WITH_PARAMS or name in _PRODUCTS:
            ok = disjoint and multi
            direct = frozenset(names[id(t)] for t in _tensors(args) + _tensors(kwargs)
                               if id(t) in names)
            src = args[0] if args else None
            origin = ("linear", direct, id(src)) if name == "linear" else ()
            return _Info(deps, affine if disjoint else frozenset(), ok, origin)
        if name in _PIECEWISE_LINEAR:
            return _Info(deps, frozenset(), multi, ())
        if name in _SMOOTH_ELEMENTWISE and len(ins) == 1:
            first = of(args[0]) if args else None
            origin = ("act", first.origin) if first is not None else ()
            return _Info(deps, frozenset(), False, origin)
        return _Info(deps, frozenset(), False, ())

    class _Tracer(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None
                               ) -> Any:
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            got = rule(_name(func), tuple(args), kwargs)
            if got is not None:
                for t in _tensors(out):
                    info[id(t)] = got
                    keep.append(t)
            return out

    with torch.no_grad(), _Tracer():
        out = functional_call(module, (params, fixed), (x,))
        h = output(out) if output is not None else out
    final = of(h)
    if final is None:  # no parameter was seen reaching h_L (e.g. reparametrized weights)
        return Structure(frozenset(), False, frozenset())
    before: frozenset[str] = frozenset()
    if final.origin[:1] == ("linear",):
        src = info.get(final.origin[2])
        if src is not None and src.origin[:1] == ("act",) and src.origin[1][:1] == ("linear",):
            before = src.origin[1][1]
    # piecewise linear only if every parameter was followed to h_L: an untraced path (a weight
    # read through a parametrization, a custom autograd function) could be anything
    return Structure(final.affine, final.multi and final.deps == frozenset(params), before)
