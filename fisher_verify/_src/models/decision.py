"""Deciding from an estimated ``Var(Î₂)`` (thm-6 by Hutchinson probes): which estimator is
better, whether a sample size follows (lemma-12), and how many probes a precision needs.

An estimate is ``value ± z·stderr`` with ``z`` the two-sided normal quantile of the analysis'
``confidence`` (1.96 at 0.95). ``Var(Î₁)`` is always exact (a point). The comparison is
*undecided* when the interval of ``Var(Î₂)`` contains 0 (a variance is ≥ 0, so the estimate
cannot tell a small variance from none) or contains ``Var(Î₁)`` (the two overlap); otherwise
the estimator named better is the one with the **smaller** variance.

Probes for a relative precision: the Hutchinson sum over ``S`` independent probes has a
standard error ``s/√S`` (``s`` the spread of one probe's value; for the U-statistic over
probes the jackknife error scales the same way). From a pilot over ``S₀`` probes with standard
error ``se₀``, ``s ≈ se₀ √S₀``, so ``se ≤ r·|value|`` needs ``S = ⌈S₀ (se₀ / (r |value|))²⌉``,
capped at :data:`MAX_PROBES`.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from ..errors import FisherVerifyError, ShapeError

__all__ = ["MAX_PROBES", "check_rel_precision"]

#: Most Hutchinson probes one analysis may use (time and memory grow linearly in them).
MAX_PROBES = 4096
#: Probes of the pilot run that ``probes="auto"`` sizes the real run from.
PILOT_PROBES = 16
#: The word every output (table, JSON, CLI) uses for a comparison an estimate cannot decide.
UNDECIDED = "undecided"


def interval_z(confidence: float) -> float:
    """Two-sided normal quantile ``z`` with ``P(|Z| ≤ z) = confidence`` (1.95996… at 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise FisherVerifyError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def interval(value: float, stderr: float, confidence: float) -> tuple[float, float]:
    """``value ∓ z·stderr`` (:func:`interval_z`)."""
    half = interval_z(confidence) * stderr
    return value - half, value + half


def spans_zero(value: float, stderr: float, exact: bool, confidence: float) -> bool:
    """Whether an estimated variance's interval contains 0 (then it decides nothing)."""
    if exact:
        return False
    lo, _ = interval(value, stderr, confidence)
    return lo <= 0.0


def compare(v1: float, v2: float, stderr2: float, exact2: bool, confidence: float) -> str:
    """``"I1"`` / ``"I2"`` (the one with the smaller summed variance), ``"tie"`` (exactly equal
    to rounding), or :data:`UNDECIDED` when ``v2`` is an estimate whose interval contains 0
    or ``v1``; an estimate's decision carries ``" (estimate)"``."""
    if exact2:
        if math.isclose(v1, v2, rel_tol=1e-9, abs_tol=1e-300):
            return "tie"
        return "I1" if v1 < v2 else "I2"
    lo, hi = interval(v2, stderr2, confidence)
    if lo <= 0.0 or lo <= v1 <= hi or not math.isfinite(stderr2):
        return UNDECIDED
    return ("I1" if v1 < v2 else "I2") + " (estimate)"


def check_rel_precision(rel_precision: object) -> float:
    """``rel_precision`` as a float in (0, 1), else a refusal naming it."""
    ok = isinstance(rel_precision, int | float) and not isinstance(rel_precision, bool)
    if not ok or not 0.0 < float(rel_precision) < 1.0:  # type: ignore[arg-type]
        raise FisherVerifyError(
            f"rel_precision must be a number strictly between 0 and 1 (the relative standard "
            f"error probes='auto' aims at), got {rel_precision!r}")
    return float(rel_precision)  # type: ignore[arg-type]


def check_probes(probes: object) -> int | str:
    """``probes``: ``"auto"`` or an integer in ``[3, MAX_PROBES]``, else a refusal naming the
    limit (checked before anything is allocated: ``S`` probes hold ``S`` values per entry)."""
    if probes == "auto":
        return "auto"
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 3:
        raise ShapeError(
            f"probes must be an integer >= 3 (for a standard error) or 'auto', got {probes!r}")
    if probes > MAX_PROBES:
        raise ShapeError(
            f"probes = {probes} is above the limit MAX_PROBES = {MAX_PROBES} (time and memory "
            "grow linearly in the probes); use fewer, or probes='auto' with rel_precision")
    return probes


def probes_for_precision(stderr: float, value: float, pilot: int, rel_precision: float,
                         cap: int = MAX_PROBES) -> tuple[int, bool]:
    """``(S, capped)``: probes for ``stderr ≤ rel_precision·|value|`` from a pilot over
    ``pilot`` probes (module docstring), at least ``pilot``; ``capped`` when the formula asks
    for more than ``cap`` (then ``S = cap``)."""
    check_rel_precision(rel_precision)
    if stderr <= 0.0:
        return pilot, False
    if value == 0.0 or not math.isfinite(stderr):
        return cap, True
    need = pilot * (stderr / (rel_precision * abs(value))) ** 2
    if need > cap:
        return cap, True
    return max(pilot, math.ceil(need)), False
