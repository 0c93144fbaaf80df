"""The estimator gate for the code people actually run: a torch model, a data set, a Fisher routine.

:func:`fisher_verify.check_estimator` puts ``estimator(model, data)`` — an EWC-style function, or a wrapper
around BackPACK, curvlinops, nngeometry or ASDL — through the calibrated gate of
:mod:`fisher_verify._src.testing.estimator_gate` with no glue code:

* **randomness**: before each replicate the global RNGs (``torch``, ``numpy.random``, ``random``)
  are seeded from the gate's generator and their state is restored afterwards; optionally the
  routine also gets a ``torch.Generator`` (``randomness="generator"``) or an integer seed
  (``randomness="seed"``, as curvlinops' ``seed=``);
* **labels**: ``data`` is handed over as given (with its targets); a data set without targets gets
  placeholder targets with ``placeholder_labels=True`` for libraries whose loss needs them;
* **the model**: the user's own ``nn.Module`` (float32 or float64, any device) is used as is and
  restored after every replicate (parameters, buffers, gradients, ``requires_grad``, training
  mode, hooks and any attribute a library attached), so it comes back bit-identical;
* **output**: a ``{name: tensor}`` dict (per parameter, or per module with ``weight``/``bias``),
  a list of per-parameter tensors, a flat vector in ``parameters()`` order, a ``P×P`` matrix, or
  a linear operator (``@``, ``matmat``/``matvec`` or curvlinops' ``_matmat``), densified;
* **reference**: ``"fisher"`` tests unbiasedness for ``I(θ)`` (``eq-6``) with the calibrated
  gate; ``"empirical"`` compares, exactly at a rounding tolerance, with the empirical Fisher
  ``(1/M) Σ_m g_m g_mᵀ`` of the data's labels (``g_m = J_mᵀ (t(y_m) − η_m)``, ``eq-7`` with the
  observed labels), which is deterministic.

The exact model behind ``I(θ)`` is pluggable (``reference_model``). By default an
``nn.Sequential`` Eq. 3 MLP is converted with :meth:`Network.from_torch
<fisher_verify._src.networks.network.Network.from_torch>` (the fast analytic path), and any other
module the engine accepts (CNNs with pooling, ``Dropout``, LayerNorm, attention, a user's own
class) goes through :func:`module_reference` (:class:`~fisher_verify._src.models.as_network.ModuleNetwork`:
dense autograd Jacobians of a float64 eval-mode copy). Any function returning a
:class:`ReferenceModel` (a gate-compatible network and the map from ``parameters()`` order to its
flat θ) can replace them.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import random
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import FisherVerifyError, ShapeError, UnsupportedError
from ..validation import (
    as_generator,
    as_real_array,
    check_callable,
    check_choice,
    check_count,
    check_flag,
    check_fraction,
    check_instance,
    check_materialized,
    check_nonnegative,
)
from .calibrated import DEFAULT_ALPHA
from .diagnose import FLOAT32_ROUNDING, rounding_text
from .estimator_gate import (
    EstimatorReport,
    _labels_statistic,
    gate_network,
    torch_parameter_permutation,
)
from .gate_kinds import KFAC, Kind, check_kind

__all__: list[str] = []  # nothing for other rooms

Randomness = Literal["global", "generator", "seed"]
Reference = Literal["fisher", "empirical"]


# --- the exact model (pluggable) ----------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceModel:
    """The exact model behind the reference ``I(θ)`` of a user's ``nn.Module``.

    Attributes:
        network: what :func:`~fisher_verify._src.testing.estimator_gate.gate_network`
            takes as ``net`` (a :class:`~fisher_verify._src.networks.network.Network`).
        permutation: ``θ_net[k] = θ_torch[permutation[k]]`` where ``θ_torch`` concatenates
            ``model.parameters()``; ``None`` when both orders agree.
        note: how the reference differs from the user's module as it stands (e.g. evaluated in
            eval mode), quoted in the report; "" when it does not.
    """

    network: Any
    permutation: np.ndarray | None
    note: str = ""


def sequential_reference(model: Any, family: Any) -> ReferenceModel:
    """Eq. 3 MLP (``nn.Sequential`` of Linear + one smooth activation) as a ``Network`` (``eq-3``).

    The default ``reference_model`` of :func:`fisher_verify.check_estimator`; the weights are read in float64
    (exact for float32 models) without touching the model.
    """
    from ..networks.network import Network

    try:
        net = Network.from_torch(model, family)
    except UnsupportedError as exc:  # say whose requirement it is: the default reference's
        raise UnsupportedError(
            f"the default reference_model (sequential_reference, an Eq. 3 MLP) cannot represent "
            f"this model: {exc}; pass a reference_model= that can") from None
    return ReferenceModel(net, torch_parameter_permutation(model))


def module_reference(model: Any, family: Any, X: Any) -> ReferenceModel:
    """Any ``nn.Module`` the engine accepts, on the gate's inputs ``X`` (``eq-6``, ``thm-4``, ``thm-6``).

    The fallback of :func:`fisher_verify.check_estimator` when :func:`sequential_reference` cannot
    represent the model: :func:`~fisher_verify._src.models.as_network.module_network` (a float64
    eval-mode working copy, θ in ``parameters()`` order). A train()-mode model with dropout is
    referenced in eval mode and the report says so.
    """
    from ..models.as_network import module_network

    net = module_network(model, family, X)
    return ReferenceModel(net, None, net.note)


def _default_reference(model: Any, family: Any, X: Any, loss: Any = None,
                       link: Any = None) -> ReferenceModel:
    """Eq. 3 MLPs by the analytic path (faster); every other module by :func:`module_reference`.
    A loss's link (``BCELoss``, ...) follows the model: a
    :class:`~fisher_verify._src.networks.linked.LinkedNetwork`, or the module network of the loss."""
    if link is not None:
        from ..networks.linked import LinkedNetwork

        try:
            ref = sequential_reference(model, family)
        except UnsupportedError:
            return module_reference(model, loss, X)
        return ReferenceModel(LinkedNetwork(ref.network, link), ref.permutation, ref.note)
    try:
        return sequential_reference(model, family)
    except UnsupportedError:
        return module_reference(model, family, X)


# --- randomness ---------------------------------------------------------------------------------


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed ``torch`` (CPU and initialised CUDA devices), ``numpy.random`` and ``random`` with
    ``seed`` for the block, then put back the states they had before."""
    import torch

    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        yield
    finally:
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        np.random.set_state(np_state)
        random.setstate(py_state)


# --- the model comes back untouched -------------------------------------------------------------

# torch's process-wide module hooks, which a library could register during a replicate
_GLOBAL_HOOK_DICTS = (
    "_global_backward_pre_hooks",
    "_global_backward_hooks",
    "_global_forward_pre_hooks",
    "_global_forward_hooks",
    "_global_forward_hooks_always_called",
    "_global_buffer_registration_hooks",
    "_global_module_registration_hooks",
    "_global_parameter_registration_hooks",
)


def _shallow(value: Any) -> Any:
    # containers are mutated in place by libraries (hook dicts, _parameters): keep a copy
    if isinstance(value, dict | set | list):
        return copy.copy(value)
    return value


#: tensor hook dicts (``register_hook``, ``register_post_accumulate_grad_hook``)
_TENSOR_HOOKS = ("_backward_hooks", "_post_accumulate_grad_hooks")


@dataclass
class _TensorState:
    tensor: Any
    data: Any
    requires_grad: bool
    grad: Any
    attrs: dict[str, Any]
    hooks: dict[str, Any]


def _tensor_state(t: Any) -> _TensorState:
    grad = t.grad.detach().clone() if getattr(t, "grad", None) is not None else None
    return _TensorState(
        t, t.detach().clone(), bool(t.requires_grad), grad,
        {k: _shallow(v) for k, v in vars(t).items()},
        {name: _shallow(getattr(t, name, None)) for name in _TENSOR_HOOKS},
    )


def _restore_tensor(s: _TensorState) -> None:
    import torch

    t = s.tensor
    with torch.no_grad():
        t.data = s.data.clone()
    if t.is_leaf:
        t.requires_grad_(s.requires_grad)
        t.grad = None if s.grad is None else s.grad.clone()
    for key in [k for k in vars(t) if k not in s.attrs]:
        delattr(t, key)
    for key, value in s.attrs.items():
        setattr(t, key, _shallow(value))
    for name, hooks in s.hooks.items():
        with contextlib.suppress(AttributeError, RuntimeError, TypeError):
            setattr(t, name, _shallow(hooks))


@contextlib.contextmanager
def restored_module(model: Any) -> Iterator[Any]:
    """Run the block on ``model`` and restore it afterwards, also when the block raises.

    Restored: every submodule's attributes (training mode, hook dicts, ``_parameters``,
    ``_buffers``, ``_modules``; attributes a library added are deleted), every parameter's and
    buffer's values, dtype and device, ``requires_grad``, ``.grad`` and Python attributes (e.g.
    BackPACK's ``param.diag_ggn_mc``), and torch's process-wide module hooks. So an estimator may
    ``extend`` the model, register hooks, cast it or zero its gradients: the caller's model comes
    back bit-identical.
    """
    import torch.nn.modules.module as torch_module

    modules = list(model.modules())
    module_dicts = [(m, {k: _shallow(v) for k, v in vars(m).items()}) for m in modules]
    tensors: dict[int, _TensorState] = {}
    for m in modules:
        for t in [*m._parameters.values(), *m._buffers.values()]:
            if t is not None and id(t) not in tensors:
                tensors[id(t)] = _tensor_state(t)
    global_hooks = {
        name: copy.copy(getattr(torch_module, name))
        for name in _GLOBAL_HOOK_DICTS
        if isinstance(getattr(torch_module, name, None), dict)
    }
    try:
        yield model
    finally:
        for name, saved in global_hooks.items():
            live = getattr(torch_module, name)
            live.clear()
            live.update(saved)
        for m, saved_vars in module_dicts:
            live_vars = vars(m)
            live_vars.clear()
            live_vars.update({k: _shallow(v) for k, v in saved_vars.items()})
        for state in tensors.values():
            _restore_tensor(state)


# --- data ---------------------------------------------------------------------------------------


def _is_torch_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _is_tensor_like(value: Any) -> bool:
    """A tensor or an array (an object that merely has ``.detach`` is not: e.g. a structured
    curvature object)."""
    return _is_torch_tensor(value) or (hasattr(value, "shape") and hasattr(value, "__array__"))


#: The forms an estimate may take (named in every refusal).
ESTIMATE_FORMS = (
    "a (P, P) matrix or its (P,) diagonal as a tensor or array in model.parameters() order; "
    "{name: tensor} per parameter or per module ('weight'/'bias'); a list of per-parameter "
    "tensors; or a linear operator with @, matmat, _matmat or matvec"
)


def _as_tensor(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufc":  # text, objects: torch would raise a TypeError
        raise ShapeError(
            f"data must hold numbers (inputs and targets as tensors or numeric arrays), got "
            f"{type(value).__name__} of dtype {arr.dtype}"
        )
    return torch.as_tensor(arr)


#: Keys of a dict batch read as the inputs and as the targets (in this order of preference).
INPUT_KEYS = ("x", "input", "inputs", "features", "data")
TARGET_KEYS = ("y", "label", "labels", "target", "targets")


def _dict_batch(batch: Mapping[Any, Any]) -> tuple[Any, Any]:
    x_key = next((k for k in INPUT_KEYS if k in batch), None)
    if x_key is None:
        raise ShapeError(
            f"a dict batch with keys {sorted(map(str, batch))[:8]}: the inputs must be under one "
            f"of {list(INPUT_KEYS)} (targets, optional, under one of {list(TARGET_KEYS)}); or give "
            "(inputs, targets) tuples, a tensor of inputs or a DataLoader over them"
        )
    y_key = next((k for k in TARGET_KEYS if k in batch), None)
    return _as_tensor(batch[x_key]), (None if y_key is None else _as_tensor(batch[y_key]))


def _split_batch(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, list | tuple):
        if len(batch) == 0:
            raise ShapeError("an empty batch: expected (inputs, targets) or inputs")
        return _as_tensor(batch[0]), (_as_tensor(batch[1]) if len(batch) > 1 else None)
    if isinstance(batch, Mapping):
        return _dict_batch(batch)
    return _as_tensor(batch), None


def _join(parts: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    """Batches concatenated; per-example items (1-D inputs, as a list of per-example tensors or
    (x_i, y_i) pairs gives) stacked."""
    import torch

    xs = [p[0] for p in parts]
    per_example = all(x.ndim == 1 for x in xs)
    if per_example and len({tuple(x.shape) for x in xs}) > 1:
        raise ShapeError(
            "a list of per-example inputs of different shapes "
            f"{sorted({tuple(x.shape) for x in xs})[:4]}: give inputs of one shape"
        )
    join = torch.stack if per_example else torch.cat
    X = join(xs)
    if any(p[1] is None for p in parts):
        return X, None
    ys = [p[1] for p in parts]
    return X, (torch.stack(ys) if per_example and all(y.ndim <= 1 for y in ys) else torch.cat(ys))


def inputs_and_targets(data: Any) -> tuple[Any, Any]:
    """All inputs ``X`` (M, …) and targets ``Y`` (M, …) or ``None`` held by ``data``.

    ``data`` is a ``DataLoader`` or a list of batches (``(x, y)``, ``x`` or a dict with the
    inputs under ``"x"``/``"input(s)"``/``"features"``/``"data"`` and the targets under
    ``"y"``/``"label(s)"``/``"target(s)"``), a list of per-example tensors or ``(x_i, y_i)`` pairs
    (1-D inputs: stacked), a ``Dataset`` (items ``(x, y)`` or ``x``), a tuple ``(x, y)``, a dict
    batch, or the inputs alone (tensor or array). The global RNGs are left as they were (a
    shuffling loader draws from them).

    Raises:
        ShapeError: data of another form, or inputs and targets of different lengths.
    """
    import torch

    if _is_tensor_like(data):
        return _as_tensor(data), None
    if isinstance(data, Mapping):
        X, Y = _dict_batch(data)
    elif (
        isinstance(data, tuple | list) and len(data) in (1, 2) and all(map(_is_tensor_like, data))
        and (isinstance(data, tuple) or _as_tensor(data[0]).ndim != 1)
    ):  # (x, y) or [x]; a list of two 1-D tensors is two examples
        X, Y = _split_batch(tuple(data))
    elif isinstance(data, torch.utils.data.DataLoader | list | tuple) or (
        hasattr(data, "__iter__") and not hasattr(data, "__getitem__")
    ):  # batches
        with seeded_global_rngs(0):
            parts = [_split_batch(b) for b in data]
        if not parts:
            raise ShapeError("data: the data loader yields no batch")
        X, Y = _join(parts)
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):  # a Dataset: single items
        items = [_split_batch(data[i]) for i in range(len(data))]
        if not items:
            raise ShapeError("data: the data set is empty")
        X = torch.stack([p[0] for p in items])
        Y = None if any(p[1] is None for p in items) else torch.stack([p[1] for p in items])
    else:
        raise ShapeError(
            f"data of type {type(data).__name__} is not supported: give a DataLoader, a Dataset, a "
            "tuple (inputs, targets), a dict batch, a list of batches or of per-example tensors, "
            "or a tensor of inputs"
        )
    if Y is not None and Y.shape[0] != X.shape[0]:
        raise ShapeError(f"data: {X.shape[0]} inputs but {Y.shape[0]} targets")
    return X, Y


def _placeholder_targets(family: Any, X: Any, n_out: int) -> Any:
    import torch

    M = X.shape[0]
    if family.name == "categorical":
        return torch.zeros(M, dtype=torch.long, device=X.device)
    # one label per component of a product (a GaussianNLLLoss head of 2D outputs has D labels)
    # (a vector y, e.g. isotropic_normal(D) of a shared-variance GaussianNLLLoss: D labels)
    factors = len(family.factors)
    event = len(getattr(getattr(family, "definition", None), "event", ()))
    width = factors if factors > 1 else (n_out if family.dim == 1 else max(1, event))
    return torch.zeros(M, width, dtype=X.dtype, device=X.device)


def _with_targets(data: Any, X: Any, Y: Any) -> Any:
    import torch

    if isinstance(data, torch.utils.data.DataLoader):
        return torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(X, Y), batch_size=data.batch_size or X.shape[0]
        )
    if isinstance(data, Mapping):  # a dict batch keeps its form: the targets under "y"
        return {**data, TARGET_KEYS[0]: Y}
    return (X, Y)


# --- outputs ------------------------------------------------------------------------------------


def _to_numpy(value: Any, name: str = "the estimate") -> np.ndarray:
    if hasattr(value, "detach") and not hasattr(value, "__array__") and not _is_torch_tensor(value):
        raise ShapeError(
            f"{name} holds a {type(value).__name__}, which has .detach but is not a "
            "torch.Tensor (a structured curvature object, e.g. Kronecker factors?); accepted: "
            + ESTIMATE_FORMS
        )
    try:  # real numbers only: a complex or meta tensor, text or objects are named, not cast
        return as_real_array(value, name)
    except FisherVerifyError as exc:
        raise ShapeError(f"{exc}; accepted: " + ESTIMATE_FORMS) from None


def _lookup(out: Mapping[str, Any], name: str) -> Any:
    if name in out:
        return out[name]
    module, _, attr = name.rpartition(".")
    if module in out:
        block = out[module]
        if isinstance(block, Mapping) and attr in block:
            return block[attr]
        if hasattr(block, attr):
            return getattr(block, attr)
    raise ShapeError(
        f"the estimate has no entry for parameter {name!r}: give one tensor per parameter (keys "
        f"from model.named_parameters(), e.g. {name!r}) or one per module with 'weight'/'bias'"
    )


#: Largest P for which a linear operator is densified (two P×P float64 arrays, about 1 GiB).
DENSIFY_LIMIT = 8192


def _densify(op: Any, params: list[Any]) -> np.ndarray:
    import torch

    P = sum(p.numel() for p in params)
    if P > DENSIFY_LIMIT:
        raise UnsupportedError(
            f"the estimate is a linear operator on P = {P} parameters; densifying it is limited to "
            f"P <= {DENSIFY_LIMIT}: return its diagonal (a vector or {{name: tensor}}) instead"
        )
    ref = params[0]
    eye = torch.eye(P, dtype=ref.dtype, device=ref.device)
    attempts = []
    if hasattr(op, "__matmul__"):
        attempts.append(lambda: op @ eye)
    if hasattr(op, "matmat"):
        attempts.append(lambda: op.matmat(np.eye(P)))
    if hasattr(op, "_matmat"):
        # curvlinops' list format: one tensor per parameter, columns stacked last
        def listed() -> Any:
            cols, start = [], 0
            for p in params:
                cols.append(eye[start : start + p.numel()].reshape(*p.shape, P))
                start += p.numel()
            return torch.cat([c.reshape(-1, P) for c in op._matmat(cols)])

        attempts.append(listed)
    if hasattr(op, "matvec"):
        attempts.append(lambda: np.stack([np.asarray(op.matvec(e)) for e in np.eye(P)], axis=1))
    if not attempts:
        raise ShapeError(
            f"could not read the estimate of type {type(op).__name__}: it is no tensor, array, "
            "dict, list or linear operator; accepted: " + ESTIMATE_FORMS
        )
    errors = []
    for attempt in attempts:
        try:
            dense = _to_numpy(attempt())
        except Exception as exc:  # noqa: BLE001 - try the next calling convention
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if dense.shape == (P, P):
            return dense
        errors.append(f"shape {dense.shape}")
    raise ShapeError(
        f"could not read the estimate of type {type(op).__name__} as a {P}x{P} matrix "
        f"(tried @, matmat, _matmat, matvec: {'; '.join(errors) or 'none available'}); accepted: "
        + ESTIMATE_FORMS
    )


def estimate_to_array(out: Any, model: Any) -> np.ndarray:
    """An estimate in any supported form as ``(P,)`` (diagonal) or ``(P, P)``, ``parameters()`` order.

    Accepted: ``{name: tensor}`` per parameter (``named_parameters()`` keys) or per module
    (``{module: {'weight': …, 'bias': …}}`` or objects with ``.weight``/``.bias``, as ASDL's
    ``Diag``), each shaped like its parameter (diagonal); a list/tuple of per-parameter tensors;
    an array of shape ``(P,)`` or ``(P, P)``; a linear operator (densified).

    Raises:
        ShapeError: a form or shape that fits none of these, or dict keys that are neither
            parameters nor modules of ``model``, naming what would fit.
        UnsupportedError: a linear operator on more than :data:`DENSIFY_LIMIT` parameters.
    """
    named = [(n, p) for n, p in model.named_parameters()]
    params = [p for _, p in named]
    P = sum(p.numel() for p in params)
    if isinstance(out, Mapping):
        known = {name for name, _ in named} | {name.rpartition(".")[0] for name, _ in named}
        unknown = sorted(str(k) for k in out if k not in known)
        if unknown:
            raise ShapeError(
                f"the estimate has entries {unknown[:5]} that are neither parameters nor modules of the "
                f"model (parameters: {[name for name, _ in named][:5]}...)"
            )
        parts = [(name, p, _lookup(out, name)) for name, p in named]
    elif isinstance(out, list | tuple):
        if len(out) != len(params):
            raise ShapeError(
                f"the estimate is a sequence of {len(out)} tensors; the model has {len(params)} parameters"
            )
        parts = [(name, p, v) for (name, p), v in zip(named, out)]
    elif _is_tensor_like(out):
        arr = _to_numpy(out)
        if arr.shape in ((P,), (P, P)):
            return arr
        raise ShapeError(
            f"the estimate has shape {arr.shape}; expected ({P},) (the diagonal) or ({P}, {P}) in "
            "model.parameters() order"
        )
    else:
        return _densify(out, params)
    flat = []
    for name, p, value in parts:
        arr = _to_numpy(value)
        if arr.size != p.numel():
            raise ShapeError(
                f"the estimate for {name!r} has {arr.size} entries; the parameter has {p.numel()} "
                f"(shape {tuple(p.shape)}): only diagonal per-parameter estimates can be given per name"
            )
        flat.append(arr.reshape(-1))
    return np.concatenate(flat)


# --- the empirical Fisher reference -------------------------------------------------------------


def empirical_scores(model: Any, X: Any, Y: Any, family: Any, *, link: Any = None) -> np.ndarray:
    """Per-input scores ``g_m = J_mᵀ (t(y_m) − η(h_m))`` (M, P) at the data's labels, float64.

    The score of ``log p(y_m | x_m, θ)`` (``eq-7`` with observed instead of sampled labels), where
    ``h_m`` is the model's output read as the family's natural parameter, or its image under
    ``link`` (a non-canonical head, ``ext-links``); ``parameters()`` order.
    Computed by ``torch.func`` on float64 copies of the parameters and buffers, so any model
    whose outputs are per input works; the model itself is not changed.
    """
    import torch
    from torch.func import functional_call, jacrev

    params = {k: v.detach().to(torch.float64) for k, v in model.named_parameters()}
    buffers = {
        k: (v.detach().to(torch.float64) if v.is_floating_point() else v) for k, v in model.named_buffers()
    }
    Xt = X.detach().to(device=next(iter(params.values())).device, dtype=torch.float64)

    def out(p: dict[str, Any]) -> Any:
        h = functional_call(model, {**p, **buffers}, (Xt,))
        h = h.reshape(h.shape[0], -1)
        return h if link is None else link.natural_torch(h)

    with restored_module(model):
        h = out(params)
        jac = jacrev(out)(params)  # {name: (M, d, *shape)}
    h_np = _to_numpy(h, "the model's output")
    M, d = h_np.shape
    family.check_natural(h_np)
    y = family.check_labels(Y, "labels (the data's targets)")
    if y.size not in (M, M * d):
        raise ShapeError(
            f"labels (the data's targets): {y.size} values for {M} inputs; give one label per input"
        )
    y = y.reshape(M) if y.size == M else y.reshape(M, -1)
    t = np.asarray(family.statistic(y), dtype=np.float64).reshape(M, d)
    r = t - np.asarray(family.mean(h_np), dtype=np.float64).reshape(M, d)
    J = np.concatenate([_to_numpy(jac[k]).reshape(M, d, -1) for k in params], axis=2)  # (M, d, P)
    return np.einsum("map,ma->mp", J, r)


def empirical_fisher(model: Any, X: Any, Y: Any, family: Any, *, diagonal: bool = False) -> np.ndarray:
    """Exact empirical Fisher ``(1/M) Σ_m g_m g_mᵀ`` (:func:`empirical_scores`), ``parameters()`` order.

    The mean score outer product of ``eq-7`` with the data's labels in place of labels drawn
    from the model; deterministic. Returns the diagonal when ``diagonal``.
    """
    g = empirical_scores(model, X, Y, family)
    return _outer_mean(g, diagonal)


def _outer_mean(g: np.ndarray, diagonal: bool) -> np.ndarray:
    M = g.shape[0]
    return np.einsum("mp,mp->p", g, g) / M if diagonal else g.T @ g / M


def _empirical_report(first: np.ndarray, second: np.ndarray, ref: np.ndarray, mag: np.ndarray,
                      rtol: float, M: int, names: list[str], which: Any, n: int) -> EstimatorReport:
    denom = np.maximum(mag, np.finfo(np.float64).tiny)
    spread = float(np.max(np.abs(first - second) / denom)) if first.size else 0.0
    err = np.abs(first - ref) / denom
    worst_idx = np.unravel_index(int(np.argmax(err)), err.shape)
    max_error = float(err[worst_idx]) if np.all(np.isfinite(first)) else math.inf
    worst = "Î" + str(list(map(int, worst_idx))) + " (" + ", ".join(names[i] for i in worst_idx) + ")"
    den = float(np.sum(ref * ref))
    scale = float(np.sum(first * ref) / den) if den > 0 else math.nan
    deterministic = spread <= rtol
    passed = deterministic and max_error <= rtol
    if not np.all(np.isfinite(first)):
        diagnosis = "the estimator returned NaN or infinite values"
    elif not deterministic:
        diagnosis = (
            f"two replicates with different seeds differ (by {spread:.3g}): the estimator is random "
            "(labels sampled from the model?), so it is not the empirical Fisher of the data's labels"
        )
    elif passed:
        diagnosis = "equal to the empirical Fisher of the data's labels (eq-7 with observed labels)."
    elif max_error <= FLOAT32_ROUNDING:
        diagnosis = rounding_text(max_error, "the empirical Fisher of the data's labels") + (
            f" (rtol = {rtol:.2g})"
        )
    elif math.isfinite(scale) and np.all(np.abs(first - scale * ref) <= rtol * (1 + abs(scale)) * denom):
        hint = ""
        for value, why in ((float(M), f"M = {M}: a sum instead of a mean over inputs?"),
                           (1.0 / M, f"1/M = 1/{M}: divided by M twice?"), (0.5, "1/2?"), (2.0, "2?")):
            if abs(scale / value - 1.0) < 1e-3:
                hint = f" The factor is close to {why}"
                break
        diagnosis = f"{scale:.4g}x the empirical Fisher: a rescaled empirical Fisher fits every entry.{hint}"
    else:
        diagnosis = (
            f"deterministic but not the empirical Fisher (relative error {max_error:.3g}, best factor "
            f"{scale:.3g}): labels other than the data's, or wrong per-sample gradients."
        )
    return EstimatorReport(
        passed=passed, which=which, n=n, replications=2, diagonal_only=first.ndim == 1,
        alpha=math.nan, alpha_per_check=math.nan, statistics=(), worst=None, scale=scale,
        scale_explains=False, sd_ratio=math.nan, diagnosis=diagnosis,
        cause="ok" if passed else "",
        deterministic=deterministic, method="exact comparison", reference="empirical",
        max_error=max_error, rtol=rtol, worst_entry=worst)


# --- the one-liner ------------------------------------------------------------------------------


def _resolve_family(family: Any, n_out: int) -> tuple[Any, Any]:
    """The family and, for a loss whose head is not canonical (``BCELoss``, ...), its link."""
    from ..families.family import Family
    from ..families.losses import resolve_head
    from ..families.registry import family as get_family

    family, link = resolve_head(family, n_out)
    if isinstance(family, str):
        family = get_family("categorical", K=n_out) if family == "categorical" else get_family(family)
    check_instance(family, Family, "family",
                   "a family name, a fisher_verify.family(...) or a torch.nn loss module, e.g. "
                   "family='categorical' or family=nn.CrossEntropyLoss()")
    if family.dim != n_out:
        raise ShapeError(
            f"family {family.label} has dimension {family.dim} but the model gives {n_out} outputs "
            "per input; they must be equal"
        )
    return family, link


def _default_rtol(model: Any) -> float:
    import torch

    dt = next(model.parameters()).dtype
    return 1e-9 if dt == torch.float64 else (1e-4 if dt == torch.float32 else 1e-2)


def gate_module(
    estimator: Callable[..., Any],
    model: Any,
    data: Any,
    *,
    family: Any,
    n: int = 1,
    reference: Reference = "fisher",
    kind: Kind = 1,
    randomness: Randomness = "global",
    placeholder_labels: bool = False,
    diagonal_only: bool | None = None,
    replications: int = 200,
    rng: int | np.random.Generator | None = 0,
    alpha: float = DEFAULT_ALPHA,
    directions: int = 8,
    rtol: float | None = None,
    reference_model: Callable[[Any, Any], ReferenceModel] | None = None,
    reduction: Literal["mean", "sum"] = "mean",
    side: Literal["two-sided", "upper", "lower"] = "two-sided",
    variance: Literal["at_most", "exact"] = "at_most",
    which: Any = None,
) -> EstimatorReport:
    """Check ``estimator(model, data)`` against ``I(θ)`` (``eq-6``) or the empirical Fisher; one line.

    Never raises for a wrong estimator: returns the report (``.passed``, ``.message()``).

    Args:
        estimator: ``estimator(model, data)`` returning a Fisher estimate in any form that
            :func:`estimate_to_array` reads; with ``randomness="generator"`` it is also given
            ``generator=<torch.Generator>``, with ``randomness="seed"`` ``seed=<int>``.
        model: the user's ``nn.Module``, used as is (any dtype, any device) and restored after
            every call.
        data: what ``estimator`` expects: a ``DataLoader``, a ``Dataset``, ``(x, y)`` or ``x``.
        family: the output family (``"categorical"``: K from the output width; ``"normal"`` …,
            or a :func:`fisher_verify.family` object, e.g. ``family("normal", sigma=2**0.5)``
            for a ``MSELoss`` without the factor 1/2), or the ``torch.nn`` loss module trained
            with (:func:`fisher_verify.family_for_loss`, e.g. ``nn.CrossEntropyLoss()``).
        n: label draws per input of the Monte Carlo estimate (its exact variance, ``thm-4``).
        reference: ``"fisher"`` (unbiased for ``I(θ)``, calibrated gate) or ``"empirical"``
            (the exact empirical Fisher of the data's labels, compared at ``rtol``).
        kind: passed to :func:`~.estimator_gate.gate_network` (``"gnb"``, ``"hutchinson-rademacher"``,
            ``"hutchinson-gaussian"``, ``KFAC(layer)`` with the layer named as in
            ``named_modules()``, ``OneBackward(...)``, ``Subsampled(...)`` besides 1, 2). 1
            calibrates with the exact variance of ``Î₁`` (``thm-4``), 2 with ``Î₂`` (``thm-6``).
        randomness: ``"global"`` (the global RNGs are seeded per call), ``"generator"`` or
            ``"seed"`` (additionally passed as a keyword); the global RNGs are always restored.
        placeholder_labels: when ``data`` has no targets, hand ``estimator`` data with zero
            targets (for losses that need targets even when the labels are sampled): a
            ``DataLoader`` of ``(x, y)`` batches for a loader, a tuple ``(x, y)`` otherwise.
        diagonal_only: whether the estimate is a diagonal; ``None`` infers it from the output.
        replications: R calls for ``reference="fisher"``.
        rng: seed or Generator of the gate.
        alpha: false-alarm rate of the whole gate.
        directions: random quadratic forms tested besides the diagonal.
        rtol: rounding tolerance; default 1e-9 for float64 models, 1e-4 for float32.
        reference_model: ``(model, family) -> ReferenceModel``, the exact model behind
            ``I(θ)``. Default: :func:`sequential_reference` for an Eq. 3 MLP, else
            :func:`module_reference` (any module; a train()-mode model with dropout is
            referenced in eval mode and the report says so).
        reduction: ``"mean"`` (default): the estimate is a mean over the M inputs, like
            ``I(θ)`` (eq-6). ``"sum"``: it is a sum over the inputs (the curvature of a summed
            loss, laplace-torch's ``la.H``), and the gate divides it by M before testing.
        side: ``"two-sided"``, or ``"upper"`` / ``"lower"`` for an estimator of a bound of I(θ)
            (:func:`~.estimator_gate.gate_network`).
        variance: ``"at_most"`` or ``"exact"`` (:func:`~.estimator_gate.gate_network`).
        which: the public name of ``kind`` recorded in the report (None: ``kind`` itself).

    Raises:
        ShapeError: an estimate or data in a form that is not understood (the message says which
            forms are).
        FisherVerifyError: bad options; ``reference="empirical"`` on data without targets.
    """
    import torch

    # every option before the model or estimator runs: a bad one is named, not met later as a
    # TypeError from inside the gate (the gate checks them again; that costs nothing)
    check_callable(estimator, "estimator", "estimator(model, data) returning a Fisher estimate")
    if reference_model is not None:
        check_callable(reference_model, "reference_model", "(model, family) -> ReferenceModel")
    reference = check_choice(reference, "reference", ("fisher", "empirical"))
    if reduction not in ("mean", "sum"):
        raise FisherVerifyError(
            f"reduction must be 'mean' (the estimate averages over the inputs) or 'sum' (it sums "
            f"over them, e.g. laplace-torch's la.H), got {reduction!r}")
    randomness = check_choice(randomness, "randomness", ("global", "generator", "seed"))
    n = check_count(n, "n (draws per input)")
    check_kind(kind, True)  # the gate checks a Hutchinson kind's diagonal_only itself
    placeholder_labels = bool(check_flag(placeholder_labels, "placeholder_labels"))
    diagonal_only = check_flag(diagonal_only, "diagonal_only", allow_none=True)
    replications = check_count(replications, "replications")
    gen = as_generator(rng)
    alpha = check_fraction(alpha, "alpha")
    directions = check_count(directions, "directions", minimum=0)
    if rtol is not None:
        rtol = check_nonnegative(rtol, "rtol")
    if not isinstance(model, torch.nn.Module) or next(model.parameters(), None) is None:
        raise FisherVerifyError("model must be a torch.nn.Module with parameters")
    check_materialized(model)
    p0 = next(model.parameters())
    X, Y = inputs_and_targets(data)
    if X.ndim == 0 or X.shape[0] < 1:
        raise ShapeError(f"data must hold at least one input (a leading batch axis), got inputs "
                         f"of shape {tuple(X.shape)}")
    if X.device.type == "meta":
        raise ShapeError("data: the inputs are a tensor on the meta device (a shape without "
                         "values); give inputs with values (on cpu or cuda)")
    if X.is_floating_point() or X.is_complex():
        bad = (~torch.isfinite(X)).reshape(X.shape[0], -1).any(dim=1).nonzero()
        if bad.numel():
            raise ShapeError(f"data: input {int(bad[0, 0])} (of {X.shape[0]}) contains NaN or "
                             "infinite values; inputs must be finite")
    X = X.to(device=p0.device, dtype=p0.dtype) if X.is_floating_point() else X.to(p0.device)
    with torch.no_grad(), restored_module(model), seeded_global_rngs(0):  # dropout draws
        try:
            out = model(X)
        except Exception as exc:  # noqa: BLE001 - the user's model on the user's data
            raise ShapeError(
                f"data: the model's forward pass failed on the inputs of shape "
                f"{tuple(X.shape)} and dtype {X.dtype}: {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(out, torch.Tensor):
            raise ShapeError(f"model must return a tensor of outputs per input, got {type(out).__name__}")
        n_out = int(out.reshape(X.shape[0], -1).shape[1])
    fam, link = _resolve_family(family, n_out)
    call_data = data
    if Y is None and placeholder_labels:
        call_data = _with_targets(data, X, _placeholder_targets(fam, X, n_out))
    tol = _default_rtol(model) if rtol is None else float(rtol)

    def call(seed: int) -> np.ndarray:
        kwargs: dict[str, Any] = {}
        if randomness == "generator":
            kwargs["generator"] = torch.Generator(device=p0.device).manual_seed(seed)
        elif randomness == "seed":
            kwargs["seed"] = seed
        with restored_module(model), seeded_global_rngs(seed):
            try:
                out = estimator(model, call_data, **kwargs)
            except TypeError as exc:
                missing = [w for w in ("generator", "seed") if f"argument: '{w}'" in str(exc)]
                if missing:
                    raise FisherVerifyError(
                        f"estimator needs a {missing[0]!r} argument: pass randomness={missing[0]!r} so the "
                        f"gate hands one over ({exc})"
                    ) from None
                raise
            # a K-FAC factor is a layer's (q, q) matrix, not a θ-indexed estimate
            arr = _to_numpy(out) if isinstance(kind, KFAC) else estimate_to_array(out, model)
            # a summed curvature is M times the mean that I(θ) is (eq-6)
            return arr / X.shape[0] if reduction == "sum" else arr

    if reference == "empirical":
        if Y is None:
            raise FisherVerifyError(
                "reference='empirical' needs the data's labels: give data with targets ((x, y) or a "
                "loader of (x, y) batches)"
            )
        first = call(int(gen.integers(0, 2**62)))
        second = call(int(gen.integers(0, 2**62)))
        diag = first.ndim == 1 if diagonal_only is None else bool(diagonal_only)
        g = empirical_scores(model, X, Y, fam, link=link)
        ref = _outer_mean(g, diag)
        if first.shape != ref.shape:
            raise ShapeError(f"the estimate has shape {first.shape}; expected {ref.shape}")
        # rounding scale of each entry: the same mean with absolute per-input scores
        mag = _outer_mean(np.abs(g), diag)
        names = [f"{name}[{i}]" for name, p in model.named_parameters() for i in range(p.numel())]
        return _empirical_report(first, second, ref, mag, tol, int(X.shape[0]), names,
                                 kind if which is None else which, n)

    if reference_model is not None:
        refm = reference_model(model, fam)
    elif isinstance(kind, KFAC) and isinstance(kind.layer, str):
        # the layer is named as in named_modules(); a loss's link goes with the module (ext-links)
        refm = module_reference(model, family if link is not None else fam, X)
    else:
        refm = _default_reference(model, fam, X, family, link)
    # a K-FAC factor is indexed by the layer's units, not by θ: nothing to permute
    perm = None if isinstance(kind, KFAC) else refm.permutation
    probe = call(int(np.random.default_rng(gen.integers(0, 2**62)).integers(0, 2**62)))
    diag = probe.ndim == 1 if diagonal_only is None else bool(diagonal_only)

    def replicate(g: np.random.Generator) -> np.ndarray:
        arr = call(int(g.integers(0, 2**62)))
        if perm is None or arr.ndim not in (1, 2):
            return arr
        return arr[perm] if arr.ndim == 1 else arr[np.ix_(perm, perm)]

    X_np = X.detach().cpu().to(torch.float64).numpy().reshape(X.shape[0], -1)
    # the data's own labels let the diagnosis name the empirical Fisher itself; without them,
    # the hint says how to give them here (a module's labels come with its data)
    labels, hint = None, "give data with targets, (x, y) or a loader of (x, y) batches"
    if Y is not None:
        try:
            labels = Y.detach().cpu().numpy()
            _labels_statistic(refm.network, labels, int(X.shape[0]))
        except FisherVerifyError as exc:
            labels, hint = None, f"the data's targets are not labels of {fam.label}: {exc}"
    report = gate_network(
        replicate, refm.network, X_np, n=n, kind=kind, replications=replications, rng=gen,
        alpha=alpha, diagonal_only=diag, directions=directions, rtol=tol, labels=labels,
        labels_hint=hint, side=side, variance=variance, which=which,
    )
    return dataclasses.replace(report, reference_note=refm.note) if refm.note else report
