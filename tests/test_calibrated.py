"""Calibrated Monte Carlo assertions (fisher_verify.testing.calibrated): exact tails, radii,
false-alarm rate and power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fisher_verify.testing.calibrated import (
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
    alarms = sum(
        not assert_mean_matches(row, 1.0, 1.0, alpha=1e-2, raise_on_fail=False).passed
        for row in x
    )
    assert_frequency_at_least(3000 - alarms, 3000, 0.99, alpha=1e-6, what="1 - false alarms")


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
