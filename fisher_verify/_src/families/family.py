"""A family ready to compute: the symbolic derivation and the kernels generated from it.

Derivation and code generation happen on first use of a family and are cached in memory
(and on disk, see :mod:`fisher_verify._src.symbolic.cache`), never at import.
"""

from __future__ import annotations

import math
import os
from functools import cached_property
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ..errors import DomainError, FisherVerifyError, ShapeError, UnsupportedError
from ..symbolic.cache import disk_cached
from ..symbolic.codegen import BACKENDS, Backend, TensorKernel
from ..symbolic.derive import Derivation, SymmetricTensor, derive
from ..symbolic.gaussian import gaussian_integral
from ..validation import (
    as_generator,
    as_real_array,
    check_callable,
    check_count,
    check_nonnegative,
)
from .contractions import DenseContractions, OneHotContractions
from .definition import LGAMMA, FamilyDefinition

Array = Any  # numpy.ndarray, torch.Tensor, or a sequence of mpmath numbers
QUANTITIES = ("log_partition", "eta", "fisher", "kappa3", "kappa4", "central_moment4")


def _backend_of(h: Any) -> Backend:
    if isinstance(h, np.ndarray):
        return "numpy"
    mod = type(h).__module__
    if mod.startswith("torch"):
        return "torch"
    if isinstance(h, (list, tuple)) and h and any(isinstance(v, mpmath.mpf) for v in h):
        return "mpmath"
    return "numpy"


def _check_quantity(quantity: str) -> None:
    if quantity not in QUANTITIES:
        raise FisherVerifyError(f"unknown quantity {quantity!r}; valid: {', '.join(QUANTITIES)}")


#: how far ‖y‖² of a label on the unit sphere may be from 1 (float64 normalisation leaves
#: ~1e-16; a vector off the sphere by more is not a value of the family)
SPHERE_TOLERANCE = 1e-12

# Beyond this many support points the exact-expectation route (a sum over every y) is refused.
MAX_SUPPORT_POINTS = 10**6


def _lgamma(x: float) -> float:
    try:
        return math.lgamma(x)
    except OverflowError:  # log Γ(x) of x ≳ 2.6e305 exceeds float64
        return math.inf


def _numeric_y_functions() -> dict[str, Any]:
    lgamma = np.vectorize(_lgamma, otypes=[float])
    # exact parameters print as Python integers beyond int64 (log(p) with p ~ 10²⁵), which
    # NumPy's log refuses as objects: read them as floats first
    return {"lgamma": lambda x: lgamma(np.asarray(x, dtype=float)),
            "log": lambda x: np.log(np.asarray(x, dtype=float))}


_MEMO: dict[tuple[object, ...], Derivation] = {}


def cached_derivation(definition: FamilyDefinition) -> Derivation:
    """The derivation of ``definition`` (``lemma-2``, ``lemma-5``), computed at most once per
    process and per disk cache."""
    key = definition.key
    if key not in _MEMO:
        _MEMO[key] = disk_cached(
            key, lambda: derive(definition.log_partition, definition.h), Derivation
        )
    return _MEMO[key]


def _vectorizable(expr: sp.Expr) -> sp.Expr:
    """Rewrite y-expressions so the NumPy printer vectorizes them."""
    expr = expr.replace(sp.KroneckerDelta, lambda a, b: sp.Piecewise((1, sp.Eq(a, b)), (0, True)))
    expr = sp.expand_log(expr.rewrite(sp.gamma), force=True)
    return expr.replace(
        lambda e: isinstance(e, sp.log) and isinstance(e.args[0], sp.gamma),
        lambda e: LGAMMA(e.args[0].args[0]),
    )


class Family:
    """An exponential family: symbolic definition, derivation, kernels, sampler, expectations.

    Numeric methods take ``h`` of shape ``(..., d)`` (NumPy float64 or torch tensor) or a
    sequence of ``d`` mpmath numbers (one point, high precision), and dispatch on its type.
    """

    #: how far inside its natural domain (each component of h at most −margin on a sign box) the
    #: Hypothesis strategies keep a random network's output: 0 for a family whose
    #: exact-expectation route answers up to the boundary, more for one whose route refuses
    #: there by name (the Dirichlet's sticks below a concentration of about 0.1)
    strategy_margin: float = 0.0

    def __init__(self, definition: FamilyDefinition) -> None:
        self.definition = definition
        self._kernels: dict[tuple[str, Backend], TensorKernel] = {}

    # --- identity ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Catalog name."""
        return self.definition.name

    @property
    def params(self) -> dict[str, Any]:
        """Fixed parameters."""
        return dict(self.definition.params)

    @property
    def dim(self) -> int:
        """Dimension d of h and t(y) (the network's output width n_L)."""
        return self.definition.dim

    @property
    def label(self) -> str:
        """Name with parameters, e.g. ``binomial(n=5)``."""
        args = ", ".join(f"{k}={v}" for k, v in self.definition.params.items())
        return f"{self.name}({args})" if args else self.name

    def __repr__(self) -> str:
        return f"Family({self.label})"

    # --- symbolic ---------------------------------------------------------------------------

    @cached_property
    def derivation(self) -> Derivation:
        """η, I, κ₃, κ₄, K as symbolic tensors (``lemma-2``, ``lemma-5``), derived once."""
        return cached_derivation(self.definition)

    def symbolic(self, quantity: str) -> sp.Expr | sp.Array:
        """One derived quantity as a SymPy object: log_partition, eta, fisher, kappa3, kappa4,
        central_moment4."""
        _check_quantity(quantity)
        if quantity == "log_partition":
            return self.definition.log_partition
        tensor: SymmetricTensor = getattr(self.derivation, quantity)
        return tensor.to_array()

    # --- validation ---------------------------------------------------------------------------

    def check_labels(self, y: Any, name: str = "labels") -> np.ndarray:
        """``y`` as float64 when every entry lies in the family's support (``eq-7`` with observed
        labels: t(y) of a value outside the support is not a statistic of this family, e.g. the
        one-hot of class 5 for K = 2 is the zero vector, and a fractional count or class has no
        probability). Whole numbers of a float dtype are the indices they equal (the samplers
        return float64), as in :func:`~fisher_verify._src.validation.check_count`.

        Raises:
            DomainError: a value outside the support (a class index outside 0..K-1, a negative
                or fractional count, a negative duration, NaN/inf), naming ``name``, the value
                and the support.
        """
        arr = as_real_array(y, name)
        support = self.definition.support
        if self.definition.event:
            return self._check_vector_labels(arr, name)
        finite = np.isfinite(arr)
        ok = finite.copy()
        if support.kind in ("finite", "countable"):
            safe = np.where(finite, arr, 0.0)
            ok &= np.floor(safe) == safe
            if support.kind == "countable":
                ok &= safe >= support.start
            else:
                values = support.values
                if isinstance(values, range) and values.step == 1:
                    ok &= (arr >= values.start) & (arr < values.stop)
                elif len(values):
                    ok &= np.isin(arr, np.asarray(list(values), dtype=np.float64))
                else:  # a symbolic last value: an integer >= start
                    ok &= arr >= support.start
        else:
            lower = float(support.lower) if support.lower.is_finite else -math.inf
            upper = float(support.upper) if support.upper.is_finite else math.inf
            ok &= (arr >= lower) & (arr <= upper)
        if not np.all(ok):
            bad = arr[~ok].reshape(-1)[0]
            raise DomainError(
                f"{name}: {float(bad):g} is not a value of {self.label}, whose labels lie in "
                f"{support.describe()}" + (" (integers)" if support.kind != "continuous" else "")
            )
        return arr

    def _y_columns(self, y: Any, name: str = "y") -> tuple[list[np.ndarray], tuple[int, ...]]:
        """The components of y as separate arrays and the shape of the draws: a vector y
        (``definition.event``) carries its components on its last axis."""
        arr = as_real_array(y, name)
        k = len(self.definition.event)
        if not k:
            return [arr], arr.shape
        if arr.ndim == 0 or arr.shape[-1] != k:
            raise ShapeError(
                f"{self.label}: {name} must have a last axis of size {k} (one vector y of "
                f"{k} components per draw), got shape {arr.shape}"
            )
        return list(np.moveaxis(arr, -1, 0)), arr.shape[:-1]

    def _check_vector_labels(self, arr: np.ndarray, name: str) -> np.ndarray:
        """A vector y: the last axis holds its components, each in the support, and their sum
        is the support's total where it has one (multinomial: n)."""
        support = self.definition.support
        cols, _ = self._y_columns(arr, name)
        vec = np.stack(cols, -1) if cols else arr
        finite = np.isfinite(vec)
        safe = np.where(finite, vec, 0.0)
        ok = finite.copy()
        lower = float(support.lower) if support.lower != -sp.oo else -math.inf
        upper = float(support.upper) if support.upper != sp.oo else math.inf
        if support.kind != "continuous":
            ok &= (np.floor(safe) == safe) & (safe >= support.start)
        else:
            ok &= (safe >= lower) & (safe <= upper)
        ok = np.all(ok, axis=-1)
        if support.total is not None:
            ok &= np.sum(safe, axis=-1) == float(support.total)
        if support.sphere:  # a unit vector as float64 normalises it: ‖y‖² within 1e-12 of 1
            ok &= np.abs(np.sum(safe * safe, axis=-1) - 1.0) <= SPHERE_TOLERANCE
        if not np.all(ok):
            bad = vec[~ok][0]
            raise DomainError(
                f"{name}: {[float(v) for v in bad]} is not a value of {self.label}, whose labels "
                f"are vectors in {support.describe()}"
                + (" (integers)" if support.kind != "continuous" else "")
            )
        return arr

    def check_natural(self, h: Array) -> None:
        """Refuse h of the wrong width, with NaN/inf, or outside the natural domain."""
        backend = _backend_of(h)
        if backend == "mpmath":
            values = np.array([float(v) for v in h], dtype=float)[None, :]
            width = len(h)
        elif backend == "torch":
            try:
                values = h.detach().cpu().numpy().astype(float)
            except RuntimeError:
                # inside torch.func transforms values are not readable: check the shape only
                if h.ndim == 0 or h.shape[-1] != self.dim:
                    raise ShapeError(
                        f"{self.label}: natural parameter h must have last axis of size "
                        f"{self.dim}, got shape {tuple(h.shape)}"
                    ) from None
                return
            width = values.shape[-1] if values.ndim else 0
        else:
            values = as_real_array(h, "natural parameter h")
            width = values.shape[-1] if values.ndim else 0
        if values.ndim == 0 or width != self.dim:
            raise ShapeError(
                f"{self.label}: natural parameter h must have last axis of size {self.dim}, "
                f"got shape {tuple(np.shape(values))}"
            )
        if not np.all(np.isfinite(values)):
            raise DomainError(f"{self.label}: h contains NaN or infinite values")
        for j in self.definition.negative:
            if not np.all(values[..., j] < 0):
                raise DomainError(
                    f"{self.label}: h is outside the natural-parameter domain "
                    f"({self.definition.domain_text}); component {j} "
                    f"({self.definition.h[j]}) must be < 0"
                )
        check = self.definition.domain_check
        reason = check(values) if check is not None else None
        if reason is not None:
            raise DomainError(
                f"{self.label}: h is outside the natural-parameter domain "
                f"({self.definition.domain_text}); {reason}"
            )

    def domain_shift(self, h: np.ndarray, margin: float) -> np.ndarray:
        """A shift c (d,) such that every row of ``h − c`` (..., d) lies in the natural domain,
        each component ≤ −``margin`` (a network's last bias moved into the domain,
        ``Network.into_domain``); a domain that is not a box of signs overrides it."""
        return np.max(np.atleast_2d(np.asarray(h, dtype=float)), axis=0) + margin

    # --- kernels ----------------------------------------------------------------------------------

    def kernel(self, quantity: str, backend: Backend) -> TensorKernel:
        """The generated kernel of one quantity for one backend (built once, then cached)."""
        _check_quantity(quantity)
        if backend not in BACKENDS:
            raise FisherVerifyError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
        key = (quantity, backend)
        if key not in self._kernels:
            # F itself needs no derivation (which is costly for large categorical K)
            target: Any = (
                self.definition.log_partition
                if quantity == "log_partition"
                else getattr(self.derivation, quantity)
            )
            self._kernels[key] = TensorKernel(self.definition.h, target, backend)
        return self._kernels[key]

    def _eval(self, quantity: str, h: Array, backend: Backend | None) -> Array:
        backend = backend or _backend_of(h)
        if backend == "numpy":
            h = as_real_array(h, "natural parameter h")
        self.check_natural(h)
        return self.kernel(quantity, backend)(h)

    def log_partition(self, h: Array, backend: Backend | None = None) -> Array:
        """F(h), shape ``(...)``."""
        return self._eval("log_partition", h, backend)

    def mean(self, h: Array, backend: Backend | None = None) -> Array:
        """η(h) = ∂F/∂h = E[t(y)], shape ``(..., d)`` (``lemma-2``)."""
        return self._eval("eta", h, backend)

    def fisher(self, h: Array, backend: Backend | None = None) -> Array:
        """I(h) = ∂²F/∂h∂hᵀ = Cov(t(y)), shape ``(..., d, d)`` (``lemma-2``)."""
        return self._eval("fisher", h, backend)

    def kappa3(self, h: Array, backend: Backend | None = None) -> Array:
        """Third cumulant ∂³F, shape ``(..., d, d, d)``."""
        return self._eval("kappa3", h, backend)

    def kappa4(self, h: Array, backend: Backend | None = None) -> Array:
        """Fourth cumulant κ_abcd = ∂⁴F, shape ``(..., d, d, d, d)``."""
        return self._eval("kappa4", h, backend)

    def central_moment4(self, h: Array, backend: Backend | None = None) -> Array:
        """K_abcd = E[(t-η)_a (t-η)_b (t-η)_c (t-η)_d], shape ``(..., d, d, d, d)`` (``lemma-5``)."""
        return self._eval("central_moment4", h, backend)

    def kappa4_contract(self, h: np.ndarray, u: Any, v: Any, w: Any, z: Any) -> np.ndarray:
        """κ₄[u, v, w, z] = Σ κ_abcd u_a v_b w_c z_d, batched over the leading axes of h."""
        k4 = self.kappa4(as_real_array(h, "natural parameter h"))
        return np.einsum("...abcd,...a,...b,...c,...d->...", k4, u, v, w, z)

    # --- contractions for the engines (eq-6, thm-4, thm-7, thm-8) --------------------------------

    def contractions(self, h: Any) -> DenseContractions:
        """This family's moments at torch ``h`` (m, d), contracted with the engines' vectors
        (eq-6, thm-4, lemma-5, thm-7, thm-8). Generic: from the dense ``I``, ``κ₄`` and ``K``
        (:class:`~fisher_verify._src.families.contractions.DenseContractions`); a family with direct
        forms (the categorical's O(K) one-hot route) overrides this."""
        return DenseContractions(self, h)

    def contraction_entries(self) -> int:
        """Numbers per input a fourth-order contraction holds besides its vectors: ``d⁴`` for a
        dense κ₄ or ``C = K − I⊗I`` (thm-4); 0 for direct forms. For the engines' memory plans."""
        return self.dim ** 4

    def thm7_pair_cost(self, n: int, layers: int, gram: float) -> tuple[float, float, float, float]:
        """Per pair of inputs of thm-7's streamed lhs: (multiply-adds, elementwise ops, block
        elements per pair, per input) for output width ``n`` and ``layers`` layers, given the
        Gram products' multiply-adds ``gram``: dense ``C`` contracted with ``G`` four times."""
        return gram + 4 * n**6, n**5 + 4 * layers * n * n, 2 * n**4 + 3 * n * n, n**4

    def kappa4_diagonal(self, h: Any, u: Any) -> Any:
        """``κ₄[u, u, u, u]`` (``lemma-5``) for torch h (m, d) and u (m, r, d), in direct form:
        a one-dimensional family as ``κ₄(h) u⁴``, otherwise the dense ``d⁴`` kernel contracted."""
        import torch

        k4 = torch.as_tensor(self.kappa4(h), dtype=u.dtype, device=u.device)
        if self.dim == 1:
            return k4[:, None, 0, 0, 0, 0] * u[..., 0] ** 4
        t = torch.einsum("mabcd,mrd->mrabc", k4, u)
        t = (t * u[..., None, None, :]).sum(-1)
        t = (t * u[..., None, :]).sum(-1)
        return (t * u).sum(-1)

    def projected_central_moments(self, h: np.ndarray, U: np.ndarray, order: int) -> np.ndarray:
        """``E[(uᵀ(t(y) − η))^k]``, ``k = 0..order``, for h (M, d) and U (M, K, d) float64
        (lemma-2; the fourth moments of the gate's spread test, thm-4 / thm-6). Generic: the
        family's exact-expectation nodes; use
        :func:`~fisher_verify._src.families.higher_moments.projected_central_moments`, which checks
        the arguments."""
        from .higher_moments import node_moments

        return node_moments(self, h, U, order)

    @property
    def factors(self) -> tuple[Family, ...]:
        """The independent families this one is the product of (itself, for a single family)."""
        return (self,)

    @property
    def factor_blocks(self) -> tuple[slice, ...]:
        """The components of h (and t) each of :attr:`factors` owns, in order."""
        return (slice(0, self.dim),)

    @property
    def softmax_core(self) -> bool:
        """Whether ``I(h) = diag(p) − ppᵀ`` with ``p = mean(h)`` (the categorical core whose
        spectrum ``sun26-spectrum`` bounds); False for a generic family."""
        return False

    # --- data -------------------------------------------------------------------------------------

    @cached_property
    def _statistic_fn(self) -> Any:
        exprs = [_vectorizable(t) for t in self.definition.statistic]
        return sp.lambdify(list(self.definition.y_symbols), exprs, modules=["numpy"])

    @cached_property
    def _log_base_fn(self) -> Any:
        expr = _vectorizable(self.definition.log_base)
        return sp.lambdify(
            list(self.definition.y_symbols), expr, modules=[_numeric_y_functions(), "numpy"]
        )

    def statistic(self, y: Any) -> np.ndarray:
        """t(y), shape ``(*y.shape, d)`` (a vector y: ``(*y.shape[:-1], d)``)."""
        cols, shape = self._y_columns(y)
        values = self._statistic_fn(*cols)
        return np.stack([np.broadcast_to(np.asarray(c, dtype=float), shape) for c in values], -1)

    def log_base(self, y: Any) -> np.ndarray:
        """log b(y), the base measure's log-density."""
        cols, shape = self._y_columns(y)
        return np.broadcast_to(np.asarray(self._log_base_fn(*cols), dtype=float), shape)

    def log_density(self, y: Any, h: np.ndarray) -> np.ndarray:
        """log p(y | h) = t(y)ᵀh - F(h) + log b(y); y broadcasts against h's batch axes."""
        h = as_real_array(h, "natural parameter h")
        t = self.statistic(y)
        return np.sum(t * h, axis=-1) - self.log_partition(h) + self.log_base(y)

    def sample(self, h: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """n i.i.d. draws y ~ p(y|h), shape ``(n, *h.shape[:-1])`` (a vector y: with its
        components on a last axis)."""
        h = as_real_array(h, "natural parameter h")
        self.check_natural(h)
        count = check_count(n, f"{self.label}: number of samples n")
        return self.definition.sampler(h, count, as_generator(rng))

    def sample_statistic(self, h: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """t(y) of n draws, shape ``(n, *h.shape[:-1], d)``."""
        return self.statistic(self.sample(h, n, rng))

    # --- the exact-expectation route ----------------------------------------------------------

    def expectation_nodes(
        self, h: np.ndarray, degree: int = 4, tol: float = 1e-15
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Nodes t (..., S, d) and weights (..., S) with E[g(t)] = Σ w g(t) for polynomial g.

        Finite support: every point, exact for any g. Continuous: Gauss quadrature exact for
        polynomials in t of degree <= ``degree``. Countable: the series truncated where the
        proven tail bound on E[|y|^degree; y > Y] falls below ``tol`` times E-scale; that bound
        is returned (0 for the exact cases).
        """
        h = as_real_array(h, "natural parameter h")
        degree = check_count(degree, "degree", minimum=0)
        tol = check_nonnegative(tol, "tol", strict=True)
        self.check_natural(h)
        d = self.definition
        if d.support.kind == "finite":
            self._check_support_size()
            ys = np.array(list(d.support.values), dtype=float)
            ys_b = np.broadcast_to(ys, h.shape[:-1] + ys.shape)
            logw = self.log_density(ys_b, h[..., None, :])
            return self.statistic(ys_b), np.exp(logw), 0.0
        if d.support.kind == "continuous":
            assert d.quadrature is not None
            ys, w = d.quadrature(h, degree)
            return self.statistic(ys), np.asarray(w, dtype=float), 0.0
        return self._series_nodes(h, degree, tol)

    def _check_support_size(self) -> None:
        size = len(self.definition.support.values)
        if size > MAX_SUPPORT_POINTS:
            raise UnsupportedError(
                f"{self.label}: the exact expectation sums over all {size} values of y; "
                f"the limit is {MAX_SUPPORT_POINTS} (use the closed forms or sampling instead)"
            )

    def _series_nodes(
        self, h: np.ndarray, degree: int, tol: float
    ) -> tuple[np.ndarray, np.ndarray, float]:
        d = self.definition
        assert d.ratio_bound is not None
        eta = np.atleast_1d(self.mean(h)[..., 0])
        var = np.atleast_1d(self.fisher(h)[..., 0, 0])
        y_max = int(np.ceil(np.max(eta + 12.0 * np.sqrt(var)))) + 20
        scale = max(1.0, float(np.max(eta + np.sqrt(var))) ** degree)
        while True:
            ys = np.arange(d.support.start, y_max + 1, dtype=float)
            y_next = float(y_max + 1)
            # every later term of y^D p(y) shrinks by at most rho, so the tail is geometric
            growth = ((y_next + 1.0) / y_next) ** degree if y_next > 0 else 2.0**degree
            rho = growth * d.ratio_bound(h, np.asarray(y_next))
            first = np.exp(self.log_density(np.asarray(y_next), h)) * y_next**degree
            if np.all(rho < 1.0):
                tail = float(np.max(first / (1.0 - rho)))
                if tail <= tol * scale:
                    break
            y_max = int(y_max * 1.5) + 10
            if y_max > 10_000_000:
                raise DomainError(
                    f"{self.label}: distribution too spread out to sum exactly at this h"
                )
        ys_b = np.broadcast_to(ys, h.shape[:-1] + ys.shape)
        w = np.exp(self.log_density(ys_b, h[..., None, :]))
        return self.statistic(ys_b), w, tail

    def expect(self, g: Any, h: np.ndarray, degree: int = 4) -> np.ndarray:
        """E[g(t(y))] by the exact-expectation route; g maps t (..., S, d) to (..., S, ...)."""
        check_callable(g, "g", "g(t) of the statistics t of shape (..., S, d)")
        t, w, _ = self.expectation_nodes(h, degree)
        values = np.asarray(g(t), dtype=float)
        extra = values.ndim - w.ndim
        return np.sum(values * w.reshape(w.shape + (1,) * extra), axis=w.ndim - 1)

    # --- high-precision moments from the density ---------------------------------------------------

    def integral_mp(self, h: Any, g: Any = None) -> Any:
        """∫ g(t(y)) e^{t(y)ᵀh} b(y) dμ(y) in mpmath, unnormalized (g = 1 gives Z(h) = e^{F(h)}).

        Sums over the support (finite, or ``mpmath.nsum`` for countable support) or integrates
        (``mpmath.quad``), from t(y) and b(y) alone: F is never used. ``g`` maps the list of
        t-values to a number.
        """
        d = self.definition
        hs = [mpmath.mpf(v) for v in h]
        if d.integral_mp is not None:
            return d.integral_mp(hs, g)
        modules = [{"lgamma": mpmath.loggamma}, "mpmath"]
        ys = list(d.y_symbols)
        ts = [sp.lambdify(ys, t, modules=modules) for t in d.statistic]
        log_b = sp.lambdify(ys, d.log_base, modules=modules)

        def integrand(*yv: Any) -> Any:
            tv = [ts[a](*yv) for a in range(self.dim)]
            weight = mpmath.exp(mpmath.fsum(tv[a] * hs[a] for a in range(self.dim)) + log_b(*yv))
            return weight if g is None else g(tv) * weight

        if d.support.kind == "finite":
            self._check_support_size()
            return mpmath.fsum(
                integrand(*[mpmath.mpf(c) for c in (v if isinstance(v, tuple) else (v,))])
                for v in d.support.values
            )
        if d.support.kind == "countable":
            return mpmath.nsum(integrand, [d.support.start, mpmath.inf])
        lo = -mpmath.inf if d.support.lower == -sp.oo else mpmath.mpf(d.support.lower)
        hi = mpmath.inf if d.support.upper == sp.oo else mpmath.mpf(d.support.upper)
        if d.event and g is None:
            try:  # a Gaussian density: Z in closed form, axis by axis (tanh-sinh in 2+ axes
                # at 40 digits takes minutes)
                return self._gaussian_normalizer_mp(h)
            except ValueError:
                pass
        if d.event:  # a vector y: one tanh-sinh rule per axis (mpmath integrates up to 3)
            return mpmath.quad(integrand, *[[lo, hi]] * len(d.event))
        if mpmath.isfinite(lo) and mpmath.isfinite(hi):
            return _bounded_integral(integrand, lo, hi)
        breaks = [lo, hi]
        if d.quadrature is not None:
            # a peaked density (Weibull of shape 40: width ~1/40 around y = 1) is missed by one
            # tanh-sinh rule over (0, ∞); the family's Gauss nodes only place the breakpoints
            # where its mass lies, the integral itself is still of t(y) and b(y) alone
            nodes, _ = d.quadrature(np.array([[float(v) for v in h]]), 8)
            inner = sorted({float(x) for x in np.ravel(nodes)
                            if np.isfinite(x) and float(lo) < x < float(hi)})
            breaks = [lo, *[mpmath.mpf(x) for x in inner], hi]
        return mpmath.quad(integrand, breaks)

    def _gaussian_normalizer_mp(self, h: Any) -> Any:
        """Z(h) = ∫ e^{t(y)ᵀh} b(y) dy of a density on ℝᵏ that is a Gaussian, in closed form
        (:func:`~fisher_verify._src.symbolic.gaussian.gaussian_integral`) at h read as the
        rationals of its decimals, evaluated at the working precision; from t and b only.

        Raises:
            ValueError: the density is not a Gaussian in y.
        """
        d = self.definition
        hq = {s: sp.Rational(str(mpmath.mpf(v))) for s, v in zip(d.h, h)}
        exponent = (sum(t * s for t, s in zip(d.statistic, d.h)) + d.log_base).xreplace(hq)
        z = gaussian_integral(sp.Integer(1), exponent, d.event)
        return mpmath.mpf(sp.N(z, mpmath.mp.dps + 10))

    def _gaussian_moment_mp(self, powers: tuple[int, ...], h: Any, center: bool) -> Any:
        """:meth:`moment_mp` of a vector y on ℝᵏ whose density is a polynomial times a
        Gaussian (the multivariate normal): each integral in closed form, axis by axis
        (:func:`~fisher_verify._src.symbolic.gaussian.gaussian_integral`), at h read as the
        rationals of its decimals at the working precision, then evaluated at that precision.

        Raises:
            ValueError: the density is not a polynomial times a Gaussian.
        """
        d = self.definition
        hq = {s: sp.Rational(str(mpmath.mpf(v))) for s, v in zip(d.h, h)}
        exponent = (sum(t * s for t, s in zip(d.statistic, d.h)) + d.log_base).xreplace(hq)
        stats = [t.xreplace(hq) for t in d.statistic]
        # Z and the means are exact at this h: the moments of every entry of a tensor share them
        memo = self.__dict__.setdefault("_gaussian_memo", {})
        key = tuple(hq.values())
        if key not in memo:
            if len(memo) > 64:
                memo.clear()
            z = gaussian_integral(sp.Integer(1), exponent, d.event)
            memo[key] = (z, [gaussian_integral(t, exponent, d.event) / z for t in stats])
        z, exact_means = memo[key]
        means = exact_means if center else [sp.Integer(0)] * self.dim
        g = sp.Mul(*[(t - m) ** k for t, m, k in zip(stats, means, powers)])
        value = gaussian_integral(g, exponent, d.event) / z
        return mpmath.mpf(sp.N(value, mpmath.mp.dps + 10))

    def moment_mp(self, powers: tuple[int, ...], h: Any, center: bool = True) -> Any:
        """E[Π_a (t_a - η_a)^{k_a}] from the density, in mpmath (the independent reference).

        Built on :meth:`integral_mp`, normalized by its own Z(h): never uses F.
        """
        if self.definition.event and self.definition.support.kind == "continuous":
            try:
                return self._gaussian_moment_mp(powers, h, center)
            except ValueError:  # not a Gaussian density: the tanh-sinh route below
                pass
        z = self.integral_mp(h)
        if center:
            means = [self.integral_mp(h, lambda tv, a=a: tv[a]) / z for a in range(self.dim)]
        else:
            means = [mpmath.mpf(0)] * self.dim

        def centred_power(tv: list[Any]) -> Any:
            prod = mpmath.mpf(1)
            for a, k in enumerate(powers):
                if k:
                    prod *= (tv[a] - means[a]) ** k
            return prod

        return self.integral_mp(h, centred_power) / z


def _bounded_integral(integrand: Any, lo: Any, hi: Any) -> Any:
    """∫_lo^hi of a density with integrable endpoint singularities (the beta's y^{α−1} near 0):
    each half after y = lo + (mid − lo) e^{−s} (resp. hi − (hi − mid) e^{−s}), s in (0, ∞), so
    the singularity becomes an exponential decay that tanh-sinh resolves to the working
    precision (on (0, 1) directly it stops at (10^{−dps})^{α}: 23 digits at α = 0.57). Near hi,
    where hi − y is held only to the working precision, at twice the digits."""
    mid = (lo + hi) / 2

    def left(s: Any) -> Any:
        step = (mid - lo) * mpmath.exp(-s)
        return integrand(lo + step) * step

    def right(s: Any) -> Any:
        step = (hi - mid) * mpmath.exp(-s)
        y = hi - step
        return integrand(y) * step if y < hi else mpmath.mpf(0)

    lower = mpmath.quad(left, [0, mpmath.inf])
    with mpmath.workdps(2 * mpmath.mp.dps):
        upper = mpmath.quad(right, [0, mpmath.inf])
    return lower + upper


def _physical_memory() -> int | None:
    """Bytes of physical memory, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


#: Bytes a dense categorical moment array (with its temporaries) may take at once: a
#: categorical K = 160 central 4th moment is 5.2 GB per input (refused at once above this).
DENSE_MEMORY_LIMIT = 1 << 30


class CategoricalFamily(Family):
    """Categorical family: symbolic kernels for small K, the one-hot moment route for large K.

    Differentiating logsumexp symbolically yields C(K+3, 4) distinct κ₄ entries, affordable
    for K <= ``SYMBOLIC_LIMIT``; above it every kernel comes from
    :mod:`fisher_verify._src.families.onehot`, and ``kappa4_contract`` is O(K) at every K.
    """

    SYMBOLIC_LIMIT = 8

    @property
    def uses_symbolic_kernels(self) -> bool:
        """Whether numeric kernels are printed from the symbolic derivation."""
        return self.dim <= self.SYMBOLIC_LIMIT

    @cached_property
    def derivation(self) -> Derivation:
        """The dense symbolic derivation, for K <= ``SYMBOLIC_LIMIT`` only (refused above)."""
        if not self.uses_symbolic_kernels:
            entries = math.comb(self.dim + 3, 4)
            raise UnsupportedError(
                f"{self.label}: the dense symbolic derivation has {entries} distinct κ₄ entries; "
                f"it is built for K <= {self.SYMBOLIC_LIMIT} only. Numeric kernels (numpy, "
                "torch) and kappa4_contract work at every K, and the identities are proved "
                "for every K at once (fisher_verify._src.identities)"
            )
        return super().derivation

    def statistic(self, y: Any) -> np.ndarray:
        """t(y) = one-hot of the class index, shape ``(*y.shape, K)``."""
        y = as_real_array(y, "y")
        return (y[..., None] == np.arange(self.dim, dtype=float)).astype(float)

    def _probabilities(self, h: Any) -> Any:
        if _backend_of(h) == "torch":
            import torch

            return torch.softmax(h, dim=-1)
        h = as_real_array(h, "natural parameter h")
        z = h - np.max(h, axis=-1, keepdims=True)
        e = np.exp(z)
        return e / np.sum(e, axis=-1, keepdims=True)

    def _eval(self, quantity: str, h: Array, backend: Backend | None) -> Array:
        backend = backend or _backend_of(h)
        if backend == "mpmath" and not self.uses_symbolic_kernels:
            raise UnsupportedError(
                f"{self.label}: mpmath kernels are printed from the symbolic derivation, "
                f"available for K <= {self.SYMBOLIC_LIMIT}; use numpy or torch for larger K"
            )
        if self.uses_symbolic_kernels:
            return super()._eval(quantity, h, backend)
        from .onehot import onehot_cumulant_dense

        if backend == "numpy":
            h = as_real_array(h, "natural parameter h")
        self.check_natural(h)
        if quantity == "log_partition":
            # one lambdified function of K arguments would take seconds to print at large K
            if backend == "torch":
                import torch

                return torch.logsumexp(h, dim=-1)
            top = np.max(h, axis=-1)
            return top + np.log(np.sum(np.exp(h - top[..., None]), axis=-1))
        p = self._probabilities(h)
        if quantity == "eta":
            return p
        self._refuse_dense_above_memory(quantity, h)
        if quantity == "fisher":
            return onehot_cumulant_dense(p, 2)
        if quantity == "kappa3":
            return onehot_cumulant_dense(p, 3)
        k4 = onehot_cumulant_dense(p, 4)
        if quantity == "kappa4":
            return k4
        i2 = onehot_cumulant_dense(p, 2)
        xp_einsum = np.einsum if backend == "numpy" else __import__("torch").einsum
        return (
            k4
            + xp_einsum("...ab,...cd->...abcd", i2, i2)
            + xp_einsum("...ac,...bd->...abcd", i2, i2)
            + xp_einsum("...ad,...bc->...abcd", i2, i2)
        )

    def _refuse_dense_above_memory(self, quantity: str, h: Any) -> None:
        """Refuse at once a dense ``(..., K, …, K)`` array larger than this machine's memory,
        instead of a raw MemoryError (or swapping) deep inside NumPy."""
        rank = {"fisher": 2, "kappa3": 3}.get(quantity, 4)
        entries = math.prod(tuple(h.shape[:-1])) * self.dim ** rank
        # the result plus the temporaries that build it (K − I⊗I: κ₄ and three I⊗I terms)
        need = 8 * entries * (5 if quantity == "central_moment4" else 2)
        physical = _physical_memory()
        limit, what = DENSE_MEMORY_LIMIT, "the limit DENSE_MEMORY_LIMIT ="
        if physical is not None and physical < limit:
            limit, what = physical, "this machine's"
        if need > limit:
            raise UnsupportedError(
                f"{self.label}: {quantity} is a dense array of {entries:.3g} entries "
                f"(about {need / 2**30:.3g} GiB with its temporaries, shape "
                f"(..., {', '.join(['K'] * rank)})), more than {what} "
                f"{limit / 2**30:.3g} GiB of memory; contract it instead: "
                "kappa4_contract(h, u, v, w, z) gives κ₄[u,v,w,z] in O(K), and "
                "I(h) = diag(p) − p pᵀ with p = mean(h)"
            )

    def kappa4_contract(self, h: np.ndarray, u: Any, v: Any, w: Any, z: Any) -> np.ndarray:
        """κ₄[u, v, w, z] in O(K) per batch element, by the one-hot moment route."""
        from .onehot import onehot_cumulant_contract

        self.check_natural(h)
        return onehot_cumulant_contract(self._probabilities(h), [u, v, w, z])

    # --- direct forms on the support t = e_k (lemma-5; thm-4, thm-7) -----------------------------

    def contractions(self, h: Any) -> DenseContractions:
        """The O(K) one-hot contractions (:class:`~fisher_verify._src.families.contractions.
        OneHotContractions`): never a ``K⁴`` array, at every K (thm-4, thm-7, thm-8)."""
        return OneHotContractions(self, h)

    def contraction_entries(self) -> int:
        """0: the one-hot contractions are direct forms on the support (thm-4)."""
        return 0

    def thm7_pair_cost(self, n: int, layers: int, gram: float) -> tuple[float, float, float, float]:
        """thm-7's per-pair cost on the support: O(K²) elementwise, no dense ``C``."""
        return gram, (2 * layers + 14) * n * n, 6 * n * n, 0.0

    def projected_central_moments(self, h: np.ndarray, U: np.ndarray, order: int) -> np.ndarray:
        """``E[(uᵀ(t − η))^k] = Σ_k p_k d_k^j`` with ``d = u − pᵀu`` centred at the dominant class
        (lemma-2 on the support ``t = e_k``), O(K) per projection: the generic nodes would hold
        a ``K × K`` array per input."""
        from .onehot import onehot_centred, onehot_projected_moments

        p = self._probabilities(np.asarray(h, dtype=np.float64))  # (M, K)
        U = np.asarray(U, dtype=np.float64)
        if p.ndim == 2 and U.ndim == 3 and p.shape[0] == U.shape[0]:
            return onehot_projected_moments(p, U, order)
        p = p[:, None, :]  # (M, 1, K)
        d = onehot_centred(p, U)  # (M, R, K)
        out = np.empty(d.shape[:-1] + (order + 1,))
        power = np.ones_like(d)
        for j in range(order + 1):
            out[..., j] = (p * power).sum(-1)
            power = power * d
        return out

    def kappa4_diagonal(self, h: Any, u: Any) -> Any:
        """``κ₄[u⁴] = Σ_k p_k d_k⁴ − 3 (Σ_k p_k d_k²)²`` with ``d = u − pᵀu`` (lemma-5), O(K)."""
        import torch

        from .onehot import onehot_excess4_diagonal

        c4, m2 = onehot_excess4_diagonal(torch.softmax(h, -1)[:, None, :], u)
        return c4 - 2.0 * m2 * m2

    @property
    def softmax_core(self) -> bool:
        """True: ``I(h) = diag(p) − ppᵀ`` (sun26-spectrum)."""
        return True
