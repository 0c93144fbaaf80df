"""Directional families (issue 18): the von Mises law on the circle and the von Mises–Fisher
law on the sphere S².

**von Mises.** y ∈ [−π, π], t(y) = (cos y, sin y), h = κ(cos μ, sin μ) ∈ ℝ², b(y) = 1,
F(h) = log(2π I₀(‖h‖)) with I₀(r) = ₀F₁(; 1; r²/4): analytic in h, written as
:class:`~fisher_verify._src.symbolic.safe.log_bessel_radial` so that η = A(κ) h/κ
(A = I₁/I₀), I, κ₃ and κ₄ are exact and finite at h = 0 and stable for large κ.

**Independent route: the trapezoid rule on the circle, with a proven error bound.** For a
periodic f = Σ_k c_k e^{iky}, the N-point rule at y_j = μ + 2πj/N gives 2π Σ_l c_{lN} e^{ilNμ},
so its error is 2π Σ_{l≠0} c_{lN}·(…). For f = g(t(y)) e^{κ cos(y − μ)} with g a trigonometric
polynomial of degree ≤ D whose Fourier coefficients have absolute sum ‖g‖, the coefficients
are c_k = Σ_{|i|≤D} g_i I_{k−i}(κ)(…), hence, relative to ∫ e^{κ cos(y−μ)} dy = 2π I₀(κ),

    |error| / (2π I₀(κ)) ≤ ‖g‖ · T(N − D),   T(m) = Σ_{|k|≥m} I_k(κ) / I₀(κ).

T(m) by a Chernoff bound on the generating function Σ_k I_k(κ) s^k = e^{κ(s+1/s)/2} (every
I_k ≥ 0 for integer k) at s = e^u, u = asinh(m/κ), and e^{−κ} I₀(κ) = (1/π)∫₀^π e^{−κ(1−cos θ)} dθ
≥ (1/π)∫₀^π e^{−κθ²/2} dθ:

    T(m) ≤ 2 exp(−m·asinh(m/κ) + √(κ² + m²) − κ) · √(2πκ) / erf(π√(κ/2))    (κ > 0; 0 at κ = 0).

:func:`trapezoid_tail_bound` computes it; :func:`circle_points` takes the smallest N with
‖g‖·T(N − D) below the tolerance for ‖g‖ ≤ 4^D (a product of D factors uᵀ(t − c) with
|u_a|, |c_a| ≤ 1 has ‖g‖ ≤ 4^D). Nodes whose weight e^{κ(cos θ_j − 1)} is below e^{−60} are
left out (at most N e^{−60} < 10⁻²⁰ of the total for N ≤ 10⁶), so a concentrated law needs about
60 nodes whatever κ. The float rule's weights are normalised by their own sum (the rule applied
to g = 1), so no Bessel function enters it: it shares nothing with the kernels.

**von Mises–Fisher on S².** y ∈ S² ⊂ ℝ³, t(y) = y, b = 1 (surface measure),
F(h) = log(4π sinh κ/κ) = log 4π + log ₀F₁(; 3/2; κ²/4), κ = ‖h‖. In the frame of h
(μ̂ = h/κ and two unit vectors e₁, e₂ orthogonal to it) y = w μ̂ + √(1−w²)(cos φ e₁ + sin φ e₂)
with dA = dw dφ, w = cos θ of density ∝ e^{κw} on [−1, 1] and φ uniform. A polynomial g(y) of
degree ≤ D averaged over φ by the (D+1)-point trapezoid rule (exact for trigonometric
polynomials of degree ≤ D) leaves a polynomial ḡ(w) of degree ≤ D (odd powers of √(1−w²) come
with odd trigonometric degree and average to 0), integrated against e^{κ(w−1)} by

* κ ≥ :data:`KAPPA_LAGUERRE` = 40: Gauss–Laguerre in x = κ(1 − w) ∈ [0, 2κ], exact for ḡ over
  [0, ∞); cutting the law at x = 2κ changes E[ḡ] by at most ‖ḡ‖ e^{−2κ}(2^{D+1} + 2) (for
  κ ≥ D), below 10⁻³² here, and every node lies below 2κ (on the sphere);
* κ < 40: Gauss–Legendre in w with n nodes, whose error for f analytic in the Bernstein
  ellipse E_ρ with |f| ≤ M is at most (64/15) M ρ^{−2n}/(ρ² − 1) (Trefethen, SIAM Review 50
  (2008), Thm 4.5); on E_ρ, |w| and |√(1−w²)| are at most a = (ρ + 1/ρ)/2 and
  |e^{κ(w−1)}| ≤ e^{κ(a−1)}, so relative to Z = ∫ e^{κ(w−1)} dw = (1 − e^{−2κ})/κ the error is
  at most (64/15) ‖ḡ‖ a^D e^{κ(a−1)} ρ^{−2n} / ((ρ² − 1) Z) (:func:`legendre_bound`, minimised
  over ρ; n is the smallest with bound ≤ 10⁻¹⁷ at κ = 40 for ‖ḡ‖ ≤ 4^D, and the bound grows
  with κ, so it holds below).

In mpmath, after the same exact trapezoid rule in φ, the w-integral is Gauss–Legendre with the
Bernstein-ellipse bound below 10^{−(dps+10)} for κ ≤ 100, else mpmath's tanh-sinh quadrature
with its error estimate checked.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ..symbolic.safe import log_bessel_radial
from .definition import FamilyDefinition, Support
from .quadrature import gauss_laguerre_probability, points_for_degree

__all__: list[str] = []  # the catalog registers the builders

#: nodes whose weight e^{κ(cos θ − 1)} is below e^{−DROP} are left out of the float rule
DROP = 60.0
#: the float rule's relative error bound for g with ‖g‖ ≤ 4^D (module docstring)
FLOAT_TOL = 1e-17
#: the mpmath rule assumes polynomials of degree ≤ this in t (the identities use ≤ 4, the
#: gate's spread test ≤ 8)
MP_DEGREE = 8
#: the most nodes a rule may take before the pruning above (κ ≈ 10¹⁰ needs ~10⁶)
MAX_NODES = 10**7


def _log_min_i0e(kappa: float) -> float:
    """log of the lower bound erf(π√(κ/2))/√(2πκ) ≤ e^{−κ} I₀(κ) (module docstring)."""
    if kappa < 1e-30:
        return 0.0
    return math.log(math.erf(math.pi * math.sqrt(kappa / 2.0))) - 0.5 * math.log(
        2.0 * math.pi * kappa)


def log_tail_bound(kappa: float, m: int) -> float:
    """log of the bound on T(m) = Σ_{|k|≥m} I_k(κ)/I₀(κ) (module docstring); −inf at κ = 0."""
    if m <= 0:
        return math.log(2.0) + 50.0  # no bound claimed: T(0) ≥ 1
    if kappa == 0.0:
        return -math.inf
    x = m / kappa
    # √(κ² + m²) − κ = m²/(√(κ² + m²) + κ), without cancellation for m ≪ κ
    expo = -m * math.asinh(x) + m * m / (math.hypot(kappa, m) + kappa)
    return math.log(2.0) + expo - _log_min_i0e(kappa)


def trapezoid_tail_bound(kappa: float, m: int) -> float:
    """The bound on T(m) = Σ_{|k|≥m} I_k(κ)/I₀(κ), the trapezoid rule's relative error per
    unit ‖g‖ with N − D = m (module docstring)."""
    return math.exp(min(log_tail_bound(kappa, m), 700.0))


def circle_points(kappa: float, degree: int, log_tol: float) -> int:
    """The smallest N with 4^D · T(N − D) ≤ e^{log_tol} (D = degree)."""
    target = log_tol - degree * math.log(4.0)
    # the bound decreases in m: double, then bisect
    hi = 1
    while log_tail_bound(kappa, hi) > target:
        hi *= 2
        if hi > MAX_NODES:
            raise ValueError(f"κ = {kappa:g} needs more than {MAX_NODES} trapezoid nodes")
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if log_tail_bound(kappa, mid) > target:
            lo = mid
        else:
            hi = mid
    return hi + degree


def circle_rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes y (..., S) and weights (..., S) with Σ w g(t(y)) = E[g(t(y))] to a relative error
    ≤ 2·10⁻¹⁷ for trigonometric polynomials g of degree ≤ ``degree`` with ‖g‖ ≤ 4^degree
    (module docstring); zero weights pad the rows to a common S."""
    h = np.asarray(hh, dtype=float)
    batch = h.shape[:-1]
    kappa = np.hypot(h[..., 0], h[..., 1]).reshape(-1)
    mu = np.arctan2(h[..., 1], h[..., 0]).reshape(-1)
    counts = [circle_points(float(k), int(degree), math.log(FLOAT_TOL)) for k in kappa]
    half = []
    for k, n in zip(kappa, counts):
        if k <= DROP / 2.0:
            half.append(n // 2)
        else:  # |θ| ≤ arccos(1 − DROP/κ) keeps every weight ≥ e^{−DROP}
            half.append(min(n // 2, int(n * math.acos(1.0 - DROP / k) / (2.0 * math.pi)) + 1))
    width = 2 * max(half) + 1 if half else 1
    offsets = np.arange(width) - max(half, default=0)
    n_arr = np.asarray(counts, dtype=float)[:, None]
    half_arr = np.asarray(half)[:, None]
    # a full circle of n points is the offsets −⌊n/2⌋ … n − 1 − ⌊n/2⌋
    top = np.where(2 * half_arr + 1 > n_arr, n_arr - 1 - half_arr, half_arr)
    valid = (offsets >= -half_arr) & (offsets <= top)
    theta = 2.0 * np.pi * offsets / n_arr
    logw = -2.0 * kappa[:, None] * np.sin(theta / 2.0) ** 2  # κ(cos θ − 1), no cancellation
    w = np.where(valid, np.exp(logw), 0.0)
    w = w / np.sum(w, axis=-1, keepdims=True)
    y = np.remainder(mu[:, None] + np.where(valid, theta, 0.0) + np.pi, 2.0 * np.pi) - np.pi
    return y.reshape(batch + (width,)), w.reshape(batch + (width,))


def circle_integral_mp(hs: list[Any], g: Any) -> Any:
    """∫_{−π}^{π} g(t(y)) e^{h·t(y)} dy in mpmath by the trapezoid rule, N chosen so that the
    bound is below 10^{−(dps+10)} relative for g of degree ≤ :data:`MP_DEGREE` with
    ‖g‖ ≤ 4^D (module docstring): exact to the working precision, from t(y) alone."""
    h0, h1 = (mpmath.mpf(v) for v in hs)
    kappa = mpmath.sqrt(h0 * h0 + h1 * h1)
    mu = mpmath.atan2(h1, h0)
    log_tol = -(mpmath.mp.dps + 10) * math.log(10.0)
    n = circle_points(float(kappa), MP_DEGREE, log_tol)
    total = mpmath.mpf(0)
    for j in range(n):
        y = mu + 2 * mpmath.pi * j / n
        t = [mpmath.cos(y), mpmath.sin(y)]
        weight = mpmath.exp(h0 * t[0] + h1 * t[1])
        total += weight if g is None else g(t) * weight
    return 2 * mpmath.pi * total / n


def von_mises() -> FamilyDefinition:
    """von Mises on the circle: y ∈ [−π, π], t(y) = (cos y, sin y), h = κ(cos μ, sin μ),
    F(h) = log(2π I₀(‖h‖)) (module docstring)."""
    h0, h1 = sp.Symbol("h0", real=True), sp.Symbol("h1", real=True)
    y = sp.Symbol("y", real=True)
    kappa, mu = sp.Symbol("kappa", nonnegative=True), sp.Symbol("mu", real=True)

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        h = np.asarray(hh, dtype=float)
        return rng.vonmises(np.arctan2(h[..., 1], h[..., 0]), np.hypot(h[..., 0], h[..., 1]),
                            size=(n, *h.shape[:-1]))

    ratio = sp.besseli(1, kappa) / sp.besseli(0, kappa)
    return FamilyDefinition(
        name="von_mises",
        params={},
        h=(h0, h1),
        y=y,
        statistic=(sp.cos(y), sp.sin(y)),
        log_base=sp.Integer(0),
        support=Support("continuous", lower=-sp.pi, upper=sp.pi),
        log_partition=sp.log(2 * sp.pi) + log_bessel_radial(2, 0, 0, h0, h1),
        negative=(),
        domain_text="any real h (h = κ(cos μ, sin μ), κ ≥ 0 the concentration, μ the mean "
        "direction)",
        sampler=sampler,
        mean_symbols=(kappa, mu),
        natural_of_mean=(kappa * sp.cos(mu), kappa * sp.sin(mu)),
        eta_of_mean=(ratio * sp.cos(mu), ratio * sp.sin(mu)),
        quadrature=circle_rule,
        integral_mp=circle_integral_mp,
        # SymPy cannot close ∫ e^{h·t(y)} t(y)^k dy (Bessel integrals): straight to mpmath
        symbolic_density=False,
        route="the trapezoid rule on the circle, N nodes with the proven bound "
        "4^D·Σ_{|k|≥N−D} I_k(κ)/I₀(κ) ≤ 1e-17 (a Chernoff bound on the Bessel tail; in mpmath "
        "below 10^-(dps+10)); lemma-2, lemma-5 and the log-partition at 40 digits by that rule "
        "(remark-5.1 is lemma-5 for a scalar h)",
        description="angles (wind directions, phases, times of day): von Mises law on the "
        "circle",
    )


# --- von Mises–Fisher on S² ---------------------------------------------------------------------

#: Gauss–Laguerre in x = κ(1 − w) from this κ on (module docstring)
KAPPA_LAGUERRE = 40.0


def legendre_bound(kappa: float, n: int, degree: int, rho: float) -> float:
    """The relative error bound of the n-point Gauss–Legendre rule in w for ḡ(w) e^{κ(w−1)},
    ‖ḡ‖ ≤ 4^D, on the Bernstein ellipse of parameter ρ > 1 (module docstring)."""
    a = (rho + 1.0 / rho) / 2.0
    z = 2.0 if kappa == 0.0 else -math.expm1(-2.0 * kappa) / kappa
    log_b = (math.log(64.0 / 15.0) + degree * math.log(4.0 * a) + kappa * (a - 1.0)
             - 2.0 * n * math.log(rho) - math.log(rho * rho - 1.0) - math.log(z))
    return math.exp(min(log_b, 700.0))


@lru_cache(maxsize=64)
def legendre_points(degree: int, tol: float = FLOAT_TOL) -> int:
    """The smallest n with min over ρ of :func:`legendre_bound` at κ = 40 below ``tol``."""
    rhos = [1.0 + 0.01 * 1.15**k for k in range(60)]
    n = 1
    while min(legendre_bound(KAPPA_LAGUERRE, n, degree, r) for r in rhos) > tol:
        n += 1
    return n


def sphere_frame(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """κ = ‖h‖ and an orthonormal frame (μ̂, e₁, e₂) for h (..., 3); μ̂ = e₃ at h = 0."""
    kappa = np.linalg.norm(h, axis=-1)
    safe = np.where(kappa[..., None] > 0, h, np.array([0.0, 0.0, 1.0]))
    mu = safe / np.linalg.norm(safe, axis=-1, keepdims=True)
    # the axis least aligned with μ̂, made orthogonal to it
    axis = np.eye(3)[np.argmin(np.abs(mu), axis=-1)]
    e1 = axis - np.sum(axis * mu, axis=-1, keepdims=True) * mu
    e1 = e1 / np.linalg.norm(e1, axis=-1, keepdims=True)
    e2 = np.cross(mu, e1)
    return kappa, mu, e1, e2


def sphere_rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes y (..., S, 3) on S² and weights (..., S) with Σ w g(y) = E[g(y)] to a relative
    error ≤ 2·10⁻¹⁷ for polynomials g of degree ≤ ``degree`` (module docstring)."""
    h = np.asarray(hh, dtype=float)
    batch = h.shape[:-1]
    kappa, mu, e1, e2 = sphere_frame(h.reshape(-1, 3))
    m = points_for_degree(degree)
    x_lag, w_lag = gauss_laguerre_probability(m, 0.0)
    if float(np.max(x_lag)) >= 2.0 * KAPPA_LAGUERRE:  # a node off the sphere: not this rule
        raise ValueError(f"degree {degree} is beyond the sphere rule's Gauss–Laguerre range")
    n_leg = legendre_points(int(degree))
    x_leg, w_leg = np.polynomial.legendre.leggauss(n_leg)
    width = max(m, n_leg)
    one_minus = np.zeros((kappa.size, width))  # 1 − w, kept apart: 1 − w² = (1 − w)(1 + w)
    weights = np.zeros((kappa.size, width))
    lag = kappa >= KAPPA_LAGUERRE
    k_lag = np.where(lag, kappa, KAPPA_LAGUERRE)[:, None]
    one_minus[:, :m] = np.where(lag[:, None], x_lag / k_lag, 0.0)
    weights[:, :m] = np.where(lag[:, None], w_lag, 0.0)
    leg = ~lag
    legw = w_leg * np.exp(-np.where(leg, kappa, 0.0)[:, None] * (1.0 - x_leg))
    legw = legw / np.sum(legw, axis=-1, keepdims=True)
    one_minus[:, :n_leg] = np.where(leg[:, None], 1.0 - x_leg, one_minus[:, :n_leg])
    weights[:, :n_leg] = np.where(leg[:, None], legw, weights[:, :n_leg])
    phi = 2.0 * np.pi * np.arange(degree + 1) / (degree + 1)
    w_cos = 1.0 - one_minus
    radius = np.sqrt(np.maximum(one_minus * (2.0 - one_minus), 0.0))
    y = (w_cos[:, :, None, None] * mu[:, None, None, :]
         + radius[:, :, None, None] * (np.cos(phi)[None, None, :, None] * e1[:, None, None, :]
                                       + np.sin(phi)[None, None, :, None] * e2[:, None, None, :]))
    wt = np.repeat(weights[:, :, None] / (degree + 1), degree + 1, axis=2)
    size = width * (degree + 1)
    return y.reshape(batch + (size, 3)), wt.reshape(batch + (size,))


#: the mpmath sphere integral uses Gauss–Legendre in w up to this κ, tanh-sinh above
MP_LEGENDRE_MAX = 100.0


@lru_cache(maxsize=16)
def _mp_legendre(n: int, prec: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Gauss–Legendre nodes and weights in mpmath at ``prec`` bits (Newton on P_n)."""
    with mpmath.workprec(prec + 20):
        nodes, weights = [], []
        for i in range(1, n + 1):
            x = mpmath.cos(mpmath.pi * (i - mpmath.mpf(1) / 4) / (n + mpmath.mpf(1) / 2))
            for _ in range(100):
                p0, p1 = mpmath.mpf(1), x
                for k in range(2, n + 1):
                    p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
                dp = n * (x * p1 - p0) / (x * x - 1)
                step = p1 / dp
                x -= step
                if abs(step) < mpmath.mpf(2) ** (-prec - 10):
                    break
            p0, p1 = mpmath.mpf(1), x
            for k in range(2, n + 1):
                p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
            dp = n * (x * p1 - p0) / (x * x - 1)
            nodes.append(x)
            weights.append(2 / ((1 - x * x) * dp * dp))
    return tuple(nodes), tuple(weights)


def sphere_integral_mp(hs: list[Any], g: Any) -> Any:
    """∫_{S²} g(y) e^{h·y} dA in mpmath: the exact (D+1)-point trapezoid rule in φ
    (D = :data:`MP_DEGREE`), then in w Gauss–Legendre with n nodes from the Bernstein-ellipse
    bound below 10^{−(dps+10)} (κ ≤ 100), or tanh-sinh whose error estimate must be below
    10^{5−dps} of the value (module docstring)."""
    h = [mpmath.mpf(v) for v in hs]
    kappa = mpmath.sqrt(mpmath.fsum(v * v for v in h))
    if kappa == 0:
        mu = [mpmath.mpf(0), mpmath.mpf(0), mpmath.mpf(1)]
    else:
        mu = [v / kappa for v in h]
    axis = [mpmath.mpf(0)] * 3
    axis[min(range(3), key=lambda a: abs(mu[a]))] = mpmath.mpf(1)
    dot = mpmath.fsum(axis[a] * mu[a] for a in range(3))
    e1 = [axis[a] - dot * mu[a] for a in range(3)]
    norm = mpmath.sqrt(mpmath.fsum(v * v for v in e1))
    e1 = [v / norm for v in e1]
    e2 = [mu[1] * e1[2] - mu[2] * e1[1], mu[2] * e1[0] - mu[0] * e1[2],
          mu[0] * e1[1] - mu[1] * e1[0]]
    count = MP_DEGREE + 1
    phis = [2 * mpmath.pi * j / count for j in range(count)]

    def inner(w: Any) -> Any:
        radius = mpmath.sqrt((1 - w) * (1 + w))
        total = mpmath.mpf(0)
        for phi in phis:
            c, s_ = mpmath.cos(phi), mpmath.sin(phi)
            y = [w * mu[a] + radius * (c * e1[a] + s_ * e2[a]) for a in range(3)]
            total += 1 if g is None else g(y)
        return total * 2 * mpmath.pi / count * mpmath.exp(kappa * (w - 1))

    if kappa <= MP_LEGENDRE_MAX:
        # Gauss–Legendre in w with n from the Bernstein-ellipse bound at the working precision
        tol = float(mpmath.mpf(10) ** -(mpmath.mp.dps + 10))
        rhos = [1.0 + 0.01 * 1.15**k for k in range(80)]
        n = 1
        while min(legendre_bound(float(kappa), n, MP_DEGREE, r) for r in rhos) > tol:
            n += 1
        nodes, weights = _mp_legendre(n, mpmath.mp.prec)
        value = mpmath.fsum(w * inner(x) for x, w in zip(nodes, weights))
        return value * mpmath.exp(kappa)
    value, err = mpmath.quad(inner, [-1, 1], error=True)
    if not abs(err) <= mpmath.mpf(10) ** (5 - mpmath.mp.dps) * max(abs(value), mpmath.mpf(1)):
        raise ArithmeticError(f"sphere quadrature did not converge at h = {hs}: estimated "
                              f"error {mpmath.nstr(err, 3)}")
    return value * mpmath.exp(kappa)


def von_mises_fisher() -> FamilyDefinition:
    """von Mises–Fisher on the sphere S²: y a unit vector of ℝ³ (a vector y), t(y) = y,
    h = κ μ̂, F(h) = log(4π sinh κ/κ) (module docstring)."""
    hs = tuple(sp.Symbol(f"h{i}", real=True) for i in range(3))
    ys = tuple(sp.Symbol(f"y{i}", real=True) for i in range(3))
    kappa = sp.Symbol("kappa", nonnegative=True)
    mus = tuple(sp.Symbol(f"mu{i}", real=True) for i in range(3))

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        h = np.asarray(hh, dtype=float)
        k, mu, e1, e2 = sphere_frame(h.reshape(-1, 3))
        u = rng.random((n, k.size))
        phi = 2.0 * np.pi * rng.random((n, k.size))
        with np.errstate(divide="ignore", invalid="ignore"):
            # inverse CDF of w: 1 − w = −log1p(u·expm1(−2κ))/κ, kept apart (w near 1)
            one_minus = np.where(k > 0, -np.log1p(u * np.expm1(-2.0 * k)) / np.where(k > 0, k, 1.0),
                                 2.0 * u)
        radius = np.sqrt(np.maximum(one_minus * (2.0 - one_minus), 0.0))
        y = ((1.0 - one_minus)[..., None] * mu + radius[..., None]
             * (np.cos(phi)[..., None] * e1 + np.sin(phi)[..., None] * e2))
        return y.reshape((n, *h.shape[:-1], 3))

    coth = sp.cosh(kappa) / sp.sinh(kappa) - 1 / kappa
    return FamilyDefinition(
        name="von_mises_fisher",
        params={},
        h=hs,
        y=ys[0],
        event=ys,
        statistic=ys,
        log_base=sp.Integer(0),
        support=Support("continuous", lower=sp.Integer(-1), upper=sp.Integer(1), size=3,
                        sphere=True),
        log_partition=sp.log(4 * sp.pi) + log_bessel_radial(3, 0, 0, 0, *hs),
        negative=(),
        domain_text="any real h (h = κ μ̂, κ ≥ 0 the concentration, μ̂ the mean direction)",
        sampler=sampler,
        mean_symbols=(kappa, *mus),
        natural_of_mean=tuple(kappa * m for m in mus),
        eta_of_mean=tuple(coth * m for m in mus),
        quadrature=sphere_rule,
        integral_mp=sphere_integral_mp,
        symbolic_density=False,
        route="in the frame of h: the exact trapezoid rule in the azimuth, and in w = cos θ "
        "Gauss–Laguerre in κ(1 − w) from κ = 40 (cut at the sphere: error ≤ e^{-2κ}·(2^{D+1}+2)) "
        "or Gauss–Legendre below, with the Bernstein-ellipse bound ≤ 1e-17; lemma-2, lemma-5 "
        "and the log-partition at 40 digits by the same φ rule and Gauss–Legendre in w with the "
        "ellipse bound below 1e-50 (tanh-sinh with its error estimate above κ = 100)",
        description="directions in 3-D (unit vectors): von Mises–Fisher law on the sphere S²",
    )
