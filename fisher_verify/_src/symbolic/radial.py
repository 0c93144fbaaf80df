"""Stable kernels for a log-partition of the norm of h: ∂ᵅ log ₀F₁(; d/2; ‖h‖²/4), h ∈ ℝᵈ.

This is the log-normalizer of the von Mises–Fisher law on the sphere S^{d−1} up to a constant
(d = 2, the von Mises law: ₀F₁(; 1; r²/4) = I₀(r); d = 3: ₀F₁(; 3/2; r²/4) = sinh r / r).
With r = ‖h‖ and ν = d/2 − 1, its radial derivative is the Bessel ratio
A(r) = I_{ν+1}(r)/I_ν(r) (the mean resultant length), which solves the Riccati equation
A′ = 1 − (d − 1) A / r − A².

**Two forms of the same derivative tensor.** Writing G(s) = ₀F₁(; d/2; s/4), g = log G and
s = ‖h‖², every derivative of order n ≤ 4 is a sum over the ways to split its n index slots into
singletons and pairs (Faà di Bruno for the quadratic s):

* small r, the *analytic form*: the term with q singletons and p pairs is
  2^{q+p} g^{(q+p)}(s) Π h_a Π δ_ab, with no division by r, so it is exact and finite at h = 0;
  g^{(k)} come from the power series of G, whose terms are all positive
  (:data:`SERIES_TERMS` terms, the tail bound below);
* large r, the *polar form*: the term is c_{n,p}(r) Π n_a Π P_ab with n = h/r and
  P = δ − nnᵀ, where c_{1,0} = f′, c_{2,0} = f″, c_{2,1} = u = f′/r, c_{3,0} = f‴,
  c_{3,1} = v = (f″ − u)/r, c_{4,0} = f⁗, c_{4,1} = w = (f‴ − 2v)/r, c_{4,2} = z = v/r for
  f(r) = log G(r²). The radial entries (along n) are then c_{n,0} alone, e.g. I along the mean
  direction is A′(r) ≈ 1/(2r²), which the analytic form would get as a difference of terms of
  size 1/r. Each c_{n,p} has an asymptotic series in x = 1/r read off the Riccati equation:
  A = Σ aₖ xᵏ with a₀ = 1 and 2aₖ = (k − d) a_{k−1} − Σ_{i=1}^{k−1} aᵢ a_{k−i}; log G by
  integrating A termwise (the constant from I_ν(r) ~ eʳ/√(2πr)). The terms of this divergent
  series are smallest near k = 2r; from r ≥ :data:`ASYMPTOTIC_FROM` = 25 on, the first term
  omitted after the :data:`ASYMPTOTIC_TERMS` = 50 kept is below 10⁻¹⁶ of each c_{n,p} (largest
  for c_{4,0} ≈ 3/r⁴; pinned by ``tests/test_family_von_mises.py``; it estimates the remainder,
  which for this enveloping series is not proven here: the tests check the kernels against
  mpmath on both sides of r = 25 instead), and the exponentially small part e^{−2r} < 10⁻²¹
  that any power series in 1/r misses is below float64 resolution.
* 1 ≤ r < 25, the polar form with each c_{n,p} = N(s)/G(s)^m, N a power series whose
  coefficients (:func:`ratio_series`, exact in mpmath) all have one sign after the constant
  term, so evaluating it cancels nothing where G^m is large: the entries along n keep their
  relative accuracy here too (a Faà di Bruno sum of G′/G, G″/G, … would lose r³ of it).

**Series tail.** For r < 25 (s < 625) the power series of G^{(j)} is cut after
:data:`SERIES_TERMS` = 90 terms; the ratio of consecutive terms is at most
(s/4)/((k+1)(k + d/2)) < 157/(91 · 92) < 0.02 beyond, so the tail is below 1.1 times the
first omitted term, < 10⁻⁶⁰ of G (also pinned by the tests); the numerators N(s) are cut after
:data:`RATIO_TERMS` = 140 terms, their terms at s < 625 then below 10⁻⁴⁰ of the largest.

No SciPy: NumPy has no i1, and torch's i0e/i1e give A but not its derivatives stably.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache
from typing import Any

import mpmath
import numpy as np

__all__: list[str] = []  # nothing for other rooms

#: the polar form with the asymptotic series from this r = ‖h‖ on (module docstring)
ASYMPTOTIC_FROM = 25.0
#: terms of the asymptotic series kept
ASYMPTOTIC_TERMS = 50
#: terms of the power series of G^{(j)} below ASYMPTOTIC_FROM
SERIES_TERMS = 90
#: derivative orders implemented (F itself and its cumulants up to κ₄)
MAX_ORDER = 4


@cache
def riccati_coefficients(d: int, terms: int = ASYMPTOTIC_TERMS + 4) -> tuple[Fraction, ...]:
    """aₖ of the asymptotic series A(r) ~ Σ aₖ r^{−k} of I_{d/2}(r)/I_{d/2−1}(r), exactly."""
    a = [Fraction(1)]
    for k in range(1, terms):
        a.append(((k - d) * a[k - 1] - sum(a[i] * a[k - i] for i in range(1, k))) / 2)
    return tuple(a)


@cache
def profile_series(d: int) -> dict[tuple[int, int], tuple[float, ...]]:
    """Coefficients in x = 1/r of c_{n,p} (module docstring), lowest power first; (0, 0) is
    log G − (r + a₁ log r) − its constant, i.e. −Σ_{k≥2} aₖ x^{k−1}/(k−1)."""
    a = riccati_coefficients(d)[: ASYMPTOTIC_TERMS]

    def series(power: int, coef: Any) -> tuple[float, ...]:
        out = [Fraction(0)] * (power + len(a))
        for k, ak in enumerate(a):
            out[k + power] += coef(k) * ak
        return tuple(float(c) for c in out)

    zero = [Fraction(0)] * 1 + [-a[k] / (k - 1) for k in range(2, len(a))]
    return {
        (0, 0): tuple(float(c) for c in zero),
        (1, 0): series(0, lambda k: 1),
        (2, 0): series(1, lambda k: -k),
        (2, 1): series(1, lambda k: 1),
        (3, 0): series(2, lambda k: k * (k + 1)),
        (3, 1): series(2, lambda k: -(k + 1)),
        (4, 0): series(3, lambda k: -k * (k + 1) * (k + 2)),
        (4, 1): series(3, lambda k: (k + 1) * (k + 2)),
        (4, 2): series(3, lambda k: -(k + 1)),
    }


@cache
def slot_partitions(axes: tuple[int, ...]) -> tuple[tuple[int, tuple[int, ...], tuple[tuple[int, int], ...]], ...]:
    """The splits of the index slots ``axes`` into singletons and pairs: (number of pairs,
    the singletons' axes, the pairs' axes)."""
    out = []

    def rec(rest: tuple[int, ...], singles: tuple[int, ...], pairs: tuple[tuple[int, int], ...]) -> None:
        if not rest:
            out.append((len(pairs), singles, pairs))
            return
        first, others = rest[0], rest[1:]
        rec(others, (*singles, first), pairs)
        for k in range(len(others)):
            rec(others[:k] + others[k + 1 :], singles, (*pairs, (first, others[k])))

    rec(tuple(axes), (), ())
    return tuple(out)


def axes_of(orders: tuple[int, ...]) -> tuple[int, ...]:
    """Orders (i₁, …, i_d) of a mixed derivative as the list of its index slots' axes."""
    return tuple(a for a, k in enumerate(orders) for _ in range(k))


def check_orders(orders: tuple[int, ...]) -> tuple[int, ...]:
    """The derivative orders as ints, refusing a total above :data:`MAX_ORDER`."""
    orders = tuple(int(k) for k in orders)
    if any(k < 0 for k in orders) or sum(orders) > MAX_ORDER:
        raise ValueError(f"radial log-partition derivatives are implemented up to order "
                         f"{MAX_ORDER}, got {orders}")
    return orders


class _Ops:
    """The few array operations the kernels need, for NumPy or torch."""

    def __init__(self, xp: Any, like: Any) -> None:
        self.xp = xp
        self.like = like

    def const(self, v: float) -> Any:
        if self.xp is np:
            return np.full(np.shape(self.like), v, dtype=float)
        return self.xp.full_like(self.like, v)


def _g_series(ops: _Ops, s: Any, d: int) -> list[Any]:
    """g, g′, …, g⁗ at s = ‖h‖² < 625 from the power series of
    G(s) = Σ_k s^k / (4^k k! (d/2)_k), every term positive (module docstring)."""
    xp = ops.xp
    b = d / 2.0
    sums = []
    for j in range(MAX_ORDER + 1):
        # G^{(j)}(s) = Σ_{k≥j} k!/(k−j)! c_k s^{k−j}, each term from the one before
        coef = 1.0
        for k in range(1, j + 1):
            coef /= 4.0 * k * (k - 1 + b)
        term = ops.const(coef * math.perm(j, j))
        total = ops.const(0.0) if j == 0 else term
        for k in range(j + 1, j + SERIES_TERMS):
            term = term * s * (k / ((k - j) * 4.0 * k * (k - 1 + b)))
            total = total + term
        sums.append(total)  # for j = 0: G − 1, kept apart for log1p
    big_g = 1.0 + sums[0]
    u1, u2, u3, u4 = (sums[j] / big_g for j in range(1, MAX_ORDER + 1))
    return [
        xp.log1p(sums[0]),
        u1,
        u2 - u1 * u1,
        u3 - 3.0 * u1 * u2 + 2.0 * u1**3,
        u4 - 4.0 * u1 * u3 - 3.0 * u2 * u2 + 12.0 * u1 * u1 * u2 - 6.0 * u1**4,
    ]


def _horner(coefs: tuple[float, ...], x: Any) -> Any:
    out = 0.0 * x + coefs[-1]
    for c in reversed(coefs[:-1]):
        out = out * x + c
    return out


def log_norm_constant(d: int) -> float:
    """log G(r²) − (r + a₁ log r) − Σ_{k≥2} … → this constant as r → ∞:
    log Γ(d/2) + ν log 2 − ½ log 2π, ν = d/2 − 1 (from I_ν(r) ~ eʳ/√(2πr))."""
    return math.lgamma(d / 2.0) + (d / 2.0 - 1.0) * math.log(2.0) - 0.5 * math.log(2.0 * math.pi)


#: the analytic form below this s = ‖h‖² (its sums lose at most a factor ~8 there)
ANALYTIC_BELOW = 1.0
#: terms of the power series of the numerators N(s) of c_{n,p} = N(s)/G(s)^m for 1 ≤ s < 625
RATIO_TERMS = 140


def _series_product(a: list[Any], b: list[Any]) -> list[Any]:
    return [mpmath.fsum(a[i] * b[k - i] for i in range(k + 1)) for k in range(len(a))]


@cache
def ratio_series(d: int) -> dict[str, tuple[int, tuple[float, ...], tuple[float, ...]]]:
    """The profile functions c_{n,p} as N(s)/G(s)^m, N a power series in s whose coefficients
    are all of one sign except the constant term (so that evaluating it cancels nothing where
    G^m is large): for each name, (m, log|N_k|, sign N_k). Computed once per d in mpmath at
    40 digits from the coefficients of G = ₀F₁(; d/2; s/4) (every numerator is a polynomial in
    G, G′, …, G⁗ and s: g″G² = G″G − G′², …)."""
    with mpmath.workdps(40):
        b = mpmath.mpf(d) / 2
        g = [mpmath.mpf(1)]
        for k in range(1, RATIO_TERMS + 4):
            g.append(g[-1] / (4 * k * (k - 1 + b)))

        def deriv(c: list[Any]) -> list[Any]:
            return [c[k + 1] * (k + 1) for k in range(len(c) - 1)]

        g1 = deriv(g)
        g2 = deriv(g1)
        g3 = deriv(g2)
        g4 = deriv(g3)
        g, g1, g2, g3, g4 = (c[:RATIO_TERMS] for c in (g, g1, g2, g3, g4))
        mul = _series_product

        def lin(*terms: tuple[Any, list[Any]]) -> list[Any]:
            return [mpmath.fsum(c * t[k] for c, t in terms) for k in range(RATIO_TERMS)]

        def shift(c: list[Any]) -> list[Any]:  # s · c
            return [mpmath.mpf(0), *c[:-1]]

        gg = mul(g, g)
        g1g1 = mul(g1, g1)
        n_g2 = lin((1, mul(g2, g)), (-1, g1g1))  # g″ G²
        n_g3 = lin((1, mul(g3, gg)), (-3, mul(mul(g2, g1), g)), (2, mul(g1g1, g1)))  # g‴ G³
        n_g4 = lin((1, mul(g4, mul(gg, g))), (-4, mul(mul(g3, g1), gg)),
                   (-3, mul(mul(g2, g2), gg)), (12, mul(mul(g1g1, g2), g)),
                   (-6, mul(g1g1, g1g1)))  # g⁗ G⁴
        numerators = {
            "c21": (1, lin((2, g1))),  # 2g′
            "c20": (2, lin((2, mul(g1, g)), (4, shift(n_g2)))),  # 2g′ + 4s g″
            "g2": (2, n_g2),
            "c30r": (3, lin((12, mul(n_g2, g)), (8, shift(n_g3)))),  # 12g″ + 8s g‴
            "c41": (3, lin((4, mul(n_g2, g)), (8, shift(n_g3)))),  # 4g″ + 8s g‴
            "c40": (4, lin((12, mul(n_g2, gg)), (48, shift(mul(n_g3, g))),
                           (16, shift(shift(n_g4))))),  # 12g″ + 48s g‴ + 16s² g⁗
        }
        out = {}
        for name, (m, coefs) in numerators.items():
            logs = tuple(float(mpmath.log(abs(c))) if c != 0 else -math.inf for c in coefs)
            signs = tuple(float(mpmath.sign(c)) for c in coefs)
            out[name] = (m, logs, signs)
        return out


def _ratio_values(xp: Any, ops: _Ops, s: Any, d: int) -> dict[str, Any]:
    """c_{n,p} (by the names of :func:`ratio_series`) at 1 ≤ s < 625 (clamped by the caller)."""
    table = ratio_series(d)
    log_s = xp.log(s)
    g_sum = ops.const(0.0)
    term = ops.const(1.0)
    b = d / 2.0
    for k in range(SERIES_TERMS):
        if k:
            term = term * s / (4.0 * k * (k - 1 + b))
        g_sum = g_sum + term
    out = {}
    for name, (m, logs, signs) in table.items():
        ks = np.arange(len(logs), dtype=float)
        mask = np.isfinite(logs)
        logc = np.where(mask, logs, 0.0)
        if xp is np:
            terms = np.exp(logc + ks * log_s[..., None]) * np.where(mask, signs, 0.0)
            num = np.sum(terms, axis=-1)
        else:
            lc = xp.as_tensor(logc, dtype=s.dtype, device=s.device)
            kk = xp.as_tensor(ks, dtype=s.dtype, device=s.device)
            sg = xp.as_tensor(np.where(mask, signs, 0.0), dtype=s.dtype, device=s.device)
            num = xp.sum(xp.exp(lc + kk * log_s[..., None]) * sg, dim=-1)
        out[name] = num / g_sum**m
    return out


def radial_kernel(xp: Any, d: int, orders: tuple[int, ...], hs: tuple[Any, ...]) -> Any:
    """∂^orders log ₀F₁(; d/2; ‖h‖²/4) for NumPy (``xp = np``) or torch arrays ``hs``
    (one per axis, broadcast together): the analytic form for ‖h‖ < 1, the polar form with
    c_{n,p} from :func:`ratio_series` for 1 ≤ ‖h‖ < 25 and from the asymptotic series above
    (module docstring). Each branch is evaluated at an argument clamped into its own region,
    so none produces a NaN that torch.where would carry into a gradient."""
    orders = check_orders(orders)
    axes = axes_of(orders)
    n = len(axes)
    if xp is np:
        hs = tuple(np.asarray(v, dtype=float) for v in np.broadcast_arrays(*hs))
    else:
        hs = tuple(xp.broadcast_tensors(*hs))
    s = sum(v * v for v in hs)
    ops = _Ops(xp, s)
    far = ASYMPTOTIC_FROM**2
    tiny = s < ANALYTIC_BELOW
    small = s < far
    if n == 0:
        g0 = _g_series(ops, xp.where(small, s, ops.const(0.0)), d)[0]
        r = xp.sqrt(xp.where(small, ops.const(far), s))
        asym = (r + (1.0 - d) / 2.0 * xp.log(r) + log_norm_constant(d)
                + _horner(profile_series(d)[(0, 0)], 1.0 / r))
        return xp.where(small, g0, asym)
    # the analytic form at s clamped below 1
    g = _g_series(ops, xp.where(tiny, s, ops.const(0.0)), d)
    h_in = [xp.where(tiny, v, ops.const(0.0)) for v in hs]
    analytic = ops.const(0.0)
    for pairs_n, singles, pairs in slot_partitions(axes):
        if any(a != b for a, b in pairs):
            continue
        k = len(singles) + pairs_n
        term = (2.0**k) * g[k]
        for a in singles:
            term = term * h_in[a]
        analytic = analytic + term
    # the polar form at s clamped to >= 1: c_{n,p} by the ratio series below 625, the
    # asymptotic series above
    s_pol = xp.where(tiny, ops.const(ANALYTIC_BELOW), s)
    r = xp.sqrt(s_pol)
    mid = s_pol < far
    ratio = _ratio_values(xp, ops, xp.where(mid, s_pol, ops.const(ANALYTIC_BELOW)), d)
    r_far = xp.sqrt(xp.where(mid, ops.const(far), s_pol))
    series = profile_series(d)
    from_ratio = {
        1: {0: r * ratio["c21"]},
        2: {0: ratio["c20"], 1: ratio["c21"]},
        3: {0: r * ratio["c30r"], 1: 4.0 * r * ratio["g2"]},
        4: {0: ratio["c40"], 1: ratio["c41"], 2: 4.0 * ratio["g2"]},
    }[n]
    coef = {p: xp.where(mid, from_ratio[p], _horner(series[(n, p)], 1.0 / r_far))
            for p in range(n // 2 + 1)}
    unit = [xp.where(tiny, ops.const(1.0 if a == 0 else 0.0), v / r) for a, v in enumerate(hs)]
    polar = ops.const(0.0)
    for pairs_n, singles, pairs in slot_partitions(axes):
        term = coef[pairs_n]
        for a in singles:
            term = term * unit[a]
        for a, b in pairs:
            if a == b:  # P_aa = Σ_{c≠a} n_c², never 1 − n_a² (which cancels along n)
                term = term * sum(unit[c] * unit[c] for c in range(d) if c != a)
            else:
                term = term * (-unit[a] * unit[b])
        polar = polar + term
    return xp.where(tiny, analytic, polar)


def mp_radial(d: int, orders: tuple[int, ...], hs: tuple[Any, ...]) -> Any:
    """The same derivative in mpmath (the high-precision kernel): the analytic form with
    G^{(j)}(s) = 4^{−j}/(d/2)_j · ₀F₁(; d/2 + j; s/4), at the working precision plus the digits
    that the sums lose where they cancel at large r (about r³ in g⁗, r in the assembly)."""
    orders = check_orders(orders)
    axes = axes_of(orders)
    h = [mpmath.mpf(v) for v in hs]
    s = mpmath.fsum(v * v for v in h)
    extra = int(5 * mpmath.log10(1 + mpmath.sqrt(s))) + 15
    with mpmath.workdps(mpmath.mp.dps + extra):
        b = mpmath.mpf(d) / 2
        big = [mpmath.hyp0f1(b + j, s / 4) / (4**j * mpmath.rf(b, j)) for j in range(MAX_ORDER + 1)]
        u1, u2, u3, u4 = (big[j] / big[0] for j in range(1, MAX_ORDER + 1))
        g = [
            mpmath.log(big[0]),
            u1,
            u2 - u1 * u1,
            u3 - 3 * u1 * u2 + 2 * u1**3,
            u4 - 4 * u1 * u3 - 3 * u2 * u2 + 12 * u1 * u1 * u2 - 6 * u1**4,
        ]
        total = mpmath.mpf(0)
        for pairs_n, singles, pairs in slot_partitions(axes):
            if any(a != c for a, c in pairs):
                continue
            k = len(singles) + pairs_n
            total += 2**k * g[k] * mpmath.fprod(h[a] for a in singles)
    return +total
