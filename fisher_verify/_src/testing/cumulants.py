"""Central moments of a sum of independent terms from their own (``ext-gnb``): cumulants add.

Below both :mod:`.gate_kinds` and :mod:`.gate_onebackward`, which use it, so that neither
imports the other back.
"""

from __future__ import annotations

from math import comb

import numpy as np

__all__: list[str] = []  # nothing for other rooms


def sum_moments(central: np.ndarray, scale: float) -> np.ndarray:
    """Central moments 0..8 of ``s = scale · Σ_m z_m`` for independent ``z_m`` with central
    moments ``central`` (M, K, 9) (``ext-gnb``): cumulants add, ``κ_k(s) = scale^k Σ_m κ_k(z_m)``."""
    mom = np.asarray(central, dtype=np.float64)
    order = mom.shape[-1] - 1
    kap = np.zeros_like(mom)
    # κ_k = μ_k − Σ_{j=1}^{k−1} C(k−1, j−1) κ_j μ_{k−j} (moments about the mean: κ₁ = 0)
    for k in range(2, order + 1):
        kap[..., k] = mom[..., k] - sum(
            comb(k - 1, j - 1) * kap[..., j] * mom[..., k - j] for j in range(2, k - 1)
        )
    ks = kap.sum(axis=0) * scale ** np.arange(order + 1)  # (K, order+1)
    out = np.zeros_like(ks)
    out[..., 0] = 1.0
    for k in range(2, order + 1):
        out[..., k] = sum(comb(k - 1, j - 1) * ks[..., j] * out[..., k - j] for j in range(2, k + 1))
    return out
