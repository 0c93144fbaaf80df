"""The estimator gate's pooled tests: the precision-weighted scale factor against 1, and a
split-sample omnibus over every statistic, calibrated by exact variances (``thm-4`` / ``thm-6``).

The per-statistic tests of :mod:`fisher_verify._src.testing.estimator_gate` each look at one
``⟨W_j, Î⟩``. A bias spread thinly over all of them (an ``M/(M−1)`` factor: +3.2% at
``M = 32``) is within every single threshold, yet a *linear combination* of the statistics
averages the noise down. Any combination ``Σ_j a_j ⟨W_j, Î⟩ = ⟨Σ_j a_j W_j, Î⟩`` is again one
linear statistic of the replicate, so under the null its ``R`` values are i.i.d. with the exact
mean ``Σ_j a_j μ_j`` and the exact variance of
:func:`~fisher_verify._src.testing.gate_exact.combination_variance` (the correlations between the
statistics included, not bounded), and Catoni's radius (:mod:`fisher_verify._src.testing.catoni`)
calibrates its test from that variance alone.

* **Scale.** ``a = K⁻¹e / (eᵀK⁻¹e)`` with ``K = Σ + λ Diag(Σ)``, ``Σ`` the exact covariance
  of the statistics (:func:`~fisher_verify._src.testing.gate_exact.statistics_covariance`, up to
  ``COVARIANCE_LIMIT`` statistics; ``K = Diag(Σ)`` above it) and ``λ = RIDGE``: generalised
  least squares, kept away from the near-singular directions of ``Σ`` (statistics that are
  almost linearly dependent) so that rounding stays negligible. The plain mean of
  ``Σ_j a_j X_j`` is then the weighted least-squares factor ``ĉ`` of ``observed ≈ c · exact``;
  its exact mean under the null is 1 (``Σ a_j e_j = 1``). Two-sided. The weights only set the
  power: the test is calibrated for any weights fixed before the replicates.
* **Omnibus.** Split the replicates into halves ``A`` (the first ``⌊R/2⌋``) and ``B``. The
  direction ``d = K⁻¹(X̄^A − μ)`` learned on ``A`` is independent of ``B``, so given
  ``A`` the test of ``Σ_j d_j X_j`` on ``B`` (one-sided: a bias makes ``Σ_j d_j (X̄^B_j − μ_j)``
  positive, being aligned with the bias seen in ``A``) has level ``δ``; the same with the halves
  swapped. This catches a bias of any pattern whose size, summed over the statistics in
  standard errors, is large, where a sum of squared standardized deviations would need a tail
  bound at level ``1e-8`` from fourth moments only (Chebyshev-like, far weaker).

Each test runs only when Catoni's bound exists for its number of replicates (``R > 2L``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .catoni import catoni_log_term, catoni_mean, catoni_radius_factor, catoni_scale
from .gate_exact import ExactStatistics, combination_variance, statistics_covariance

__all__: list[str] = []  # nothing for other rooms

#: Up to this many pooled statistics the weights use their exact covariance (cost M·nodes·S²).
COVARIANCE_LIMIT = 400

#: Ridge on the covariance, relative to its diagonal: GLS power without near-singular weights.
RIDGE = 0.01


@dataclass(frozen=True)
class PooledTest:
    """One pooled test: a combination ``Σ_j a_j ⟨W_j, Î⟩`` of the statistics.

    Attributes:
        name: ``"scale"``, ``"omnibus A→B"`` or ``"omnibus B→A"``.
        observed: Catoni's estimate of the combination's mean (the tested estimate).
        mean: its plain mean (for ``"scale"``: the precision-weighted factor ``ĉ``).
        expected: its exact mean under the null (1 for ``"scale"``).
        sd: exact sd of one replicate of the combination.
        empirical_sd: sd of the combination over the replicates used.
        radius: Catoni radius at the test's level ``delta``.
        slack: rounding tolerance ``Σ_j |a_j| slack_j``.
        replications: replicates the test uses.
        delta: false-alarm rate of this test.
        two_sided: whether both directions reject (the omnibus rejects only a positive one).
    """

    name: str
    observed: float
    mean: float
    expected: float
    sd: float
    empirical_sd: float
    radius: float
    slack: float
    replications: int
    delta: float
    two_sided: bool

    @property
    def passed(self) -> bool:
        """Whether the combination's estimate is within ``radius + slack`` of its exact mean."""
        dev = self.observed - self.expected
        if not math.isfinite(dev):
            return False
        return bool((abs(dev) if self.two_sided else dev) <= self.radius + self.slack)

    @property
    def standard_error(self) -> float:
        """Exact sd of the mean of the replicates used, ``sd / √R``."""
        return self.sd / math.sqrt(self.replications)

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        se = self.standard_error
        z = (self.observed - self.expected) / se if se > 0 else 0.0
        side = "" if self.two_sided else " one-sided"
        return (
            f"{self.name}: {verdict}: {self.observed:.6g} vs exact {self.expected:.6g} (off by "
            f"{z:.1f} exact standard errors;{side} threshold "
            f"{self.radius / se if se > 0 else 0.0:.1f} = {self.radius + self.slack:.3g})"
        )


def _metric(ex: ExactStatistics, fam: Any, ok: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``x ↦ K⁻¹x`` on the statistics in ``ok`` (module docstring)."""
    var = ex.variance[ok]
    if int(np.sum(ok)) <= COVARIANCE_LIMIT:
        C = statistics_covariance(ex, fam)[np.ix_(ok, ok)]
        K = C + RIDGE * np.diag(np.diag(C))
        if np.all(np.isfinite(K)):
            chol = np.linalg.cholesky(K)  # K ≥ RIDGE·Diag(Σ) > 0

            def solve(x: np.ndarray) -> np.ndarray:
                return np.asarray(np.linalg.solve(chol.T, np.linalg.solve(chol, x)))

            return solve
    return lambda x: x / var


def scale_weights(
    ex: ExactStatistics, fam: Any, use: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]] | None:
    """The scale test's weights ``a`` (S,) with ``Σ_j a_j e_j = 1`` (0 outside the statistics
    used), the mask of those statistics and the metric ``K⁻¹`` of the omnibus on them; None when
    no statistic qualifies (``use``, a positive variance, a non-zero exact value)."""
    expected, variance = ex.expected, ex.variance
    ok = use & (variance > 0) & (expected != 0) & np.isfinite(expected) & np.isfinite(variance)
    if not np.any(ok):
        return None
    solve = _metric(ex, fam, ok)
    a_ok = solve(expected[ok])
    den = float(a_ok @ expected[ok])
    if not (den > 0 and math.isfinite(den)):
        return None
    a = np.zeros_like(expected)
    a[ok] = a_ok / den
    return a, ok, solve


def _one(
    name: str, y: np.ndarray, expected: float, var: float, slack: float, delta: float,
    two_sided: bool,
) -> PooledTest | None:
    R = y.size
    if R <= 2.0 * catoni_log_term(delta, two_sided) or not math.isfinite(var):
        return None
    sd = math.sqrt(max(var, 0.0))
    est = float(catoni_mean(y, catoni_scale(sd, R, delta, two_sided)))
    radius = sd * catoni_radius_factor(R, delta, two_sided)
    emp = float(np.std(y, ddof=1)) if R > 1 else 0.0
    return PooledTest(name, est, float(np.mean(y)), expected, sd, emp, radius, slack, R, delta,
                      two_sided)


def pooled_tests(
    values: np.ndarray, ex: ExactStatistics, fam: Any, slack: np.ndarray, use: np.ndarray,
    delta: float,
) -> tuple[PooledTest, ...]:
    """The scale test at level ``delta/2`` and the two omnibus tests at ``delta/4`` each (so
    ``delta`` in all, by the union bound), on the statistics in ``use``; a test whose ``R`` is
    too small for Catoni's bound is left out. ``values`` (R, S) are the replicates."""
    out: list[PooledTest] = []
    weights = scale_weights(ex, fam, use)
    if weights is None:
        return ()
    a, ok, solve = weights
    R = values.shape[0]
    # rounding: the combination's tolerance is that of its terms, and its own summation's
    round_tol = lambda c: float(np.sum(np.abs(c) * slack) + 1e-12 * np.sum(np.abs(c * ex.expected)))  # noqa: E731
    var_a = float(combination_variance(ex, fam, a)[0])
    t = _one("scale", values @ a, float(a @ ex.expected), var_a, round_tol(a), delta / 2, True)
    if t is not None:
        out.append(t)
    half = R // 2
    halves = [("omnibus A→B", values[:half], values[half:]), ("omnibus B→A", values[half:], values[:half])]
    dirs = []
    for _, learn, _test in halves:
        d = np.zeros_like(a)
        d[ok] = solve(learn.mean(axis=0)[ok] - ex.expected[ok])
        big = float(np.max(np.abs(d))) if d.size else 0.0
        dirs.append(d / big if big > 0 and math.isfinite(big) else np.zeros_like(d))
    live = [k for k, d in enumerate(dirs) if np.any(d != 0)]
    if live:
        var_d = combination_variance(ex, fam, np.stack([dirs[k] for k in live]))
        for k, v in zip(live, var_d):
            name, _, test = halves[k]
            d = dirs[k]
            t = _one(name, test @ d, float(d @ ex.expected), float(v), round_tol(d), delta / 4, False)
            if t is not None:
                out.append(t)
    return tuple(out)
