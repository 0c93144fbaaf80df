"""Calibrated Monte Carlo assertions: a fixed false-alarm rate, a threshold from the exact variance.

Every check here is a hypothesis test whose rejection threshold follows from the false-alarm
rate ``alpha`` (default ``1e-6`` per check) and from quantities known *exactly* (the exact
variance of the sampled variable, or a probability claimed by a theorem). No threshold is
tuned by trial and error. Several checks in one run share a budget with :func:`bonferroni`.

Tests for means use *Catoni's M-estimator* by default (:mod:`fisher_verify._src.testing.catoni`):
its radius ``σ sqrt(2L/(R − 2L))``, ``L = log(2/alpha)``, needs only the exact variance and
approaches the Gaussian radius as ``R`` grows (about ``6 σ/√R`` at ``alpha = 1e-6``, ``R = 1000``).
The older *median of means* is kept as ``method="median_of_means"``: split the ``R`` draws into ``k`` groups of
``m = R // k``; by Chebyshev each group mean misses ``μ`` by more than ``c σ / √m`` with
probability at most ``q = 1/c²``; the median misses only if at least ``(k+1)/2`` groups miss,
whose probability is the binomial tail ``P(Bin(k, q) ≥ (k+1)/2)``. ``(c, k)`` is chosen to make
that tail ``≤ alpha`` with the smallest radius ``c √k``. This needs nothing but the exact
variance (no normality, no bounded range), and for ``alpha = 1e-6`` the radius is about
``25 σ/√R``, forty times tighter than plain Chebyshev (``σ/√(alpha R)``). When a bound on
``|X − μ|`` is known, :func:`bernstein_radius` is tighter still.

Frequencies (coverage, p.s.d. probability) use the exact binomial tail, which is a valid
level-``alpha`` test of ``p ≥ p0`` because ``Bin(R, p)`` is stochastically increasing in ``p``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from .catoni import catoni_mean, catoni_radius, catoni_scale

__all__: list[str] = []  # nothing for other rooms

DEFAULT_ALPHA = 1e-6


@dataclass(frozen=True)
class CalibratedCheck:
    """Outcome of one calibrated check: the statistic, the threshold and what they mean."""

    what: str
    statistic: float
    expected: float
    threshold: float
    alpha: float
    method: str
    passed: bool

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.what}: {verdict} ({self.method}, alpha={self.alpha:.1e}): "
            f"statistic={self.statistic:.6g}, expected={self.expected:.6g}, "
            f"threshold={self.threshold:.6g}"
        )


def bonferroni(alpha_total: float, n_checks: int) -> float:
    """Per-check false-alarm rate so that ``n_checks`` checks stay within ``alpha_total``."""
    if n_checks < 1:
        raise ValueError(f"n_checks must be >= 1, got {n_checks}")
    return alpha_total / n_checks


# --- binomial tails (exact, no SciPy) ---------------------------------------------------------


def _log_binom_pmf(k: np.ndarray, n: int, p: float) -> np.ndarray:
    k = np.asarray(k, dtype=float)
    lg = np.array([math.lgamma(v + 1) + math.lgamma(n - v + 1) for v in k.ravel()])
    out = math.lgamma(n + 1) - lg.reshape(k.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = out + np.where(k > 0, k * math.log(p) if p > 0 else -np.inf, 0.0)
        out = out + np.where(n - k > 0, (n - k) * math.log1p(-p) if p < 1 else -np.inf, 0.0)
    return np.asarray(out)


def _pmf_sum(lo: int, hi: int, n: int, p: float) -> float:
    """``P(lo ≤ Bin(n, p) ≤ hi)``, summed in log space around the largest term (capped at 1)."""
    logs = _log_binom_pmf(np.arange(lo, hi + 1), n, p)
    m = float(np.max(logs))
    if not np.isfinite(m):
        return 0.0
    return float(min(1.0, math.exp(m) * np.sum(np.exp(logs - m))))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """``P(Bin(n, p) ≤ k)``, exact (log-space sum)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return _pmf_sum(0, k, n, p)


def binomial_sf(k: int, n: int, p: float) -> float:
    """``P(Bin(n, p) ≥ k)``, exact."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return _pmf_sum(k, n, n, p)


# --- radii ------------------------------------------------------------------------------------


def chebyshev_radius(sigma: float, n: int, alpha: float = DEFAULT_ALPHA) -> float:
    """Radius r with ``P(|X̄ − μ| ≥ r) ≤ alpha`` for a mean of n i.i.d. draws of variance σ²."""
    return float(sigma) / math.sqrt(n * alpha)


def bernstein_radius(sigma: float, bound: float, n: int, alpha: float = DEFAULT_ALPHA) -> float:
    """Bernstein radius for a mean of n i.i.d. draws with ``|X − μ| ≤ bound`` and variance σ².

    ``P(|X̄ − μ| ≥ r) ≤ 2 exp(−n r² / (2σ² + 2 b r / 3))``; solving for equality at ``alpha``.
    """
    lg = math.log(2.0 / alpha)
    b = float(bound)
    # n r² − (2/3) b lg r − 2σ² lg = 0
    a_, b_, c_ = n, -(2.0 / 3.0) * b * lg, -2.0 * float(sigma) ** 2 * lg
    return (-b_ + math.sqrt(b_ * b_ - 4 * a_ * c_)) / (2 * a_)


@cache
def median_of_means_plan(alpha: float, n: int) -> tuple[int, float]:
    """``(k, c)``: number of groups and Chebyshev multiple for a level-``alpha`` median of means.

    Minimises the radius ``c √(k/n)`` (in units of σ) over odd ``k ≤ n`` and ``c`` in a fixed grid
    subject to ``P(Bin(k, 1/c²) ≥ (k+1)/2) ≤ alpha``. Deterministic in ``(alpha, n)``.
    """
    best: tuple[float, int, float] | None = None
    for c in np.linspace(1.5, 8.0, 66):
        q = 1.0 / (c * c)
        k = 1
        while k <= min(n, 4001):
            if binomial_sf((k + 1) // 2, k, q) <= alpha:
                break
            k += 2
        if k > min(n, 4001):
            continue
        m = n // k
        radius = c / math.sqrt(m)
        if best is None or radius < best[0]:
            best = (radius, k, float(c))
    if best is None:
        raise ValueError(f"median of means: {n} draws are too few for alpha={alpha:g}")
    return best[1], best[2]


def median_of_means_radius(sigma: float, n: int, alpha: float = DEFAULT_ALPHA) -> float:
    """Radius r with ``P(|MoM − μ| > r) ≤ alpha`` for n i.i.d. draws of variance σ²."""
    k, c = median_of_means_plan(float(alpha), int(n))
    return c * float(sigma) / math.sqrt(n // k)


def median_of_means(samples: np.ndarray, alpha: float = DEFAULT_ALPHA) -> float:
    """The median of group means, with the grouping of :func:`median_of_means_plan`."""
    x = np.asarray(samples, dtype=float).ravel()
    k, _ = median_of_means_plan(float(alpha), x.size)
    m = x.size // k
    return float(np.median(x[: k * m].reshape(k, m).mean(axis=1)))


# --- assertions -------------------------------------------------------------------------------


def _finish(check: CalibratedCheck, raise_on_fail: bool) -> CalibratedCheck:
    if raise_on_fail and not check.passed:
        raise AssertionError(str(check))
    return check


def assert_mean_matches(
    samples: np.ndarray,
    mean: float,
    variance: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    bound: float | None = None,
    method: str = "catoni",
    what: str = "Monte Carlo mean",
    raise_on_fail: bool = True,
) -> CalibratedCheck:
    """Test that i.i.d. ``samples`` of X have mean ``mean``, knowing ``Var(X) = variance`` exactly.

    ``method``: ``"catoni"`` (default, distribution-free, near the Gaussian radius),
    ``"median_of_means"``, ``"chebyshev"``, or
    ``"bernstein"`` (needs ``bound ≥ |X − mean|`` almost surely). The false-alarm rate is at
    most ``alpha`` when the claim is true. Used for ``thm-4``, ``thm-6``, ``thm-11``, ``crlb``.
    """
    x = np.asarray(samples, dtype=float).ravel()
    sigma = math.sqrt(max(float(variance), 0.0))
    n = x.size
    if method == "catoni":
        stat = float(catoni_mean(x, catoni_scale(sigma, n, alpha)))
        thr = catoni_radius(sigma, n, alpha)
    elif method == "median_of_means":
        stat = median_of_means(x, alpha)
        thr = median_of_means_radius(sigma, n, alpha)
    elif method == "chebyshev":
        stat, thr = float(x.mean()), chebyshev_radius(sigma, n, alpha)
    elif method == "bernstein":
        if bound is None:
            raise ValueError("method='bernstein' needs bound >= |X - mean|")
        stat, thr = float(x.mean()), bernstein_radius(sigma, bound, n, alpha)
    else:
        raise ValueError(
            f"unknown method {method!r}: catoni, median_of_means, chebyshev, bernstein"
        )
    # a relative float64 slack so that a zero-variance claim still tolerates rounding
    slack = 1e-9 * max(abs(float(mean)), float(np.max(np.abs(x))) if n else 0.0, 1e-300)
    passed = bool(abs(stat - float(mean)) <= thr + slack)
    return _finish(
        CalibratedCheck(what, stat, float(mean), thr + slack, alpha, method, passed), raise_on_fail
    )


def assert_variance_matches(
    deviations: np.ndarray,
    variance: float,
    fourth_moment: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    what: str = "Monte Carlo variance",
    raise_on_fail: bool = True,
) -> CalibratedCheck:
    """Test ``E[D²] = variance`` from i.i.d. ``deviations`` D = X − E[X] with E[X] known exactly.

    ``fourth_moment`` is the exact ``E[D⁴]``, so ``Var(D²) = E[D⁴] − variance²`` is exact and the
    calibrated threshold of :func:`assert_mean_matches` (Catoni's) applies to ``D²``.
    """
    d = np.asarray(deviations, dtype=float).ravel()
    var_sq = max(float(fourth_moment) - float(variance) ** 2, 0.0)
    return assert_mean_matches(
        d * d, variance, var_sq, alpha=alpha, what=what, raise_on_fail=raise_on_fail
    )


def assert_frequency_at_least(
    successes: int,
    trials: int,
    p0: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    what: str = "frequency",
    raise_on_fail: bool = True,
) -> CalibratedCheck:
    """Test the claim ``P(success) ≥ p0`` (``thm-10``, ``lemma-12``) by the exact binomial tail.

    Fails when ``P(Bin(trials, p0) ≤ successes) < alpha``; under the claim that happens with
    probability at most ``alpha``.
    """
    p0 = min(max(float(p0), 0.0), 1.0)
    # the largest count that still rejects
    lo, hi = -1, trials  # binomial_cdf(lo) < alpha <= binomial_cdf(hi) (cdf(trials)=1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if binomial_cdf(mid, trials, p0) < alpha:
            lo = mid
        else:
            hi = mid
    threshold = hi  # smallest accepted count
    passed = successes >= threshold
    return _finish(
        CalibratedCheck(
            what, successes / trials, p0, threshold / trials, alpha,
            "exact binomial (>= p0)", passed,
        ),
        raise_on_fail,
    )


def assert_frequency_matches(
    successes: int,
    trials: int,
    p: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    what: str = "frequency",
    raise_on_fail: bool = True,
) -> CalibratedCheck:
    """Two-sided exact binomial test of ``P(success) = p`` (``alpha/2`` in each tail)."""
    lo_tail = binomial_cdf(successes, trials, p)
    hi_tail = binomial_sf(successes, trials, p)
    passed = lo_tail >= alpha / 2 and hi_tail >= alpha / 2
    return _finish(
        CalibratedCheck(
            what, successes / trials, p, min(lo_tail, hi_tail), alpha,
            "exact binomial (= p)", passed,
        ),
        raise_on_fail,
    )
