"""Link layers ``h = g(f)``: heads that do not output the family's natural parameter (issue 18).

A network whose output ``f`` is a rate, a probability, a mean with a variance or a log standard
deviation is, with its link ``g``, a network ``θ ↦ h(θ) = g(f(θ))`` whose output is the natural
parameter, so everything the paper proves for Eq. 3 (``eq-6``, ``thm-4``, ``thm-6``) holds for
the composite with

* ``J_h = g′(f) J_f`` (``I(θ) = J_fᵀ g′ᵀ I(h) g′ J_f``), and
* ``∂²h_k/∂θ∂θᵀ = J_fᵀ ∂²g_k/∂f∂fᵀ J_f + Σ_j ∂g_k/∂f_j ∂²f_j/∂θ∂θᵀ`` (the chain rule), so
  ``Î₂``'s term ``−Σ_k (t − η)_k ∂²h_k/∂θ²`` carries ``g″`` (statement ``ext-links``).

Each link is stated once, as SymPy expressions of one *unit* (the few outputs that make one
factor of the output family, e.g. ``(μ, σ²)`` for one normal): ``g′`` and ``g″`` are
differentiated from it and printed for NumPy, PyTorch and mpmath (as the families' kernels are,
:mod:`fisher_verify._src.symbolic.codegen`). A head of ``count`` units maps onto the independent
product of ``count`` copies of the family; ``layout="chunked"`` reads unit ``j``'s component ``c``
at ``f[c·count + j]`` (``mean, var = out.chunk(2, -1)``), ``"interleaved"`` at ``f[j·k + c]``.

===================  ================================  ========================================
link                 head output ``f`` (per unit)      family, ``h = g(f)``
===================  ================================  ========================================
``logit``            probability ``p ∈ (lower, 1)``    bernoulli, ``log p − log(1 − p)``
``rate``             rate ``λ`` (``λ + eps > 0``)      poisson, ``log(λ + eps)``
``softplus-rate``    any real ``u``, ``λ = softplus``  poisson, ``log softplus(u)``
``exp-rate``         any real ``u``, rate ``β = eᵘ``   gamma/exponential, ``−eᵘ``; beta
                     (or concentration ``α = eᵘ``)     (``h = −α``, second shape known)
``softplus-neg``     any real ``u``, ``β = softplus``  gamma/exponential, ``−softplus(u)``;
                     (or ``α = softplus(u)``)          beta (``h = −α``)
``softplus-beta``    any real ``(u, v)``: ``α, β =``      beta_both, ``(−softplus(u),
                     ``softplus(u), softplus(v)``      −softplus(v))`` (both shapes learned)
``mean-logstd``      ``(μ, log σ)``                    normal_unknown_variance,
                                                       ``(μ e^{−2s}, −e^{−2s}/2)``
``mean-var``         ``(μ, σ²)``, ``σ² > lower``       normal_unknown_variance,
                                                       ``(μ/σ², −1/(2σ²))``
``mean-shared-var``  ``(μ₀, …, μ_{D−1}, σ²)``,         isotropic_normal(D),
                     ``σ² > lower`` (option ``D``)     ``(μ/σ², −1/(2σ²))``: one variance for
                                                       every component (GaussianNLLLoss with
                                                       ``var`` of shape ``(..., 1)``)
===================  ================================  ========================================

The domain of ``f`` is checked where the link is evaluated; a value outside it is refused naming
the output, the value and the interval (``refuse only what is not defined``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import mpmath
import numpy as np
import sympy as sp

from ..errors import DomainError, ParameterError, ShapeError
from ..symbolic.codegen import Backend, float_constants
from ..symbolic.safe import MPMATH_KERNELS, NUMPY_KERNELS, SafeFunction, softplus, torch_kernels
from ..validation import check_count

__all__ = ["link"]

Layout = Literal["chunked", "interleaved"]


@dataclass(frozen=True, eq=False)
class LinkUnit:
    """One unit of a link: ``k`` head outputs ``u`` to ``k`` natural parameters ``g(u)``.

    Attributes:
        name: the link's name.
        family: the catalog name (and parameters) of the family of one unit.
        inputs: the symbols ``u``, one per head output of the unit.
        natural: ``g(u)``, one SymPy expression per component of the unit's ``h``.
        lower, upper: per input, the open interval of its domain (``-inf``/``inf`` for none).
        names: per input, its name in messages (``"p"``, ``"σ²"``).
        description: what the head outputs, in words.
    """

    name: str
    family: tuple[str, tuple[tuple[str, Any], ...]]
    inputs: tuple[sp.Symbol, ...]
    natural: tuple[sp.Expr, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    names: tuple[str, ...]
    description: str
    extra: tuple[tuple[str, float], ...] = ()

    @property
    def k(self) -> int:
        """Head outputs (= natural-parameter components) per unit."""
        return len(self.inputs)

    @cached_property
    def jacobian_exprs(self) -> list[list[sp.Expr]]:
        """``∂g_a/∂u_b`` (k × k), differentiated from :attr:`natural`."""
        return [[sp.diff(g, u) for u in self.inputs] for g in self.natural]

    @cached_property
    def hessian_exprs(self) -> list[list[list[sp.Expr]]]:
        """``∂²g_a/∂u_b∂u_c`` (k × k × k)."""
        return [[[sp.diff(d, u) for u in self.inputs] for d in row] for row in self.jacobian_exprs]

    def _flat(self, order: int) -> list[sp.Expr]:
        if order == 0:
            return list(self.natural)
        if order == 1:
            return [e for row in self.jacobian_exprs for e in row]
        return [e for mat in self.hessian_exprs for row in mat for e in row]

    def kernel(self, order: int, backend: Backend) -> Callable[..., list[Any]]:
        """``g`` (order 0), ``g′`` (1) or ``g″`` (2), flattened, printed for ``backend``."""
        key = (order, backend)
        # printed once per unit (the dataclass is frozen; its __dict__ holds the cache)
        cache = self.__dict__.setdefault("_kernels", {})
        if key not in cache:
            exprs = self._flat(order)
            if backend != "mpmath":
                exprs = [float_constants(e) for e in exprs]
            cache[key] = sp.lambdify(list(self.inputs), exprs, modules=_link_modules(backend),
                                     cse=True)
        return cache[key]


# --- log softplus, the softplus-rate link, stable where λ = softplus(u) is tiny ----------------
#
# The textbook derivatives of log softplus(u), σ/softplus and σσ(−u)/softplus − (σ/softplus)²,
# cancel for u ≪ 0 (relative error eps·e^(−u): 1e-3 at u = −30) and are 0/0 once softplus(u)²
# underflows (u < −372). With z = eᵘ ≤ 1 and r = log1p(z)/z (→ 1): g = u + log r,
# g′ = 1/((1 + z) r), g″ = g′ (r − 1)/((1 + z) r), r − 1 = (log1p(z) − z)/z by its series.


class logsoftplus(SafeFunction):  # noqa: N801 - the printed name is the kernel's name
    """log softplus(u); d/du = :class:`logsoftplus1`."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return sp.log(sp.log(1 + sp.exp(args[0])))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return logsoftplus1(self.args[0])


class logsoftplus1(SafeFunction):  # noqa: N801
    """σ(u)/softplus(u); d/du = :class:`logsoftplus2`."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return sp.diff(logsoftplus.naive(args[0]), args[0])

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return logsoftplus2(self.args[0])


class logsoftplus2(SafeFunction):  # noqa: N801
    """d²/du² log softplus(u) (its own derivative is not needed: links go to order 2)."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return sp.diff(logsoftplus.naive(args[0]), args[0], 2)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.diff(logsoftplus2.naive(self.args[0]), self.args[0])


#: log(1e-3): below it the torch kernel of log softplus uses the series of log1p(z)/z
_SERIES_CUT = math.log(1e-3)


def _np_log1p_ratio(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z = e^min(u, 0), r = log1p(z)/z and r − 1, each stable (r = 1 where z underflows)."""
    z = np.exp(np.minimum(u, 0.0))
    safe = np.where(z > 0, z, 1.0)
    # log1p(z) − z = −z²/2 + z³/3 − …: the series below 1e-3 (6 terms: error < z⁶ ≤ 1e-18 z²)
    series = z * (-1 / 2 + z * (1 / 3 + z * (-1 / 4 + z * (1 / 5 + z * (-1 / 6 + z / 7)))))
    rm1 = np.where(z < 1e-3, series, (np.log1p(z) - z) / safe)
    return z, 1.0 + rm1, rm1


def _np_logsoftplus(u: Any) -> Any:
    u = np.asarray(u, dtype=float)
    _, r, _ = _np_log1p_ratio(u)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(u > 0, np.log(np.logaddexp(0.0, np.maximum(u, 0.0))), u + np.log(r))


def _np_logsoftplus1(u: Any) -> Any:
    u = np.asarray(u, dtype=float)
    z, r, _ = _np_log1p_ratio(u)
    up = np.maximum(u, 0.0)
    positive = NUMPY_KERNELS["expit"](up) / np.logaddexp(0.0, up)
    return np.where(u > 0, positive, 1.0 / ((1.0 + z) * r))


def _np_logsoftplus2(u: Any) -> Any:
    u = np.asarray(u, dtype=float)
    z, r, rm1 = _np_log1p_ratio(u)
    w = _np_logsoftplus1(u)
    up = np.maximum(u, 0.0)
    positive = w * (NUMPY_KERNELS["expit"](-up) - w)
    return np.where(u > 0, positive, w * rm1 / ((1.0 + z) * r))


def _mp_naive(order: int) -> Callable[[Any], Any]:
    def f(u: Any) -> Any:
        return mpmath.diff(lambda v: mpmath.log(mpmath.log1p(mpmath.exp(v))), u, order)

    return f


def _link_modules(backend: Backend) -> list[Any]:
    """The namespace links print into: the log-softplus kernels, then the families'."""
    if backend == "numpy":
        return [{"logsoftplus": _np_logsoftplus, "logsoftplus1": _np_logsoftplus1,
                 "logsoftplus2": _np_logsoftplus2}, NUMPY_KERNELS, "numpy"]
    if backend == "torch":
        import torch

        def t_logsoftplus(u: Any) -> Any:
            # differentiated by autograd in the engine, so written in operations whose
            # derivatives do not cancel: below the cut (z = eᵘ < 1e-3) u + log r(z) with r's
            # series (error z⁷); each branch sees only inputs of its side (no inf · 0 = NaN in
            # the gradient of the branch torch.where drops)
            cut = torch.full_like(u, _SERIES_CUT)
            above = u > cut
            a, b = torch.where(above, u, cut), torch.where(above, cut, u)
            z = torch.exp(b)
            r = 1 + z * (-1 / 2 + z * (1 / 3 + z * (-1 / 4 + z * (1 / 5 + z * (-1 / 6 + z / 7)))))
            return torch.where(above, torch.log(torch.logaddexp(torch.zeros_like(a), a)),
                               b + torch.log(r))

        kernels = torch_kernels()
        return [{"logsoftplus": t_logsoftplus,
                 "logsoftplus1": lambda u: torch.sigmoid(u) / torch.nn.functional.softplus(u),
                 "logsoftplus2": lambda u: torch.sigmoid(u) * torch.sigmoid(-u)
                 / torch.nn.functional.softplus(u)
                 - (torch.sigmoid(u) / torch.nn.functional.softplus(u)) ** 2},
                kernels, "torch"]
    return [{"logsoftplus": lambda u: mpmath.log(mpmath.log1p(mpmath.exp(u))),
             "logsoftplus1": _mp_naive(1), "logsoftplus2": _mp_naive(2)}, MPMATH_KERNELS,
            "mpmath"]


def _constant(value: float) -> sp.Expr:
    return sp.Integer(0) if value == 0 else sp.Rational(repr(float(value)))


def _unit(name: str, eps: float = 0.0, lower: float = 0.0, D: float = 1) -> LinkUnit:  # noqa: N803
    u, v = sp.Symbol("u", real=True), sp.Symbol("v", real=True)
    inf = math.inf
    if name == "mean-shared-var":
        d = int(D)
        us = tuple(sp.Symbol(f"u{i}", real=True) for i in range(d))
        return LinkUnit(name, ("isotropic_normal", (("D", d),)), (*us, v),
                        (*[m / v for m in us], -1 / (2 * v)), (-inf,) * d + (lower,),
                        (inf,) * (d + 1), (*[f"μ{i}" for i in range(d)], "σ²"),
                        f"{d} means μ and one variance σ² shared by them (GaussianNLLLoss's "
                        "input and a var of shape (..., 1))")
    if name == "logit":
        return LinkUnit(name, ("bernoulli", ()), (u,), (sp.log(u) - sp.log(1 - u),), (lower,),
                        (1.0,), ("p",), "a probability p (BCELoss's input)")
    if name == "rate":
        return LinkUnit(name, ("poisson", ()), (u,), (sp.log(u + _constant(eps)),),
                        (-eps if eps else 0.0,), (inf,), ("λ",),
                        "a rate λ (PoissonNLLLoss(log_input=False): λ + eps)", (("eps", eps),))
    if name == "softplus-rate":
        return LinkUnit(name, ("poisson", ()), (u,), (logsoftplus(u),), (-inf,), (inf,),
                        ("u",), "any real u, the rate λ = softplus(u)")
    if name == "exp-rate":
        return LinkUnit(name, ("gamma", ()), (u,), (-sp.exp(u),), (-inf,), (inf,), ("u",),
                        "any real u, the rate β = exp(u) of a gamma (or exponential), or the "
                        "concentration α = exp(u) of a beta")
    if name == "softplus-neg":
        return LinkUnit(name, ("gamma", ()), (u,), (-softplus(u),), (-inf,), (inf,), ("u",),
                        "any real u, the rate β = softplus(u) of a gamma (or exponential), or "
                        "the concentration α = softplus(u) of a beta")
    if name == "softplus-beta":
        return LinkUnit(name, ("beta_both", ()), (u, v), (-softplus(u), -softplus(v)),
                        (-inf, -inf), (inf, inf), ("u", "v"),
                        "any real (u, v), a Beta head's two concentrations α = softplus(u), "
                        "β = softplus(v)")
    if name == "mean-logstd":
        prec = sp.exp(-2 * v)
        return LinkUnit(name, ("normal_unknown_variance", ()), (u, v), (u * prec, -prec / 2),
                        (-inf, -inf), (inf, inf), ("μ", "log σ"),
                        "a mean μ and a log standard deviation log σ")
    if name == "mean-var":
        return LinkUnit(name, ("normal_unknown_variance", ()), (u, v), (u / v, -1 / (2 * v)),
                        (-inf, lower), (inf, inf), ("μ", "σ²"),
                        "a mean μ and a variance σ² (GaussianNLLLoss's input and var)")
    raise AssertionError(name)


#: Each link: its options (with defaults) and the families it may map onto.
LINKS: dict[str, dict[str, Any]] = {
    "logit": {"options": {"lower": 0.0}, "families": ("bernoulli",)},
    "rate": {"options": {"eps": 0.0}, "families": ("poisson",)},
    "softplus-rate": {"options": {}, "families": ("poisson",)},
    # beta (second shape b known, h = −α): a Beta head's concentration α = eᵘ or softplus(u)
    "exp-rate": {"options": {}, "families": ("gamma", "exponential", "beta")},
    "softplus-neg": {"options": {}, "families": ("gamma", "exponential", "beta")},
    # beta_both (h = (−α, −β)): a Beta head outputting both concentrations through softplus
    "softplus-beta": {"options": {}, "families": ("beta_both",)},
    "mean-logstd": {"options": {}, "families": ("normal_unknown_variance",)},
    "mean-var": {"options": {"lower": 0.0}, "families": ("normal_unknown_variance",)},
    "mean-shared-var": {"options": {"lower": 0.0, "D": 1}, "families": ("isotropic_normal",)},
}


def _inv_softplus(x: np.ndarray) -> np.ndarray:
    # log(eˣ − 1) = x + log(1 − e⁻ˣ), without overflow for large x
    return x + np.log(-np.expm1(-x))


#: f of one unit from its natural parameter h (unit components along the last axis)
_INVERSES: dict[str, Callable[[np.ndarray, float], list[np.ndarray]]] = {
    "logit": lambda h, _: [1.0 / (1.0 + np.exp(-h[..., 0]))],
    "rate": lambda h, eps: [np.exp(h[..., 0]) - eps],
    "softplus-rate": lambda h, _: [_inv_softplus(np.exp(h[..., 0]))],
    "exp-rate": lambda h, _: [np.log(-h[..., 0])],
    "softplus-neg": lambda h, _: [_inv_softplus(-h[..., 0])],
    "softplus-beta": lambda h, _: [_inv_softplus(-h[..., 0]), _inv_softplus(-h[..., 1])],
    "mean-logstd": lambda h, _: [h[..., 0] * (-0.5 / h[..., 1]), 0.5 * np.log(-0.5 / h[..., 1])],
    "mean-var": lambda h, _: [h[..., 0] * (-0.5 / h[..., 1]), -0.5 / h[..., 1]],
    "mean-shared-var": lambda h, _: [*(h[..., i] * (-0.5 / h[..., -1])
                                       for i in range(h.shape[-1] - 1)), -0.5 / h[..., -1]],
}


def link_names() -> list[str]:
    """Names of the links (the table in the module docstring)."""
    return list(LINKS)


class Link:
    """A link ``h = g(f)`` from a head of ``n`` outputs onto a family's natural parameter.

    Attributes:
        unit: the per-unit definition; ``count``: number of units; ``layout``: where unit
            ``j``'s inputs sit in ``f``; ``family``: the output family (the product of ``count``
            copies of the unit's family); ``n``: head outputs (= ``family.dim``).
    """

    def __init__(self, unit: LinkUnit, count: int, layout: Layout, family: Any) -> None:
        self.unit, self.count, self.layout, self.family = unit, count, layout, family
        k = unit.k
        self.n = k * count
        j, c = np.meshgrid(np.arange(count), np.arange(k), indexing="ij")
        #: (count, k): where unit j's input c sits in f, and its natural parameter in h
        self.f_index = (c * count + j) if layout == "chunked" else (j * k + c)
        self.h_index = j * k + c

    @property
    def name(self) -> str:
        """The link's name."""
        return self.unit.name

    @property
    def label(self) -> str:
        """E.g. ``mean-var(2 units, chunked) → product(...)``."""
        units = f"{self.count} units, {self.layout}" if self.count > 1 else "1 unit"
        return f"{self.name}({units}) onto {self.family.label}"

    def __repr__(self) -> str:
        return f"Link({self.label})"

    # --- domain ------------------------------------------------------------------------------

    def check_output(self, f: Any, what: str = "the head's output f") -> np.ndarray:
        """``f`` as float64 ``(..., n)`` when every unit input lies in its open interval.

        Raises:
            ShapeError: a last axis other than ``n``.
            DomainError: a value outside the link's domain, naming the output, the value and
                the interval.
        """
        arr = np.asarray(f.detach().cpu().numpy() if hasattr(f, "detach") else f, dtype=float)
        if arr.ndim == 0 or arr.shape[-1] != self.n:
            raise ShapeError(f"{what} must have last axis of size {self.n} for the link "
                             f"{self.label}, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise DomainError(f"{what} holds NaN or infinite values")
        u = self._units(arr)
        for c in range(self.unit.k):
            lo, hi = self.unit.lower[c], self.unit.upper[c]
            bad = ~((u[..., c] > lo) & (u[..., c] < hi))
            if np.any(bad):
                value = float(u[..., c][bad].reshape(-1)[0])
                raise DomainError(
                    f"{what}: {self.unit.names[c]} = {value:g} is outside the domain of the link "
                    f"{self.name} ({self.unit.names[c]} in ({lo:g}, {hi:g}): "
                    f"{self.unit.description}); there h = g(f) is not defined")
        return arr

    def _units(self, f: Any) -> Any:
        """``f`` (..., n) as (..., count, k)."""
        return f[..., self.f_index]

    # --- numpy --------------------------------------------------------------------------------

    def _eval_np(self, order: int, f: np.ndarray) -> np.ndarray:
        u = self._units(np.asarray(f, dtype=float))
        batch = u.shape[:-1]
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            values = self.unit.kernel(order, "numpy")(*np.moveaxis(u, -1, 0))
        k = self.unit.k
        out = np.stack([np.broadcast_to(np.asarray(v, dtype=float), batch) for v in values], -1)
        return out.reshape(batch + (k,) * (order + 1))

    def natural(self, f: Any) -> np.ndarray:
        """``h = g(f)``, shape ``(..., d)`` (NumPy float64)."""
        arr = self.check_output(f)
        vals = self._eval_np(0, arr)  # (..., count, k)
        return vals.reshape(vals.shape[:-2] + (self.n,))

    def jacobian(self, f: Any) -> np.ndarray:
        """``g′(f) = ∂h/∂f``, shape ``(..., d, n)`` (block-sparse, stored dense)."""
        arr = self.check_output(f)
        vals = self._eval_np(1, arr)  # (..., count, k, k)
        out = np.zeros(arr.shape[:-1] + (self.n, self.n))
        for j in range(self.count):
            rows, cols = self.h_index[j], self.f_index[j]
            out[..., rows[:, None], cols[None, :]] = vals[..., j, :, :]
        return out

    def hessian(self, f: Any) -> np.ndarray:
        """``g″(f) = ∂²h_a/∂f_b∂f_c``, shape ``(..., d, n, n)``."""
        arr = self.check_output(f)
        vals = self._eval_np(2, arr)  # (..., count, k, k, k)
        out = np.zeros(arr.shape[:-1] + (self.n, self.n, self.n))
        for j in range(self.count):
            rows, cols = self.h_index[j], self.f_index[j]
            out[..., rows[:, None, None], cols[None, :, None], cols[None, None, :]] = vals[..., j, :, :, :]
        return out

    def head_of(self, h: Any) -> np.ndarray:
        """The head's output ``f`` with ``g(f) = h`` (every link of the table is one-to-one on
        its domain), shape ``(..., n)``."""
        hh = np.asarray(h, dtype=float)
        units = hh[..., self.h_index]  # (..., count, k)
        eps = float(dict(self.unit.extra).get("eps", 0.0))
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            cols = _INVERSES[self.name](units, eps)
        vals = np.stack(cols, -1)
        out = np.empty(hh.shape[:-1] + (self.n,))
        out[..., self.f_index] = vals
        return out

    # --- torch and mpmath ---------------------------------------------------------------------

    def natural_torch(self, f: Any) -> Any:
        """``h = g(f)`` as a differentiable torch function of ``f`` ``(..., n)`` (the link
        module the any-model engine appends to a model)."""
        import torch

        u = f[..., torch.as_tensor(self.f_index, device=f.device)]
        values = self.unit.kernel(0, "torch")(*torch.unbind(u, dim=-1))
        batch = u.shape[:-1]
        cols = [v.expand(batch) if torch.is_tensor(v) else
                torch.full(batch, float(v), dtype=f.dtype, device=f.device) for v in values]
        h = torch.stack(cols, dim=-1)
        return h.reshape(tuple(batch[:-1]) + (self.n,))

    def natural_mp(self, f: Sequence[Any]) -> list[Any]:
        """``h = g(f)`` for one head output in mpmath (the high-precision reference)."""
        fs = [mpmath.mpf(v) for v in f]
        out: list[Any] = [None] * self.n
        kern = self.unit.kernel(0, "mpmath")
        for j in range(self.count):
            vals = kern(*[fs[i] for i in self.f_index[j]])
            for c, v in enumerate(vals):
                out[int(self.h_index[j, c])] = mpmath.mpf(v)
        return out

    def module(self) -> Any:
        """A ``torch.nn.Module`` computing ``h = g(f)``: append it to a model
        (``nn.Sequential(model, link.module())``) and the any-model engine sees ``h``."""
        import torch

        link = self

        class LinkModule(torch.nn.Module):
            def forward(self, f: Any) -> Any:
                return link.natural_torch(f)

            def extra_repr(self) -> str:
                return link.label

        return LinkModule()


def _family_for(unit: LinkUnit, count: int, family: Any) -> Any:
    from .product import product
    from .registry import family as make

    if family is None:
        name, params = unit.family
        allowed = LINKS[unit.name]["families"]
        one = make(name, **dict(params))
        if name not in allowed:  # pragma: no cover - the table is consistent
            raise AssertionError(name)
    else:
        one = family
        allowed = LINKS[unit.name]["families"]
        if getattr(one, "name", None) not in allowed:
            raise ParameterError(
                f"link {unit.name!r} maps onto the natural parameter of {', '.join(allowed)}; "
                f"got family={getattr(one, 'label', type(one).__name__)}")
    return one if count == 1 else product(*([one] * count))


def link(name: str, count: int = 1, *, layout: Layout = "chunked", family: Any = None,
         **options: Any) -> Link:
    """The link ``name`` for a head of ``count`` units (``ext-links``; the module's table).

    ``family``: the family of one unit where the link allows several (``exp-rate`` and
    ``softplus-neg`` onto ``family("gamma", shape=k)`` or ``family("exponential")``); the
    default is the table's. ``options``: ``eps`` (``rate``: ``h = log(λ + eps)``, as
    ``PoissonNLLLoss``), ``lower`` (``logit``: the smallest probability; ``mean-var``: the
    smallest variance, ``GaussianNLLLoss``'s ``eps``; ``mean-shared-var``: the same, and ``D``,
    the number of means sharing that one variance).

    Raises:
        ParameterError: an unknown link, option or layout, a family the link does not map onto,
            an option outside its domain.
    """
    if not isinstance(name, str) or name not in LINKS:
        raise ParameterError(f"unknown link {name!r}; known links: {', '.join(LINKS)}")
    allowed = LINKS[name]["options"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ParameterError(f"link {name!r} has no option {', '.join(unknown)}; its options: "
                             f"{', '.join(allowed) or 'none'}")
    count = check_count(count, "count", error=ParameterError)
    if layout not in ("chunked", "interleaved"):
        raise ParameterError(f"layout must be 'chunked' or 'interleaved', got {layout!r}")
    values = dict(allowed, **options)
    if "D" in values:  # the number of means sharing one variance (isotropic_normal's D)
        from .normal_covariance import MAX_ISOTROPIC_DIM

        dim = values["D"]
        if (isinstance(dim, bool) or not isinstance(dim, (int, np.integer))
                or not 1 <= dim <= MAX_ISOTROPIC_DIM):
            raise ParameterError(f"link {name!r}: option D={dim!r} must be an integer from 1 to "
                                 f"{MAX_ISOTROPIC_DIM} (the means sharing the variance)")
        values["D"] = int(dim)
    for key, value in values.items():
        below_one = key == "lower" and name == "logit"  # a probability's lower end
        ok = (not isinstance(value, bool) and isinstance(value, (int, float))
              and math.isfinite(value) and value >= 0 and (value < 1 or not below_one))
        if not ok:
            raise ParameterError(f"link {name!r}: option {key}={value!r} must be a finite number "
                                 ">= 0" + (" and < 1" if below_one else ""))
    unit = _unit(name, **{k: float(v) for k, v in values.items()})
    if family is not None:
        unit = LinkUnit(unit.name, (family.name, tuple(sorted(family.params.items()))), unit.inputs,
                        unit.natural, unit.lower, unit.upper, unit.names, unit.description,
                        unit.extra)
    return Link(unit, count, layout, _family_for(unit, count, family))
