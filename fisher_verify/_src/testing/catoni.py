"""Catoni's M-estimator of a mean: a sub-Gaussian-width confidence radius from the variance alone.

For ``R`` i.i.d. draws of ``X`` with mean ``m`` and variance at most ``v`` (nothing else
assumed: no normality, no bounded range), Catoni (2012, "Challenging the empirical mean and
empirical variance: a deviation study", Prop. 2.4) takes ``ψ(x) = sign(x) log(1 + |x| + x²/2)``
and the root ``θ̂`` of ``Σ_i ψ(a (X_i − θ)) = 0``. With ``L = log(2/δ) < R/2`` and

    a = sqrt(2 L (R − 2L)) / (R σ)   (σ = √v; see ``catoni_scale``)

``|θ̂ − m| ≤ σ sqrt(2L / (R − 2L))`` with probability at least ``1 − δ``. As ``R → ∞`` this is
the Gaussian radius ``σ sqrt(2 log(2/δ) / R)`` (the sub-Gaussian limit). The derivation, with
the optimisation of ``a`` that gives exactly this radius, is in ``docs/estimator-gate.md``.

A one-sided bound (only ``θ̂ − m ≤ r`` or only ``m − θ̂ ≤ r``) holds with ``L = log(1/δ)``.
Used by the estimator gate for ``thm-4`` / ``thm-6`` calibrated means and spreads.
"""

from __future__ import annotations

import math

import numpy as np

__all__: list[str] = []  # nothing for other rooms


def catoni_log_term(delta: float, two_sided: bool = True) -> float:
    """``L = log(2/δ)`` (two-sided) or ``log(1/δ)`` (one-sided)."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    return math.log((2.0 if two_sided else 1.0) / delta)


def minimum_catoni_draws(delta: float, two_sided: bool = True) -> int:
    """Smallest ``R`` with ``R > 2L``: below it the bound does not exist."""
    return int(math.floor(2.0 * catoni_log_term(delta, two_sided))) + 1


def catoni_radius_factor(n: int, delta: float, two_sided: bool = True) -> float:
    """``sqrt(2L / (n − 2L))``: the radius in units of σ (multiply by √n for standard errors).

    Raises:
        ValueError: ``n ≤ 2L`` (too few draws for ``delta``).
    """
    L = catoni_log_term(delta, two_sided)
    if n <= 2.0 * L:
        raise ValueError(
            f"Catoni's bound needs more than 2 log(2/delta) = {2 * L:.1f} draws at "
            f"delta = {delta:.3g}; got {n}"
        )
    return math.sqrt(2.0 * L / (n - 2.0 * L))


def catoni_radius(sigma: float, n: int, delta: float, two_sided: bool = True) -> float:
    """Radius ``r`` with ``P(|θ̂ − m| > r) ≤ δ`` for Catoni's estimator of n draws, ``sd ≤ σ``."""
    return float(sigma) * catoni_radius_factor(n, delta, two_sided)


def catoni_scale(sigma: np.ndarray | float, n: int, delta: float, two_sided: bool = True) -> np.ndarray:
    """The influence scale ``a`` (per statistic) that makes :func:`catoni_radius` hold.

    ``a² = 2η(1 − 2η)/σ²`` with ``η = L/n``: the minimiser of the radius (see the module doc).
    ``σ = 0`` gives ``inf`` (the estimate is then the plain mean).
    """
    L = catoni_log_term(delta, two_sided)
    eta = L / n
    if 2.0 * eta >= 1.0:
        raise ValueError(f"Catoni's bound needs n > {2 * L:.1f} draws, got {n}")
    s = np.asarray(sigma, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(s > 0, math.sqrt(2.0 * eta * (1.0 - 2.0 * eta)) / np.where(s > 0, s, 1.0), np.inf)


def catoni_psi(x: np.ndarray) -> np.ndarray:
    """``ψ(x) = sign(x) log(1 + |x| + x²/2)``, overflow-free for any finite ``x``."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    if a.size == 0 or float(np.max(a)) <= 1e8:
        return np.sign(x) * np.log1p(a + 0.5 * a * a)
    big = a > 1e8
    small_a = np.where(big, 0.0, a)
    big_a = np.where(big, a, 1.0)
    # log(1 + a + a²/2) = 2 log a − log 2 + log1p(2/a + 2/a²) for large a
    val = np.where(
        big,
        2.0 * np.log(big_a) - math.log(2.0) + np.log1p(2.0 / big_a + 2.0 / big_a / big_a),
        np.log1p(small_a + 0.5 * small_a * small_a),
    )
    return np.sign(x) * val


def _psi_and_slope(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ψ(x)`` and ``ψ'(x) = (1 + |x|) / (1 + |x| + x²/2)``."""
    a = np.abs(x)
    if a.size and float(np.max(a)) > 1e8:
        psi = catoni_psi(x)
        with np.errstate(over="ignore"):
            slope = np.where(a > 1e8, 2.0 / np.where(a > 1e8, a, 1.0), 0.0)
        small = a <= 1e8
        slope = np.where(small, (1.0 + a) / (1.0 + a + 0.5 * np.where(small, a, 0.0) ** 2), slope)
        return psi, slope
    q = 1.0 + a + 0.5 * a * a
    return np.sign(x) * np.log(q), (1.0 + a) / q


#: columns of (R, S) worked on at once in the Newton sums: R x 512 numbers, about a MiB at
#: R = 200, so the dozen passes over them stay in cache instead of streaming R × S numbers
#: from memory a dozen times (and the replicates are read in place, never transposed)
_BLOCK_COLUMNS = 512


def _newton_sums(x: np.ndarray, theta: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f = Σ_i ψ(a (x_i − θ))`` and ``a Σ_i ψ'(a (x_i − θ))`` per column of ``x`` (R, S), on
    blocks of columns (:func:`_psi_and_slope` on the same numbers)."""
    S = x.shape[1]
    f = np.empty(S)
    fp = np.empty(S)
    for lo in range(0, S, _BLOCK_COLUMNS):
        hi = min(S, lo + _BLOCK_COLUMNS)
        d = np.subtract(x[:, lo:hi], theta[lo:hi])
        d *= a[lo:hi]
        u = np.abs(d)
        if u.size and float(u.max()) > 1e8:  # the overflow-free forms
            psi, slope = _psi_and_slope(d)
            f[lo:hi] = psi.sum(axis=0)
            fp[lo:hi] = a[lo:hi] * slope.sum(axis=0)
            continue
        q = np.multiply(u, 0.5)
        q += 1.0
        q *= u
        q += 1.0  # 1 + |x| + x²/2
        u += 1.0
        u /= q  # ψ'(x) = (1 + |x|) / q
        fp[lo:hi] = a[lo:hi] * u.sum(axis=0)
        np.log(q, out=q)
        np.copysign(q, d, out=q)  # ψ(x) = sign(x) log q
        f[lo:hi] = q.sum(axis=0)
    return f, fp


def _psi_sums(x: np.ndarray, theta: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``Σ_i ψ(a (x_i − θ))`` per column of ``x`` (R, S) (:func:`catoni_psi`), on blocks."""
    S = x.shape[1]
    f = np.empty(S)
    for lo in range(0, S, _BLOCK_COLUMNS):
        hi = min(S, lo + _BLOCK_COLUMNS)
        d = np.subtract(x[:, lo:hi], theta[lo:hi])
        d *= a[lo:hi]
        f[lo:hi] = catoni_psi(d).sum(axis=0)
    return f


def catoni_mean(samples: np.ndarray, scale: np.ndarray | float, iterations: int = 200) -> np.ndarray:
    """Catoni's estimate per column of ``samples`` (R, S): the root of ``Σ_i ψ(a (X_i − θ))``.

    ``Σ_i ψ(a(X_i − θ))`` is continuous and strictly decreasing in ``θ``, positive below
    ``min X`` and negative above ``max X`` (unless all equal), so the root is unique; it is found
    by Newton steps kept inside a shrinking bracket (bisection when a step leaves it), to float64
    resolution. Columns with ``a = inf`` (zero variance claimed) or non-finite values get the
    plain mean.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        return catoni_mean(x[:, None], scale, iterations)[0]
    S = x.shape[1]
    a = np.broadcast_to(np.asarray(scale, dtype=np.float64), (S,))
    plain = x.mean(axis=0)
    lo_all, hi_all = x.min(axis=0), x.max(axis=0)
    # constant columns are their own root; non-finite ones and a = inf get the plain mean
    ok = np.isfinite(a) & np.isfinite(lo_all) & np.isfinite(hi_all) & (hi_all > lo_all)
    if not np.any(ok):
        return plain
    if np.all(ok):
        xs, av, lo, hi = x, a, lo_all.copy(), hi_all.copy()
    else:
        xs, av, lo, hi = x[:, ok], a[ok], lo_all[ok], hi_all[ok]
    # float64 resolution of the root, relative to the data's location and spread
    tol = 4e-16 * (np.maximum(np.abs(lo), np.abs(hi)) + (hi - lo))
    theta = np.clip(plain[ok], lo, hi)
    active = np.ones(theta.shape, dtype=bool)
    for _ in range(iterations):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        every = idx.size == theta.size
        th = theta if every else theta[idx]
        a_i = av if every else av[idx]
        f, fp = _newton_sums(xs if every else xs[:, idx], th, a_i)
        lo_i, hi_i = lo[idx], hi[idx]
        lo_i = np.where(f > 0, th, lo_i)
        hi_i = np.where(f > 0, hi_i, th)
        lo[idx], hi[idx] = lo_i, hi_i
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(fp > 0, f / fp, np.nan)
        new = th + step
        inside = np.isfinite(new) & (new >= lo_i) & (new <= hi_i)
        new = np.where(f == 0, th, np.where(inside, new, 0.5 * (lo_i + hi_i)))
        done = (np.abs(new - th) <= tol[idx]) | (hi_i - lo_i <= tol[idx]) | (f == 0)
        theta[idx] = new
        active[idx[done]] = False
    out = plain.copy()
    out[ok] = theta
    return out


def catoni_outside(
    samples: np.ndarray, scale: np.ndarray | float, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(θ̂ < lower, θ̂ > upper)`` per column of ``samples`` (R, S), for :func:`catoni_mean`'s
    ``θ̂`` (the plain mean where it takes it), without finding the root.

    ``r(θ) = Σ_i ψ(a (X_i − θ))`` is strictly decreasing with its unique root at ``θ̂``, so
    ``θ̂ > u ⟺ r(u) > 0`` and ``θ̂ < l ⟺ r(l) < 0``: one pass over the samples per bound
    instead of the Newton steps, and exact where the root is known only to float64
    resolution. A test that only compares the estimate with bounds (the gate's spread test)
    needs nothing else.
    """
    x = np.asarray(samples, dtype=np.float64)
    S = x.shape[1]
    a = np.broadcast_to(np.asarray(scale, dtype=np.float64), (S,))
    lower = np.broadcast_to(np.asarray(lower, dtype=np.float64), (S,))
    upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), (S,))
    plain = x.mean(axis=0)
    lo_all, hi_all = x.min(axis=0), x.max(axis=0)
    # the columns catoni_mean answers with the plain mean (constant, non-finite, a = inf)
    ok = np.isfinite(a) & np.isfinite(lo_all) & np.isfinite(hi_all) & (hi_all > lo_all)
    below, above = plain < lower, plain > upper
    if np.any(ok):
        every = bool(np.all(ok))
        xs = x if every else x[:, ok]
        av = a if every else a[ok]
        above[ok] = _psi_sums(xs, upper if every else upper[ok], av) > 0
        below[ok] = _psi_sums(xs, lower if every else lower[ok], av) < 0
    return below, above

