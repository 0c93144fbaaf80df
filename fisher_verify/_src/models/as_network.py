"""Any ``nn.Module`` the engine accepts, seen through the interface the estimator gate reads.

The gate (:mod:`fisher_verify._src.testing.estimator_gate`) needs of a network only its family, the
inputs, ``h_L`` (``forward``), the Jacobians ``J_m = ∂h_L(x_m)/∂θ`` (``eq-6``, ``thm-4``), the
output Hessians for ``Î₂`` (``thm-6``), flat ``θ`` and where each parameter tensor sits in it.
:class:`ModuleNetwork` provides exactly that for a prepared working copy
(:func:`~fisher_verify._src.models.prepared.prepare_model`: deep copy, float64, eval mode), so a CNN,
a ReLU MLP with ``Dropout`` or a LayerNorm model is gated like an Eq. 3 MLP.

θ is every parameter in ``named_parameters()`` order (the order of ``model.parameters()``, in
which a user's estimate is read), so no permutation is needed and the gate's diagnoses name the
parameter tensor and element (``conv.weight[3,0,1,2]``).

Derivatives are taken with plain reverse-mode autograd, one backward pass per input and output
(and per parameter for the Hessians): ``torch.func``'s second derivatives through ``layer_norm``
and attention are wrong off the diagonal, and plain autograd works for any module whose forward
pass runs. Sizes are bounded before anything is computed: the dense ``J`` (``M · n_L · P``
numbers) by :data:`JACOBIAN_BUDGET` bytes, the output Hessians (``M · n_L · P²``) by
:data:`HESSIAN_LIMIT` entries, each refused at once naming the limit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import FisherVerifyError, ShapeError, UnsupportedError
from .prepared import PreparedModel, _check_training, prepare_model, second_order

__all__ = ["module_network"]

#: Bytes of the dense float64 Jacobian ``(M, n_L, P)`` the gate may hold (512 MiB; the gate
#: forms a few arrays of that size beside it).
JACOBIAN_BUDGET = 2**29

#: Entries of the dense output Hessians ``(M, n_L, P, P)`` for ``Î₂`` (160 MB of float64): the
#: gate's :data:`~fisher_verify._src.testing.gate_exact.DENSE_HESSIAN_LIMIT`, below which it reads
#: them densely (a test pins the two equal).
HESSIAN_LIMIT = 20_000_000


class ModuleNetwork:
    """A prepared ``nn.Module`` through the gate's network interface (``eq-6``, ``thm-4``, ``thm-6``).

    Attributes:
        family: the output family.
        names: parameter names, ``named_parameters()`` order.
        shapes: their shapes; ``offsets``: where each starts in flat θ, and P at the end.
        note: how the reference differs from the user's module as it stands ("" when it does
            not), e.g. a train()-mode model evaluated in eval mode.
    """

    #: read by :func:`~fisher_verify._src.networks.network.require_network`: this object offers the
    #: interface of an Eq. 3 ``Network`` that the gate and ``fisher.covariance`` use
    gate_interface = True

    def __init__(self, prep: PreparedModel, input_shape: tuple[int, ...], input_dtype: Any,
                 note: str = "") -> None:
        import torch

        self.prep = prep
        self.family = prep.family
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_dtype = input_dtype
        self.note = note
        named = list(prep.module.named_parameters())
        self.names = [k for k, _ in named]
        self._params = [p.detach() for _, p in named]
        self.buffers = {k: v.detach() for k, v in prep.module.named_buffers()}
        self.shapes = [tuple(int(s) for s in p.shape) for p in self._params]
        sizes = [int(p.numel()) for p in self._params]
        self.offsets = [0, *np.cumsum(sizes).astype(int).tolist()]
        self.num_params = int(self.offsets[-1])
        self.n0 = int(math.prod(self.input_shape))
        self._torch = torch
        self._cache: dict[str, tuple[bytes, np.ndarray]] = {}

    # --- θ and names ----------------------------------------------------------------------------

    @property
    def theta(self) -> np.ndarray:
        """Flat θ in ``named_parameters()`` order (float64 copy)."""
        return np.concatenate([p.reshape(-1).cpu().numpy() for p in self._params]).astype(np.float64)

    def parameter_labels(self) -> list[str]:
        """``name[i,j,...]`` for every flat-θ index (the gate's statistics are named by it)."""
        out: list[str] = []
        for name, shape in zip(self.names, self.shapes):
            for idx in np.ndindex(*shape) if shape else [()]:
                out.append(f"{name}[{','.join(map(str, idx))}]" if idx else name)
        return out

    def layer_permutations(self) -> list[tuple[str, np.ndarray]]:
        """Orders a user might return instead of ``parameters()``'s: every weight of two or more
        axes flattened column-major (a transposed ``W``), and the inverse of that."""
        col: list[int] = []
        for start, shape in zip(self.offsets, self.shapes):
            size = int(math.prod(shape)) if shape else 1
            idx = np.arange(size).reshape(shape or (1,))
            flat = idx.reshape(-1, order="F") if len(shape) >= 2 else idx.reshape(-1)
            col.extend((start + flat).tolist())
        perm = np.asarray(col, dtype=np.int64)
        ident = np.arange(self.num_params)
        if np.array_equal(perm, ident):
            return []
        out = [("column-major weights (a transposed W)", perm)]
        inv = np.argsort(perm)
        if not np.array_equal(inv, perm):
            out.append(("the inverse of column-major weights", inv))
        return out

    # --- inputs ---------------------------------------------------------------------------------

    def inputs(self, x: Any) -> tuple[np.ndarray, bool]:
        """Validate ``x``; return it as ``(M, n_0)`` (each input flattened) and whether it was
        one input. Accepted: ``(n_0,)``, ``(M, n_0)``, one input of the model's input shape or a
        batch of them."""
        arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
        single = arr.ndim in (1, len(self.input_shape)) and arr.size == self.n0 and (
            arr.ndim == 1 or tuple(arr.shape) == self.input_shape)
        if single:
            arr = arr.reshape(1, self.n0)
        elif arr.ndim >= 2 and arr.shape[0] >= 1 and (
            (arr.ndim == 2 and arr.shape[1] == self.n0) or tuple(arr.shape[1:]) == self.input_shape
        ):
            arr = arr.reshape(arr.shape[0], self.n0)
        else:
            raise ShapeError(
                f"inputs must have shape (M, {self.n0}) or (M, {', '.join(map(str, self.input_shape))}) "
                f"(the model's input shape), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            row = int(np.argwhere(~np.all(np.isfinite(arr), axis=1))[0][0])
            raise FisherVerifyError(f"input x is not finite at row {row}; inputs must be finite")
        return arr, single

    def _torch_inputs(self, X: np.ndarray) -> Any:
        torch = self._torch
        t = torch.as_tensor(X, device=self.prep.device).reshape(X.shape[0], *self.input_shape)
        if self.input_dtype.is_floating_point:
            return t.to(self.prep.dtype)
        if not np.all(X == np.round(X)):
            raise ShapeError(f"the model takes {self.input_dtype} inputs; got values that are not integers")
        return t.to(self.input_dtype)

    # --- evaluation -----------------------------------------------------------------------------

    def _h(self, params: list[Any], x: Any) -> Any:
        """``h_L`` (B, n_L) for a batch ``x`` at the parameter tensors ``params``."""
        from torch.func import functional_call

        p = dict(zip(self.names, params))
        out = functional_call(self.prep.module, (p, self.buffers), (x,))
        h = self.prep.output(out) if self.prep.output is not None else out
        return h.reshape(h.shape[0], -1)

    def forward(self, x: Any) -> np.ndarray:
        """``h_L``, shape ``(n_L,)`` or ``(M, n_L)``."""
        X, single = self.inputs(x)
        with self._torch.no_grad():
            h = self._h(self._params, self._torch_inputs(X)).cpu().numpy()
        return h[0] if single else h

    def _cached(self, key: str, X: np.ndarray) -> np.ndarray | None:
        hit = self._cache.get(key)
        return hit[1] if hit is not None and hit[0] == X.tobytes() else None

    def jacobian(self, x: Any) -> np.ndarray:
        """``J = ∂h_L/∂θ``, ``(n_L, P)`` or ``(M, n_L, P)``: one backward pass per input and output.

        Raises:
            UnsupportedError: the dense J would exceed :data:`JACOBIAN_BUDGET` bytes.
        """
        X, single = self.inputs(x)
        self._check_jacobian_size(X.shape[0])
        J = self._cached("J", X)
        if J is None:
            J = self._jacobian(X)
            self._cache["J"] = (X.tobytes(), J)
        return J[0] if single else J

    def _check_jacobian_size(self, M: int) -> None:
        d, P = int(self.family.dim), self.num_params
        need = 8 * M * d * P
        if need > JACOBIAN_BUDGET:
            raise UnsupportedError(
                f"the gate's exact reference for this model needs the dense Jacobian of M = {M} "
                f"inputs x n_L = {d} outputs x P = {P} parameters ({need / 2**20:.0f} MiB), above "
                f"its budget of {JACOBIAN_BUDGET / 2**20:.0f} MiB: gate it on fewer inputs or a "
                "smaller model")

    def _jacobian(self, X: np.ndarray) -> np.ndarray:
        torch = self._torch
        Xt = self._torch_inputs(X)
        M, d, P = X.shape[0], int(self.family.dim), self.num_params
        out = np.empty((M, d, P))
        for m in range(M):
            th = [p.clone().requires_grad_(True) for p in self._params]
            h = self._h(th, Xt[m : m + 1])[0]
            for a in range(d):
                grads = torch.autograd.grad(h[a], th, retain_graph=a < d - 1, allow_unused=True)
                out[m, a] = _flat(grads, th).cpu().numpy()
        return out

    def output_hessians(self, x: Any) -> np.ndarray:
        """``∂²h^a_L/∂θ∂θᵀ``, ``(n_L, P, P)`` or ``(M, n_L, P, P)`` (``thm-6``), by double
        backward: P Hessian-vector rows per input and output.

        Raises:
            UnsupportedError: more than :data:`HESSIAN_LIMIT` entries.
        """
        X, single = self.inputs(x)
        self._check_hessian_size(X.shape[0])
        H = self._cached("H", X)
        if H is None:
            H = self._hessians(X)
            self._cache["H"] = (X.tobytes(), H)
        return H[0] if single else H

    def _check_hessian_size(self, M: int) -> None:
        d, P = int(self.family.dim), self.num_params
        if M * d * P * P > HESSIAN_LIMIT:
            raise UnsupportedError(
                f"Î₂ (thm-6) on this model needs its output Hessians, M = {M} inputs x n_L = {d} "
                f"outputs x P² = {P}² entries ({M * d * P * P:.3g}), above the limit of "
                f"{HESSIAN_LIMIT:.3g} for a module that is not an Eq. 3 MLP: gate kind=2 on fewer "
                "inputs or a smaller model, or kind=1")

    def _hessians(self, X: np.ndarray) -> np.ndarray:
        torch = self._torch
        Xt = self._torch_inputs(X)
        M, d, P = X.shape[0], int(self.family.dim), self.num_params
        out = np.empty((M, d, P, P))
        with second_order():
            for m in range(M):
                th = [p.clone().requires_grad_(True) for p in self._params]
                h = self._h(th, Xt[m : m + 1])[0]
                for a in range(d):
                    (g,) = [_flat(torch.autograd.grad(h[a], th, create_graph=True, allow_unused=True), th)]
                    for i in range(P):
                        if not g[i].requires_grad:  # h^a is linear in θ_i: the row is zero
                            out[m, a, i] = 0.0
                            continue
                        row = torch.autograd.grad(g[i], th, retain_graph=True, allow_unused=True)
                        out[m, a, i] = _flat(row, th).cpu().numpy()
        return 0.5 * (out + np.swapaxes(out, -1, -2))

    def torch_forward(self, theta: Any, x: Any) -> Any:
        """``h_L`` (n_L,) as a differentiable torch function of flat θ and one flattened input."""
        parts = [theta[a:b].reshape(s) for a, b, s in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]
        xt = x.reshape(1, *self.input_shape)
        if not self.input_dtype.is_floating_point:
            xt = xt.round().to(self.input_dtype)
        return self._h(parts, xt)[0]

    def require_c2(self, what: str, x: Any = None) -> None:
        """Refuse ``what`` (∂²h_L/∂θ∂θᵀ, thm-3/thm-6) where it is not defined or too large: a
        model that is not C² at the inputs (ReLU and max pooling are accepted away from their
        kinks, :mod:`.kinks`), or output Hessians above :data:`HESSIAN_LIMIT` entries."""
        if x is None:
            raise UnsupportedError(f"{what} on an nn.Module needs the inputs, to check it is smooth there")
        X, _ = self.inputs(x)
        self.prep.require_smooth(what, [self._torch_inputs(X)])
        self._check_hessian_size(X.shape[0])

    def variance_diagonal(self, x: Any, kind: int, n: int) -> np.ndarray:
        """``diag Var(Î₁)`` (thm-4) from the dense J: ``Σ_m C_m[u,u,u,u] / (M² n)`` with
        ``u = J_m e_i`` and ``C = K − I⊗I`` (remark-4.1), O(n_L) per entry for categorical
        outputs (``Family.contractions``). ``kind=2`` is the dense route's job."""
        if kind != 1:
            raise FisherVerifyError("variance_diagonal of a ModuleNetwork serves kind=1 only")
        X, _ = self.inputs(x)
        torch = self._torch
        J = torch.as_tensor(self.jacobian(X))
        h = torch.as_tensor(self.forward(X))
        _, excess = self.family.contractions(h).fisher_and_excess(J, True)
        M = X.shape[0]
        return np.asarray(excess.sum(0).numpy(), dtype=np.float64) / (M * M * float(n))

    def __repr__(self) -> str:
        return (f"ModuleNetwork({type(self.prep.module).__name__}, P={self.num_params}, "
                f"family={self.family.label})")


def _flat(grads: Any, like: list[Any]) -> Any:
    import torch

    return torch.cat([
        (g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, like)
    ])


def module_network(model: Any, family: Any, X: Any) -> ModuleNetwork:
    """The gate's exact reference network for any ``nn.Module`` on the inputs ``X`` (``eq-6``).

    A float64 working copy in eval mode (:func:`~.prepared.prepare_model`; the user's module is
    never touched). A model in train() mode with dropout or batch statistics is evaluated in
    eval mode (dropout off, running statistics): the Fisher information is that of a fixed
    function, and the result's ``note`` says so.

    Raises:
        UnsupportedError / ShapeError: what :func:`prepare_model` refuses; a module no rule of
            the engine can differentiate (:mod:`.rules`); a dense J above
            :data:`JACOBIAN_BUDGET` on ``X``.
    """
    import torch

    Xt = torch.as_tensor(X)
    if Xt.ndim < 1 or Xt.shape[0] < 1:
        raise ShapeError(f"inputs must have a leading batch axis with M >= 1, got shape {tuple(Xt.shape)}")
    dev = next(model.parameters()).device
    example = Xt[:2].to(device=dev, dtype=torch.float64) if Xt.is_floating_point() else Xt[:2].to(dev)
    random = _check_training(model) if model.training else []
    note = ""
    if random:
        note = (
            "the reference is the model in eval mode (" + ", ".join(random[:4])
            + (", ..." if len(random) > 4 else "") + " switched off: dropout off, running "
            "statistics): your model is in train() mode, where its output is random; an estimator "
            "that keeps dropout on estimates something else")
    prep = prepare_model(model, family, example, eval_mode=True)
    from .rules import probe_generic

    probe_generic(prep, example)  # a module no rule can differentiate is named now, not later
    net = ModuleNetwork(prep, tuple(Xt.shape[1:]), Xt.dtype, note)
    net._check_jacobian_size(int(Xt.shape[0]))
    return net
