"""The estimator gate's one-sided mode: an estimator of an upper or lower bound of I(θ)
(``side="upper"`` / ``"lower"``).

Every statistic of the gate is ``⟨W, Î⟩`` with ``W ⪰ 0`` (``e_i e_iᵀ``, ``v vᵀ``, ``Diag(v²)``),
so an estimator unbiased for ``U ⪰ I(θ)`` has ``E⟨W, Î⟩ = ⟨W, U⟩ ≥ ⟨W, I(θ)⟩`` for each. The
null hypothesis of ``side="upper"`` is that inequality for every statistic, with the variance
of each statistic at most the declared kind's exact one; it is rejected for a statistic when
Catoni's estimate falls below ``⟨W, I(θ)⟩`` by more than the one-sided radius

    r = σ sqrt(2L / (R − 2L)),   L = log(1/δ),   δ = alpha / (2S),

which Catoni's bound gives with probability ``≥ 1 − δ`` for any law with that variance
(``catoni.py``: one-sided ``L = log(1/δ)``, where the two-sided test uses ``log(2/δ)``).
**Pooled.** The precision-weighted sum ``c = Σ_j a_j s_j``, ``a_j = e_j / σ_j²`` over the
statistics with ``e_j = ⟨W_j, I(θ)⟩ > 0`` (so ``a ≥ 0`` and the order carries over), normalised
to ``Σ_j a_j e_j = 1``, is tested one-sided against 1 at level ``alpha/2`` with its exact
variance (the kind's combination variance, correlations included): it sees a bound violated by
a common factor that no single statistic resolves. By the union bound the whole gate raises a
false alarm with probability at most ``alpha`` for any estimator of a bound whose statistics are
at most as variable as the kind's. ``"lower"`` mirrors it. A bound estimator's mean is not
I(θ), so the spread about I(θ), the constant-statistic tests and the two-sided pooled tests do
not apply and are not run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import FisherVerifyError
from .catoni import catoni_mean, catoni_radius_factor, catoni_scale, minimum_catoni_draws
from .gate_exact import ExactStatistics
from .gate_report import EstimatorReport, GateStatistic, collect_values
from .pooled import PooledTest

__all__: list[str] = []  # nothing for other rooms


#: Share of ``alpha`` for the one-sided pooled test (the rest is split over the S statistics).
POOLED_SHARE = 0.5


def one_sided_radius_factor(R: int, alpha: float, S: int) -> float:
    """``sqrt(2L / (R − 2L))`` with ``L = log(2S/alpha)``: the one-sided radius in exact sds."""
    return catoni_radius_factor(R, (1.0 - POOLED_SHARE) * alpha / S, two_sided=False)


def one_sided_gate(
    estimator: Any, ex: ExactStatistics, target: np.ndarray, gen: np.random.Generator, *,
    side: str, R: int, alpha: float, rtol: float, labels: list[str], P: int, diagonal_only: bool,
    variance: str, kind: Any, n: int, family: Any,
) -> EstimatorReport:
    """Run the one-sided gate (module docstring) and return its report."""
    from .gate_kinds import describe_kind

    V = ex.V
    S = P + V.shape[0]
    per = (1.0 - POOLED_SHARE) * alpha / S
    need = minimum_catoni_draws(per, two_sided=False)
    if R < need:
        raise FisherVerifyError(
            f"replications = {R} is too few for the one-sided gate at alpha = {alpha:g} over {S} "
            f"statistics; use at least {need} (200 or more for useful power)"
        )
    sd = np.sqrt(np.maximum(ex.variance, 0.0))
    slack = rtol * np.maximum(ex.scales, np.abs(target))
    values = collect_values(estimator, gen, R, P, V, diagonal_only)
    finite = bool(np.all(np.isfinite(values)))
    observed = catoni_mean(values, catoni_scale(sd, R, per, two_sided=False)) if finite else (
        values.mean(axis=0))
    radius = sd * one_sided_radius_factor(R, alpha, S)
    dev = observed - target
    off = (-dev if side == "upper" else dev) > radius + slack
    pooled = _pooled(values, ex, family, target, slack, side, POOLED_SHARE * alpha) if finite else ()
    passed = finite and not bool(np.any(off)) and all(t.passed for t in pooled)
    means = values.mean(axis=0)
    emp = values.std(axis=0, ddof=1) if R > 1 else np.zeros(S)
    form = "Diag(Î)" if diagonal_only else "Î"
    names = list(labels) + [f"v{j}ᵀ {form} v{j} (random unit v{j})" for j in range(V.shape[0])]
    stats = tuple(
        GateStatistic(names[j], float(observed[j]), float(means[j]), float(target[j]), float(sd[j]),
                      float(emp[j]), float(radius[j]), float(slack[j]), R, side=side)
        for j in range(S)
    )
    worst = max(stats, key=lambda s: s.excess)
    bound = "an upper bound (⪰ I(θ))" if side == "upper" else "a lower bound (⪯ I(θ))"
    if not finite:
        cause, text = "nonfinite", "the estimator returned NaN or infinite values"
    elif passed:
        cause, text = "ok", f"consistent with an estimator of {bound} of I(θ) (eq-6), one-sided."
    else:
        word = "below" if side == "upper" else "above"
        cause = "below_bound" if side == "upper" else "above_bound"
        text = (f"not {bound}: {int(np.sum(off))} of {S} statistics significantly {word} I(θ) "
                f"(worst {worst.label})" + ("" if all(t.passed for t in pooled) else
                f"; their precision-weighted mean is {abs(pooled[0].observed):.4g}x I(θ)'s, "
                f"significantly {word} 1") + ".")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = emp[sd > 0] / sd[sd > 0]
    return EstimatorReport(
        passed=passed, which=kind, n=n, replications=R, diagonal_only=bool(diagonal_only),
        alpha=float(alpha), alpha_per_check=float(per), statistics=stats, worst=worst,
        scale=math.nan, scale_explains=False,
        sd_ratio=float(np.median(ratio)) if ratio.size else math.nan,
        diagnosis=text + f" (calibrated by the exact variance of {describe_kind(kind)})",
        variance=variance, cause=cause, tests=S, method=f"catoni-{side}", pooled=pooled,
    )


def _pooled(values: np.ndarray, ex: ExactStatistics, family: Any, target: np.ndarray, slack: np.ndarray,
            side: str, delta: float) -> tuple[PooledTest, ...]:
    """The one-sided precision-weighted scale test (module docstring); () when no statistic
    qualifies or R is below Catoni's range."""
    from .gate_exact import combination_variance

    ok = (ex.variance > 0) & (target > 0) & np.isfinite(ex.variance)
    if not np.any(ok):
        return ()
    a = np.where(ok, target / np.where(ok, ex.variance, 1.0), 0.0)
    a = a / float(a @ target)
    y = values @ a
    R = y.size
    if R <= 2.0 * math.log(1.0 / delta):
        return ()
    var = float(combination_variance(ex, family, a)[0])
    if not math.isfinite(var):
        return ()
    sd = math.sqrt(max(var, 0.0))
    est = float(catoni_mean(y, catoni_scale(sd, R, delta, two_sided=False)))
    radius = sd * catoni_radius_factor(R, delta, two_sided=False)
    tol = float(np.sum(a * slack))
    # PooledTest's one-sided verdict rejects a positive deviation: for an upper bound (c ≥ 1
    # under the null) the sign is flipped, so it rejects c < 1 − r
    sign = -1.0 if side == "upper" else 1.0
    name = "−c, c the precision-weighted factor (upper: c ≥ 1)" if side == "upper" else (
        "c, the precision-weighted factor (lower: c ≤ 1)")
    return (PooledTest(name, sign * est, sign * float(np.mean(y)), sign, sd,
                       float(np.std(y, ddof=1)) if R > 1 else 0.0, radius, tol, R, delta, False),)
