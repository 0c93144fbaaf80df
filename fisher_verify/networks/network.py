"""The Eq. 3 network: weights ⇄ flat θ, forward pass, Jacobian and output Hessians.

``h_0 = x``, ``h̄_l = (h_l, 1)``, ``h_l = σ(W_{l-1} h̄_{l-1})`` for l = 1..L-1, ``h_L =
W_{L-1} h̄_{L-1}`` (the last layer is linear) and ``p(y|x) = exp(t(y)ᵀ h_L − F(h_L))``.
``W_l`` is ``n_{l+1} × (n_l + 1)`` with the bias as its last column.

**Flat θ ordering**: layer by layer (``W_0`` first), each ``W_l`` row-major, so ``W_l[r, c]``
is ``θ[offset_l + r (n_l + 1) + c]`` with ``offset_l = Σ_{k<l} n_{k+1} (n_k + 1)``.

**Inputs**: one input ``x`` of shape ``(n_0,)`` or ``M`` inputs ``(M, n_0)``; with several,
``p(x)`` is their empirical distribution and Fisher quantities average over them. Methods
return arrays without the batch axis for a single input and with it for ``(M, n_0)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import FisherVerifyError, ShapeError
from . import analytic, autodiff
from .activations import Activation, get_activation

Method = Literal["analytic", "autodiff"]


def _as_matrix(W: Any, name: str) -> np.ndarray:
    if hasattr(W, "detach"):
        W = W.detach().cpu().numpy()
    try:
        arr = np.array(W, dtype=np.float64)
    except (TypeError, ValueError):
        raise ShapeError(f"{name} is not a numeric matrix") from None
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be a 2-D matrix n_(l+1) x (n_l + 1), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 2:
        raise ShapeError(
            f"{name} must have at least one row and two columns (weights + bias), "
            f"got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise FisherVerifyError(f"{name} contains NaN or infinite values; weights must be finite")
    return arr


class Network:
    """A feed-forward network of Eq. 3 with an exponential-family output (``family``).

    Build with :meth:`from_weights`, :meth:`from_npz`, :meth:`random` or :meth:`from_torch`.
    Derivatives come by two routes: ``method="analytic"`` (lemma-13 recursions and their
    second-order extension, NumPy) and ``method="autodiff"`` (torch.func, float64).
    """

    def __init__(self, weights: Sequence[Any], activation: str | Activation, family: Any) -> None:
        if len(weights) < 1:
            raise ShapeError(
                "a network needs at least one weight matrix W0 (the linear output layer)"
            )
        mats = [_as_matrix(W, f"W{i}") for i, W in enumerate(weights)]
        for i in range(1, len(mats)):
            need = mats[i - 1].shape[0] + 1
            if mats[i].shape[1] != need:
                raise ShapeError(
                    f"layer {i}: W{i} has shape {mats[i].shape} but must have {need} columns "
                    f"(n_{i} + 1 = {need - 1} + 1, last is the bias) since W{i - 1} has shape "
                    f"{mats[i - 1].shape}"
                )
        self.act: Activation = get_activation(activation)
        n_L = mats[-1].shape[0]
        dim = getattr(family, "dim", None)
        if dim is None:
            raise FisherVerifyError(
                "family must be a Family, e.g. fisher_verify.family('bernoulli'), "
                f"got {type(family).__name__}"
            )
        if dim != n_L:
            raise ShapeError(
                f"family {family.label} has dimension {dim} but the network has n_L = {n_L} "
                f"outputs (W{len(mats) - 1} has shape {mats[-1].shape}); they must be equal"
            )
        self.weights: list[np.ndarray] = mats
        self.family = family

    # --- constructors ---------------------------------------------------------------------------

    @classmethod
    def from_weights(
        cls, weights: Sequence[Any], activation: str = "tanh", family: Any = None
    ) -> Network:
        """Network from ``[W_0, …, W_{L-1}]`` (``W_l``: ``n_{l+1} × (n_l + 1)``, bias last)."""
        return cls(weights, activation, _default_family(family, weights))

    @classmethod
    def from_npz(cls, path: str | Path, activation: str = "tanh", family: Any = None) -> Network:
        """Network from an ``.npz`` file holding arrays ``W0, W1, …`` in layer order."""
        try:
            data = np.load(path)
        except (OSError, ValueError) as exc:
            raise FisherVerifyError(f"cannot read weights file {str(path)!r}: {exc}") from None
        with data:
            names = list(data.files)
            count = 0
            while f"W{count}" in names:
                count += 1
            extra = sorted(set(names) - {f"W{i}" for i in range(count)})
            if count == 0 or extra:
                raise ShapeError(
                    f"{str(path)!r}: expected arrays named W0, W1, … in layer order, found "
                    f"{', '.join(names) or 'none'}"
                    + (f" (unexpected: {', '.join(extra)})" if extra and count else "")
                )
            weights = [data[f"W{i}"] for i in range(count)]
        return cls(weights, activation, _default_family(family, weights))

    @classmethod
    def random(
        cls,
        widths: Sequence[int],
        activation: str = "tanh",
        family: Any = None,
        scale: float = 1.0,
        rng: np.random.Generator | int | None = None,
    ) -> Network:
        """Random weights for widths ``(n_0, …, n_L)``: entries N(0, scale² / (n_l + 1))."""
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise ShapeError(f"widths must list n_0, …, n_L (at least two, all >= 1), got {widths}")
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        weights = [
            gen.normal(0.0, scale / np.sqrt(widths[i] + 1), size=(widths[i + 1], widths[i] + 1))
            for i in range(len(widths) - 1)
        ]
        return cls(weights, activation, _default_family(family, weights))

    @classmethod
    def from_torch(cls, model: Any, family: Any = None) -> Network:
        """Network from an ``nn.Sequential`` of ``Linear`` layers and one kind of activation.

        Accepted activations: Tanh, Sigmoid, Softplus (beta = 1; evaluated exactly, without
        torch's linear threshold), GELU (approximate='none'), ReLU, Identity. The model must
        end with a Linear layer and alternate Linear / activation.
        """
        from .torch_import import weights_from_sequential

        weights, activation = weights_from_sequential(model)
        return cls(weights, activation, _default_family(family, weights))

    # --- structure ------------------------------------------------------------------------------

    @property
    def activation(self) -> str:
        """Name of σ."""
        return self.act.name

    @property
    def is_c2(self) -> bool:
        """Whether σ ∈ C²(ℝ), the hypothesis of thm-3 (False for ReLU, remark-3.1)."""
        return self.act.is_c2

    @property
    def depth(self) -> int:
        """L, the number of weight matrices."""
        return len(self.weights)

    @property
    def widths(self) -> tuple[int, ...]:
        """(n_0, n_1, …, n_L)."""
        return (self.weights[0].shape[1] - 1, *(W.shape[0] for W in self.weights))

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """Shapes of W_0, …, W_{L-1}."""
        return [(int(W.shape[0]), int(W.shape[1])) for W in self.weights]

    @property
    def num_params(self) -> int:
        """P = Σ_l n_{l+1} (n_l + 1)."""
        return int(sum(W.size for W in self.weights))

    @property
    def offsets(self) -> list[int]:
        """Start of each W_l in flat θ, and P at the end."""
        return [0, *np.cumsum([W.size for W in self.weights]).astype(int).tolist()]

    @property
    def theta(self) -> np.ndarray:
        """Flat θ (layer by layer, each W_l row-major); a copy."""
        return np.concatenate([W.ravel() for W in self.weights])

    def with_theta(self, theta: Any) -> Network:
        """The same architecture with flat parameters ``theta`` (length P)."""
        th = np.asarray(theta, dtype=np.float64)
        if th.shape != (self.num_params,):
            raise ShapeError(f"theta must have shape ({self.num_params},), got {th.shape}")
        off = self.offsets
        weights = [th[off[i] : off[i + 1]].reshape(s) for i, s in enumerate(self.shapes)]
        return Network(weights, self.act, self.family)

    def into_domain(self, x: Any, margin: float = 0.5) -> Network:
        """This network, or a copy with the last bias shifted so that ``h_L(x)`` lies in the
        family's natural-parameter domain (each output ≤ −``margin`` over the inputs ``x``),
        for families with a restricted domain such as ``h < 0`` (geometric, exponential, …)."""
        h = self.forward(x)
        try:
            self.family.check_natural(h)
            return self
        except FisherVerifyError:
            pass
        weights = [W.copy() for W in self.weights]
        weights[-1][:, -1] -= np.max(np.atleast_2d(h), axis=0) + margin
        return Network(weights, self.act, self.family)

    def require_c2(self, what: str) -> None:
        """Refuse a computation that needs σ ∈ C² (thm-3) on a ReLU network."""
        if not self.is_c2:
            from ..errors import UnsupportedError

            raise UnsupportedError(
                f"{what} needs a C^2 activation (thm-3); this network uses {self.activation}, "
                "use tanh, sigmoid, softplus, gelu or identity"
            )

    def __repr__(self) -> str:
        return (
            f"Network(widths={self.widths}, activation={self.activation!r}, "
            f"family={self.family.label})"
        )

    # --- inputs ---------------------------------------------------------------------------------

    def inputs(self, x: Any) -> tuple[np.ndarray, bool]:
        """Validate x; return it as ``(M, n_0)`` and whether it was a single input."""
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        try:
            arr = np.array(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise ShapeError(
                "input x must be a numeric array of shape (n_0,) or (M, n_0)"
            ) from None
        n0 = self.widths[0]
        if arr.ndim not in (1, 2) or arr.shape[-1] != n0 or (arr.ndim == 2 and arr.shape[0] < 1):
            raise ShapeError(
                f"input x must have shape ({n0},) or (M, {n0}) for n_0 = {n0}, got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise FisherVerifyError(
                "input x contains NaN or infinite values; inputs must be finite"
            )
        single = arr.ndim == 1
        return (arr[None, :] if single else arr), single

    # --- evaluation -----------------------------------------------------------------------------

    def forward(self, x: Any) -> np.ndarray:
        """h_L, shape ``(n_L,)`` or ``(M, n_L)`` (Eq. 3)."""
        X, single = self.inputs(x)
        out = analytic.forward(self.weights, self.act, X)
        return out[0] if single else out

    def lemma13(self, x: Any) -> analytic.Lemma13:
        """B_l, D_l, h̄_l and pre-activations of lemma-13, batched ``(M, …)`` always."""
        X, _ = self.inputs(x)
        return analytic.lemma13(self.weights, self.act, X)

    def jacobian(self, x: Any, method: Method = "analytic") -> np.ndarray:
        """J = ∂h_L/∂θ, shape ``(n_L, P)`` or ``(M, n_L, P)`` (lemma-13 or torch.func)."""
        X, single = self.inputs(x)
        if method == "analytic":
            out = analytic.jacobian(self.weights, self.act, X)
        elif method == "autodiff":
            out = autodiff.jacobian(self.theta, X, self.shapes, self.act)
        else:
            raise FisherVerifyError(f"unknown method {method!r}; use 'analytic' or 'autodiff'")
        return out[0] if single else out

    def output_hessians(self, x: Any, method: Method = "analytic") -> np.ndarray:
        """∂²h^a_L/∂θ∂θᵀ, shape ``(n_L, P, P)`` or ``(M, n_L, P, P)``.

        ``analytic``: the second-order extension of lemma-13 (see
        :mod:`fisher_verify.networks.analytic`); ``autodiff``: ``torch.func.hessian``.
        """
        X, single = self.inputs(x)
        if method == "analytic":
            out = analytic.output_hessians(self.weights, self.act, X)
        elif method == "autodiff":
            out = autodiff.output_hessians(self.theta, X, self.shapes, self.act)
        else:
            raise FisherVerifyError(f"unknown method {method!r}; use 'analytic' or 'autodiff'")
        return out[0] if single else out

    def torch_forward(self, theta: Any, x: Any) -> Any:
        """h_L as a differentiable torch function of flat θ and one input ``(n_0,)``."""
        return autodiff.forward_torch(theta, x, self.shapes, self.act)

    def torch_forward_from(self, theta: Any, h: Any, layer: int) -> Any:
        """h_L as a torch function of flat θ and h_l at ``layer`` (0 = input, L = output)."""
        return autodiff.forward_torch(theta, h, self.shapes, self.act, start=layer)


def _default_family(family: Any, weights: Sequence[Any]) -> Any:
    if family is not None:
        return family
    from ..families.registry import family as get_family

    n_L = int(np.shape(weights[-1])[0]) if len(weights) else 0
    if n_L == 1:
        return get_family("bernoulli")
    raise FisherVerifyError(
        f"family is required for n_L = {n_L} outputs, "
        f"e.g. family=fisher_verify.family('categorical', K={n_L})"
    )
