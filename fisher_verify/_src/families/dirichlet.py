"""The Dirichlet family and the beta with both shapes unknown (issue 18).

**Parametrization.** y on the simplex {y_i > 0, Σ y_i = 1} (K components), t(y) = −log y
(componentwise), h = −α < 0 (α the concentrations), b(y) = 1/Π y_i with respect to Lebesgue
measure on (y_1, …, y_{K−1}), F(h) = Σ log Γ(α_i) − log Γ(Σ α_i) (``log_multibeta``). As the beta
with one shape known (``beta``), t = −log y keeps the domain of the form h < 0. The beta with both
shapes unknown is the K = 2 case on (y, 1 − y), registered as ``beta_both`` with a scalar y in
(0, 1) (a Beta head's targets are scalars): t = (−log y, −log(1 − y)), h = (−α, −β).

SymPy derives η, I, κ₃, κ₄ from F: η_i = ψ(α₀) − ψ(α_i), I = diag ψ'(α_i) − ψ'(α₀) 11ᵀ, … with
α₀ = Σ α. The diagonal differences ψ⁽ᵐ⁾(α_i) − ψ⁽ᵐ⁾(α₀) cancel when α_i dominates α₀; they are
``lgamma_diff(m, α_i, α₀ − α_i)`` (a Taylor series in the rest there), the off-diagonal ψ⁽ᵐ⁾(α₀)
are ``polygamma_fn`` (Euler–Maclaurin Hurwitz zeta: no SciPy, and torch's trigamma is ~1e-10).

**Stick-breaking.** y_i = B_i Π_{j<i} (1 − B_j) (i < K − 1), y_{K−1} = Π_j (1 − B_j) with
independent B_j ~ Beta(α_j, Σ_{i>j} α_i): the Dirichlet density times the Jacobian
Π_j (1 − B_j)^{K−2−j} of this change of variables is the product of those beta densities, so
t_i = U_i + Σ_{j<i} V_j with (U_j, V_j) = (−log B_j, −log(1 − B_j)), independent across j. Both
routes below use it.

**Exact-expectation route (float64 nodes).** Per stick, a trapezoid rule in u with
logit B = log(α/β) + σ sinh(u) (σ² = ψ'(α) + ψ'(β), the variance of logit B): the integrand is
analytic and decays double-exponentially in u, so the rule converges geometrically in its step.
It is not a Gauss rule (polynomials in log y have none) and is accepted only once it reproduces
every mixed moment E[x^a y^b], a + b ≤ the degree asked, of the standardized (U, V) to
:data:`VERIFY_TOL` of their scale (plus the float64 rounding of t itself, ε|E t|/σ per degree),
the exact moments coming from the joint cumulants of (U, V) in mpmath (polygamma; the beta
integral B(α − s, β − r)/B(α, β) is their generating function). The step is halved until it
does, or the point is refused. A polynomial of degree ≤ D in t is a combination of products of
those per-stick monomials, so the tensor product rule carries the verified bound.

**Identities' route (mpmath).** Z(h) and the moments of t from the density alone: each stick's
mixed moments E[U^a V^b] by tanh-sinh quadrature of its beta density at the working precision
(the endpoint singularities mapped to exponential decay, as ``Family.integral_mp`` does for the
beta), combined through the stick-breaking; F, Γ and ψ are never used.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ..errors import DomainError, ParameterError, UnsupportedError
from ..symbolic.polygamma import np_polygamma
from ..symbolic.safe import log_multibeta
from ..validation import as_real_array, check_count, check_nonnegative
from .definition import FamilyDefinition, Support
from .family import Family, _bounded_integral

__all__ = ["DirichletFamily", "beta_both", "dirichlet"]

#: the largest K (the derivation holds C(K+3, 4) κ₄ entries, as the other vector families)
MAX_COMPONENTS = 8
#: a vector y is on the simplex when |Σ y − 1| is at most this (the sampler's rounding is K·ε)
SIMPLEX_TOL = 1e-12
#: relative accuracy to which a stick's rule must reproduce its standardized mixed moments
VERIFY_TOL = 1e-12
#: nodes of one y of the exact-expectation route beyond which it is refused
MAX_NODES = 200_000
#: log of the smallest weight kept, relative to the largest (e^−62 ≈ 1e−27)
_LOG_CUT = -62.0
#: −log y must stay below this for y to be a normal float64 (as ``beta``'s route)
_MAX_STAT = 700.0


def _check_k(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
            2 <= value <= MAX_COMPONENTS):
        raise ParameterError(
            f"family 'dirichlet': parameter K={value!r} is invalid; it must be an integer from 2 "
            f"to {MAX_COMPONENTS} (the derivation holds C(K+3, 4) κ₄ entries)")
    return int(value)


def _alphas(hh: np.ndarray) -> np.ndarray:
    return -np.asarray(hh, dtype=float)


def _log_gamma_draws(alpha: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """log G, G ~ Gamma(α, 1), shape (n, *α.shape): log Gamma(α + 1) + log(U)/α (G = G' U^{1/α}),
    finite where a Gamma(10⁻⁶) draw itself underflows to 0."""
    g1 = rng.gamma(alpha + 1.0, size=(n, *alpha.shape))
    u = rng.random((n, *alpha.shape))
    return np.log(g1) + np.log(u) / alpha


def _dirichlet_draws(alpha: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    log_g = _log_gamma_draws(alpha, n, rng)
    top = np.max(log_g, axis=-1, keepdims=True)
    e = np.exp(log_g - top)
    return e / np.sum(e, axis=-1, keepdims=True)


def dirichlet(K: Any = 3) -> FamilyDefinition:  # noqa: N803 - K as categorical
    """Dirichlet with K components: y on the simplex, t(y) = −log y, h = −α < 0,
    b(y) = 1/Π y_i, F(h) = Σ log Γ(α_i) − log Γ(Σ α_i) (module docstring)."""
    k = _check_k(K)
    hs = tuple(sp.Symbol(f"h{i}", negative=True) for i in range(k))
    ys = tuple(sp.Symbol(f"y{i}", positive=True) for i in range(k))
    alphas = tuple(sp.Symbol(f"alpha{i}", positive=True) for i in range(k))

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        return dirichlet_rule(hh, degree)

    return FamilyDefinition(
        name="dirichlet",
        params={"K": k},
        h=hs,
        y=ys[0],
        event=ys,
        statistic=tuple(-sp.log(v) for v in ys),
        log_base=-sp.Add(*[sp.log(v) for v in ys]),
        support=Support("continuous", lower=sp.Integer(0), upper=sp.Integer(1), total=1, size=k),
        log_partition=log_multibeta(*[-v for v in hs]),
        negative=tuple(range(k)),
        domain_text="every h_i < 0 (h = −α, α the concentrations)",
        sampler=lambda hh, n, rng: _dirichlet_draws(_alphas(hh), n, rng),
        mean_symbols=alphas,  # the concentrations; E[−log y_i] = ψ(α₀) − ψ(α_i)
        natural_of_mean=tuple(-a for a in alphas),
        eta_of_mean=tuple(sp.polygamma(0, sp.Add(*alphas)) - sp.polygamma(0, a) for a in alphas),
        quadrature=rule,
        symbolic_density=False,
        route=ROUTE,
        description=f"proportions over K={k} components (t = −log y, α = −h)",
    )


def beta_both() -> FamilyDefinition:
    """Beta with both shapes unknown: y in (0, 1), t(y) = (−log y, −log(1 − y)),
    h = (−α, −β) < 0, b(y) = 1/(y(1 − y)), F(h) = log Γ(α) + log Γ(β) − log Γ(α + β): the
    Dirichlet with K = 2 on (y, 1 − y), for a Beta head that outputs both concentrations."""
    h0, h1 = sp.Symbol("h0", negative=True), sp.Symbol("h1", negative=True)
    yp = sp.Symbol("y", positive=True)
    a, b = sp.Symbol("alpha", positive=True), sp.Symbol("beta", positive=True)

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        return _dirichlet_draws(_alphas(hh), n, rng)[..., 0]

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        return beta_both_rule(hh, degree)

    return FamilyDefinition(
        name="beta_both",
        params={},
        h=(h0, h1),
        y=yp,
        statistic=(-sp.log(yp), -sp.log(1 - yp)),
        log_base=-sp.log(yp) - sp.log(1 - yp),
        support=Support("continuous", lower=sp.Integer(0), upper=sp.Integer(1)),
        log_partition=log_multibeta(-h0, -h1),
        negative=(0, 1),
        domain_text="h0 < 0 and h1 < 0 (h = (−α, −β), the two shapes)",
        sampler=sampler,
        mean_symbols=(a, b),
        natural_of_mean=(-a, -b),
        eta_of_mean=(sp.polygamma(0, a + b) - sp.polygamma(0, a),
                     sp.polygamma(0, a + b) - sp.polygamma(0, b)),
        quadrature=rule,
        symbolic_density=False,
        route=ROUTE_BETA,
        description="proportions in (0, 1) with both shapes learned (Dirichlet K = 2 on "
        "(y, 1 − y); t = (−log y, −log(1 − y)))",
    )


ROUTE = (
    "stick-breaking y_i = B_i Π_{j<i}(1 − B_j), B_j ~ Beta(α_j, Σ_{i>j} α_i) independent: the "
    "tensor product of one trapezoid rule per stick in u, logit B = log(α/β) + σ sinh(u), each "
    f"verified against the exact mixed moments of (−log B, −log(1 − B)) (joint cumulants, mpmath "
    f"polygamma) to {VERIFY_TOL:g} of their scale; identities in mpmath at 40 digits from the "
    "density alone (each stick's moments by tanh-sinh quadrature of its beta density)"
)
ROUTE_BETA = (
    "a trapezoid rule in u, logit y = log(α/β) + σ sinh(u), verified against the exact mixed "
    "moments of (−log y, −log(1 − y)) (joint cumulants, mpmath polygamma) to "
    f"{VERIFY_TOL:g} of their scale; identities in mpmath at 40 digits by tanh-sinh quadrature "
    "of the density"
)


# --- the exact-expectation route ---------------------------------------------------------------


def _stick_cumulant(i: int, j: int, a: Any, b: Any) -> Any:
    """Joint cumulant κ_{ij} of (U, V) = (−log B, −log(1 − B)), B ~ Beta(a, b): the (i, j)-th
    derivative of log B(a − s, b − r) at 0."""
    if j == 0:
        return (-1) ** i * (mpmath.psi(i - 1, a) - mpmath.psi(i - 1, a + b))
    if i == 0:
        return (-1) ** j * (mpmath.psi(j - 1, b) - mpmath.psi(j - 1, a + b))
    return -((-1) ** (i + j)) * mpmath.psi(i + j - 1, a + b)


def stick_moments(alpha: float, beta: float, degree: int) -> tuple[dict[tuple[int, int], Any],
                                                                     tuple[Any, Any, Any, Any]]:
    """E[x^i y^j], i + j ≤ degree, of the standardized x = (U − E U)/sd U, y = (V − E V)/sd V,
    from the joint cumulants (exp of their generating series), in mpmath; and (E U, E V, sd U,
    sd V)."""
    extra = int(abs(math.log10(alpha / beta))) + 20
    with mpmath.workdps(30 + extra):
        a, b = mpmath.mpf(alpha), mpmath.mpf(beta)
        mu = (_stick_cumulant(1, 0, a, b), _stick_cumulant(0, 1, a, b))
        sd = (mpmath.sqrt(_stick_cumulant(2, 0, a, b)), mpmath.sqrt(_stick_cumulant(0, 2, a, b)))
        series = {(i, j): _stick_cumulant(i, j, a, b) / (sd[0] ** i * sd[1] ** j)
                  / (math.factorial(i) * math.factorial(j))
                  for i in range(degree + 1) for j in range(degree + 1 - i) if i + j >= 2}
        gen: dict[tuple[int, int], Any] = {(0, 0): mpmath.mpf(1)}
        term: dict[tuple[int, int], Any] = {(0, 0): mpmath.mpf(1)}
        for n in range(1, degree // 2 + 1):  # each cumulant has degree ≥ 2
            nxt: dict[tuple[int, int], Any] = {}
            for (i1, j1), c1 in term.items():
                for (i2, j2), c2 in series.items():
                    if i1 + i2 + j1 + j2 <= degree:
                        key = (i1 + i2, j1 + j2)
                        nxt[key] = nxt.get(key, 0) + c1 * c2 / n
            term = nxt
            for key, v in term.items():
                gen[key] = gen.get(key, 0) + v
        moments = {(i, j): gen.get((i, j), mpmath.mpf(0)) * math.factorial(i) * math.factorial(j)
                   for i in range(degree + 1) for j in range(degree + 1 - i)}
        return moments, (mu[0], mu[1], sd[0], sd[1])


def _stick_nodes(alpha: float, beta: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """logit B nodes and normalized weights of the sinh-mapped trapezoid rule (module docstring)."""
    sigma = math.sqrt(float(np_polygamma(1, alpha) + np_polygamma(1, beta)))
    centre = math.log(alpha) - math.log(beta)
    # beyond |logit B − centre| = 62/α (left) or 62/β (right) the density is below e^−62 of its
    # peak (its tails decay as e^{α z} and e^{−β z})
    span = max(64.0 / alpha, 64.0 / beta, 14.0 * sigma)
    u_max = math.asinh(span / sigma)
    u = np.arange(-u_max, u_max + step / 2, step)
    z = centre + sigma * np.sinh(u)
    log_w = -alpha * np.logaddexp(0.0, -z) - beta * np.logaddexp(0.0, z) + np.log(np.cosh(u))
    keep = log_w - np.max(log_w) > _LOG_CUT
    z, log_w = z[keep], log_w[keep]
    w = np.exp(log_w - np.max(log_w))
    return z, w / np.sum(w)


@lru_cache(maxsize=4096)
def stick_rule(alpha: float, beta: float, degree: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """logit B nodes and weights of one stick B ~ Beta(α, β), verified to reproduce every
    standardized mixed moment of (−log B, −log(1 − B)) of degree ≤ ``degree`` (module docstring).

    Raises:
        DomainError: the nodes reach −log B or −log(1 − B) above 700 (y below float64's
            normal range), or no step verifies (the parameters are beyond this route).
    """
    moments, (mu_u, mu_v, sd_u, sd_v) = stick_moments(alpha, beta, degree)
    keys = sorted(moments)
    exact = np.array([float(moments[k]) for k in keys])
    mu = (float(mu_u), float(mu_v))
    sd = (float(sd_u), float(sd_v))
    # the rounding of t itself: −log B carries ε|E U| absolute error, ε|E U|/sd U standardized
    floor = 4 * np.finfo(float).eps * degree * (abs(mu[0]) / sd[0] + abs(mu[1]) / sd[1] + 1.0)
    worst = math.inf
    for step in (0.1, 0.05, 0.025, 0.0125):
        z, w = _stick_nodes(alpha, beta, step)
        u_stat, v_stat = np.logaddexp(0.0, -z), np.logaddexp(0.0, z)
        if max(u_stat.max(), v_stat.max()) > _MAX_STAT:
            raise DomainError(
                f"Beta({alpha:.6g}, {beta:.6g}) stick: the exact-expectation nodes reach "
                f"−log y = {max(u_stat.max(), v_stat.max()):.4g}, beyond {_MAX_STAT:g} (y below "
                "the smallest normal float64); a concentration this small is outside this route "
                "(the kernels still hold there)")
        x, y = (u_stat - mu[0]) / sd[0], (v_stat - mu[1]) / sd[1]
        values = np.array([x**i * y**j for i, j in keys])
        scale = np.maximum(1.0, np.abs(values) @ w)
        worst = float(np.max(np.abs(values @ w - exact) / scale))
        if worst > VERIFY_TOL + floor:
            continue
        return tuple(z.tolist()), tuple(w.tolist())
    raise DomainError(
        f"Beta({alpha:.6g}, {beta:.6g}) stick: the exact-expectation rule reproduces its moments "
        f"only to {worst:.3g} of their scale (needed: {VERIFY_TOL + floor:.3g})")


def _log_nodes(alpha: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """log y (S, K) and weights (S,) at one α (K,): the tensor product of the stick rules
    (module docstring), weights below e^−62 of the largest dropped.

    Raises:
        UnsupportedError: more than :data:`MAX_NODES` nodes.
    """
    k = len(alpha)
    rests = [float(np.sum(alpha[j + 1:])) for j in range(k - 1)]
    sticks = [stick_rule(float(alpha[j]), rests[j], max(int(degree), 1)) for j in range(k - 1)]
    count = math.prod(len(w) for _, w in sticks)
    if count > MAX_NODES:
        raise UnsupportedError(
            f"dirichlet(K={k}) at α = {alpha.tolist()}: the exact-expectation rule has {count} "
            f"nodes per y, above the limit {MAX_NODES}; use fewer components or sampling")
    log_y = np.zeros((1, k))
    log_w = np.zeros(1)
    for j, (z, w) in enumerate(sticks):
        zz, lw = np.asarray(z), np.log(np.asarray(w))
        step = np.zeros((len(zz), k))
        step[:, j] = -np.logaddexp(0.0, -zz)  # log B_j
        step[:, j + 1:] = -np.logaddexp(0.0, zz)[:, None]  # log(1 − B_j) for the later y
        log_y = (log_y[:, None, :] + step[None, :, :]).reshape(-1, k)
        log_w = (log_w[:, None] + lw[None, :]).reshape(-1)
        keep = log_w - np.max(log_w) > _LOG_CUT
        log_y, log_w = log_y[keep], log_w[keep]
    weights = np.exp(log_w - np.max(log_w))
    return log_y, weights / np.sum(weights)


def _batched(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """log y (..., S, K) and weights (..., S) for h (..., K), padded with zero weights (at
    y_i = 1/K) to the largest S of the batch."""
    alpha = _alphas(hh)
    k = alpha.shape[-1]
    batch = alpha.shape[:-1]
    rows = [_log_nodes(alpha[index], degree) for index in np.ndindex(batch)]
    size = max((len(w) for _, w in rows), default=1)
    log_y = np.full((*batch, size, k), -math.log(k))
    weights = np.zeros((*batch, size))
    for index, (ly, w) in zip(np.ndindex(batch), rows):
        log_y[index][: len(w)] = ly
        weights[index][: len(w)] = w
    return log_y, weights


def dirichlet_rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes y (..., S, K) and weights (..., S) for h (..., K) (module docstring)."""
    log_y, weights = _batched(hh, degree)
    return np.exp(log_y), weights


def statistic_nodes(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes t = −log y (..., S, K) and weights (..., S), t straight from the sticks' log-space
    values: the scalar y of ``beta_both`` cannot hold 1 − y within 1e-16 of 1, where its
    moments of degree 8 at β ≤ 1 still have mass (E[(−log(1 − y))⁸] at β = 0.5 comes from
    1 − y ~ e^−32)."""
    log_y, weights = _batched(hh, degree)
    return -log_y, weights


def beta_both_rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes y (..., S) and weights (..., S) of ``beta_both`` at h (..., 2): its one stick's
    rule (the family's own ``expectation_nodes`` takes t from :func:`statistic_nodes` instead,
    since y within 1e-16 of 1 rounds)."""
    nodes, weights = dirichlet_rule(hh, degree)
    return nodes[..., 0], weights


# --- the family: the identities' mpmath route and the simplex's labels ---------------------------


def _stick_density_moments(alpha: Any, beta: Any, order: int) -> dict[tuple[int, int], Any]:
    """E[U^a V^b], a + b ≤ order (at least 4), of one stick B ~ Beta(α, β) in mpmath, each
    integral of the beta density B^{α−1}(1 − B)^{β−1} (and its normalizer) by tanh-sinh
    quadrature: no Γ, no ψ. Kept per (α, β, order, precision): the identities ask the same
    point for every entry of a tensor."""
    return _stick_density_moments_at(mpmath.mpf(alpha), mpmath.mpf(beta), max(order, 4),
                                     mpmath.mp.dps)


@lru_cache(maxsize=256)
def _stick_density_moments_at(alpha: Any, beta: Any, order: int,
                              dps: int) -> dict[tuple[int, int], Any]:
    cache: dict[Any, tuple[Any, Any, Any]] = {}

    def parts(b: Any) -> tuple[Any, Any, Any]:
        if b not in cache:
            u, v = -mpmath.log(b), -mpmath.log1p(-b)
            cache[b] = (u, v, mpmath.exp(-(alpha - 1) * u - (beta - 1) * v))
        return cache[b]

    def integral(i: int, j: int) -> Any:
        def f(b: Any) -> Any:
            if not 0 < b < 1:
                return mpmath.mpf(0)
            u, v, dens = parts(b)
            return u**i * v**j * dens
        return _bounded_integral(f, mpmath.mpf(0), mpmath.mpf(1))

    # at half as many digits again: tanh-sinh stops near 10^(−dps·0.6) of a slowly decaying
    # endpoint (β = 0.28: (1 − B)^{−0.72} log^j(1 − B))
    with mpmath.workdps(dps + dps // 2 + 10):
        z = integral(0, 0)
        out = {(i, j): integral(i, j) / z if i + j else mpmath.mpf(1)
               for i in range(order + 1) for j in range(order + 1 - i)}
    return {key: +value for key, value in out.items()}


class DirichletFamily(Family):
    """The Dirichlet family: its mpmath moments through the stick-breaking (module docstring)
    and labels on the simplex."""

    # the sticks' nodes pass −log y = 700 (y subnormal) below a concentration of about 0.1,
    # where the route refuses by name: random test networks keep α ≥ 0.5
    strategy_margin = 0.5

    def check_labels(self, y: Any, name: str = "labels") -> np.ndarray:
        """``y`` (..., K) when every vector lies on the open simplex: components in (0, 1) and
        |Σ y − 1| ≤ :data:`SIMPLEX_TOL` (t = −log y is infinite at a zero component).

        Raises:
            DomainError: naming ``name``, the vector and the simplex.
        """
        if not self.definition.event:  # beta_both: a scalar y in (0, 1)
            return super().check_labels(y, name)
        arr = as_real_array(y, name)
        k = self.dim
        if arr.ndim == 0 or arr.shape[-1] != k:
            from ..errors import ShapeError

            raise ShapeError(f"{self.label}: {name} must have a last axis of size {k} (one "
                             f"vector y of {k} proportions per draw), got shape {arr.shape}")
        finite = np.all(np.isfinite(arr), axis=-1)
        safe = np.where(np.isfinite(arr), arr, 0.5)
        ok = finite & np.all((safe > 0) & (safe < 1), axis=-1)
        ok &= np.abs(np.sum(safe, axis=-1) - 1.0) <= SIMPLEX_TOL
        if not np.all(ok):
            bad = arr[~ok][0]
            raise DomainError(
                f"{name}: {[float(v) for v in bad]} is not a value of {self.label}, whose labels "
                f"are vectors of {k} proportions in (0, 1) summing to 1 (within {SIMPLEX_TOL:g})")
        return arr

    def expectation_nodes(
        self, h: np.ndarray, degree: int = 4, tol: float = 1e-15
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Nodes t (..., S, d) and weights (..., S): the tensor product of the verified stick
        rules (module docstring), t = −log y taken from the sticks' log-space values, never
        from a rounded y (:func:`statistic_nodes`); 0 for the tail (none is cut beyond the
        weights below e^−62 of the largest, within the verified moments)."""
        h = as_real_array(h, "natural parameter h")
        degree = check_count(degree, "degree", minimum=0)
        check_nonnegative(tol, "tol", strict=True)
        self.check_natural(h)
        t, w = statistic_nodes(h, degree)
        return t, w, 0.0

    def _sticks_mp(self, h: Any) -> list[tuple[Any, Any]]:
        """(α_j, Σ_{i>j} α_i) of each stick (beta_both: the one stick (α, β))."""
        alpha = [-mpmath.mpf(v) for v in h]
        return [(alpha[j], mpmath.fsum(alpha[j + 1:])) for j in range(self.dim - 1)]

    def integral_mp(self, h: Any, g: Any = None) -> Any:
        """Z(h) = ∫ Π y_i^{α_i − 1} dy over the simplex, as the product of the sticks' beta
        integrals (the stick-breaking's Jacobian included; module docstring), each by tanh-sinh
        quadrature of its density: F is never used. Only g = 1 (moments: :meth:`moment_mp`)."""
        if g is not None:
            raise UnsupportedError(f"{self.label}: integral_mp integrates only g = 1; use "
                                   "moment_mp for moments")
        out = mpmath.mpf(1)
        for a, b in self._sticks_mp(h):
            def f(x: Any, a: Any = a, b: Any = b) -> Any:
                if not 0 < x < 1:
                    return mpmath.mpf(0)
                return mpmath.exp((a - 1) * mpmath.log(x) + (b - 1) * mpmath.log1p(-x))
            with mpmath.workdps(mpmath.mp.dps + mpmath.mp.dps // 2 + 10):
                out *= _bounded_integral(f, mpmath.mpf(0), mpmath.mpf(1))
        return +out

    def moment_mp(self, powers: tuple[int, ...], h: Any, center: bool = True) -> Any:
        """E[Π_a (t_a − η_a)^{k_a}] from the density, in mpmath: t_i = U_i + Σ_{j<i} V_j over
        independent sticks (module docstring), each stick's mixed moments by quadrature of its
        beta density. Never uses F."""
        order = max(sum(powers), 1)
        sticks = [_stick_density_moments(a, b, order) for a, b in self._sticks_mp(h)]
        k = self.dim
        nvar = 2 * (k - 1)  # (U_0, V_0, U_1, V_1, …)

        def linear(i: int) -> dict[tuple[int, ...], Any]:
            poly: dict[tuple[int, ...], Any] = {}
            for j in range(min(i, k - 1)):
                e = [0] * nvar
                e[2 * j + 1] = 1
                poly[tuple(e)] = mpmath.mpf(1)
            if i < k - 1:
                e = [0] * nvar
                e[2 * i] = 1
                poly[tuple(e)] = mpmath.mpf(1)
            return poly

        def expect(poly: dict[tuple[int, ...], Any]) -> Any:
            total = mpmath.mpf(0)
            for e, c in poly.items():
                term = c
                for j in range(k - 1):
                    term *= sticks[j][(e[2 * j], e[2 * j + 1])]
                total += term
            return total

        def times(p: dict[tuple[int, ...], Any], q: dict[tuple[int, ...], Any]) -> dict:
            out: dict[tuple[int, ...], Any] = {}
            for (e1, c1), (e2, c2) in itertools.product(p.items(), q.items()):
                e = tuple(x + y for x, y in zip(e1, e2))
                out[e] = out.get(e, 0) + c1 * c2
            return out

        poly: dict[tuple[int, ...], Any] = {(0,) * nvar: mpmath.mpf(1)}
        for i, power in enumerate(powers):
            if not power:
                continue
            lin = linear(i)
            if center:
                lin = dict(lin)
                lin[(0,) * nvar] = -expect(linear(i))
            for _ in range(power):
                poly = times(poly, lin)
        return expect(poly)
