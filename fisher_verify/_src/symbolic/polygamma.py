"""Polygamma functions in NumPy (no SciPy at run time) and the stable differences
D_m(a, b) = ψ⁽ᵐ⁾(a) − ψ⁽ᵐ⁾(a + b) (m = −1: log Γ(a) − log Γ(a + b)) that the beta family's
cumulants are made of.

ψ⁽ᵏ⁾(x) = (−1)ᵏ⁺¹ k! ζ(k + 1, x) for k ≥ 1, with the Hurwitz zeta by Euler–Maclaurin after
N = 2s + 12 terms (s = k + 1): ζ(s, x) = Σ_{j<N} (x+j)^{−s} + (x+N)^{1−s}/(s−1) + (x+N)^{−s}/2
+ Σ_{i=1}^{8} B₂ᵢ/(2i)! · s(s+1)…(s+2i−2) (x+N)^{−s−2i+1}; for real s > 1 and x + N > 0 the
remainder is at most the first omitted term, B₁₈/18! · (s)₁₇ (x+N)^{−s−17}; the sum is at least
(x+N)^{1−s}/(s−1), so the relative remainder is at most B₁₈/18! (s)₁₇ (s−1) (x+N)^{−18}, below
10⁻¹⁹ for N = 2s + 12 and s ≤ 45 (``tests/test_new_families.py`` pins this bound; N = s + 12
would leave 2·10⁻¹⁵ at s = 45). ψ itself is
log(x+N) − 1/(2(x+N)) − Σ B₂ᵢ/(2i (x+N)^{2i}) − Σ_{j<N} 1/(x+j), with the same remainder.

The difference D_m(a, b) cancels when a ≫ b (both terms ~ a^{−m}, the difference ~ b a^{−m−1}):
there the Taylor series in b is used, D_m(a, b) = −Σ_{n≥1} ψ⁽ᵐ⁺ⁿ⁾(a) bⁿ/n!, whose terms alternate
in sign and shrink by about (b/a)(m+n)/(n+1) ≤ 1/4 · (m+n)/(n+1) each (a > 4b), so no
cancellation: 40 terms leave a remainder below 10⁻¹⁷ of the first.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__: list[str] = []  # nothing for other rooms

# B₂, B₄, …, B₁₆
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)
#: D_m(a, b) by its Taylor series in b where a > TAYLOR_RATIO · b
TAYLOR_RATIO = 4.0
#: terms of that series (the remainder bound in the module docstring)
TAYLOR_TERMS = 40

_lgamma = np.vectorize(math.lgamma, otypes=[float])


def _digamma(x: Any, log: Any = np.log) -> Any:
    """ψ(x), x > 0, by Euler–Maclaurin after 12 terms (module docstring), in arithmetic and
    ``log`` alone: with ``torch.log`` its autograd derivative is this formula's, where
    ``torch.digamma``'s backward is torch's trigamma, accurate to only ~1e-10."""
    n = 12
    z = x + n
    out = log(z) - 0.5 / z
    zz = z * z
    p = zz * 1.0
    for i, b in enumerate(_BERNOULLI, start=1):
        out = out - b / (2 * i * p)
        p = p * zz
    for j in range(n):
        out = out - 1.0 / (x + j)
    return out


def hurwitz(s: int, x: Any) -> Any:
    """ζ(s, x) for an integer s ≥ 2 and x > 0 by Euler–Maclaurin (module docstring), in
    arithmetic alone, so that a NumPy array and a torch tensor (differentiably) both work:
    torch's own trigamma is accurate to only ~1e-10."""
    n = 2 * s + 12
    z = x + n
    total = x * 0.0
    for j in range(n):
        total = total + (x + j) ** (-s)
    total = total + z ** (1 - s) / (s - 1) + 0.5 * z ** (-s)
    rising = float(s)  # s(s+1)…(s+2i−2)
    fact = 2.0  # (2i)!
    zp = z ** (-s - 1)
    for i, b in enumerate(_BERNOULLI, start=1):
        total = total + b / fact * rising * zp
        rising *= (s + 2 * i - 1) * (s + 2 * i)
        fact *= (2 * i + 1) * (2 * i + 2)
        zp = zp / (z * z)
    return total


def np_polygamma(k: int, x: Any) -> np.ndarray:
    """ψ⁽ᵏ⁾(x) for x > 0 (k = 0: the digamma function), float64."""
    x = np.asarray(x, dtype=float)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if k == 0:
            return _digamma(x)
        return (-1.0) ** (k + 1) * math.factorial(k) * hurwitz(k + 1, x)


def _taylor(m: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a)
    coeff = np.ones_like(b)
    for n in range(1, TAYLOR_TERMS + 1):
        coeff = coeff * b / n
        out = out - np_polygamma(m + n, a) * coeff
    return out


def np_lgamma_diff(m: int, a: Any, b: Any) -> np.ndarray:
    """D_m(a, b) = ψ⁽ᵐ⁾(a) − ψ⁽ᵐ⁾(a + b) (m = −1: log Γ(a) − log Γ(a + b)), a, b > 0, stable
    for a ≫ b (module docstring)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        far = a > TAYLOR_RATIO * b
        # each branch at arguments of its own region, so neither overflows where unused
        a_t = np.where(far, a, TAYLOR_RATIO * b + 1.0)
        a_d = np.where(far, 1.0, a)
        b_d = np.where(far, 1.0, b)
        series = _taylor(m, a_t, b) if np.any(far) else a * 0.0
        if m == -1:
            direct = _lgamma(a_d) - _lgamma(a_d + b_d)
        elif m == 0:
            # ψ(a) − ψ(a+b) with the logarithms apart: log(a/(a+b)) = −log1p(b/a)
            big = a_d >= 10.0
            a_big = np.where(big, a_d, 10.0)
            rest = (_digamma(a_big) - np.log(a_big)) - (_digamma(a_big + b_d) - np.log(a_big + b_d))
            direct = np.where(big, rest - np.log1p(b_d / a_big),
                              _digamma(a_d) - _digamma(a_d + b_d))
        else:
            direct = np_polygamma(m, a_d) - np_polygamma(m, a_d + b_d)
        return np.where(far, series, direct)
