"""How many draws an estimator needs for a target accuracy (``lemma-12``), shared by
``fv.analyze`` (Eq. 3 networks and any torch model)."""

from __future__ import annotations

import math

from ..errors import FisherVerifyError


def samples_needed(total_var_one: float, fisher_norm: float, rel: float, conf: float) -> int | None:
    """``lemma-12``: the smallest N with ``‖Î − I(θ)‖_F ≤ rel · ‖I(θ)‖_F`` with probability at least
    ``conf``, i.e. ``N ≥ Σ Var(one draw) / (ε · rel² · ‖I‖²)`` with ``ε = 1 − conf``.

    ``total_var_one`` is the summed variance of one draw's entries (``N · Σ Var(Î)``). ``None``
    when ``‖I‖ = 0`` (no relative target exists); 1 when one draw is exact.
    """
    if fisher_norm <= 0:
        return None
    if total_var_one <= 0:
        return 1
    # one factor at a time: rel**2 or ‖I‖² alone underflows to 0 at extreme values
    needed = total_var_one / (1.0 - conf) / rel / rel / fisher_norm / fisher_norm
    if not math.isfinite(needed):
        raise FisherVerifyError(
            f"target {rel:g}: the samples needed (lemma-12) exceed 1e308 (||I||_F = "
            f"{fisher_norm:.3g}); ask for a larger target"
        )
    return max(1, math.ceil(needed))
