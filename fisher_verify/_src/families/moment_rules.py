"""Exact-expectation routes built from a law's moments: Gauss rules for the inverse Gaussian
(polynomials in y) and the beta with one shape known (polynomials in t = −log y).

**Inverse Gaussian.** No classical Gauss rule is exact for polynomials in y under the inverse
Gaussian law, so the rule is built from the law's raw moments (Golub–Welsch from the Hankel matrix of moments). The
moments come from the density alone (the Bessel-K integral of the inverse Gaussian, in closed
form; never from the log-partition):

    E[(y/μ)^k] = Σ_{i=0}^{k−1} (k−1+i)! / (i! (k−1−i)!) · (φ/2)^i,   φ = μ/λ.

A Hankel matrix of moments is ill-conditioned (φ ≫ 1 near the boundary h → 0⁻, where the law
is very skewed), so the rule is built in mpmath at a working precision that grows with φ, and
then *verified*: the rule must reproduce every moment it claims to integrate (orders 0..2n−1)
to 30 significant digits, or the precision is doubled and the rule rebuilt. A rule that passes
is exact for polynomials of degree ≤ 2n−1 up to the float64 rounding of its nodes and weights.

**Beta, one shape b known.** t = −log y has the cumulants κ_n = (−1)ⁿ (ψ⁽ⁿ⁻¹⁾(α) − ψ⁽ⁿ⁻¹⁾(α+b))
(the log of E[y^{−τ}] = B(α−τ, b)/B(α, b), the beta integral of the density), evaluated here by
mpmath's polygamma at the working precision plus the digits the difference cancels (a route
independent of the float64 kernels of :mod:`fisher_verify._src.symbolic.polygamma`), turned into
raw moments, and the rule built and verified as above; its nodes s map back to y = e^{−s}.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from math import factorial

import mpmath
import numpy as np

from ..errors import DomainError

__all__: list[str] = []  # nothing for other rooms

#: significant digits to which the rule must reproduce the moments it integrates
VERIFY_DIGITS = 30


def inverse_gaussian_moments(phi: mpmath.mpf, order: int) -> list[mpmath.mpf]:
    """E[(y/μ)^k] for k = 0..order, φ = μ/λ (module docstring)."""
    out = [mpmath.mpf(1)]
    for k in range(1, order + 1):
        out.append(mpmath.fsum(
            mpmath.mpf(factorial(k - 1 + i)) / (factorial(i) * factorial(k - 1 - i))
            * (phi / 2) ** i for i in range(k)))
    return out


def _golub_welsch(moments: list[mpmath.mpf], n: int) -> tuple[list[mpmath.mpf], list[mpmath.mpf]]:
    """n-point Gauss rule of the law with these raw moments (orders 0..2n), in mpmath."""
    hankel = mpmath.matrix(n + 1, n + 1)
    for i in range(n + 1):
        for j in range(n + 1):
            hankel[i, j] = moments[i + j]
    r = mpmath.cholesky(hankel).T  # upper: H = Rᵀ R
    alpha = []
    beta = []
    for j in range(n):
        a = r[j, j + 1] / r[j, j]
        if j > 0:
            a -= r[j - 1, j] / r[j - 1, j - 1]
        alpha.append(a)
        if j < n - 1:
            beta.append(r[j + 1, j + 1] / r[j, j])
    jacobi = mpmath.matrix(n, n)
    for j in range(n):
        jacobi[j, j] = alpha[j]
        if j < n - 1:
            jacobi[j, j + 1] = jacobi[j + 1, j] = beta[j]
    nodes, vecs = mpmath.eigsy(jacobi)
    return [nodes[j] for j in range(n)], [vecs[0, j] ** 2 for j in range(n)]


def _verified_rule(moments_at: Callable[[], list[mpmath.mpf]], n: int, dps: int,
                   failure: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The n-point Gauss rule of the law whose raw moments (orders 0..2n) ``moments_at()`` gives
    at the working precision, verified (module docstring): it must reproduce every moment of
    order < 2n to :data:`VERIFY_DIGITS` of max(|μ_k|, μ_0) and put every node above 0, or the
    precision ``dps`` is doubled and the rule rebuilt; ArithmeticError(``failure``) after six
    tries."""
    for _ in range(6):
        with mpmath.workdps(dps):
            moments = moments_at()
            try:
                nodes, weights = _golub_welsch(moments, n)
            except (ValueError, ZeroDivisionError):  # not positive definite at this precision
                dps *= 2
                continue
            # μ_0 keeps the scale of moments that cancel towards 0 (the beta's in t); the
            # inverse Gaussian's E[(y/μ)^k] are all >= μ_0 = 1, so theirs is μ_k itself
            ok = all(
                abs(mpmath.fsum(w * x**k for x, w in zip(nodes, weights)) - moments[k])
                <= mpmath.mpf(10) ** (-VERIFY_DIGITS) * max(abs(moments[k]), moments[0])
                for k in range(2 * n)
            ) and all(x > 0 for x in nodes)
            if ok:
                return tuple(float(x) for x in nodes), tuple(float(w) for w in weights)
        dps *= 2
    raise ArithmeticError(failure)


@lru_cache(maxsize=4096)
def _unit_rule(phi: float, n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes of y/μ and weights for one φ, verified against the moments (module docstring)."""
    dps = 40 + int((2 * n + 1) * max(0.0, mpmath.log10(1 + phi)) * 1.5)
    return _verified_rule(lambda: inverse_gaussian_moments(mpmath.mpf(phi), 2 * n), n, dps,
                          f"inverse Gaussian Gauss rule did not verify at φ = {phi}")


def inverse_gaussian_rule(h: np.ndarray, lam: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes y (..., n) and weights (..., n) of an n-point Gauss rule of the inverse Gaussian
    with natural parameter h < 0 and shape λ: exact for polynomials in y of degree ≤ 2n − 1."""
    h = np.asarray(h, dtype=float)
    mu = np.sqrt(lam / (-2.0 * h))
    phi = mu / lam
    nodes = np.empty(h.shape + (n,))
    weights = np.empty(h.shape + (n,))
    for index in np.ndindex(h.shape):
        x, w = _unit_rule(float(phi[index]), n)
        nodes[index] = np.asarray(x) * mu[index]
        weights[index] = w
    return nodes, weights


def _moments_from_cumulants(kappa: list[mpmath.mpf]) -> list[mpmath.mpf]:
    """Raw moments μ_0..μ_N from cumulants κ_1..κ_N: μ_n = Σ_k C(n−1, k−1) κ_k μ_{n−k}."""
    mu = [mpmath.mpf(1)]
    for n in range(1, len(kappa) + 1):
        mu.append(mpmath.fsum(mpmath.binomial(n - 1, k - 1) * kappa[k - 1] * mu[n - k]
                              for k in range(1, n + 1)))
    return mu


@lru_cache(maxsize=4096)
def _beta_unit_rule(alpha: float, b: float, n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes of s = −log y and weights under Beta(α, b), verified against the moments."""
    # the difference ψ⁽ᵐ⁾(α) − ψ⁽ᵐ⁾(α+b) cancels log10(α/b) digits; the standardized moments
    # of s lose more in the Hankel matrix when the law is skewed (α small)
    extra = max(0.0, math.log10(alpha / b)) if alpha > b else 0.0
    dps = 40 + int(extra) + int(4 * n * max(0.0, -math.log10(alpha)))

    def moments() -> list[mpmath.mpf]:
        a, bb = mpmath.mpf(alpha), mpmath.mpf(b)
        kappa = [(-1) ** k * (mpmath.psi(k - 1, a) - mpmath.psi(k - 1, a + bb))
                 for k in range(1, 2 * n + 1)]
        return _moments_from_cumulants(kappa)

    return _verified_rule(moments, n, dps,
                          f"beta Gauss rule did not verify at α = {alpha}, b = {b}")


def beta_rule(h: np.ndarray, b: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes y (..., n) and weights (..., n) of an n-point Gauss rule in t = −log y under
    Beta(α = −h, b): exact for polynomials in t of degree ≤ 2n − 1."""
    h = np.asarray(h, dtype=float)
    nodes = np.empty(h.shape + (n,))
    weights = np.empty(h.shape + (n,))
    for index in np.ndindex(h.shape):
        s, w = _beta_unit_rule(float(-h[index]), float(b), n)
        if max(s) > 700.0:
            raise DomainError(
                f"beta(b={b}) at h = {float(h[index])}: the exact-expectation nodes lie at "
                f"y = e^(−s) with s up to {max(s):.3g}, below the smallest float64; this route "
                "represents y only above e^(−700) (α = −h too close to 0 for it)"
            )
        nodes[index] = np.exp(-np.asarray(s))
        weights[index] = w
    return nodes, weights
