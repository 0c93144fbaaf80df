"""The catalog: one symbolic definition per exponential family (issue 2, ``table-1``).

Each builder validates its fixed parameters (refusing, never changing, what the user gave)
and returns a :class:`FamilyDefinition`. Nothing here differentiates anything: the
cumulants are derived from ``log_partition`` by :mod:`fisher_verify._src.symbolic.derive`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import sympy as sp

from ..errors import ParameterError
from ..symbolic.safe import (
    NUMPY_KERNELS,
    lgamma_diff,
    log1mexp,
    logarithmic_cumulant,
    logsumexp,
    softplus,
)
from .definition import LGAMMA, Compositions, FamilyDefinition, Support
from .dirichlet import beta_both, dirichlet
from .normal_covariance import isotropic_normal, multivariate_normal_unknown_covariance
from .quadrature import gauss_hermite, gauss_laguerre_probability, points_for_degree
from .von_mises import von_mises, von_mises_fisher

_expit_np = NUMPY_KERNELS["expit"]
_inv_expm1_np = NUMPY_KERNELS["inv_expm1"]

# Beyond 2⁵³ a count is not exact in float64, so t(y) = y would silently round.
MAX_TRIALS = 2**53
# The definition holds one SymPy symbol per class (h_k, the argument of logsumexp): ~30 µs
# each, so 10⁵ classes cost ~3 s to build, 10⁶ half a minute. Refused above, at once.
MAX_CLASSES = 10**5

Y = sp.Symbol("y", real=True)
Y_INT = sp.Symbol("y", integer=True, nonnegative=True)


def _h(name: str = "h", negative: bool = False) -> sp.Symbol:
    return sp.Symbol(name, negative=True) if negative else sp.Symbol(name, real=True)


def _positive_int(family: str, name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(
            f"family {family!r}: parameter {name}={value!r} is invalid; "
            f"it must be an integer >= {minimum}"
        )
    return int(value)


def _positive_real(family: str, name: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"family {family!r}: parameter {name}={value!r} must be a number > 0")
    if not math.isfinite(float(value)) or value <= 0:
        raise ParameterError(
            f"family {family!r}: parameter {name}={value!r} must be finite and > 0"
        )
    return value.item() if isinstance(value, np.generic) else value


def _exact(value: float | int) -> sp.Expr:
    """A user parameter as an exact SymPy number: a float by the decimal value of its repr,
    which converts back to the same float (``nsimplify`` kept 15 digits: σ = √2 became
    1.4142135623731, silently changing what the user gave)."""
    return sp.Integer(value) if isinstance(value, int) else sp.Rational(repr(float(value)))


def _scalar_h(h: np.ndarray) -> np.ndarray:
    return np.asarray(h, dtype=float)[..., 0]


# --- builders ----------------------------------------------------------------------------------


def bernoulli() -> FamilyDefinition:
    """Bernoulli: t(y) = y on {0, 1}, F(h) = log(1 + eʰ) (``table-1``)."""
    h, p = _h(), sp.Symbol("p", positive=True)
    return FamilyDefinition(
        name="bernoulli",
        params={},
        h=(h,),
        y=Y_INT,
        statistic=(Y_INT,),
        log_base=sp.Integer(0),
        support=Support("finite", values=(0, 1)),
        log_partition=softplus(h),
        negative=(),
        domain_text="any real h",
        sampler=lambda hh, n, rng: (
            rng.random((n, *np.shape(hh)[:-1])) < _expit_np(_scalar_h(hh))
        ).astype(float),
        mean_symbols=(p,),
        natural_of_mean=(sp.log(p / (1 - p)),),
        description="binary output, logistic link",
    )


def binomial(n: Any = 1) -> FamilyDefinition:
    """Binomial with known number of trials n: F(h) = n log(1 + eʰ)."""
    n = _positive_int("binomial", "n", n)
    if n > MAX_TRIALS:
        raise ParameterError(
            f"family 'binomial': parameter n={n} is too large; it must be <= 2**53 "
            f"({MAX_TRIALS}), beyond which counts are not exact in float64"
        )
    return _binomial(sp.Integer(n), n)


def _binomial(ns: sp.Expr, n: int | None) -> FamilyDefinition:
    h, p = _h(), sp.Symbol("p", positive=True)
    support = (
        Support("finite", values=range(n + 1)) if n is not None else Support("finite", last=ns)
    )
    return FamilyDefinition(
        name="binomial",
        params={"n": n if n is not None else ns},
        h=(h,),
        y=Y_INT,
        statistic=(Y_INT,),
        log_base=sp.log(sp.binomial(ns, Y_INT)),
        support=support,
        log_partition=ns * softplus(h),
        negative=(),
        domain_text="any real h",
        sampler=lambda hh, m, rng: rng.binomial(
            int(_numeric(n)), _expit_np(_scalar_h(hh)), size=(m, *np.shape(hh)[:-1])
        ).astype(float),
        mean_symbols=(p,),
        natural_of_mean=(sp.log(p / (1 - p)),),
        eta_of_mean=(ns * p,),
        description=f"count of successes in n={ns} trials",
    )


def poisson() -> FamilyDefinition:
    """Poisson: t(y) = y on {0, 1, …}, b(y) = 1/y!, F(h) = eʰ (``table-1``)."""
    h, lam = _h(), sp.Symbol("lambda", positive=True)
    return FamilyDefinition(
        name="poisson",
        params={},
        h=(h,),
        y=Y_INT,
        statistic=(Y_INT,),
        log_base=-sp.log(sp.factorial(Y_INT)),
        support=Support("countable", start=0),
        log_partition=sp.exp(h),
        negative=(),
        domain_text="any real h (h > 709 overflows float64: λ = eʰ)",
        sampler=lambda hh, n, rng: rng.poisson(
            np.exp(_scalar_h(hh)), size=(n, *np.shape(hh)[:-1])
        ).astype(float),
        mean_symbols=(lam,),
        natural_of_mean=(sp.log(lam),),
        ratio_bound=lambda hh, y: np.exp(_scalar_h(hh)) / (y + 1.0),
        description="counts, log link",
    )


def geometric() -> FamilyDefinition:
    """Geometric (failures before the first success): p(y) = (1-eʰ) e^{hy}, h < 0."""
    h, mu = _h(negative=True), sp.Symbol("mu", positive=True)
    return FamilyDefinition(
        name="geometric",
        params={},
        h=(h,),
        y=Y_INT,
        statistic=(Y_INT,),
        log_base=sp.Integer(0),
        support=Support("countable", start=0),
        log_partition=-log1mexp(h),
        negative=(0,),
        domain_text="h < 0",
        sampler=lambda hh, n, rng: (
            rng.geometric(-np.expm1(_scalar_h(hh)), size=(n, *np.shape(hh)[:-1])) - 1
        ).astype(float),
        mean_symbols=(mu,),
        natural_of_mean=(sp.log(mu / (1 + mu)),),
        ratio_bound=lambda hh, y: np.exp(_scalar_h(hh)) + 0.0 * y,
        description="failures before the first success",
    )


def negative_binomial(r: Any = 1) -> FamilyDefinition:
    """Negative binomial with known r > 0: b(y) = Γ(y+r)/(Γ(r) y!), F(h) = -r log(1-eʰ), h < 0."""
    r = _positive_real("negative_binomial", "r", r)
    return _negative_binomial(_exact(r), r)


def _negative_binomial(rs: sp.Expr, r: float | None) -> FamilyDefinition:
    h, mu = _h(negative=True), sp.Symbol("mu", positive=True)
    # Γ(r) of a numeric r is a constant kept unevaluated (LGAMMA); the generic definition
    # keeps Γ so that the density sums in closed form
    log_gamma_r = LGAMMA(rs) if r is not None else sp.log(sp.gamma(rs))

    def ratio(hh: np.ndarray, y: np.ndarray) -> np.ndarray:
        # p(y+1)/p(y) = q (y+r)/(y+1), monotone in y, so its sup over y' >= y is at y or at ∞
        return np.exp(_scalar_h(hh)) * np.maximum(1.0, (y + r) / (y + 1.0))

    return FamilyDefinition(
        name="negative_binomial",
        params={"r": r if r is not None else rs},
        h=(h,),
        y=Y_INT,
        statistic=(Y_INT,),
        log_base=sp.log(sp.gamma(Y_INT + rs)) - log_gamma_r - sp.log(sp.factorial(Y_INT)),
        support=Support("countable", start=0),
        log_partition=-rs * log1mexp(h),
        negative=(0,),
        domain_text="h < 0",
        sampler=lambda hh, n, rng: rng.negative_binomial(
            _numeric(r), -np.expm1(_scalar_h(hh)), size=(n, *np.shape(hh)[:-1])
        ).astype(float),
        mean_symbols=(mu,),
        natural_of_mean=(sp.log(mu / (rs + mu)),),
        ratio_bound=ratio,
        description=f"failures before the r={rs if r is None else r}-th success",
    )


def normal(sigma: Any = 1) -> FamilyDefinition:
    """Normal with known σ: t(y) = y, h = μ/σ², F(h) = σ² h²/2 (σ = 1 in ``table-1``)."""
    sigma = _positive_real("normal", "sigma", sigma)
    return _normal(_exact(sigma), sigma)


def _normal(s: sp.Expr, sigma: Any) -> FamilyDefinition:
    h, mu = _h(), sp.Symbol("mu", real=True)

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        x, w = gauss_hermite(points_for_degree(degree))
        mean = float(sigma) ** 2 * _scalar_h(hh)[..., None]
        return mean + math.sqrt(2.0) * float(sigma) * x, np.broadcast_to(
            w / math.sqrt(math.pi), mean.shape[:-1] + w.shape
        )

    return FamilyDefinition(
        name="normal",
        params={"sigma": sigma if sigma is not None else s},
        h=(h,),
        y=Y,
        statistic=(Y,),
        log_base=-(Y**2) / (2 * s**2) - sp.log(2 * sp.pi * s**2) / 2,
        support=Support("continuous"),
        log_partition=s**2 * h**2 / 2,
        negative=(),
        domain_text="any real h",
        sampler=lambda hh, n, rng: rng.normal(
            float(sigma) ** 2 * _scalar_h(hh), float(sigma), size=(n, *np.shape(hh)[:-1])
        ),
        mean_symbols=(mu,),
        natural_of_mean=(mu / s**2,),
        quadrature=rule if sigma is not None else None,
        description=f"regression with known sigma={s if sigma is None else sigma}",
    )


def _gamma_rule(shape: float) -> Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]:
    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        x, w = gauss_laguerre_probability(points_for_degree(degree), shape - 1.0)
        rate = -_scalar_h(hh)[..., None]
        return x / rate, np.broadcast_to(w, rate.shape[:-1] + w.shape)

    return rule


def exponential() -> FamilyDefinition:
    """Exponential: t(y) = y on (0, ∞), F(h) = -log(-h), h < 0 (rate -h)."""
    h, mu = _h(negative=True), sp.Symbol("mu", positive=True)
    yp = sp.Symbol("y", positive=True)
    return FamilyDefinition(
        name="exponential",
        params={},
        h=(h,),
        y=yp,
        statistic=(yp,),
        log_base=sp.Integer(0),
        support=Support("continuous", lower=sp.Integer(0)),
        log_partition=-sp.log(-h),
        negative=(0,),
        domain_text="h < 0",
        sampler=lambda hh, n, rng: rng.exponential(
            -1.0 / _scalar_h(hh), size=(n, *np.shape(hh)[:-1])
        ),
        mean_symbols=(mu,),
        natural_of_mean=(-1 / mu,),
        quadrature=_gamma_rule(1.0),
        description="positive waiting times",
    )


def gamma(shape: Any = 2) -> FamilyDefinition:
    """Gamma with known shape k: b(y) = y^{k-1}/Γ(k), F(h) = -k log(-h), h < 0 (rate -h)."""
    k = _positive_real("gamma", "shape", shape)
    return _gamma(_exact(k), k)


def _gamma(ks: sp.Expr, k: Any) -> FamilyDefinition:
    h, mu = _h(negative=True), sp.Symbol("mu", positive=True)
    log_gamma_k = LGAMMA(ks) if k is not None else sp.log(sp.gamma(ks))
    yp = sp.Symbol("y", positive=True)
    return FamilyDefinition(
        name="gamma",
        params={"shape": k if k is not None else ks},
        h=(h,),
        y=yp,
        statistic=(yp,),
        log_base=(ks - 1) * sp.log(yp) - log_gamma_k,
        support=Support("continuous", lower=sp.Integer(0)),
        log_partition=-ks * sp.log(-h),
        negative=(0,),
        domain_text="h < 0",
        sampler=lambda hh, n, rng: rng.gamma(
            float(k), -1.0 / _scalar_h(hh), size=(n, *np.shape(hh)[:-1])
        ),
        mean_symbols=(mu,),
        natural_of_mean=(-ks / mu,),
        quadrature=_gamma_rule(float(k)) if k is not None else None,
        description=f"positive values with known shape={ks if k is None else k}",
    )


def _positive_rule(
    shape: float, y_of_t: Callable[[np.ndarray], np.ndarray]
) -> Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]:
    """A family whose statistic t(y) is Gamma(shape, rate −h) distributed (Rayleigh: t = y²,
    Weibull: t = yᵏ, inverse gamma: t = 1/y): Gauss–Laguerre nodes in t, exact for polynomials
    in t of the requested degree, mapped back to y by the inverse of t (the change of variable
    the exact-expectation route needs, since its nodes are values of y)."""

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        x, w = gauss_laguerre_probability(points_for_degree(degree), shape - 1.0)
        rate = -_scalar_h(hh)[..., None]
        return y_of_t(x / rate), np.broadcast_to(w, rate.shape[:-1] + w.shape)

    return rule


def rayleigh() -> FamilyDefinition:
    """Rayleigh: t(y) = y² on (0, ∞), b(y) = y, F(h) = −log(−2h), h = −1/(2σ²) < 0."""
    h, m = _h(negative=True), sp.Symbol("m", positive=True)
    yp = sp.Symbol("y", positive=True)
    return FamilyDefinition(
        name="rayleigh",
        params={},
        h=(h,),
        y=yp,
        statistic=(yp**2,),
        log_base=sp.log(yp),
        support=Support("continuous", lower=sp.Integer(0)),
        log_partition=-sp.log(-2 * h),
        negative=(0,),
        domain_text="h < 0 (h = −1/(2σ²))",
        sampler=lambda hh, n, rng: rng.rayleigh(
            np.sqrt(-0.5 / _scalar_h(hh)), size=(n, *np.shape(hh)[:-1])
        ),
        mean_symbols=(m,),  # m = E[y²] = 2σ²
        natural_of_mean=(-1 / m,),
        quadrature=_positive_rule(1.0, np.sqrt),
        description="positive magnitudes (Rayleigh; mean parameter m = E[y²] = 2σ²)",
    )


def weibull(shape: Any = 2) -> FamilyDefinition:
    """Weibull with known shape k: t(y) = yᵏ, b(y) = k yᵏ⁻¹, F(h) = −log(−h), h = −λ⁻ᵏ < 0."""
    k = _positive_real("weibull", "shape", shape)
    return _weibull(_exact(k), k)


def _weibull(ks: sp.Expr, k: Any) -> FamilyDefinition:
    h, m = _h(negative=True), sp.Symbol("m", positive=True)
    yp = sp.Symbol("y", positive=True)

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        scale = (-1.0 / _scalar_h(hh)) ** (1.0 / _numeric(k))
        return scale * rng.weibull(_numeric(k), size=(n, *np.shape(hh)[:-1]))

    return FamilyDefinition(
        name="weibull",
        params={"shape": k if k is not None else ks},
        h=(h,),
        y=yp,
        statistic=(yp**ks,),
        log_base=sp.log(ks) + (ks - 1) * sp.log(yp),
        support=Support("continuous", lower=sp.Integer(0)),
        log_partition=-sp.log(-h),
        negative=(0,),
        domain_text="h < 0 (h = −λ^(−k))",
        sampler=sampler,
        mean_symbols=(m,),  # m = E[yᵏ] = λᵏ
        natural_of_mean=(-1 / m,),
        quadrature=(
            _positive_rule(1.0, lambda t: t ** (1.0 / _numeric(k))) if k is not None else None
        ),
        description=f"lifetimes with known shape={ks if k is None else k} "
        "(mean parameter m = E[y^k])",
    )


def inverse_gamma(shape: Any = 3) -> FamilyDefinition:
    """Inverse gamma with known shape α: t(y) = 1/y, b(y) = y^{−α−1}/Γ(α), F(h) = −α log(−h),
    h = −β < 0 (β the scale)."""
    a = _positive_real("inverse_gamma", "shape", shape)
    return _inverse_gamma(_exact(a), a)


def _inverse_gamma(as_: sp.Expr, a: Any) -> FamilyDefinition:
    h, m = _h(negative=True), sp.Symbol("m", positive=True)
    yp = sp.Symbol("y", positive=True)
    log_gamma_a = LGAMMA(as_) if a is not None else sp.log(sp.gamma(as_))
    return FamilyDefinition(
        name="inverse_gamma",
        params={"shape": a if a is not None else as_},
        h=(h,),
        y=yp,
        statistic=(1 / yp,),
        log_base=-(as_ + 1) * sp.log(yp) - log_gamma_a,
        support=Support("continuous", lower=sp.Integer(0)),
        log_partition=-as_ * sp.log(-h),
        negative=(0,),
        domain_text="h < 0 (h = −β, the scale)",
        sampler=lambda hh, n, rng: -_scalar_h(hh)
        / rng.gamma(_numeric(a), 1.0, size=(n, *np.shape(hh)[:-1])),
        mean_symbols=(m,),  # m = E[1/y] = α/β
        natural_of_mean=(-as_ / m,),
        quadrature=_positive_rule(float(a), lambda t: 1.0 / t) if a is not None else None,
        description=f"positive scales with known shape={as_ if a is None else a} "
        "(mean parameter m = E[1/y])",
    )


def lognormal(sigma: Any = 1) -> FamilyDefinition:
    """Log-normal with known σ: t(y) = log y, h = μ/σ², b(y) = e^{−log²y/(2σ²)}/(yσ√(2π)),
    F(h) = σ² h²/2."""
    sigma = _positive_real("lognormal", "sigma", sigma)
    return _lognormal(_exact(sigma), sigma)


def _lognormal(s: sp.Expr, sigma: Any) -> FamilyDefinition:
    h, mu = _h(), sp.Symbol("mu", real=True)
    yp = sp.Symbol("y", positive=True)

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        # log y ~ N(σ²h, σ²): Gauss–Hermite in log y, exact for polynomials in t = log y
        x, w = gauss_hermite(points_for_degree(degree))
        mean = float(sigma) ** 2 * _scalar_h(hh)[..., None]
        return np.exp(mean + math.sqrt(2.0) * float(sigma) * x), np.broadcast_to(
            w / math.sqrt(math.pi), mean.shape[:-1] + w.shape
        )

    return FamilyDefinition(
        name="lognormal",
        params={"sigma": sigma if sigma is not None else s},
        h=(h,),
        y=yp,
        statistic=(sp.log(yp),),
        log_base=-sp.log(yp) ** 2 / (2 * s**2) - sp.log(yp) - sp.log(2 * sp.pi * s**2) / 2,
        support=Support("continuous", lower=sp.Integer(0)),
        log_partition=s**2 * h**2 / 2,
        negative=(),
        domain_text="any real h (h = μ/σ², μ the mean of log y)",
        sampler=lambda hh, n, rng: rng.lognormal(
            _numeric(sigma) ** 2 * _scalar_h(hh), _numeric(sigma), size=(n, *np.shape(hh)[:-1])
        ),
        mean_symbols=(mu,),  # mu = E[log y]
        natural_of_mean=(mu / s**2,),
        quadrature=rule if sigma is not None else None,
        description=f"positive values, log y normal with known sigma={s if sigma is None else sigma}",
    )

def chi_square(k: Any = 3) -> FamilyDefinition:
    """Scaled chi-square with k degrees of freedom known: y = σ²·χ²_k, t(y) = y,
    b(y) = y^{k/2−1}/Γ(k/2), h = −1/(2σ²) < 0, F(h) = −(k/2) log(−h) (σ² = 1: the textbook χ²_k)."""
    k = _positive_int("chi_square", "k", k)
    if k > MAX_TRIALS:
        raise ParameterError(
            f"family 'chi_square': parameter k={k} is too large; it must be <= 2**53 "
            f"({MAX_TRIALS}), beyond which k/2 is not exact in float64"
        )
    return _chi_square(sp.Integer(k), k)


def _chi_square(ks: sp.Expr, k: Any) -> FamilyDefinition:
    h, m = _h(negative=True), sp.Symbol("m", positive=True)
    yp = sp.Symbol("y", positive=True)
    half = ks / 2
    log_gamma_half = LGAMMA(half) if k is not None else sp.log(sp.gamma(half))
    return FamilyDefinition(
        name="chi_square",
        params={"k": k if k is not None else ks},
        h=(h,),
        y=yp,
        statistic=(yp,),
        log_base=(half - 1) * sp.log(yp) - log_gamma_half,
        support=Support("continuous", lower=sp.Integer(0)),
        log_partition=-half * sp.log(-h),
        negative=(0,),
        domain_text="h < 0 (h = −1/(2σ²), σ² the scale)",
        sampler=lambda hh, n, rng: (-0.5 / _scalar_h(hh))
        * rng.chisquare(_numeric(k), size=(n, *np.shape(hh)[:-1])),
        mean_symbols=(m,),  # m = E[y] = k σ²
        natural_of_mean=(-half / m,),
        quadrature=_gamma_rule(_numeric(k) / 2.0) if k is not None else None,
        description=f"sums of k={ks if k is None else k} squared N(0, σ²) residuals "
        "(mean parameter m = E[y] = kσ²)",
    )


def inverse_gaussian(shape: Any = 2) -> FamilyDefinition:
    """Inverse Gaussian with shape λ known: t(y) = y, h = −λ/(2μ²) < 0, F(h) = −√(−2λh),
    b(y) = √(λ/(2πy³)) e^{−λ/(2y)}. At h → 0⁻ the mean μ = √(λ/(−2h)) grows without bound
    (h = 0, the Lévy law, has no mean: outside the domain)."""
    lam = _positive_real("inverse_gaussian", "shape", shape)
    return _inverse_gaussian(_exact(lam), lam)


def _inverse_gaussian(ls: sp.Expr, lam: Any) -> FamilyDefinition:
    h, mu = _h(negative=True), sp.Symbol("mu", positive=True)
    yp = sp.Symbol("y", positive=True)

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        mean = np.sqrt(_numeric(lam) / (-2.0 * _scalar_h(hh)))
        return rng.wald(mean, _numeric(lam), size=(n, *np.shape(hh)[:-1]))

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        from .moment_rules import inverse_gaussian_rule

        return inverse_gaussian_rule(_scalar_h(hh), _numeric(lam), points_for_degree(degree))

    return FamilyDefinition(
        name="inverse_gaussian",
        params={"shape": lam if lam is not None else ls},
        h=(h,),
        y=yp,
        statistic=(yp,),
        log_base=sp.log(ls / (2 * sp.pi)) / 2 - 3 * sp.log(yp) / 2 - ls / (2 * yp),
        support=Support("continuous", lower=sp.Integer(0)),
        log_partition=-sp.sqrt(-2 * ls * h),
        negative=(0,),
        domain_text="h < 0 (h = −λ/(2μ²); h = 0, the Lévy law, has no mean)",
        sampler=sampler,
        mean_symbols=(mu,),
        natural_of_mean=(-ls / (2 * mu**2),),
        quadrature=rule if lam is not None else None,
        route="a Gauss rule in y built from the law's Bessel-K moments in mpmath and verified to "
        "reproduce them to 30 digits (no classical rule fits this law)",
        description=f"positive first-passage times with known shape={ls if lam is None else lam}",
    )


def logarithmic() -> FamilyDefinition:
    """Logarithmic (log-series): p(y) = θʸ / (y · (−log(1 − θ))) on {1, 2, …}, h = log θ < 0,
    t(y) = y, b(y) = 1/y, F(h) = log(−log(1 − eʰ)).

    F is written as :class:`~fisher_verify._src.symbolic.safe.logarithmic_cumulant` of order 0, whose
    derivatives are its own higher orders: stable at both ends of the domain (a series with a
    proven tail bound as h → −∞, closed forms without cancellation as h → 0⁻).
    """
    h, theta = _h(negative=True), sp.Symbol("theta", positive=True)
    yp = sp.Symbol("y", integer=True, positive=True)

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.logseries(np.exp(_scalar_h(hh)), size=(n, *np.shape(hh)[:-1])).astype(float)

    return FamilyDefinition(
        name="logarithmic",
        params={},
        h=(h,),
        y=yp,
        statistic=(yp,),
        log_base=-sp.log(yp),
        support=Support("countable", start=1),
        log_partition=logarithmic_cumulant(0, h),
        negative=(0,),
        domain_text="h < 0 (h = log θ, θ in (0, 1))",
        sampler=sampler,
        mean_symbols=(theta,),  # the parameter θ; E[y] = θ / ((1 − θ)(−log(1 − θ)))
        natural_of_mean=(sp.log(theta),),
        eta_of_mean=(theta / ((1 - theta) * -sp.log(1 - theta)),),
        # p(y+1)/p(y) = θ y/(y+1) < θ
        ratio_bound=lambda hh, y: np.exp(_scalar_h(hh)) + 0.0 * y,
        route="the series over y >= 1, cut where its tail bound (ratio θ) is below 1e-15; the "
        "kernels: a series in θ with a proven tail bound below θ = 1/2, closed forms above",
        description="counts >= 1 (species abundance), log-series law",
    )


# The vector families hold one symbol per component and C(d+3, 4) κ₄ entries (as the
# categorical does below its symbolic limit): refused above, at once.
MAX_VECTOR_SIZE = 8


def _matrix(family: str, name: str, value: Any) -> tuple[tuple[float | int, ...], ...]:
    """A square matrix parameter as nested tuples of numbers (JSON text, as the CLI's
    ``--param cov=[[2,0.6],[0.6,1]]`` gives it, is read first); the values are kept as given."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ParameterError(
                f"family {family!r}: parameter {name}={value!r} is not a matrix; give it as "
                "nested lists, e.g. [[2, 0.6], [0.6, 1]]"
            ) from None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    try:
        rows = tuple(tuple(v.item() if isinstance(v, np.generic) else v for v in row)
                     for row in value)
    except TypeError:
        raise ParameterError(
            f"family {family!r}: parameter {name}={value!r} must be a square matrix of numbers "
            "(nested lists), e.g. [[2, 0.6], [0.6, 1]]"
        ) from None
    d = len(rows)
    if d == 0 or any(len(r) != d for r in rows):
        raise ParameterError(
            f"family {family!r}: parameter {name} must be a square matrix, got rows of lengths "
            f"{[len(r) for r in rows]}"
        )
    if d > MAX_VECTOR_SIZE:
        raise ParameterError(
            f"family {family!r}: parameter {name} is {d}×{d}; it must be at most "
            f"{MAX_VECTOR_SIZE}×{MAX_VECTOR_SIZE} (the derivation holds C(d+3, 4) κ₄ entries)"
        )
    for row in rows:
        for v in row:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ParameterError(
                    f"family {family!r}: parameter {name} has the entry {v!r}; every entry "
                    "must be a finite number"
                )
    return rows


def multivariate_normal(cov: Any = ((1, 0), (0, 1))) -> FamilyDefinition:
    """Multivariate normal with known covariance Σ: y ∈ ℝᵈ (a vector y), t(y) = y,
    h = Σ⁻¹μ, F(h) = hᵀΣh/2, b(y) = N(y; 0, Σ)."""
    rows = _matrix("multivariate_normal", "cov", cov)
    sigma = sp.Matrix([[_exact(v) for v in row] for row in rows])
    if sigma != sigma.T:
        raise ParameterError(
            f"family 'multivariate_normal': parameter cov={rows} is not symmetric; a "
            "covariance matrix must equal its transpose"
        )
    if not sigma.is_positive_definite:
        raise ParameterError(
            f"family 'multivariate_normal': parameter cov={rows} is not positive definite; a "
            "covariance matrix of a law with a density must be (every eigenvalue > 0)"
        )
    d = sigma.rows
    hs = tuple(_h(f"h{i}") for i in range(d))
    ys = tuple(sp.Symbol(f"y{i}", real=True) for i in range(d))
    mus = tuple(sp.Symbol(f"mu{i}", real=True) for i in range(d))
    hv, yv = sp.Matrix(hs), sp.Matrix(ys)
    precision = sigma.inv()
    cov_np = np.array([[float(v) for v in row] for row in rows])
    chol = np.linalg.cholesky(cov_np)

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        mean = np.asarray(hh, dtype=float) @ cov_np
        z = rng.standard_normal((n, *mean.shape))
        return mean + z @ chol.T

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        # y = Σh + √2 L x over the tensor grid of Gauss–Hermite nodes x: exact for polynomials
        # in y of the degree asked (each monomial is a product of one-dimensional ones)
        x, w = gauss_hermite(points_for_degree(degree))
        grid = np.stack(np.meshgrid(*[x] * d, indexing="ij"), -1).reshape(-1, d)
        weights = np.prod(np.stack(np.meshgrid(*[w] * d, indexing="ij"), -1).reshape(-1, d), -1)
        mean = np.asarray(hh, dtype=float) @ cov_np
        nodes = mean[..., None, :] + math.sqrt(2.0) * grid @ chol.T
        return nodes, np.broadcast_to(weights / math.pi ** (d / 2), nodes.shape[:-1])

    return FamilyDefinition(
        name="multivariate_normal",
        params={"cov": rows},
        h=hs,
        y=ys[0],
        event=ys,
        statistic=ys,
        log_base=-(yv.T * precision * yv)[0, 0] / 2 - sp.log((2 * sp.pi) ** d * sigma.det()) / 2,
        support=Support("continuous", size=d),
        log_partition=sp.expand((hv.T * sigma * hv)[0, 0] / 2),
        negative=(),
        domain_text="any real h (h = Σ⁻¹μ)",
        sampler=sampler,
        mean_symbols=mus,
        natural_of_mean=tuple(precision * sp.Matrix(mus)),
        quadrature=rule,
        route="the tensor product of Gauss–Hermite rules in y = Σh + √2 L x (Σ = LLᵀ)",
        description=f"vector regression in {d} dimensions with a known covariance",
    )


def multinomial(n: Any = 3, K: Any = 3) -> FamilyDefinition:  # noqa: N803 - K as categorical
    """Multinomial with n trials over K classes: the vector of counts y (Σ y = n),
    t(y) = y, b(y) = n!/Π y_k!, F(h) = n logsumexp(h) (softmax logits, as categorical)."""
    n = _positive_int("multinomial", "n", n)
    k = _positive_int("multinomial", "K", K, minimum=2)
    if n > MAX_TRIALS:
        raise ParameterError(
            f"family 'multinomial': parameter n={n} is too large; it must be <= 2**53 "
            f"({MAX_TRIALS}), beyond which counts are not exact in float64"
        )
    if k > MAX_VECTOR_SIZE:
        raise ParameterError(
            f"family 'multinomial': parameter K={k} is too large; it must be <= "
            f"{MAX_VECTOR_SIZE} (the derivation holds C(K+3, 4) κ₄ entries)"
        )
    hs = tuple(_h(f"h{i}") for i in range(k))
    ys = tuple(sp.Symbol(f"y{i}", integer=True, nonnegative=True) for i in range(k))
    ps = tuple(sp.Symbol(f"p{i}", positive=True) for i in range(k))
    softmax_np = NUMPY_KERNELS["softmax"]

    def sampler(hh: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
        hh = np.asarray(hh, dtype=float)
        probs = np.stack([softmax_np(i, *np.moveaxis(hh, -1, 0)) for i in range(k)], -1)
        probs = probs / np.sum(probs, axis=-1, keepdims=True)  # rounding: Σ p = 1 exactly
        return rng.multinomial(n, probs, size=(m, *hh.shape[:-1])).astype(float)

    return FamilyDefinition(
        name="multinomial",
        params={"n": n, "K": k},
        h=hs,
        y=ys[0],
        event=ys,
        statistic=ys,
        # log n! exactly where SymPy evaluates it at once; beyond, kept unevaluated (n = 2⁵³!
        # has 10¹⁷ digits), as the other families keep log Γ of a large parameter
        log_base=(sp.log(sp.factorial(n)) if n <= 1000 else LGAMMA(sp.Integer(n) + 1))
        - sp.Add(*[sp.log(sp.factorial(v)) for v in ys]),
        support=Support("finite", values=Compositions(n, k), total=n, size=k),
        log_partition=n * logsumexp(*hs),
        negative=(),
        domain_text="any real logits h (softmax link; h and h + c·1 give the same law)",
        sampler=sampler,
        mean_symbols=ps,
        natural_of_mean=tuple(sp.log(p) for p in ps),
        eta_of_mean=tuple(n * p for p in ps),
        # the sums over count vectors are exact in mpmath (a finite support); SymPy closes them
        # but then spends its whole time limit failing to reduce lemma-5's entries to 0
        symbolic_density=False,
        description=f"counts of n={n} trials over K={k} classes (softmax logits)",
    )


def beta(b: Any = 2) -> FamilyDefinition:
    """Beta with the second shape b known: y in (0, 1), t(y) = −log y, h = −α < 0 (α the
    first shape), b(y) = (1 − y)^{b−1}/(y Γ(b)), F(h) = log Γ(−h) − log Γ(b − h).

    F is :class:`~fisher_verify._src.symbolic.safe.lgamma_diff` of order −1, whose derivatives are
    the polygamma differences ψ⁽ᵐ⁾(α) − ψ⁽ᵐ⁾(α + b), kept stable where they cancel (α ≫ b). The
    exact-expectation route is a Gauss rule in t built from those cumulants in mpmath
    (:func:`~fisher_verify._src.families.moment_rules.beta_rule`), not a classical rule: polynomials
    in log y have none.
    """
    bv = _positive_real("beta", "b", b)
    bs = _exact(bv)
    h, alpha = _h(negative=True), sp.Symbol("alpha", positive=True)
    yp = sp.Symbol("y", positive=True)

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.beta(-_scalar_h(hh), float(bv), size=(n, *np.shape(hh)[:-1]))

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        from .moment_rules import beta_rule

        return beta_rule(_scalar_h(hh), float(bv), points_for_degree(degree))

    return FamilyDefinition(
        name="beta",
        params={"b": bv},
        h=(h,),
        y=yp,
        statistic=(-sp.log(yp),),
        log_base=(bs - 1) * sp.log(1 - yp) - sp.log(yp) - LGAMMA(bs),
        support=Support("continuous", lower=sp.Integer(0), upper=sp.Integer(1)),
        log_partition=lgamma_diff(-1, -h, bs),
        negative=(0,),
        domain_text="h < 0 (h = −α, α the first shape)",
        sampler=sampler,
        mean_symbols=(alpha,),  # the first shape α; E[−log y] = ψ(α + b) − ψ(α)
        natural_of_mean=(-alpha,),
        eta_of_mean=(sp.polygamma(0, alpha + bs) - sp.polygamma(0, alpha),),
        quadrature=rule,
        symbolic_density=False,
        route="a Gauss rule in t = −log y built from its cumulants (mpmath polygamma differences) "
        "and verified to reproduce its moments to 30 digits; identities in mpmath at 40 digits "
        "(the density's integrals need polygamma)",
        description=f"proportions in (0, 1) with the second shape b={bv} known "
        "(t = −log y, α = −h)",
    )


def normal_unknown_variance() -> FamilyDefinition:
    """Normal with unknown mean and variance: t = (y, y²), h = (μ/σ², -1/(2σ²)), h₂ < 0."""
    h1, h2 = _h("h1"), _h("h2", negative=True)
    mu, var = sp.Symbol("mu", real=True), sp.Symbol("sigma2", positive=True)

    def moments(hh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hh = np.asarray(hh, dtype=float)
        var_ = -0.5 / hh[..., 1]
        return hh[..., 0] * var_, var_

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        # t is quadratic in y: a degree-D polynomial in t has degree 2D in y
        x, w = gauss_hermite(points_for_degree(2 * degree))
        mean, var_ = moments(hh)
        nodes = mean[..., None] + np.sqrt(2.0 * var_)[..., None] * x
        return nodes, np.broadcast_to(w / math.sqrt(math.pi), nodes.shape)

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        mean, var_ = moments(hh)
        return rng.normal(mean, np.sqrt(var_), size=(n, *np.shape(hh)[:-1]))

    return FamilyDefinition(
        name="normal_unknown_variance",
        params={},
        h=(h1, h2),
        y=Y,
        statistic=(Y, Y**2),
        log_base=-sp.log(2 * sp.pi) / 2,
        support=Support("continuous"),
        log_partition=-(h1**2) / (4 * h2) - sp.log(-2 * h2) / 2,
        negative=(1,),
        domain_text="h2 < 0 (h = (μ/σ², -1/(2σ²)))",
        sampler=sampler,
        mean_symbols=(mu, var),
        natural_of_mean=(mu / var, -1 / (2 * var)),
        quadrature=rule,
        description="regression with a learned variance (heteroscedastic)",
    )


def categorical(K: Any = 3) -> FamilyDefinition:  # noqa: N803 - K is the paper's name
    """Categorical with K classes: one-hot t(y) on {0, …, K-1}, F(h) = log Σ_k e^{h_k}."""
    k = _positive_int("categorical", "K", K, minimum=2)
    if k > MAX_CLASSES:
        raise ParameterError(
            f"family 'categorical': parameter K={k} is too large; it must be <= {MAX_CLASSES} "
            "(the definition holds one SymPy symbol per class, which takes seconds per 10⁵)"
        )
    hs = tuple(_h(f"h{i}") for i in range(k))
    ps = PerClass(k, lambda i: sp.Symbol(f"p{i}", positive=True))
    softmax_np = NUMPY_KERNELS["softmax"]

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        hh = np.asarray(hh, dtype=float)
        probs = np.stack([softmax_np(i, *np.moveaxis(hh, -1, 0)) for i in range(k)], -1)
        cdf = np.cumsum(probs, axis=-1)
        u = rng.random((n, *hh.shape[:-1]))
        return np.minimum((u[..., None] > cdf).sum(-1), k - 1).astype(float)

    return FamilyDefinition(
        name="categorical",
        params={"K": k},
        h=hs,
        y=Y_INT,
        statistic=PerClass(k, lambda i: sp.KroneckerDelta(Y_INT, i)),
        log_base=sp.Integer(0),
        support=Support("finite", values=range(k)),
        log_partition=logsumexp(*hs),
        negative=(),
        domain_text="any real logits h (softmax link; h and h + c·1 give the same law)",
        sampler=sampler,
        mean_symbols=ps,
        natural_of_mean=PerClass(k, lambda i: sp.log(ps[i])),
        description=f"classification over K={k} classes (softmax logits)",
    )


class PerClass(Sequence[sp.Expr]):
    """Expressions ``build(0), …, build(K−1)``, each made on first access: SymPy spends ~80 µs on
    a KroneckerDelta and ~1 ms on log(p_k), seconds at K = 10⁵, for entries that only small K
    ever prints or proves."""

    def __init__(self, k: int, build: Callable[[int], sp.Expr]) -> None:
        self.k, self.build = k, build

    def __len__(self) -> int:
        return self.k

    @overload
    def __getitem__(self, i: int) -> sp.Expr: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[sp.Expr]: ...
    def __getitem__(self, i: int | slice) -> sp.Expr | Sequence[sp.Expr]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.k))]
        return self.build(range(self.k)[i])


def _numeric(value: Any) -> float:
    if value is None or isinstance(value, sp.Basic):
        raise TypeError("the parameter-generic definition has no numeric parameter")
    return float(value)


TABLE_1 = ("bernoulli", "normal", "poisson")


@dataclass(frozen=True)
class Examples:
    """Where one family is exercised, stated once beside its definition (issue 19: every list
    of families, with its example parameters and ranges, comes from the registry).

    Attributes:
        params: one representative parameter value (Hypothesis points, the tightness sweep,
            the figures, the stability proof); not 1 where that would repeat another family
            (binomial(n=1) is Bernoulli, negative_binomial(r=1) geometric).
        point: a natural parameter inside the domain, of moderate size, at ``params``.
        draws: small valid parameter values the Hypothesis strategy draws from.
        ranges: per component of h, an interval of the natural domain where every kernel's
            value is finite in float64 at ``params`` (the extreme-parameter tests draw from it).
        extreme: points at the edges of the domain (|h| in the hundreds, or next to the
            boundary h = 0), where a textbook formula overflows or cancels
            (``ext-kernel-stability``).
        grid: ``fig-1`` for a scalar family: h from ``lo`` to ``hi``, spaced "linear" or
            "geometric" (a negative domain, drawn towards its boundary); None for a vector
            family, whose figure follows a path of its own.
        limits: accepted parameter values at the edges of the accepted range, where ``derive``
            and the kernels must still answer in seconds or refuse at once naming the limit
            (``benchmarks/bench_families.py``).
    """

    params: dict[str, Any]
    point: tuple[float, ...]
    draws: tuple[dict[str, Any], ...]
    ranges: tuple[tuple[float, float], ...]
    extreme: tuple[tuple[float, ...], ...]
    grid: tuple[float, float, str] | None = None
    limits: tuple[dict[str, Any], ...] = ()


_NEGATIVE_GRID = (-6.0, -0.3, "geometric")
_LINEAR_GRID = (-6.0, 6.0, "linear")

@dataclass(frozen=True)
class Entry:
    """One family of the catalog, stated once (issue 19).

    Attributes:
        builder: ``builder(**params)`` → its :class:`FamilyDefinition`, validating the values.
        parameters: the parameters it accepts, with defaults (the CLI and error messages).
        examples: where it is exercised (:class:`Examples`).
        generic: ``(symbol, build)`` for a parameterised family: the parameter as a SymPy
            symbol with the assumptions its domain implies, and ``build(symbol, None)`` giving
            the definition proved once for every value (:mod:`fisher_verify._src.identities.generic`).
        family_class: which :class:`~fisher_verify._src.families.family.Family` computes with it:
            ``"family"`` (the generic kernels) or ``"categorical"`` (the one-hot direct forms).
    """

    builder: Callable[..., FamilyDefinition]
    parameters: dict[str, Any]
    examples: Examples
    generic: tuple[sp.Symbol, Callable[[sp.Expr, Any], FamilyDefinition]] | None = None
    family_class: str = "family"


#: Every family, registered once: its builder, accepted parameters, where it is exercised and
#: (for a parameterised family) its parameter-generic form. Every other table of the package
#: (``BUILDERS``, ``PARAMETERS``, ``EXAMPLES``, ``PARAMETER_SYMBOLS``, the registry's
#: ``family_examples``) is read from here (issue 19).
ENTRIES: dict[str, Entry] = {
    "bernoulli": Entry(
        bernoulli, {},
        Examples(
            {}, (0.3,), ({},), ((-700.0, 700.0),),
            ((-700.0,), (-300.0,), (300.0,), (700.0,)), _LINEAR_GRID,
        ),
    ),
    "normal": Entry(
        normal, {"sigma": 1},
        Examples(
            {"sigma": 1.5}, (0.4,), ({"sigma": 0.5}, {"sigma": 1.0}, {"sigma": 2.0}),
            ((-1e5, 1e5),), ((-700.0,), (700.0,)), _LINEAR_GRID,
            limits=({"sigma": 1e-300},),
        ),
        generic=(sp.Symbol("sigma", positive=True), _normal),
    ),
    "poisson": Entry(
        poisson, {},
        Examples(
            {}, (0.7,), ({},), ((-300.0, 170.0),), ((-700.0,), (-300.0,), (300.0,)),
            (-3.0, 2.5, "linear"),
        ),
    ),
    "categorical": Entry(
        categorical, {"K": 3},
        Examples(
            {"K": 3}, (0.1, -0.5, 1.0), ({"K": 2}, {"K": 3}, {"K": 4}), ((-1000.0, 1000.0),) * 3,
            ((1000.0, -1000.0, 0.0), (-700.0, 700.0, 300.0), (-500.0, -500.0, -900.0)),
            limits=({"K": 4}, {"K": 6}, {"K": 8}, {"K": 1000}, {"K": 10**5}),
        ),
        family_class="categorical",
    ),
    "binomial": Entry(
        binomial, {"n": 1},
        Examples(
            {"n": 5}, (-0.2,), ({"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}), ((-700.0, 700.0),),
            ((-700.0,), (300.0,), (700.0,)), _LINEAR_GRID,
            limits=({"n": 100}, {"n": 10000}, {"n": 10**9}),
        ),
        generic=(sp.Symbol("n", integer=True, positive=True), _binomial),
    ),
    "geometric": Entry(
        geometric, {},
        Examples(
            {}, (-0.6,), ({},), ((-700.0, -1e-6),), ((-700.0,), (-300.0,)), _NEGATIVE_GRID,
        ),
    ),
    "negative_binomial": Entry(
        negative_binomial, {"r": 1},
        Examples(
            {"r": 2.5}, (-0.9,), ({"r": 1}, {"r": 2}, {"r": 3}), ((-700.0, -1e-6),),
            ((-700.0,), (-300.0,)), _NEGATIVE_GRID,
            limits=({"r": 1e300},),
        ),
        generic=(sp.Symbol("r", positive=True), _negative_binomial),
    ),
    "exponential": Entry(
        exponential, {},
        Examples(
            {}, (-1.3,), ({},), ((-1e6, -1e-6),), ((-700.0,), (-300.0,)), _NEGATIVE_GRID,
        ),
    ),
    "gamma": Entry(
        gamma, {"shape": 2},
        Examples(
            {"shape": 2.0}, (-0.8,), ({"shape": 0.5}, {"shape": 2.0}, {"shape": 3.5}),
            ((-1e6, -1e-6),), ((-700.0,), (-300.0,)), _NEGATIVE_GRID,
            limits=({"shape": 1e308},),
        ),
        generic=(sp.Symbol("k", positive=True), _gamma),
    ),
    "normal_unknown_variance": Entry(
        normal_unknown_variance, {},
        Examples(
            {}, (0.3, -0.6), ({},), ((-100.0, 100.0), (-100.0, -1e-3)),
            ((700.0, -0.01), (-300.0, -300.0), (500.0, -200.0)),
        ),
    ),
    "rayleigh": Entry(
        rayleigh, {},
        Examples(
            {}, (-0.7,), ({},), ((-1e6, -1e-6),), ((-700.0,), (-300.0,), (-1e-6,)), _NEGATIVE_GRID,
        ),
    ),
    "weibull": Entry(
        weibull, {"shape": 2},
        Examples(
            {"shape": 1.5}, (-0.9,), ({"shape": 0.5}, {"shape": 1.5}, {"shape": 3.0}),
            ((-1e6, -1e-6),), ((-700.0,), (-300.0,), (-1e-6,)), _NEGATIVE_GRID,
        ),
        generic=(sp.Symbol("k", positive=True), _weibull),
    ),
    "inverse_gamma": Entry(
        inverse_gamma, {"shape": 3},
        Examples(
            {"shape": 3.0}, (-1.2,), ({"shape": 0.5}, {"shape": 3.0}, {"shape": 7.5}),
            ((-1e6, -1e-6),), ((-700.0,), (-300.0,), (-1e-6,)), _NEGATIVE_GRID,
        ),
        generic=(sp.Symbol("alpha", positive=True), _inverse_gamma),
    ),
    "lognormal": Entry(
        lognormal, {"sigma": 1},
        Examples(
            {"sigma": 0.5}, (0.6,), ({"sigma": 0.25}, {"sigma": 0.5}, {"sigma": 1.0}),
            ((-1e5, 1e5),), ((-700.0,), (700.0,)), _LINEAR_GRID,
        ),
        generic=(sp.Symbol("sigma", positive=True), _lognormal),
    ),
    "chi_square": Entry(
        chi_square, {"k": 3},
        Examples(
            {"k": 3}, (-0.8,), ({"k": 1}, {"k": 2}, {"k": 5}),
            ((-1e6, -1e-6),), ((-700.0,), (-300.0,), (-1e-6,)), _NEGATIVE_GRID,
            limits=({"k": 1}, {"k": 10**9}, {"k": 2**53}),
        ),
        generic=(sp.Symbol("k", integer=True, positive=True), _chi_square),
    ),
    "inverse_gaussian": Entry(
        inverse_gaussian, {"shape": 2},
        Examples(
            {"shape": 2.0}, (-0.7,), ({"shape": 0.5}, {"shape": 2.0}, {"shape": 5.0}),
            ((-1e6, -1e-6),), ((-700.0,), (-300.0,), (-1e-6,), (-1e-12,)), _NEGATIVE_GRID,
            limits=({"shape": 1e-300}, {"shape": 1e300}),
        ),
        generic=(sp.Symbol("lambda", positive=True), _inverse_gaussian),
    ),
    "logarithmic": Entry(
        logarithmic, {},
        Examples(
            {}, (-0.9,), ({},), ((-700.0, -1e-6),),
            ((-700.0,), (-300.0,), (-30.0,), (-0.6931,), (-0.6932,), (-1e-6,), (-1e-12,)),
            _NEGATIVE_GRID,
        ),
    ),
    "multinomial": Entry(
        multinomial, {"n": 3, "K": 3},
        Examples(
            {"n": 3, "K": 3}, (0.2, -0.4, 0.7),
            ({"n": 1, "K": 2}, {"n": 2, "K": 3}, {"n": 3, "K": 2}),
            ((-1000.0, 1000.0),) * 3,
            ((1000.0, -1000.0, 0.0), (-700.0, 700.0, 300.0), (-500.0, -500.0, -900.0)),
            limits=({"n": 1, "K": 8}, {"n": 2**53, "K": 2}),
        ),
    ),
    "multivariate_normal": Entry(
        multivariate_normal, {"cov": ((1, 0), (0, 1))},
        Examples(
            {"cov": ((2.0, 0.6), (0.6, 1.0))}, (0.3, -0.4),
            ({"cov": ((1, 0), (0, 1))}, {"cov": ((2.0, -0.5), (-0.5, 1.0))}),
            ((-1e5, 1e5),) * 2, ((700.0, -700.0), (-300.0, 300.0), (1e5, 1e5)),
        ),
    ),
    # tiny and huge variances (σ² = 1e-6, 1e6) and a Σ of condition number 1e8 whose axes are
    # the coordinate axes; a rotated one loses the digits its condition number costs h ↦ Σ
    # (tests/test_family_mvn_unknown.py)
    "multivariate_normal_unknown_covariance": Entry(
        multivariate_normal_unknown_covariance, {"D": 2},
        Examples(
            {"D": 2}, (0.3, -0.4, -0.6, 0.2, -0.8), ({"D": 1}, {"D": 2}),
            ((-100.0, 100.0), (-100.0, 100.0), (-100.0, -1.0), (-0.4, 0.4), (-100.0, -1.0)),
            ((300.0, -200.0, -5e5, 1e5, -4e5), (1e-3, -2e-3, -5e-7, 1e-7, -4e-7),
             (5e3, 1.0, -5e3, 0.0, -5e-5), (-700.0, 700.0, -1.0, 0.5, -1.0)),
            limits=({"D": 1}, {"D": 3}),
        ),
        family_class="covariance",
    ),
    "isotropic_normal": Entry(
        isotropic_normal, {"D": 2},
        Examples(
            {"D": 2}, (0.3, -0.4, -0.6), ({"D": 1}, {"D": 2}, {"D": 3}),
            ((-100.0, 100.0), (-100.0, 100.0), (-100.0, -1e-3)),
            ((700.0, -300.0, -0.01), (1e-3, 2e-3, -5e5), (300.0, 5.0, -5e-7)),
            limits=({"D": 1}, {"D": 7}),
        ),
    ),
    "beta": Entry(
        beta, {"b": 2},
        Examples(
            {"b": 2.0}, (-1.5,), ({"b": 0.5}, {"b": 2.0}, {"b": 5.0}), ((-1e6, -1e-6),),
            ((-1e6,), (-1e3,), (-8.0,), (-8.1,), (-0.3,), (-1e-3,), (-1e-6,)), _NEGATIVE_GRID,
            limits=({"b": 1e-6}, {"b": 1e6}),
        ),
    ),
    "von_mises": Entry(
        von_mises, {},
        Examples(
            {}, (0.8, -0.5), ({},), ((-1e4, 1e4),) * 2,
            ((0.0, 0.0), (1e-8, 0.0), (0.6, -0.8), (0.0, 700.0), (1e4, 0.0), (-6e3, 8e3)),
        ),
    ),
    "von_mises_fisher": Entry(
        von_mises_fisher, {},
        Examples(
            {}, (0.3, -0.5, 0.8), ({},), ((-1e4, 1e4),) * 3,
            ((0.0, 0.0, 0.0), (0.0, 1e-8, 0.0), (0.6, 0.0, -0.8), (0.0, 0.0, 700.0),
             (1e4, 0.0, 0.0), (-6e3, 0.0, 8e3)),
        ),
    ),
    "beta_both": Entry(
        beta_both, {},
        Examples(
            {}, (-1.5, -2.5), ({},), ((-1e6, -1e-6),) * 2,
            ((-1e-6, -1e-6), (-1e6, -1e6), (-1e6, -1e-6)),
        ),
        family_class="dirichlet",
    ),
    "dirichlet": Entry(
        dirichlet, {"K": 3},
        Examples(
            {"K": 3}, (-1.5, -0.8, -2.2), ({"K": 2}, {"K": 3}), ((-1e6, -1e-6),) * 3,
            ((-1e-6, -1e-6, -1e-6), (-1e6, -1e6, -1e6), (-0.5, -1e6, -1e-6)),
            limits=({"K": 2}, {"K": 8}),
        ),
        family_class="dirichlet",
    ),
}

BUILDERS: dict[str, Callable[..., FamilyDefinition]] = {n: e.builder for n, e in ENTRIES.items()}
# Parameters each family accepts, with defaults (the CLI and the error messages use these).
PARAMETERS: dict[str, dict[str, Any]] = {n: e.parameters for n, e in ENTRIES.items()}
EXAMPLES: dict[str, Examples] = {n: e.examples for n, e in ENTRIES.items()}
# The parameter of each family as a SymPy symbol, with the assumptions its domain implies: the
# identities are proved once for every value (fisher_verify._src.identities.generic).
PARAMETER_SYMBOLS: dict[str, sp.Symbol] = {
    n: e.generic[0] for n, e in ENTRIES.items() if e.generic is not None
}


def register(name: str, entry: Entry) -> None:
    """Add (or replace) the catalog entry ``name``, keeping the derived tables in step.

    The catalog's own families are registered in :data:`ENTRIES` above; this is for a family
    defined elsewhere (a plug-in, a test). Lists that other modules build at import time
    (``testing.strategies.FAMILY_POINTS``, ``fisher.tightness.DEFAULT_FAMILIES``, the report's
    panels) see it when it is registered before they are imported.
    """
    if not isinstance(name, str) or not name.isidentifier() or name == "product":
        raise ParameterError(f"family name {name!r} must be an identifier other than 'product'")
    if not isinstance(entry, Entry):
        raise ParameterError(f"entry for {name!r} must be a catalog Entry, got {type(entry).__name__}")
    ENTRIES[name] = entry
    BUILDERS[name] = entry.builder
    PARAMETERS[name] = entry.parameters
    EXAMPLES[name] = entry.examples
    if entry.generic is not None:
        PARAMETER_SYMBOLS[name] = entry.generic[0]
    else:
        PARAMETER_SYMBOLS.pop(name, None)


def generic_definition(name: str) -> FamilyDefinition:
    """The family ``name`` with its parameter left as the symbol of :data:`PARAMETER_SYMBOLS`
    (no sampler or quadrature: it exists to be proved, not evaluated)."""
    generic = ENTRIES[name].generic
    if generic is None:
        raise KeyError(name)
    sym, build = generic
    return build(sym, None)


__all__ = ["PARAMETERS"]
