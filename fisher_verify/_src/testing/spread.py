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

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .catoni import catoni_mean, catoni_outside, catoni_radius_factor, catoni_scale

__all__: list[str] = []  # nothing for other rooms


#: statistics whose squared deviations are formed at once (R x 512: about a MiB at R = 200)
_BLOCK = 512


@dataclass(frozen=True)
class SpreadResult:
    """Per-statistic outcome of the spread test (arrays of length S; NaN where not tested).

    Attributes:
        tested: whether the statistic's spread was tested (σ above the rounding tolerance, μ₄
            known).
        variance: the exact ``σ²``.
        radius: the acceptance radius on ``E (X − μ)²``.
        slack: rounding tolerance on ``(X − μ)²``.
        plain: the plain mean of ``(X − μ)²`` (unbiased; for the reported ratio).
        too_noisy: spread significantly larger than that of ``Î_kind``: Catoni's estimate of
            ``E (X − μ)²`` above ``σ² + radius + slack`` (decided by the sign of Catoni's sum
            there, :func:`~fisher_verify._src.testing.catoni.catoni_outside`).
        too_quiet: spread significantly smaller: the estimate below ``σ² − radius − slack``.
    """

    tested: np.ndarray
    variance: np.ndarray
    radius: np.ndarray
    slack: np.ndarray
    plain: np.ndarray
    too_noisy: np.ndarray
    too_quiet: np.ndarray
    values: np.ndarray = field(repr=False, compare=False)
    expected: np.ndarray = field(repr=False, compare=False)
    scale: np.ndarray = field(repr=False, compare=False)

    @cached_property
    def estimate(self) -> np.ndarray:
        """Catoni's estimate of ``E (X − μ)²`` per tested statistic (NaN elsewhere), found only
        when asked for: the verdicts need only its side of the bounds."""
        out = np.full(self.variance.shape, np.nan)
        cols = np.flatnonzero(self.tested)
        if cols.size:
            dev2 = (self.values[:, cols] - self.expected[cols]) ** 2
            out[cols] = catoni_mean(dev2, self.scale[cols])
        return out

    @property
    def ratio(self) -> np.ndarray:
        """Observed (plain mean of ``(X − μ)²``) / exact variance (1 for ``Î_kind``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.tested, self.plain / self.variance, np.nan)


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
    R, S = values.shape
    # a spread below the rounding tolerance is not measurable: fig-1's zero variance comes
    # out of κ₄ + 2(uᵀIu)² as ~1e-16 of the cancelling terms, i.e. an sd ~1e-8 of the scale
    tested = (np.sqrt(np.maximum(variance, 0.0)) > np.maximum(slack, floor)) & np.isfinite(fourth)
    var_y = np.where(tested, np.maximum(fourth - variance * variance, 0.0), 0.0)
    sd_y = np.sqrt(var_y)
    any_tested = bool(np.any(tested))
    scale = np.full(S, np.inf)
    if any_tested:
        scale[tested] = catoni_scale(sd_y[tested], R, delta)
    radius = sd_y * catoni_radius_factor(R, delta) if any_tested else np.zeros_like(sd_y)
    sigma = np.sqrt(np.maximum(variance, 0.0))
    slack_y = 2.0 * slack * sigma + slack * slack + 1e-12 * variance
    plain = np.empty(S)
    noisy = np.zeros(S, dtype=bool)
    quiet = np.zeros(S, dtype=bool)
    # the squared deviations a block at a time: never the whole (R, S) array besides values
    for lo in range(0, S, _BLOCK):
        hi = min(S, lo + _BLOCK)
        dev2 = values[:, lo:hi] - expected[lo:hi]
        dev2 *= dev2
        plain[lo:hi] = dev2.mean(axis=0)
        cols = np.flatnonzero(tested[lo:hi])
        if cols.size:
            at = lo + cols
            bound = radius[at] + slack_y[at]
            below, above = catoni_outside(
                dev2 if cols.size == hi - lo else dev2[:, cols], scale[at],
                variance[at] - bound, variance[at] + bound,
            )
            noisy[at], quiet[at] = above, below
    return SpreadResult(
        tested=tested, variance=variance, radius=radius, slack=slack_y, plain=plain,
        too_noisy=noisy, too_quiet=quiet, values=values, expected=expected, scale=scale,
    )
