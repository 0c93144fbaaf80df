"""The estimator gate's one-sided mode: an estimator of an upper or lower bound of I(θ)
(``side="upper"`` / ``"lower"``).

Every statistic of the gate is ``⟨W, Î⟩`` with ``W ⪰ 0`` (``e_i e_iᵀ``, ``v vᵀ``, ``Diag(v²)``),
so an estimator unbiased for ``U ⪰ I(θ)`` has ``E⟨W, Î⟩ = ⟨W, U⟩ ≥ ⟨W, I(θ)⟩`` for each. The
null hypothesis of ``side="upper"`` is that inequality for every statistic, with the variance
of each statistic at most the declared kind's exact one; it is rejected for a statistic when
Catoni's estimate falls below ``⟨W, I(θ)⟩`` by more than the one-sided radius

    r = σ sqrt(2L / (R − 2L)),   L = log(1/δ),   δ = alpha / S,

which Catoni's bound gives with probability ``≥ 1 − δ`` for any law with that variance
(``catoni.py``: one-sided ``L = log(1/δ)``, where the two-sided test uses ``log(2/δ)``); by the
union bound over the ``S`` statistics the whole gate raises a false alarm with probability at
most ``alpha`` for any estimator of a bound. ``"lower"`` mirrors it. A bound estimator's mean
is not I(θ), so the spread about I(θ), the constant-statistic and the pooled tests (all built
on the mean I(θ)) do not apply and are not run: all of ``alpha`` goes to the S mean tests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import FisherVerifyError
from .catoni import catoni_mean, catoni_radius_factor, catoni_scale, minimum_catoni_draws
from .estimator_gate import EstimatorReport, GateStatistic, collect_values
from .gate_exact import ExactStatistics

__all__ = ["one_sided_gate", "one_sided_radius_factor"]


def one_sided_radius_factor(R: int, alpha: float, S: int) -> float:
    """``sqrt(2L / (R − 2L))`` with ``L = log(S/alpha)``: the one-sided radius in exact sds."""
    return catoni_radius_factor(R, alpha / S, two_sided=False)


def one_sided_gate(
    estimator: Any, ex: ExactStatistics, target: np.ndarray, gen: np.random.Generator, *,
    side: str, R: int, alpha: float, rtol: float, labels: list[str], P: int, diagonal_only: bool,
    variance: str, kind: Any, n: int,
) -> EstimatorReport:
    """Run the one-sided gate (module docstring) and return its report."""
    from .gate_kinds import describe_kind

    V = ex.V
    S = P + V.shape[0]
    per = alpha / S
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
    passed = finite and not bool(np.any(off))
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
                f"(worst {worst.label}).")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = emp[sd > 0] / sd[sd > 0]
    return EstimatorReport(
        passed=passed, kind=kind, n=n, replications=R, diagonal_only=bool(diagonal_only),
        alpha=float(alpha), alpha_per_check=float(per), statistics=stats, worst=worst,
        scale=math.nan, scale_explains=False,
        sd_ratio=float(np.median(ratio)) if ratio.size else math.nan,
        diagnosis=text + f" (calibrated by the exact variance of {describe_kind(kind)})",
        variance=variance, cause=cause, tests=S, method=f"catoni-{side}",
    )
