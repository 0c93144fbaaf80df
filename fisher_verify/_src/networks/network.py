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

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import FisherVerifyError, ShapeError
from ..numpy_files import exact_float64, load_numpy_file
from ..validation import as_generator, check_count, check_nonnegative
from . import analytic, autodiff
from .activations import Activation, get_activation
from .kinks import Kink, find_kinks

Method = Literal["analytic", "autodiff"]


#: Most parameters :meth:`Network.random` draws (1 GiB of float64).
MAX_RANDOM_PARAMS = 2**27


def _real_array(value: Any, what: str) -> np.ndarray:
    """A float64 copy of ``value`` when it holds real numbers; complex values (whose imaginary
    part a cast would drop silently), objects and text are refused."""
    if getattr(value, "is_meta", False):
        raise ShapeError(f"{what} is a tensor on the meta device (a shape without values); "
                         "give one with values (on cpu or cuda)")
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        raw = np.asarray(value)
        if raw.dtype.kind not in "biuf":
            raise TypeError(raw.dtype)
    except (TypeError, ValueError):
        raise ShapeError(f"{what} must be an array of real numbers") from None
    return exact_float64(raw, what)


def _as_matrix(W: Any, name: str) -> np.ndarray:
    arr = _real_array(W, f"{name} (a numeric matrix)")
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be a 2-D matrix n_(l+1) x (n_l + 1), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 2:
        raise ShapeError(
            f"{name} must have at least one row and two columns (weights + bias), "
            f"got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise FisherVerifyError(f"{name} {_first_nonfinite(arr)}; weights must be finite")
    return arr


def _first_nonfinite(arr: np.ndarray) -> str:
    """Where ``arr`` first holds a value that is not finite, e.g. ``has nan at [1, 2]``."""
    index = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
    count = int(np.sum(~np.isfinite(arr)))
    more = f" ({count} non-finite entries in all)" if count > 1 else ""
    return f"has {arr[index]} at [{', '.join(map(str, index))}]{more}"


class Network:
    """A feed-forward network of Eq. 3 with an exponential-family output (``family``).

    Build with :meth:`from_weights`, :meth:`from_npz`, :meth:`random` or :meth:`from_torch`.
    Derivatives come by two routes: ``method="analytic"`` (lemma-13 recursions and their
    second-order extension, NumPy) and ``method="autodiff"`` (torch.func, float64).
    """

    def __init__(self, weights: Sequence[Any], activation: str | Activation, family: Any) -> None:
        if isinstance(weights, str | bytes) or not isinstance(weights, Sequence | np.ndarray):
            raise ShapeError(
                f"weights must be a list [W0, W1, …] of matrices, got {type(weights).__name__}"
            )
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
        dim = getattr(_required_family(family), "dim", None)
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
        return cls(weights, activation, _required_family(family))

    @classmethod
    def from_npz(cls, path: str | Path, activation: str = "tanh", family: Any = None) -> Network:
        """Network from an ``.npz`` file holding arrays ``W0, W1, …`` in layer order.

        Raises:
            FisherVerifyError: the path is missing or a folder, the file is not an ``.npz``
                archive (an ``.npy`` array, a damaged or unrelated file) or holds pickled
                objects (never loaded: they could run code).
        """
        family = _required_family(family)
        # resolved before the file is read, so that a bad name is not blamed on the file
        act = get_activation(activation)
        data = _open_npz(path)
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
            weights = [_npz_array(data, f"W{i}", path) for i in range(count)]
        try:
            return cls(weights, act, family)
        except FisherVerifyError as exc:  # name the file: the arrays came from it
            raise type(exc)(f"weights file {str(path)!r}: {exc}") from None

    @classmethod
    def random(
        cls,
        widths: Sequence[int],
        activation: str = "tanh",
        family: Any = None,
        scale: float = 1.0,
        rng: np.random.Generator | int | None = None,
    ) -> Network:
        """Random weights for widths ``(n_0, …, n_L)``: entries N(0, scale² / (n_l + 1)).

        Raises:
            FisherVerifyError: fewer than two widths or a width that is not an integer ≥ 1,
                ``scale`` not a finite number ≥ 0, a bad ``rng`` or no ``family``.
        """
        fam = _required_family(family)
        if isinstance(widths, str | bytes) or not isinstance(widths, Sequence | np.ndarray):
            raise ShapeError(f"widths must list n_0, …, n_L (at least two), got {widths!r}")
        sizes = [check_count(w, f"width n_{i}") for i, w in enumerate(widths)]
        if len(sizes) < 2:
            raise ShapeError(f"widths must list n_0, …, n_L (at least two, all >= 1), got {sizes}")
        sd = check_nonnegative(scale, "scale")
        gen = as_generator(rng)
        P = sum((sizes[i] + 1) * sizes[i + 1] for i in range(len(sizes) - 1))
        if P > MAX_RANDOM_PARAMS:  # refused at once, not a MemoryError (or swap) while drawing
            raise ShapeError(
                f"widths {sizes} give P = {P:,} parameters, above the limit {MAX_RANDOM_PARAMS:,} "
                "(1 GiB of float64 weights); use smaller widths"
            )
        weights = [
            gen.normal(0.0, sd / np.sqrt(sizes[i] + 1), size=(sizes[i + 1], sizes[i] + 1))
            for i in range(len(sizes) - 1)
        ]
        return cls(weights, activation, fam)

    @classmethod
    def from_torch(cls, model: Any, family: Any = None) -> Network:
        """Network from an ``nn.Sequential`` of ``Linear`` layers and one kind of activation.

        Accepted activations: Tanh, Sigmoid, Softplus (beta = 1; evaluated exactly, without
        torch's linear threshold), GELU (approximate='none'), ReLU, Identity. The model must
        end with a Linear layer and alternate Linear / activation.
        """
        from .torch_import import weights_from_sequential

        fam = _required_family(family)
        weights, activation = weights_from_sequential(model)
        return cls(weights, activation, fam)

    # --- structure ------------------------------------------------------------------------------

    @property
    def activation(self) -> str:
        """Name of σ."""
        return self.act.name

    @property
    def is_c2(self) -> bool:
        """Whether σ ∈ C²(ℝ), the hypothesis of thm-3 (False for ReLU, remark-3.1; a ReLU
        network is still smooth at inputs away from its kinks, see :meth:`kinks`)."""
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
        th = _real_array(theta, "theta")
        if th.shape != (self.num_params,):
            raise ShapeError(f"theta must have shape ({self.num_params},), got {th.shape}")
        off = self.offsets
        weights = [th[off[i] : off[i + 1]].reshape(s) for i, s in enumerate(self.shapes)]
        return Network(weights, self.act, self.family)

    def into_domain(self, x: Any, margin: float = 0.5) -> Network:
        """This network, or a copy with the last bias shifted so that ``h_L(x)`` lies in the
        family's natural-parameter domain (each output ≤ −``margin`` over the inputs ``x``),
        for families with a restricted domain such as ``h < 0`` (geometric, exponential, …)."""
        margin = check_nonnegative(margin, "margin", strict=True)
        h = self.forward(x)
        try:
            self.family.check_natural(h)
            return self
        except FisherVerifyError:
            pass
        weights = [W.copy() for W in self.weights]
        weights[-1][:, -1] -= self.family.domain_shift(h, margin)
        return Network(weights, self.act, self.family)

    def kinks(self, x: Any) -> list[Kink]:
        """Hidden pre-activations within rounding of a kink of σ at the inputs ``x`` (thm-3-ae).

        Empty for a C² activation, and for a piecewise-linear one (ReLU) at inputs away from
        its kinks, where the network is smooth in θ and every Î₂ quantity is defined.
        """
        X, _ = self.inputs(x)
        return find_kinks(self.weights, self.act, X)

    def c2_refusal(self, what: str, x: Any = None) -> str | None:
        """Why ``what`` (a quantity that needs ∂²h_L/∂θ∂θᵀ, thm-3) is refused, or ``None``.

        A C² activation: never refused. ReLU (remark-3.1): refused only where it is not
        defined, at an input whose pre-activation lies within rounding of a kink, naming the
        input, the layer and the unit (thm-3-ae); without ``x`` there is nothing to decide on,
        so it is refused with that reason.
        """
        if self.is_c2:
            return None
        if x is None:
            return (
                f"{what} needs ∂²h_L/∂θ∂θᵀ, which exists for a {self.activation} network only at "
                "inputs away from its kinks (thm-3-ae); pass the inputs so they can be checked"
            )
        found = self.kinks(x)
        if not found:
            return None
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return (
            f"{what} is not defined at a kink of {self.activation} (remark-3.1, thm-3-ae): "
            f"{found[0].describe()}{more}; h_L is not twice differentiable in θ there. Move the "
            "input off the kink or use a C^2 activation (tanh, sigmoid, softplus, gelu, identity)"
        )

    def require_c2(self, what: str, x: Any = None) -> None:
        """Refuse ``what`` where ∂²h_L/∂θ∂θᵀ does not exist: a kink of σ at an input of ``x``
        (thm-3-ae; see :meth:`c2_refusal`)."""
        refusal = self.c2_refusal(what, x)
        if refusal is not None:
            from ..errors import UnsupportedError

            raise UnsupportedError(refusal)

    def __repr__(self) -> str:
        return (
            f"Network(widths={self.widths}, activation={self.activation!r}, "
            f"family={self.family.label})"
        )

    # --- inputs ---------------------------------------------------------------------------------

    def inputs(self, x: Any) -> tuple[np.ndarray, bool]:
        """Validate x; return it as ``(M, n_0)`` and whether it was a single input."""
        arr = _real_array(x, "input x (shape (n_0,) or (M, n_0))")
        n0 = self.widths[0]
        if arr.ndim not in (1, 2) or arr.shape[-1] != n0 or (arr.ndim == 2 and arr.shape[0] < 1):
            raise ShapeError(
                f"input x must have shape ({n0},) or (M, {n0}) with M >= 1 inputs for "
                f"n_0 = {n0}, got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            where = _first_nonfinite(arr)
            if arr.ndim == 2:  # name the row: [row, column]
                row = int(np.argwhere(~np.all(np.isfinite(arr), axis=1))[0][0])
                where += f" (row {row} of {arr.shape[0]} inputs)"
            raise FisherVerifyError(f"input x {where}; inputs must be finite")
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
        :mod:`fisher_verify._src.networks.analytic`); ``autodiff``: ``torch.func.hessian``.
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


def _required_family(family: Any) -> Any:
    """``family`` itself; a missing one is refused rather than guessed (no default: a
    Bernoulli guess would silently change every number for a network with other outputs)."""
    if family is None:
        from ..families.registry import family_names

        raise FisherVerifyError(
            "family is required, e.g. family=fisher_verify.family('bernoulli'); the catalog: "
            f"{', '.join(family_names())} (and fisher_verify.product(...) of them)"
        )
    return family


def _open_npz(path: str | Path) -> Any:
    """The open weights archive, or a refusal that says what the file is instead."""
    shown = f"weights file {str(path)!r}"
    data = load_numpy_file(path, shown)
    if isinstance(data, np.lib.npyio.NpzFile):
        return data
    if isinstance(data, np.ndarray):
        raise FisherVerifyError(
            f"{shown} holds one .npy array; weights need an .npz archive of "
            "arrays W0, W1, … (write it with numpy.savez(path, W0=..., W1=...))"
        )
    raise FisherVerifyError(
        f"{shown} is not a readable .npz archive (damaged, or another kind of "
        "file); write it with numpy.savez(path, W0=..., W1=...)"
    )


def _npz_array(data: Any, key: str, path: str | Path) -> np.ndarray:
    """One member of the archive; a damaged member or a pickled object array is refused."""
    try:
        return np.asarray(data[key])
    except ValueError as exc:
        if "pickle" in str(exc):
            raise FisherVerifyError(
                f"{str(path)!r}: array {key} holds Python objects (pickled), which are never "
                "loaded since they could run code; save numeric arrays"
            ) from None
        raise FisherVerifyError(f"{str(path)!r}: array {key} cannot be read: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise FisherVerifyError(f"{str(path)!r}: array {key} cannot be read ({exc})") from None


def require_network(net: Any, name: str = "net") -> Network:
    """``net`` when it is a :class:`Network` (Eq. 3); anything else is refused naming ``name``
    and the way in, before an attribute error deep inside a computation.

    A torch module is refused rather than converted: the family of the output (which fixes
    I(h), K, κ₄) is not part of an ``nn.Module``, and guessing it would silently change what
    the user asked about. A network of the same interface over any module
    (:class:`~fisher_verify._src.models.as_network.ModuleNetwork`, which says so with
    ``gate_interface = True``: family, inputs, forward, jacobian, output Hessians) passes too.
    """
    eq3_or_module = hasattr(net, "weights") or getattr(net, "gate_interface", False) is True
    if eq3_or_module and hasattr(net, "inputs") and hasattr(net, "require_c2"):
        return net
    hint = ("; build one with Network.from_weights, Network.from_torch or Network.random")
    if type(net).__module__.startswith("torch"):
        hint = ("; convert a torch MLP with fisher_verify.Network.from_torch(model, "
                "family=fisher_verify.family(...)), naming the output family; the public "
                "functions (fisher_verify.analyze, exact_fisher, variance, check_estimator) take "
                "any module with family=...")
    raise ShapeError(f"{name} must be a fisher_verify.Network, got {type(net).__name__}{hint}")
