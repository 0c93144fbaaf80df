"""Which diagonal estimator has the lower variance in a parameter group, by how much, and why.

The reason is read off the model's *structure* (which group is last, whether every nonlinearity
is piecewise linear), never off the numbers, so that a wrong number next to a right reason is
visible: the statement that explains the group (paper/STATEMENTS.md, "Beyond the paper") is

- ``d24-last-layer``: ``h_L`` is linear in the group's parameters, so ``Var(Î₂) = 0`` there;
- ``d24-pwl``: every nonlinearity is piecewise linear (no weight tied across layers), the model
  is evaluated away from its kinks, so ``∂²_ii h_L = 0`` and ``diag Var(Î₂) = 0`` in every group;
- ``d24-groups``: the layer before the last of an MLP with a C² activation, where
  ``Var(Î₂)/Var(Î₁)`` of ``W[j, k]`` is ``σ''(z_j)² wᵀIw / (σ'(z_j)⁴ C[w,w,w,w])``, independent
  of the layer input;
- ``ext-links``: a head through a link ``h = g(f)`` with ``g″ ≠ 0``: ``h`` is affine in no
  group (``∂²h = J_fᵀ g″ J_f + g′ ∂²f``), so none of the d24 results above applies and the
  general element-wise variances (thm-4, thm-6 with the ``g″`` term) decide;
- ``thm-4/thm-6``: any other group, the general element-wise variances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["PIECEWISE_LINEAR_ACTIVATIONS", "REASONS", "reason_for", "tradeoff"]

#: Eq. 3 activations that are piecewise linear (identity: one piece).
PIECEWISE_LINEAR_ACTIVATIONS = frozenset({"relu", "identity"})

#: The statement id of each reason and the one-line "why" shown to users.
REASONS: dict[str, str] = {
    "d24-last-layer": "h_L is linear in these weights: Var(I2) = 0 for every activation and family",
    "d24-pwl": "piecewise-linear model away from its kinks: d2 h_L / d theta_i^2 = 0, so "
               "diag Var(I2) = 0 in every layer",
    "d24-groups": "layer before the last: Var(I2)/Var(I1) of W[j,k] = sigma''(z_j)^2 w'Iw / "
                  "(sigma'(z_j)^4 C[w,w,w,w]), set by the activation and the family's moments, "
                  "not by the layer input",
    "ext-links": "head through a link h = g(f): h is affine in no layer (d2 h carries "
                 "J_f' g'' J_f), so d24-last-layer/d24-pwl/d24-groups do not apply; general "
                 "thm-4/thm-6 with the g'' term",
    "thm-4/thm-6": "general element-wise variances (thm-4, thm-6)",
}


def reason_for(*, last: bool, piecewise_linear: bool, before_last_smooth: bool) -> str:
    """The statement id that explains a parameter group's trade-off, from structure alone.

    Args:
        last: ``h_L`` is affine in the group's parameters (the last linear layer).
        piecewise_linear: every nonlinearity of the model is piecewise linear and no parameter
            enters ``h_L`` twice (``d24-pwl``).
        before_last_smooth: the group is ``W`` of ``σ(W h̄)`` feeding the last linear layer
            directly, with a C² elementwise ``σ`` (``d24-groups``).
    """
    if last:
        return "d24-last-layer"
    if piecewise_linear:
        return "d24-pwl"
    if before_last_smooth:
        return "d24-groups"
    return "thm-4/thm-6"


@dataclass(frozen=True)
class Tradeoff:
    """One group's trade-off on the diagonal: ``ratio = Σ_i Var(Î₂)_ii / Σ_i Var(Î₁)_ii``.

    ``lower``: ``"I1"``, ``"I2"``, ``"tie"``, ``"undefined"`` (both sums 0) or
    ``"undetermined"`` (a sum overflowed, or the caller found the result degenerate); ``ratio`` is
    ``None`` where ``Σ Var(Î₁) = 0`` (undefined, or Î₂ infinitely worse), and a rounding-level
    ``ratio`` in a ``d24-last-layer``/``d24-pwl`` group is the computed zero of those statements.
    """

    lower: str
    ratio: float | None
    reason: str
    why: str

    def describe(self) -> str:
        """``"I2 lower, Var(I2)/Var(I1) = 0.013 (d24-groups)"``-style one-liner."""
        r = "n/a" if self.ratio is None else f"{self.ratio:.4g}"
        return f"{self.lower} lower, Var(I2)/Var(I1) = {r} ({self.reason})"


def tradeoff(var_1: float, var_2: float, reason: str) -> Tradeoff:
    """The trade-off of a group from its diagonal variance sums and its structural ``reason``
    (one of :data:`REASONS`; ``d24-var`` gives the sums)."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {sorted(REASONS)}, got {reason!r}")
    v1, v2 = float(var_1), float(var_2)
    if not (math.isfinite(v1) and math.isfinite(v2)):  # an overflowed sum compares nothing
        return Tradeoff("undetermined", None, reason, REASONS[reason])
    if v1 == 0.0 and v2 == 0.0:
        lower = "undefined"
    elif math.isclose(v1, v2, rel_tol=1e-9, abs_tol=1e-300):
        lower = "tie"
    else:
        lower = "I1" if v1 < v2 else "I2"
    ratio = None if v1 == 0.0 else v2 / v1
    return Tradeoff(lower, ratio, reason, REASONS[reason])
