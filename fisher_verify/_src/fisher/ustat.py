"""The order-2 U-statistic over S draws and its delete-one jackknife standard error.

Every estimate of a quadratic quantity here is one: sampled input pairs for the thm-7/thm-8
norms (:mod:`fisher_verify._src.models.mlp_norms`), Hutchinson probes for ‖Cov(Î₂)‖_F (thm-8,
:mod:`fisher_verify._src.models.mlp_bounds`) and for
the Var(Î₂) diagonal of any model (thm-6, :mod:`fisher_verify._src.models.hessian`). With a
symmetric kernel ``f`` over S draws, ``total = Σ_{s,s'} f(s, s')``, ``self_s = f(s, s)`` and
``cross_s = Σ_{s'} f(s, s')``:

    U     = (total − Σ_s self_s) / (S(S−1))                       (unbiased: distinct pairs only)
    U_(s) = (total − 2 cross_s + 2 self_s − Σ_s self_s) / ((S−1)(S−2))   (draw s left out)
    se    = √((S−1)/S Σ_s (U_(s) − mean U_(·))²)                  (delete-one jackknife)

Elementwise over any trailing axes (one U per parameter for the diagonals).
"""

from __future__ import annotations

from typing import Any

__all__ = ["jackknife_stderr", "u_statistic_deleted"]


def u_statistic_deleted(total: Any, self_terms: Any, cross: Any) -> tuple[Any, Any]:
    """``(U, U_del)`` of the module docstring for torch ``total`` (...), ``self_terms`` and
    ``cross`` (S, ...); ``U_del`` is None when S < 3 (no delete-one U-statistic exists)."""
    S = int(self_terms.shape[0])
    Q = self_terms.sum(0)
    U = (total - Q) / (S * (S - 1))
    if S < 3:
        return U, None
    return U, (total - 2.0 * cross + 2.0 * self_terms - Q) / ((S - 1) * (S - 2))


def jackknife_stderr(U_del: Any) -> Any:
    """Standard error from delete-one values ``U_del`` (S, ...): ``√((S−1)/S Σ_s (U_(s) − Ū)²)``."""
    S = U_del.shape[0]
    return ((S - 1) / S * ((U_del - U_del.mean(0)) ** 2).sum(0)).clamp(min=0).sqrt()
