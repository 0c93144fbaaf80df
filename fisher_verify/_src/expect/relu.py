"""What happens to thm-3 and Î₂ on ReLU networks (remark-3.1): measured, not assumed.

Findings this module reports for a given ReLU network and input(s):

- Away from kinks (no pre-activation exactly 0, the generic case) the network is a
  polynomial in θ on a neighbourhood, so eq-4/eq-5 hold and E[−∂²ℓ] = I(θ) exactly
  (``thm3_gap`` ≈ 1e-16): thm-3's conclusion holds almost everywhere.
- σ'' = 0 removes only the within-layer part of ∂²h_L: the diagonal blocks ∂²h_L/∂W_l²
  vanish, but the cross-layer blocks ∂²h_L/∂W_l∂W_k (k < l, the bilinear coupling of W_l
  with h_l) do not for depth ≥ 2. So Î₂ ≠ I(θ) in general (its zero-mean term
  (η − t̄)_a ∂²h^a survives); only the block-diagonal of Î₂ (per layer) equals that of I(θ)
  exactly, for any draws. Depth 1 (a linear model) has Î₂ = I(θ) exactly.
- At a kink, h_L is not differentiable in θ: the one-sided Jacobians differ
  (``kink_jacobian_gap`` > 0). Both routes here use relu'(0) = 0 (torch's subgradient
  convention), which is the left-sided derivative; I(θ) is then convention-dependent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..fisher.exact import network_fisher
from ..networks.network import Network
from .single_sample import expected_neg_hessian


@dataclass(frozen=True)
class ReluReport:
    """Measured behaviour of a (ReLU) network at inputs x; see the module docstring.

    Attributes:
        is_c2: whether σ ∈ C² (False for ReLU).
        kinks: (input m, layer l, unit r) with pre-activation a_{l,r} exactly 0.
        within_layer_hessian_max: max |∂²h_L/∂W_l∂W_l| over layers (0 for ReLU).
        cross_layer_hessian_max: max |∂²h_L/∂W_l∂W_k|, k ≠ l (≠ 0 for depth ≥ 2).
        thm3_gap: max |E[−∂²ℓ] − I(θ)| / max |I(θ)| (expectation engine vs eq-6).
        kink_jacobian_gap: max |J(a=+ε) − J(a=−ε)| over kinks (0 without kinks).
        autodiff_is_left_derivative: at kinks, autodiff J equals the a → 0⁻ limit.
    """

    is_c2: bool
    kinks: list[tuple[int, int, int]]
    within_layer_hessian_max: float
    cross_layer_hessian_max: float
    thm3_gap: float
    kink_jacobian_gap: float
    autodiff_is_left_derivative: bool

    def summary(self) -> str:
        """One paragraph for a report."""
        return (
            f"C2={self.is_c2}; kinks={len(self.kinks)}; within-layer Hessian max="
            f"{self.within_layer_hessian_max:.3g}; cross-layer Hessian max="
            f"{self.cross_layer_hessian_max:.3g}; thm-3 gap={self.thm3_gap:.3g}; one-sided "
            f"Jacobian gap at kinks={self.kink_jacobian_gap:.3g}"
        )


def relu_report(net: Network, x: Any, eps: float = 1e-7) -> ReluReport:
    """Measure thm-3, the Hessian structure and kink behaviour of ``net`` at ``x``."""
    X, _ = net.inputs(x)
    q = net.lemma13(X)
    kinks = [
        (m, layer, r)
        for layer, a in enumerate(q.pre[:-1])
        for m, r in zip(*np.nonzero(a == 0.0), strict=True)
    ]
    H = net.output_hessians(X, method="autodiff")
    off = net.offsets
    within = 0.0
    mask = np.ones(H.shape[-2:], dtype=bool)
    for layer in range(net.depth):
        sl = slice(off[layer], off[layer + 1])
        within = max(within, float(np.max(np.abs(H[..., sl, sl]), initial=0.0)))
        mask[sl, sl] = False
    cross = float(np.max(np.abs(H[..., mask]), initial=0.0))
    I = network_fisher(net, X)
    gap = float(np.max(np.abs(expected_neg_hessian(net, X) - I)) / max(np.max(np.abs(I)), 1e-300))
    jgap = 0.0
    left = True
    for m, layer, r in kinks:
        th = net.theta
        bias_index = off[layer] + r * net.shapes[layer][1] + net.shapes[layer][1] - 1
        th_p, th_m = th.copy(), th.copy()
        th_p[bias_index] += eps
        th_m[bias_index] -= eps
        Jp = net.with_theta(th_p).jacobian(X[m], method="autodiff")
        Jm = net.with_theta(th_m).jacobian(X[m], method="autodiff")
        J0 = net.jacobian(X[m], method="autodiff")
        jgap = max(jgap, float(np.max(np.abs(Jp - Jm))))
        left = left and bool(np.max(np.abs(J0 - Jm)) <= 1e3 * eps * (1 + np.max(np.abs(J0))))
    return ReluReport(net.is_c2, kinks, within, cross, gap, jgap, left)
