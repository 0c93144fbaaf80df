"""Where a piecewise-smooth Eq. 3 network is smooth in θ: pre-activations away from kinks (thm-3-ae).

ReLU is not C² on ℝ (remark-3.1), but at an input where no pre-activation lies at 0 the network
is, on a neighbourhood of θ, a polynomial in θ: ``∂²h_L/∂θ∂θᵀ`` exists there (σ'' = 0 removes
the within-layer blocks, the cross-layer blocks stay) and thm-3 holds at that input. What the
library cannot decide is whether a computed pre-activation that is *near* 0 is on the right
side of the kink, so a pre-activation counts as at its kink when its distance to it is within
the rounding bound of its own computation:

    |fl(a_{l,r}) − a_{l,r}| ≤ γ_n (|W_l| |h̄_l|)_r + (|W_l⁻| e_l)_r,    γ_n = n u / (1 − n u),

with ``n = n_l + 1`` terms in the dot product, ``u = 2⁻⁵³`` and ``e_l`` the bound carried
from the layer below (``e_0 = 0``: the input is exact as given; ReLU is 1-Lipschitz and exact in
floating point, so ``e_{l+1} = `` the bound on ``a_l``). This is the standard forward error
bound of a dot product (Higham, Accuracy and Stability, §3.1) chained through the layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import Activation

UNIT_ROUNDOFF = 2.0**-53


@dataclass(frozen=True)
class Kink:
    """One pre-activation within rounding of a kink (thm-3-ae).

    Attributes:
        input: index m of the input (row of x).
        layer: l, the weight matrix ``W_l`` whose output ``a_l`` it is (0-based).
        unit: r, the unit of ``a_l``.
        value: the computed pre-activation ``a_{l,r}``.
        kink: the kink of σ it is near.
        tolerance: the rounding bound of ``a_{l,r}`` (module docstring).
    """

    input: int
    layer: int
    unit: int
    value: float
    kink: float
    tolerance: float

    def describe(self) -> str:
        """One line naming the input, the layer and the unit."""
        return (
            f"input {self.input}: pre-activation {self.unit} of layer {self.layer + 1} "
            f"(a_{self.layer}[{self.unit}] = W_{self.layer} h̄_{self.layer}) is {self.value:.3g}, "
            f"within {self.tolerance:.3g} (its rounding bound) of the kink at {self.kink:g}"
        )


def gamma(n: int) -> float:
    """γ_n = n u / (1 − n u), the relative error bound of an n-term dot product."""
    return n * UNIT_ROUNDOFF / (1.0 - n * UNIT_ROUNDOFF)


def find_kinks(weights: list[np.ndarray], act: Activation, X: np.ndarray) -> list[Kink]:
    """Every hidden pre-activation of the Eq. 3 network within rounding of a kink of σ (thm-3-ae).

    ``X`` is ``(M, n_0)``. Empty for a C² activation (no kinks) and at generic inputs.
    """
    if not act.kinks:
        return []
    found: list[Kink] = []
    h = X
    err = np.zeros_like(X)
    for layer, W in enumerate(weights[:-1]):
        hbar = np.concatenate([h, np.ones((h.shape[0], 1))], axis=1)
        a = hbar @ W.T
        tol = gamma(W.shape[1]) * (np.abs(hbar) @ np.abs(W).T) + err @ np.abs(W[:, :-1]).T
        for k in act.kinks:
            for m, r in zip(*np.nonzero(np.abs(a - k) <= tol), strict=True):
                found.append(Kink(int(m), layer, int(r), float(a[m, r]), k, float(tol[m, r])))
        h = act.np_f(a)
        err = tol
    return sorted(found, key=lambda q: (q.input, q.layer, q.unit))
