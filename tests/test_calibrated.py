"""Calibrated Monte Carlo assertions (fisher_verify._src.testing.calibrated): exact tails, radii,
false-alarm rate and power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fisher_verify._src.testing.calibrated import (
    assert_frequency_at_least,
    assert_frequency_matches,
    assert_mean_matches,
    assert_variance_matches,
    bernstein_radius,
    binomial_cdf,
    binomial_sf,
    bonferroni,
    chebyshev_radius,
    median_of_means_plan,
    median_of_means_radius,
)
from fisher_verify._src.testing.catoni import catoni_mean, catoni_radius, catoni_scale


@pytest.mark.parametrize(("k", "n", "p"), [(3, 10, 0.5), (0, 7, 0.2), (40, 100, 0.37), (99, 100, 0.99)])
def test_binomial_tails_match_scipy(k: int, n: int, p: float) -> None:
    from scipy import stats
    assert binomial_cdf(k, n, p) == pytest.approx(stats.binom.cdf(k, n, p), rel=1e-12)
    assert binomial_sf(k, n, p) == pytest.approx(stats.binom.sf(k - 1, n, p), rel=1e-12)


def test_median_of_means_plan_is_valid_and_tighter_than_chebyshev() -> None:
    k, c = median_of_means_plan(1e-6, 5000)
    assert k % 2 == 1
    assert binomial_sf((k + 1) // 2, k, 1 / c**2) <= 1e-6
    mom = median_of_means_radius(1.0, 5000)
    assert mom < chebyshev_radius(1.0, 5000) / 30
    assert bernstein_radius(1.0, 1.0, 5000) < mom
    assert bonferroni(1e-3, 1000) == pytest.approx(1e-6)


def test_false_alarm_rate_is_at_most_alpha() -> None:
    """At alpha = 1e-2 (measurable), 3000 true-null checks on skewed (exponential) data reject
    at most as often as Bin(3000, 0.01) allows at level 1e-6."""
    rng = np.random.default_rng(11)
    x = rng.exponential(1.0, size=(3000, 300))
    est = catoni_mean(x.T, catoni_scale(np.ones(3000), 300, 1e-2))  # every row at once
    alarms = int(np.sum(np.abs(est - 1.0) > catoni_radius(1.0, 300, 1e-2)))
    assert_frequency_at_least(3000 - alarms, 3000, 0.99, alpha=1e-6, what="1 - false alarms")
    for row, e in zip(x[:20], est[:20]):  # assert_mean_matches gives the same verdicts
        chk = assert_mean_matches(row, 1.0, 1.0, alpha=1e-2, raise_on_fail=False)
        assert chk.statistic == pytest.approx(e, rel=1e-12)
        assert chk.passed == (abs(e - 1.0) <= catoni_radius(1.0, 300, 1e-2))
    mom = sum(
        not assert_mean_matches(
            row, 1.0, 1.0, alpha=1e-2, method="median_of_means", raise_on_fail=False
        ).passed
        for row in x[:500]
    )
    assert_frequency_at_least(500 - mom, 500, 0.99, alpha=1e-6, what="1 - false alarms (MoM)")


def test_power_and_message() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, size=4000)
    assert_mean_matches(x, 0.0, 1.0)
    with pytest.raises(AssertionError, match="FAILED"):
        assert_mean_matches(x + 30 / math.sqrt(4000), 0.0, 1.0, what="shifted")
    chk = assert_mean_matches(x, 0.0, 1.0, method="chebyshev")
    assert chk.passed and chk.threshold == pytest.approx(chebyshev_radius(1.0, 4000))
    u = rng.uniform(-1, 1, size=4000)
    assert_mean_matches(u, 0.0, 1 / 3, method="bernstein", bound=1.0)
    with pytest.raises(ValueError, match="bound"):
        assert_mean_matches(u, 0.0, 1 / 3, method="bernstein")
    # a zero-variance claim tolerates rounding only
    assert_mean_matches(np.full(100, 0.1 + 0.2), 0.3, 0.0)
    # variance of a standard normal: E[D^4] = 3
    assert_variance_matches(x, 1.0, 3.0)


def test_frequency_checks() -> None:
    assert assert_frequency_at_least(950, 1000, 0.95).passed
    assert not assert_frequency_at_least(850, 1000, 0.95, raise_on_fail=False).passed
    assert assert_frequency_at_least(0, 10, 0.0).passed
    assert assert_frequency_matches(500, 1000, 0.5).passed
    with pytest.raises(AssertionError):
        assert_frequency_matches(700, 1000, 0.5)


# --- Catoni's M-estimator ----------------------------------------------------------------------


def test_catoni_psi_is_between_catonis_bounds() -> None:
    """The proof needs −log(1 − x + x²/2) ≤ ψ(x) ≤ log(1 + x + x²/2) for every x."""
    from fisher_verify._src.testing.catoni import catoni_psi

    x = np.concatenate([np.linspace(-50, 50, 20001), [-1e12, 1e12, -1e200, 1e200]])
    psi = catoni_psi(x)
    with np.errstate(over="ignore"):
        upper = np.log1p(x + x * x / 2)
        lower = -np.log1p(-x + x * x / 2)
    fin = np.isfinite(upper) & np.isfinite(lower)
    assert np.all(psi[fin] <= upper[fin] + 1e-12 * np.abs(upper[fin]))
    assert np.all(psi[fin] >= lower[fin] - 1e-12 * np.abs(lower[fin]))
    assert np.all(np.isfinite(psi)) and np.all(np.diff(psi[:20001]) > 0)


def test_catoni_radius_is_the_optimum_of_the_proof() -> None:
    """The radius σ sqrt(2L/(R−2L)) is the minimum over a of the root bound
    (1 − sqrt(1 − a²σ² − 2L/R))/a (docs/estimator-gate.md), found here by brute force."""
    from fisher_verify._src.testing.catoni import catoni_radius, catoni_scale

    for R, delta, sigma in [(200, 1e-6 / 80, 1.0), (50, 0.01, 2.5), (5000, 1e-8, 0.3)]:
        L = math.log(2 / delta)
        a = np.linspace(1e-6, 1.0, 2_000_001) / sigma
        inside = 1 - a * a * sigma**2 - 2 * L / R
        root = np.where(inside >= 0, (1 - np.sqrt(np.maximum(inside, 0))) / a, np.inf)
        assert catoni_radius(sigma, R, delta) == pytest.approx(root.min(), rel=1e-6)
        assert float(catoni_scale(sigma, R, delta)) == pytest.approx(a[np.argmin(root)], rel=1e-3)
        # Catoni's own closed form (Prop. 2.4) for the scale
        v = sigma**2
        want = math.sqrt(2 * L / (R * (v + 2 * v * L / (R - 2 * L))))
        assert float(catoni_scale(sigma, R, delta)) == pytest.approx(want, rel=1e-12)


def test_catoni_radius_near_the_gaussian_limit() -> None:
    from fisher_verify._src.testing.catoni import catoni_radius_factor, minimum_catoni_draws

    # the target: alpha = 1e-6 over 40 statistics, R = 200: <= 7 standard errors
    assert catoni_radius_factor(200, 1e-6 / 40) * math.sqrt(200) == pytest.approx(6.67, abs=0.01)
    assert catoni_radius_factor(200, 1e-6 / 80) * math.sqrt(200) <= 7.0
    # far below median of means (17.3) and within 3% of the Gaussian sqrt(2 log(2/δ)) at R = 10⁴
    assert median_of_means_radius(1.0, 200, 1e-6 / 40) * math.sqrt(200) > 17
    gauss = math.sqrt(2 * math.log(2 / 1e-8))
    assert catoni_radius_factor(10_000, 1e-8) * 100 == pytest.approx(gauss, rel=0.03)
    with pytest.raises(ValueError, match="draws"):
        catoni_radius_factor(minimum_catoni_draws(1e-6) - 1, 1e-6)
    catoni_radius_factor(minimum_catoni_draws(1e-6), 1e-6)


def test_catoni_mean_solves_its_equation() -> None:
    from fisher_verify._src.testing.catoni import catoni_mean, catoni_psi, catoni_scale

    rng = np.random.default_rng(5)
    x = rng.standard_t(3, size=(300, 4)) + np.array([0.0, 1e6, -3.0, 1e-9])
    a = catoni_scale(np.array([1.7, 1.7, 1.7, 1.7]), 300, 1e-6)
    est = catoni_mean(x, a)
    for j in range(4):
        f = lambda th, j=j: catoni_psi(a[j] * (x[:, j] - th)).sum()  # noqa: E731
        span = 1e-12 * max(1.0, abs(est[j]))
        assert f(est[j] - span) >= 0 >= f(est[j] + span)
    const = np.full((10, 1), 0.3)
    assert catoni_mean(const, np.array([np.inf]))[0] == pytest.approx(0.3)


@pytest.mark.parametrize("alpha", [0.01, 0.1])
def test_catoni_false_alarm_rate_on_heavy_tails(alpha: float) -> None:
    """Student t with 2.5 degrees of freedom (finite variance 5, infinite 4th moment) and a
    lognormal: 3000 true-null checks at R = 100 reject at most as Bin(3000, alpha) allows at 1e-6."""
    rng = np.random.default_rng(17)
    t = rng.standard_t(2.5, size=(3000, 100))
    ln = rng.lognormal(0.0, 1.0, size=(3000, 100))
    m_ln, v_ln = math.exp(0.5), (math.e - 1) * math.e
    for rows, mean, var in [(t, 0.0, 5.0), (ln, m_ln, v_ln)]:
        # every row at once: the columns of catoni_mean are independent checks
        est = catoni_mean(rows.T, catoni_scale(np.full(3000, math.sqrt(var)), 100, alpha))
        alarms = int(np.sum(np.abs(est - mean) > catoni_radius(math.sqrt(var), 100, alpha)))
        assert_frequency_at_least(3000 - alarms, 3000, 1 - alpha, alpha=1e-6, what="1 - alarms")
        # the same verdicts as assert_mean_matches, row by row (a few rows)
        for r in range(5):
            chk = assert_mean_matches(rows[r], mean, var, alpha=alpha, raise_on_fail=False)
            assert chk.statistic == pytest.approx(est[r], rel=1e-12, abs=1e-12)
