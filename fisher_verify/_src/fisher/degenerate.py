"""Degenerate results of the Eq. 3 quantities in float64: overflow (no finite answer, refused
with the reason) and underflow (a result that is 0 to working precision although the true value
is positive, reported with the reason). Used by :func:`fisher_verify.analyze`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import UnsupportedError

__all__ = ["MOMENT4_DIM_LIMIT", "check_finite", "frobenius", "refuse_overflow", "underflow_reasons"]

#: the smallest normal float64: a value below it has underflowed (lost its relative precision)
TINY = float(np.finfo(np.float64).tiny)
#: the μ₄ check of a zero Var(Î₁) forms (M, n_L⁴) arrays; families wider than this skip it
MOMENT4_DIM_LIMIT = 32


def family_scale(net: Any, x: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """``h_L`` (M, n_L), the family's ``Cov(t(y)) = ∇²F(h_L)`` (M, n_L, n_L) and max |h_L|."""
    h = np.atleast_2d(np.asarray(net.forward(x), dtype=float))
    cov = np.asarray(net.family.fisher(h), dtype=float).reshape(h.shape[0], h.shape[1], h.shape[1])
    return h, cov, float(np.max(np.abs(h)))


def refuse_overflow(net: Any, x: Any, what: str) -> None:
    """Refuse a quantity that is not finite in float64: no answer exists at this precision.

    Raises:
        UnsupportedError: naming what overflowed, the family, the input and why.
    """
    h, cov, hmax = family_scale(net, x)
    bad = ~np.all(np.isfinite(cov.reshape(cov.shape[0], -1)), axis=1)
    if np.any(bad):
        row = int(np.argmax(bad))
        cause = (f"the output family's variance Cov(t(y)) = ∇²F(h_L) is not finite in float64 "
                 f"at input row {row} (h_L = {np.array2string(h[row], precision=4)})")
    else:
        cause = ("its fourth-moment terms exceed the float64 range (about 1.8e308) although "
                 f"Cov(t(y)) = ∇²F(h_L) is finite (largest |entry| {np.max(np.abs(cov)):.3g})")
    raise UnsupportedError(
        f"overflow: {what} is not finite in float64 for family {net.family.label} (largest "
        f"|h_L| = {hmax:.3g}): {cause}; no finite answer exists at this precision: scale the "
        "network's outputs (its last layer) or the family parameter into range")


def underflow_reasons(net: Any, x: Any, fisher: np.ndarray, variance_1: np.ndarray) -> list[str]:
    """Why the result (I(θ) of eq-6, Var(Î₁) of thm-4) is zero to working precision, or ``[]``.

    The family's ``Cov(t(y))`` is positive definite and the last layer's bias enters ``h_L``
    with Jacobian 1, so a true I(θ) is never 0: one whose every entry lies below the smallest
    normal float64 has underflowed. Likewise μ₄ = E(t − η)⁴ ≥ Cov(t)² > 0, so a zero Var(Î₁)
    with a μ₄ below that range has underflowed (a Bernoulli at h = 0 has Var(Î₁) = 0 exactly,
    with μ₄ = 1/16, and is not flagged).
    """
    reasons: list[str] = []
    fmax = float(np.max(np.abs(fisher))) if fisher.size else 0.0
    if fmax < TINY:
        _, cov, hmax = family_scale(net, x)
        reasons.append(
            f"every entry of the Fisher information underflowed (max |I_ij| = {fmax:.3g}, below "
            f"the smallest normal float64 {TINY:.3g}): the output family's variance "
            f"Cov(t(y)) = ∇²F(h_L) is at most {float(np.max(np.abs(cov))):.3g} at every input "
            f"(largest |h_L| = {hmax:.3g}), so I(θ), both variances, the bounds and the sample "
            "sizes are 0 or meaningless to working precision, not their true tiny positive values")
        return reasons
    if variance_1.size and float(np.max(np.abs(variance_1))) < TINY \
            and int(net.family.dim) <= MOMENT4_DIM_LIMIT:
        h = np.atleast_2d(np.asarray(net.forward(x), dtype=float))
        mu4 = np.asarray(net.family.central_moment4(h), dtype=float)
        if float(np.max(np.abs(mu4))) < TINY:
            reasons.append(
                "Var(I1) underflowed: the family's fourth central moment E(t - eta)^4 is below "
                f"the smallest normal float64 {TINY:.3g} at every input (max |I_ij| = "
                f"{fmax:.3g}), so Var(I1), its bound (thm-7), the comparison of the estimators "
                "and the sample sizes are 0 or meaningless to working precision")
    return reasons


def frobenius(a: np.ndarray) -> float:
    """‖a‖_F without overflow or underflow of the squares (scaled by the largest entry)."""
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    if scale == 0.0 or not math.isfinite(scale):
        return scale
    return scale * float(np.linalg.norm(a / scale))


def check_finite(net: Any, x: Any, fisher: np.ndarray, var: dict[int, np.ndarray]) -> None:
    """Refuse (overflow) when the Fisher or a variance is not finite."""
    if not np.all(np.isfinite(fisher)):
        refuse_overflow(net, x, "the Fisher information I(θ)")
    for e in (1, 2):
        if not np.all(np.isfinite(var[e])):
            refuse_overflow(net, x, f"Var(Î{'₁' if e == 1 else '₂'}) (thm-{4 if e == 1 else 6})")
