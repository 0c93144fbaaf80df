"""The one symbolic definition of an exponential family.

p(y | h) = exp(t(y)ᵀ h - F(h)) · b(y) with respect to counting or Lebesgue measure on the
support. Everything else (η, I, κ₃, κ₄, K, kernels, proofs) is derived from this record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np
import sympy as sp

SupportKind = Literal["finite", "countable", "continuous"]

# log Γ(x) kept unevaluated: SymPy evaluates Γ of an integer exactly, which for a parameter
# such as shape = 1e308 is a number with 10³¹⁰ digits. Numeric printers map it to lgamma.
LGAMMA = sp.Function("lgamma")


@dataclass(frozen=True)
class Support:
    """Where y lives: a finite list of values, the integers from ``start``, or an interval.

    ``values`` may be a ``range`` (binomial with n = 10⁹ must not hold 10⁹ integers); a finite
    support whose last value is a symbol (the parameter-generic binomial) has ``last`` set.
    """

    kind: SupportKind
    values: Sequence[Any] = ()
    start: int = 0
    lower: Any = -sp.oo
    upper: Any = sp.oo
    last: Any = None
    #: a vector y (``FamilyDefinition.event``) whose components sum to this (multinomial: n)
    total: Any = None
    #: the number of components of a vector y (1: a scalar y)
    size: int = 1
    #: a vector y on the unit sphere (von Mises–Fisher): ‖y‖ = 1 up to rounding
    sphere: bool = False

    def describe(self) -> str:
        """A short human description (used in derivation reports)."""
        if self.size > 1:
            if self.sphere:
                return f"the unit sphere S^{self.size - 1} in ℝ^{self.size}"
            if self.kind == "finite":
                return (f"{{y ∈ {{{self.start}, …, {self.total}}}^{self.size} : "
                        f"Σ y = {self.total}}}")
            if self.total is not None:  # the simplex (Dirichlet)
                return f"{{y ∈ ({self.lower}, {self.upper})^{self.size} : Σ y = {self.total}}}"
            return f"ℝ^{self.size}" if self.lower == -sp.oo else f"({self.lower}, ∞)^{self.size}"
        if self.kind == "finite" and self.last is not None:
            return f"{{{self.start}, …, {self.last}}}"
        if self.kind == "finite":
            if len(self.values) > 6:
                return f"{{{self.values[0]}, …, {self.values[-1]}}}"
            return "{" + ", ".join(str(v) for v in self.values) + "}"
        if self.kind == "countable":
            return f"{{{self.start}, {self.start + 1}, …}}"
        return f"({self.lower}, {self.upper})"


class Compositions(Sequence[tuple[int, ...]]):
    """The vectors of ``size`` non-negative integers summing to ``total`` (the support of a
    multinomial), in lexicographic order, made on demand: C(total + size − 1, size − 1) of them
    (the exact-expectation route refuses beyond its limit before iterating)."""

    def __init__(self, total: int, size: int) -> None:
        self.total, self.size = total, size

    def __len__(self) -> int:
        return math.comb(self.total + self.size - 1, self.size - 1)

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        def rec(left: int, slots: int) -> Iterator[tuple[int, ...]]:
            if slots == 1:
                yield (left,)
                return
            for first in range(left, -1, -1):
                for rest in rec(left - first, slots - 1):
                    yield (first, *rest)

        return rec(self.total, self.size)

    @overload
    def __getitem__(self, i: int) -> tuple[int, ...]: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[tuple[int, ...]]: ...
    def __getitem__(self, i: int | slice) -> tuple[int, ...] | Sequence[tuple[int, ...]]:
        items = list(self)
        return items[i]


# A rule (h -> y nodes (..., S) or (..., S, k) for a vector y, weights (..., S)) exact for
# polynomials in t(y) of degree <= deg.
QuadratureRule = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
# Countable support: y -> upper bound on p(y+1)/p(y) valid for every y' >= y.
RatioBound = Callable[[np.ndarray, np.ndarray], np.ndarray]
Sampler = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
# h (mpmath numbers), g (t-values -> number) or None -> ∫ g(t(y)) e^{t(y)ᵀh} b(y) dμ(y) in mpmath
MpIntegral = Callable[[list[Any], Any], Any]


@dataclass(frozen=True, eq=False)
class FamilyDefinition:
    """One exponential family, stated once.

    Attributes:
        name: catalog name.
        params: the fixed parameters, already validated (e.g. ``{"n": 5}``).
        h: natural-parameter symbols, one per component of t(y).
        y: the data symbol (scalar; categorical uses the class index); for a vector y, its
            first component.
        event: the components of a vector y (multinomial counts, a multivariate normal draw),
            in which ``statistic`` and ``log_base`` are written; empty for a scalar y. Data of
            a vector family carry them on a last axis of size ``len(event)``.
        statistic: t(y), one expression per component of h.
        log_base: log b(y), the base measure's log-density.
        support: where y lives.
        log_partition: F(h), written with the stable functions of
            :mod:`fisher_verify._src.symbolic.safe` so that its derivatives stay stable.
        negative: indices of the components of h that must be < 0 (the natural domain of
            every scalar-variance family; a full covariance adds ``domain_check``).
        domain_text: the domain in words, for error messages.
        mean_names: names of the mean parameters, for reports (Table 1).
        natural_of_mean: h as a function of the mean parameters (Table 1), or None.
        eta_of_mean: η = E[t(y)] in the mean parameters where they are not η itself (binomial:
            n·p; logarithmic: its parameter θ), the textbook mean ``table-1`` checks η against;
            None when the mean parameters are η.
        mean_symbols: the mean-parameter symbols used in ``natural_of_mean``.
        sampler: draws y of shape (n, *batch) from h of shape (*batch, d).
        ratio_bound: for countable support, an upper bound on p(y'+1)/p(y') for y' >= y.
        quadrature: for continuous support, a rule exact for polynomials of given degree.
    """

    name: str
    params: dict[str, Any]
    h: tuple[sp.Symbol, ...]
    y: sp.Symbol
    statistic: Sequence[sp.Expr]
    log_base: sp.Expr
    support: Support
    log_partition: sp.Expr
    negative: tuple[int, ...]
    domain_text: str
    sampler: Sampler
    mean_symbols: Sequence[sp.Symbol] = ()
    natural_of_mean: Sequence[sp.Expr] | None = None
    eta_of_mean: Sequence[sp.Expr] | None = None
    ratio_bound: RatioBound | None = None
    quadrature: QuadratureRule | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    event: tuple[sp.Symbol, ...] = ()
    #: False where SymPy cannot close the density's integrals (the beta's polygamma moments):
    #: the identities then go straight to the mpmath route instead of spending the symbolic
    #: time limit first
    symbolic_density: bool = True
    #: how E[g(t(y))] is computed exactly (the exact-expectation route), where the support's
    #: kind does not say it (a Gauss rule built from moments, a change of variable)
    route: str = ""
    #: the density's integral in mpmath by a rule of the family's own with a proven error bound
    #: (the circle's trapezoid rule; the sphere, where a cube of tanh-sinh rules does not
    #: apply), used by :meth:`Family.integral_mp` instead of the generic quadrature
    integral_mp: MpIntegral | None = None
    #: a domain that is not a box of signs (a full covariance's −H₂ positive definite): h of
    #: shape (..., d), inside the box ``negative`` states, to why it is outside, or None
    domain_check: Callable[[np.ndarray], str | None] | None = None

    @property
    def expectation_route(self) -> str:
        """The exact-expectation route in words (``families``, ``derive``, the report)."""
        if self.route:
            return self.route
        if self.support.kind == "finite":
            return "every point of the support (enumeration)"
        if self.support.kind == "countable":
            return "the series over the support, cut where its proven tail bound is below 1e-15"
        return "a Gauss rule exact for polynomials in t(y) of the degree asked"

    @property
    def y_symbols(self) -> tuple[sp.Symbol, ...]:
        """The symbols the statistic and base measure are written in: ``event``, or ``(y,)``."""
        return self.event or (self.y,)

    @property
    def dim(self) -> int:
        """Dimension d of the natural parameter (= number of sufficient statistics)."""
        return len(self.h)

    @property
    def key(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """Hashable identity: name and sorted parameters."""
        return self.name, tuple(sorted(self.params.items()))
