"""A user's ``nn.Module`` as the per-input function ``θ ↦ h_L(x)`` that thm-4 and thm-6 need.

The user's module is never touched: it is deep-copied once, the copy is moved to the working
dtype (float64 unless asked otherwise) and device, and every derivative is taken with
:func:`torch.func.functional_call` on that copy. So no hook, mode, dtype, device, parameter or
buffer of the user's object changes, also when a call fails.

θ is the set of parameters with ``requires_grad=True`` (the ones a training loop, or EWC,
would update); frozen parameters and buffers are held fixed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import FisherVerifyError, ShapeError, UnsupportedError
from ..validation import check_materialized
from .rules import apply_layer_rules, rule_for

__all__: list[str] = []  # nothing for other rooms

#: Modules whose output is not twice continuously differentiable in θ or in their input
#: (the kinks of ReLU-like activations, the argmax of max pooling): thm-3/thm-6 need C².
NON_C2_MODULES = (
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "Hardtanh", "Hardswish", "Hardsigmoid",
    "Hardshrink", "Softshrink", "Threshold", "ELU", "CELU", "SELU",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d", "FractionalMaxPool2d", "FractionalMaxPool3d", "MaxUnpool1d",
    "MaxUnpool2d", "MaxUnpool3d",
)
#: torch functions (as seen by a TorchFunctionMode during one forward pass) that are not C².
NON_C2_FUNCTIONS = frozenset({
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "prelu", "rrelu", "rrelu_",
    "hardtanh", "hardtanh_", "hardswish", "hardsigmoid", "hardshrink", "softshrink",
    "threshold", "threshold_", "elu", "elu_", "celu", "celu_", "selu", "selu_",
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
    "max_pool2d_with_indices", "max_pool3d_with_indices", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "fractional_max_pool2d",
    "fractional_max_pool3d", "abs", "abs_", "absolute", "clamp", "clamp_", "clip", "clip_",
    "clamp_min", "clamp_max", "maximum", "minimum", "fmax", "fmin", "max", "min", "amax",
    "amin", "sign", "floor", "ceil", "round", "trunc", "frac",
})
#: Modules that make the forward pass random or batch-dependent in train() mode.
_TRAIN_RANDOM = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                 "FeatureAlphaDropout", "RReLU")
_TRAIN_FUNCTIONS = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                              "feature_alpha_dropout", "batch_norm", "rrelu"})


def _torch() -> Any:
    import torch

    return torch


@dataclass
class PreparedModel:
    """The working copy and what the estimators need from it.

    Attributes:
        module: deep copy of the user's module, in ``dtype`` on ``device``.
        params: trainable parameters θ, detached, by name (``named_parameters`` order).
        fixed: frozen parameters and buffers, by name.
        output: maps the module's output (batch of one) to ``h_L`` of shape ``(1, n_L)``.
        family: the output family; ``n_L = family.dim``.
        nonsmooth: why the model is not C² where no check can help (empty when it is C², only
            piecewise smooth with located kinks, or declared smooth by the user).
        piecewise: the kinked functions it calls whose kinks :mod:`.kinks` locates (ReLU-like,
            1d/2d max pooling): smooth in θ at inputs away from them (thm-3-ae).
    """

    module: Any
    params: dict[str, Any]
    fixed: dict[str, Any]
    output: Callable[[Any], Any] | None
    family: Any
    dtype: Any
    device: Any
    nonsmooth: list[str] = field(default_factory=list)
    piecewise: list[str] = field(default_factory=list)
    kinks_checked: bool = False
    #: ``module`` is the user's own object (``prepare_model(borrow=True)``): forward only
    borrowed: bool = False
    #: example inputs whose calls are not yet recorded for the C² detection (borrowed models)
    unrecorded: Any = None
    #: the calls already recorded on ``unrecorded`` (a borrowed model in train mode): not rerun
    recorded: Any = None

    @property
    def n_L(self) -> int:
        return int(self.family.dim)

    @property
    def num_params(self) -> int:
        return sum(int(p.numel()) for p in self.params.values())

    def flat_zeros(self) -> dict[str, Any]:
        """A flat float zero vector per parameter tensor, in the working dtype and device: the
        accumulators the engine's per-parameter sums start from (eq-6, thm-4, thm-6)."""

        return {k: self.flat_zero(k) for k in self.params}

    def flat_zero(self, name: str) -> Any:
        """:meth:`flat_zeros` of one parameter tensor."""
        import torch

        return torch.zeros(int(self.params[name].numel()), dtype=self.dtype, device=self.device)

    def require_c2(self, what: str) -> None:
        """Refuse ``what`` (a quantity needing second derivatives, thm-3/thm-6) on a model that
        is not C² at any input this library can vouch for (kinks it does not locate)."""
        if self.unrecorded is not None:
            calls = self.recorded if self.recorded is not None else _recorded_functions(
                self.module, self.params, self.fixed, self.unrecorded, self.borrowed)
            self.nonsmooth = nonsmooth_reasons(self.module, calls)
            from .kinks import checkable

            self.piecewise = sorted({n for n, _ in calls if checkable(n)})
            self.unrecorded = self.recorded = None
        if self.nonsmooth:
            raise UnsupportedError(
                f"{what} needs a model that is twice continuously differentiable (thm-3, thm-6); "
                f"this one is not: {'; '.join(self.nonsmooth)}. diag I(θ) and Var(Î₁) (thm-4) "
                "need first derivatives only and are available (declare smooth=True only if the "
                "detection is wrong)"
            )

    def require_smooth(self, what: str, batches: Iterable[Any]) -> None:
        """Refuse ``what`` (needing ∂²h_L/∂θ∂θᵀ, thm-3/thm-6) unless the model is smooth in θ at
        every input of ``batches``: C², or piecewise smooth with every kinked argument farther
        from its kink than the rounding radius (thm-3-ae, :mod:`.kinks`). Scans once."""
        self.require_c2(what)
        if not self.piecewise or self.kinks_checked:
            return
        from .kinks import scan_kinks

        found = scan_kinks(self.module, self.params, self.fixed, batches, output=self.output)
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise UnsupportedError(
                f"{what} is not defined at a kink (remark-3.1, thm-3-ae): {found[0].describe()}"
                f"{more}; the model is not twice differentiable in θ there. Move the input off the "
                "kink or use a C² activation; diag I(θ) and Var(Î₁) (thm-4) need first "
                "derivatives only and are available"
            )
        self.kinks_checked = True

    def _h(self, theta: dict[str, Any], x: Any) -> Any:
        """``h_L`` for one input ``x`` (no batch axis), shape ``(n_L,)``."""
        from torch.func import functional_call

        out = functional_call(self.module, (theta, self.fixed), (x.unsqueeze(0),))
        h = self.output(out) if self.output is not None else out
        return h.reshape(h.shape[-1])

    def forward(self, X: Any) -> Any:
        """``h_L`` for a batch of inputs, shape ``(B, n_L)``, without gradients."""
        from torch.func import functional_call

        torch = _torch()
        with torch.no_grad():
            if self.borrowed:  # the user's module with its own weights: nothing to swap in
                out = self.module(X)
                h = self.output(out) if self.output is not None else out
                return h
            out = functional_call(self.module, (self.params, self.fixed), (X,))
            h = self.output(out) if self.output is not None else out
        return h

    def jacobian(self, X: Any, names: Iterable[str]) -> dict[str, Any]:
        """Rows of ``J = ∂h_L/∂θ`` for the parameters ``names``: ``{name: (B, n_L, *shape)}``.

        ``n_L`` vector-Jacobian products per input (``jacrev``), batched over inputs (``vmap``).
        """
        from torch.func import jacrev, vmap

        group = {k: self.params[k] for k in names}
        rest = {k: v for k, v in self.params.items() if k not in group}

        def one(g: dict[str, Any], x: Any) -> Any:
            return self._h({**rest, **g}, x)

        return vmap(jacrev(one), in_dims=(None, 0))(group, X)


def second_order() -> Any:
    """Context for second derivatives: attention through the math kernel, since the fused CPU
    and GPU kernels of ``scaled_dot_product_attention`` have no forward-mode derivative."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


def _borrowable(model: Any, dtype: Any, device: Any, eval_mode: bool) -> bool:
    """Whether a forward pass of ``model`` itself changes nothing of it and matches its copy:
    stock ``torch.nn`` modules only (a user's class may keep state from its forward), none with
    hooks or its own ``forward`` attribute, none of a kind the user gave a rule with its own
    forward (:func:`~.rules.register_layer`: only the working copy runs it), every floating
    tensor already in ``dtype`` on ``device``, no mode to switch."""
    torch = _torch()
    for mod in model.modules():
        if not type(mod).__module__.startswith("torch.nn.modules."):
            return False
        if "forward" in vars(mod):
            return False
        rule = rule_for(mod)
        if rule is not None and rule.forward is not None:
            return False
        if (mod._forward_hooks or mod._forward_pre_hooks or mod._backward_hooks
                or getattr(mod, "_backward_pre_hooks", None)):
            return False
        if eval_mode and mod.training:
            return False
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) and mod.training:
            return False
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point() and (t.dtype != dtype or t.device != device):
            return False
    return True


def _check_training(model: Any) -> list[str]:
    """Names of submodules that make a train()-mode forward random or batch-dependent."""
    torch = _torch()
    bad = []
    for name, mod in model.named_modules():
        if not mod.training:
            continue
        kind = type(mod).__name__
        random = kind in _TRAIN_RANDOM and float(getattr(mod, "p", 1.0)) > 0
        batch_stats = isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)
        attention = isinstance(mod, torch.nn.MultiheadAttention) and float(mod.dropout) > 0
        if random or batch_stats or attention:
            bad.append(f"{name or '<root>'} ({kind})")
    return bad


def _recorded_functions(module: Any, params: dict[str, Any], fixed: dict[str, Any], x: Any,
                        borrowed: bool = False) -> Any:
    """``(function name, training flag)`` of every torch function one forward pass calls."""
    from torch.func import functional_call
    from torch.overrides import TorchFunctionMode

    calls: list[tuple[str, Any]] = []

    class _Recorder(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            calls.append((getattr(func, "__name__", ""), kwargs.get("training")))
            return func(*args, **kwargs)

    torch = _torch()
    with torch.no_grad(), _Recorder():
        if borrowed:  # the user's module with its own weights: run as it is, nothing swapped
            module(x)
        else:
            functional_call(module, (params, fixed), (x,))
    return calls


def nonsmooth_reasons(module: Any, calls: Iterable[tuple[str, Any]]) -> list[str]:
    """Why a model is not C² at any input we can vouch for: the non-C² torch functions it calls
    whose kinks :mod:`.kinks` does not locate, with the submodules that call them. Functions
    with located kinks (ReLU-like, 1d/2d max pooling) are not reasons: the model is smooth in θ
    at inputs away from them (thm-3-ae), checked at the data by :meth:`require_smooth`."""
    from .kinks import checkable  # (not imported by the first-order routes)

    funcs = sorted({name for name, _ in calls if name in NON_C2_FUNCTIONS and not checkable(name)})
    if not funcs:
        return []
    mods = [f"module {name} ({type(mod).__name__})" for name, mod in module.named_modules()
            if type(mod).__name__ in NON_C2_MODULES]
    return [*mods, "calls " + ", ".join(funcs)]


def check_finite_parameters(model: Any) -> None:
    """Refuse a parameter holding NaN or ±inf, naming the tensor and the first such index (else
    it surfaces later as an h_L that is not finite, blamed on the output family).

    Raises:
        FisherVerifyError: such a parameter.
    """
    torch = _torch()
    for key, tensor in model.named_parameters():
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        # a finite sum has no NaN or ±inf term (either would carry into it): one reduction,
        # no mask; an overflowing sum of finite entries falls through to the entry-wise test
        if bool(torch.isfinite(tensor.detach().sum())):
            continue
        bad = ~torch.isfinite(tensor.detach())
        if bool(bad.any()):
            index = [int(i) for i in torch.nonzero(bad)[0].tolist()]
            value = tensor.detach()[tuple(index)].item()
            count = int(bad.sum())
            raise FisherVerifyError(
                f"model parameter {key!r} has {value} at {index}"
                + (f" ({count} non-finite entries in all)" if count > 1 else "")
                + "; weights must be finite")


def _check_finite_output(module: Any, h: Any) -> None:
    """A non-finite h_L on the example inputs, with its cause named: a buffer holding NaN or
    ±inf (running statistics, a scale), else the input row and what remains (an overflow)."""
    torch = _torch()
    bad = ~torch.isfinite(h.reshape(h.shape[0], -1))
    if not bool(bad.any()):
        return
    row = int(torch.nonzero(bad)[0][0])
    for key, tensor in module.named_buffers():
        if tensor.is_floating_point() and bool(torch.isnan(tensor).any()):
            raise FisherVerifyError(
                f"the model's output h_L is not finite at input row {row}: buffer {key!r} holds "
                "NaN; buffers (running statistics, scales) must hold numbers")
    raise FisherVerifyError(
        f"the model's output h_L is not finite at input row {row} "
        f"({h[row].reshape(-1)[:4].tolist()}) although its parameters and that input are "
        "finite: the forward pass overflows or divides by zero there")


def _linked(output: Callable[[Any], Any] | None, link: Any) -> Callable[[Any], Any]:
    """``output`` followed by the link ``h = g(f)`` of a loss's head (``ext-links``)."""

    def head(out: Any) -> Any:
        f = output(out) if output is not None else out
        return link.natural_torch(f.reshape(f.shape[0], -1))

    head.link = link  # type: ignore[attr-defined]  # read by the gate's diagnosis
    return head


def prepare_model(
    model: Any,
    family: Any,
    example: Any,
    *,
    output: Callable[[Any], Any] | None = None,
    dtype: Any = None,
    device: Any = None,
    eval_mode: bool = False,
    smooth: bool | None = None,
    borrow: bool = False,
) -> PreparedModel:
    """Check ``model`` and ``family`` and make the working copy (module docstring).

    ``borrow=True`` (first derivatives through :mod:`.taps` only) skips the copy where it would
    change nothing: every module a stock ``torch.nn`` one without hooks of the user's, weights
    already in the working dtype and device, no mode to switch; ``module`` is then the user's
    own object, run forward only (no parameter swapped, no hook registered on it, no mode set),
    and the C² detection waits until a second-order quantity asks for it.

    ``example`` is a small batch of inputs (already on the working device and dtype) used to
    check the output shape against ``family.dim`` and to record which torch functions the
    forward pass calls (for the C² check; ``smooth`` overrides it).

    Raises:
        ShapeError: not a module or family; h_L of the wrong shape; no trainable parameter.
        UnsupportedError: a train()-mode model with dropout or batch statistics (unless
            ``eval_mode``), a dtype other than float32/float64, a module that cannot be copied.
    """
    torch = _torch()
    from ..families.family import Family

    if not isinstance(model, torch.nn.Module):
        raise ShapeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    loss = None  # a torch loss: resolved once the output width is known
    if not isinstance(family, Family):  # (the losses module is imported only for one)
        from ..families.losses import is_torch_loss

        loss = family if is_torch_loss(family) else None
    if loss is None and not isinstance(family, Family):
        raise ShapeError(f"family must be a fisher_verify family (fv.family('categorical', K=10), "
                         f"... or a torch.nn loss module), got {type(family).__name__}")
    if output is not None and not callable(output):
        raise ShapeError(f"output must be a callable mapping the model's output to h_L, got "
                         f"{type(output).__name__}")
    check_materialized(model)
    check_finite_parameters(model)
    dtype = torch.float64 if dtype is None else dtype
    if dtype not in (torch.float64, torch.float32):
        raise UnsupportedError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ShapeError("the model has no trainable parameter (requires_grad=True): θ is empty")
    if model.training and not eval_mode:
        bad = _check_training(model)
        if bad:
            raise UnsupportedError(
                "the model is in train() mode with dropout or batch statistics ("
                + ", ".join(bad[:4]) + ("..." if len(bad) > 4 else "")
                + "): its output is random or depends on the batch, and the Fisher information "
                "of the paper is that of a fixed function; call model.eval() or pass "
                "eval_mode=True (the user's model stays in its mode either way)"
            )
    first = next(iter(model.parameters()))
    dev = torch.device(device) if device is not None else first.device
    borrowed = borrow and _borrowable(model, dtype, dev, eval_mode)
    if borrowed:
        work = model
    else:
        try:
            work = copy.deepcopy(model)
        except Exception as exc:  # noqa: BLE001 - any failure to copy is reported, never worked around
            raise UnsupportedError(
                f"cannot deep-copy the model ({type(exc).__name__}: {exc}); a working copy is "
                "needed so that the user's module is left untouched"
            ) from None
        work = work.to(device=dev, dtype=dtype)
        apply_layer_rules(work)  # the user's own layer kinds run their registered forward (.rules)
        if eval_mode:
            work.eval()
    params = {k: v.detach() for k, v in work.named_parameters() if v.requires_grad}
    fixed = {k: v.detach() for k, v in work.named_parameters() if not v.requires_grad}
    fixed.update({k: v.detach() for k, v in work.named_buffers()})
    prepared = PreparedModel(module=work, params=params, fixed=fixed, output=output,
                             family=family, dtype=dtype, device=dev, borrowed=borrowed)
    # the recorded calls serve the train-mode check and the C² detection; a borrowed model in
    # eval mode needs neither now (first derivatives only)
    record = not borrowed or (work.training and not eval_mode)
    try:
        calls = _recorded_functions(work, params, fixed, example) if record else []
        h = prepared.forward(example)
    except FisherVerifyError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's forward failed on the user's data
        raise ShapeError(f"the model's forward pass failed on the data: {type(exc).__name__}: "
                         f"{exc}") from None
    if work.training and not eval_mode:
        random_calls = sorted({n for n, t in calls if n in _TRAIN_FUNCTIONS and t})
        if random_calls:
            raise UnsupportedError(
                f"the model calls {', '.join(random_calls)} with training=True: its output is "
                "random or depends on the batch; call model.eval() or pass eval_mode=True"
            )
    B = int(example.shape[0])
    if loss is not None:
        if not isinstance(h, torch.Tensor) or h.ndim != 2 or int(h.shape[0]) != B:
            shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ShapeError(f"family={type(loss).__name__}() needs the model's h_L of shape "
                             f"(batch, outputs); it gives {shape} for a batch of {B}")
        from ..families.losses import resolve_head

        family, link = resolve_head(loss, int(h.shape[1]))
        prepared.family = family
        if link is not None:  # a non-canonical head: the engine sees h = g(f) (ext-links)
            link.check_output(h, f"the model's output (the head of {type(loss).__name__})")
            prepared.output = _linked(output, link)
            h = prepared.forward(example)
    if not isinstance(h, torch.Tensor) or tuple(h.shape) != (B, family.dim):
        shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise ShapeError(
            f"{family.label} needs h_L of shape (batch, {family.dim}); the model"
            + (" with output=" if output is not None else "")
            + f" gives {shape} for a batch of {B}; pass output= to map the model's output to h_L"
        )
    _check_finite_output(work, h)
    family.check_natural(h)
    if smooth is None and (not record or borrowed):
        # a borrowed model serves first derivatives only: the C² detection waits until asked
        prepared.unrecorded = example
        prepared.recorded = calls if record else None
    elif smooth is None:
        from .kinks import checkable

        prepared.nonsmooth = nonsmooth_reasons(work, calls)
        prepared.piecewise = sorted({n for n, _ in calls if checkable(n)})
    elif not smooth:
        prepared.nonsmooth = ["declared not C² by the caller (smooth=False)"]
    return prepared
