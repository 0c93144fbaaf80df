"""The gate's spread test: do the replicates vary as much as ``Î_kind`` with ``n`` draws should?

For one statistic with exact mean ``μ``, variance ``σ²`` and fourth central moment ``μ₄``
(:mod:`fisher_verify._src.testing.gate_exact`, ``thm-4`` / ``thm-6``), the squared deviations
``Y_r = (X_r − μ)²`` of ``R`` i.i.d. replicates have mean ``σ²`` and variance ``μ₄ − σ⁴``
exactly. Catoni's estimate of ``E Y`` (:mod:`fisher_verify._src.testing.catoni`) is within
``sqrt(μ₄ − σ⁴) · sqrt(2L/(R − 2L))`` of ``σ²`` with probability ``≥ 1 − δ``, so the test
"too noisy" / "too quiet" has false-alarm rate ``≤ δ`` for an estimator distributed as
``Î_kind``. (The known mean is used instead of the sample mean: with ``R`` rather than
``R/2`` effective draws the radius is about ``√2`` smaller for near-Gaussian statistics;
``Var(s²) = (μ₄ − (R−3)/(R−1) σ⁴)/R`` of the sample variance is the mean-free alternative
and is what the tests check the moments against.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catoni import catoni_mean, catoni_radius_factor, catoni_scale

__all__: list[str] = []  # nothing for other rooms


@dataclass(frozen=True)
class SpreadResult:
    """Per-statistic outcome of the spread test (arrays of length S; NaN where not tested).

    Attributes:
        tested: whether the statistic's spread was tested (σ above the rounding tolerance, μ₄
            known).
        estimate: Catoni's estimate of ``E (X − μ)²`` from the replicates.
        variance: the exact ``σ²``.
        radius: the acceptance radius on ``E (X − μ)²``.
        slack: rounding tolerance on ``(X − μ)²``.
        plain: the plain mean of ``(X − μ)²`` (unbiased; for the reported ratio).
    """

    tested: np.ndarray
    estimate: np.ndarray
    variance: np.ndarray
    radius: np.ndarray
    slack: np.ndarray
    plain: np.ndarray

    @property
    def ratio(self) -> np.ndarray:
        """Observed (plain mean of ``(X − μ)²``) / exact variance (1 for ``Î_kind``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.tested, self.plain / self.variance, np.nan)

    @property
    def too_noisy(self) -> np.ndarray:
        """Spread significantly larger than that of ``Î_kind``."""
        return self.tested & (self.estimate - self.variance > self.radius + self.slack)

    @property
    def too_quiet(self) -> np.ndarray:
        """Spread significantly smaller than that of ``Î_kind``."""
        return self.tested & (self.variance - self.estimate > self.radius + self.slack)


def spread_test(
    values: np.ndarray,
    expected: np.ndarray,
    variance: np.ndarray,
    fourth: np.ndarray,
    delta: float,
    slack: np.ndarray,
    floor: np.ndarray | float = 0.0,
) -> SpreadResult:
    """Two-sided calibrated test of ``E (X − μ)² = σ²`` per column of ``values`` (R, S).

    ``delta`` is the false-alarm rate of each statistic's test (both sides together);
    ``slack`` the rounding tolerance on X (it widens the acceptance region only); statistics
    whose exact sd is at most ``max(slack, floor)`` are not tested (zero up to rounding).
    """
    R = values.shape[0]
    # a spread below the rounding tolerance is not measurable: fig-1's zero variance comes
    # out of κ₄ + 2(uᵀIu)² as ~1e-16 of the cancelling terms, i.e. an sd ~1e-8 of the scale
    tested = (np.sqrt(np.maximum(variance, 0.0)) > np.maximum(slack, floor)) & np.isfinite(fourth)
    dev2 = (values - expected[None, :]) ** 2
    var_y = np.where(tested, np.maximum(fourth - variance * variance, 0.0), 0.0)
    sd_y = np.sqrt(var_y)
    estimate = np.full(expected.shape, np.nan)
    if np.any(tested):
        cols = np.flatnonzero(tested)
        scale = catoni_scale(sd_y[cols], R, delta)
        estimate[cols] = catoni_mean(dev2[:, cols], scale)
    radius = sd_y * catoni_radius_factor(R, delta) if np.any(tested) else np.zeros_like(sd_y)
    sigma = np.sqrt(np.maximum(variance, 0.0))
    slack_y = 2.0 * slack * sigma + slack * slack + 1e-12 * variance
    return SpreadResult(
        tested=tested, estimate=estimate, variance=variance, radius=radius, slack=slack_y,
        plain=dev2.mean(axis=0),
    )
