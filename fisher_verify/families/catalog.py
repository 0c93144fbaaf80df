"""The catalog: one symbolic definition per exponential family (issue 2, ``table-1``).

Each builder validates its fixed parameters (refusing, never changing, what the user gave)
and returns a :class:`FamilyDefinition`. Nothing here differentiates anything: the
cumulants are derived from ``log_partition`` by :mod:`fisher_verify.symbolic.derive`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import sympy as sp

from ..errors import ParameterError
from ..symbolic.safe import NUMPY_KERNELS, expit, log1mexp, logsumexp, softplus
from .definition import FamilyDefinition, Support
from .quadrature import gauss_hermite, gauss_laguerre, points_for_degree

_expit_np = NUMPY_KERNELS["expit"]
_inv_expm1_np = NUMPY_KERNELS["inv_expm1"]

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
    """A user parameter as an exact SymPy number (floats by their exact decimal value)."""
    return sp.Integer(value) if isinstance(value, int) else sp.nsimplify(value, rational=True)


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
    h, p = _h(), sp.Symbol("p", positive=True)
    return FamilyDefinition(
        name="binomial",
        params={"n": n},
        h=(h,),
        y=Y_INT,
        statistic=(Y_INT,),
        log_base=sp.log(sp.binomial(n, Y_INT)),
        support=Support("finite", values=tuple(range(n + 1))),
        log_partition=n * softplus(h),
        negative=(),
        domain_text="any real h",
        sampler=lambda hh, m, rng: rng.binomial(
            n, _expit_np(_scalar_h(hh)), size=(m, *np.shape(hh)[:-1])
        ).astype(float),
        mean_symbols=(p,),
        natural_of_mean=(sp.log(p / (1 - p)),),
        description=f"count of successes in n={n} trials",
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
    rs = _exact(r)
    h, mu = _h(negative=True), sp.Symbol("mu", positive=True)

    def ratio(hh: np.ndarray, y: np.ndarray) -> np.ndarray:
        # p(y+1)/p(y) = q (y+r)/(y+1), monotone in y, so its sup over y' >= y is at y or at ∞
        return np.exp(_scalar_h(hh)) * np.maximum(1.0, (y + r) / (y + 1.0))

    return FamilyDefinition(
        name="negative_binomial",
        params={"r": r},
        h=(h,),
        y=Y_INT,
        statistic=(Y_INT,),
        log_base=sp.log(sp.gamma(Y_INT + rs)) - sp.log(sp.gamma(rs)) - sp.log(sp.factorial(Y_INT)),
        support=Support("countable", start=0),
        log_partition=-rs * log1mexp(h),
        negative=(0,),
        domain_text="h < 0",
        sampler=lambda hh, n, rng: rng.negative_binomial(
            r, -np.expm1(_scalar_h(hh)), size=(n, *np.shape(hh)[:-1])
        ).astype(float),
        mean_symbols=(mu,),
        natural_of_mean=(sp.log(mu / (rs + mu)),),
        ratio_bound=ratio,
        description=f"failures before the r={r}-th success",
    )


def normal(sigma: Any = 1) -> FamilyDefinition:
    """Normal with known σ: t(y) = y, h = μ/σ², F(h) = σ² h²/2 (σ = 1 in ``table-1``)."""
    sigma = _positive_real("normal", "sigma", sigma)
    s = _exact(sigma)
    h, mu = _h(), sp.Symbol("mu", real=True)

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        x, w = gauss_hermite(points_for_degree(degree))
        mean = float(sigma) ** 2 * _scalar_h(hh)[..., None]
        return mean + math.sqrt(2.0) * float(sigma) * x, np.broadcast_to(
            w / math.sqrt(math.pi), mean.shape[:-1] + w.shape
        )

    return FamilyDefinition(
        name="normal",
        params={"sigma": sigma},
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
        quadrature=rule,
        description=f"regression with known sigma={sigma}",
    )


def _gamma_rule(shape: float) -> Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]:
    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        x, w = gauss_laguerre(points_for_degree(degree), shape - 1.0)
        rate = -_scalar_h(hh)[..., None]
        return x / rate, np.broadcast_to(w / math.gamma(shape), rate.shape[:-1] + w.shape)

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
    ks = _exact(k)
    h, mu = _h(negative=True), sp.Symbol("mu", positive=True)
    yp = sp.Symbol("y", positive=True)
    return FamilyDefinition(
        name="gamma",
        params={"shape": k},
        h=(h,),
        y=yp,
        statistic=(yp,),
        log_base=(ks - 1) * sp.log(yp) - sp.log(sp.gamma(ks)),
        support=Support("continuous", lower=sp.Integer(0)),
        log_partition=-ks * sp.log(-h),
        negative=(0,),
        domain_text="h < 0",
        sampler=lambda hh, n, rng: rng.gamma(
            float(k), -1.0 / _scalar_h(hh), size=(n, *np.shape(hh)[:-1])
        ),
        mean_symbols=(mu,),
        natural_of_mean=(-ks / mu,),
        quadrature=_gamma_rule(float(k)),
        description=f"positive values with known shape={k}",
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
    hs = tuple(_h(f"h{i}") for i in range(k))
    ps = tuple(sp.Symbol(f"p{i}", positive=True) for i in range(k))
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
        statistic=tuple(sp.KroneckerDelta(Y_INT, i) for i in range(k)),
        log_base=sp.Integer(0),
        support=Support("finite", values=tuple(range(k))),
        log_partition=logsumexp(*hs),
        negative=(),
        domain_text="any real logits h (softmax link; h and h + c·1 give the same law)",
        sampler=sampler,
        mean_symbols=ps,
        natural_of_mean=tuple(sp.log(p) for p in ps),
        description=f"classification over K={k} classes (softmax logits)",
    )


BUILDERS: dict[str, Callable[..., FamilyDefinition]] = {
    "bernoulli": bernoulli,
    "normal": normal,
    "poisson": poisson,
    "categorical": categorical,
    "binomial": binomial,
    "geometric": geometric,
    "negative_binomial": negative_binomial,
    "exponential": exponential,
    "gamma": gamma,
    "normal_unknown_variance": normal_unknown_variance,
}

# Parameters each family accepts, with defaults (the CLI and the error messages use these).
PARAMETERS: dict[str, dict[str, Any]] = {
    "bernoulli": {},
    "normal": {"sigma": 1},
    "poisson": {},
    "categorical": {"K": 3},
    "binomial": {"n": 1},
    "geometric": {},
    "negative_binomial": {"r": 1},
    "exponential": {},
    "gamma": {"shape": 2},
    "normal_unknown_variance": {},
}

TABLE_1 = ("bernoulli", "normal", "poisson")

__all__ = ["BUILDERS", "PARAMETERS", "TABLE_1", "expit"]
