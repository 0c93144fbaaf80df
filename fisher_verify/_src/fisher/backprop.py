"""Back-propagated Fisher information of a hidden layer h_l (eq-11, lemma-13).

``∂ℓ/∂h_l = B_lᵀ (t(y) − η(h_L))`` (lemma-13), so the FIM of h_l is ``B_lᵀ I(h_L) B_l`` and its
estimator ``Î₁(h_l) = B_lᵀ [(1/N) Σ_i (t(y_i)−η)(t(y_i)−η)ᵀ] B_l`` (eq-11). Layers are
numbered 0 (the input x) to L (the output h_L, where B_L = I).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FisherVerifyError
from ..networks.network import Network
from .estimators import _batched_t
from .exact import output_quantities


def _check_layer(net: Network, layer: int) -> int:
    if not isinstance(layer, (int, np.integer)) or not 0 <= int(layer) <= net.depth:
        raise FisherVerifyError(
            f"layer must be an integer 0..{net.depth} (0 = input, {net.depth} = output), "
            f"got {layer!r}"
        )
    return int(layer)


def _statistics(net: Network, x: Any, t: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(M, n_0)`` and statistics ``t`` as ``(N, M, d)`` (from ``(N, d)`` for one input)."""
    X, single = net.inputs(x)
    return X, _batched_t(t, X.shape[0], net.family.dim, single)


def backprop_fisher(net: Network, x: Any, layer: int) -> np.ndarray:
    """Exact FIM of h_l, ``B_lᵀ I(h_L) B_l`` ``(n_l, n_l)``, averaged over inputs (eq-11)."""
    layer = _check_layer(net, layer)
    X, _ = net.inputs(x)
    _, _, I = output_quantities(net, X)
    B = net.lemma13(X).B[layer]
    return np.einsum("mal,mab,mbk->lk", B, I, B) / X.shape[0]


def backprop_estimator(net: Network, x: Any, t: Any, layer: int) -> np.ndarray:
    """Î₁(h_l) of eq-11 from statistics ``t`` ``(N, d)`` (one input) or ``(N, M, d)``."""
    layer = _check_layer(net, layer)
    X, tt = _statistics(net, x, t)
    M = X.shape[0]
    _, eta, _ = output_quantities(net, X)
    r = tt - eta[None]
    S = np.einsum("nma,nmb->mab", r, r) / tt.shape[0]
    B = net.lemma13(X).B[layer]
    return np.einsum("mal,mab,mbk->lk", B, S, B) / M


def backprop_estimator_autodiff(net: Network, x: Any, t: Any, layer: int) -> np.ndarray:
    """Î₁(h_l) from per-sample autodiff gradients ∂ℓ/∂h_l (the reference for eq-11)."""
    import torch

    from .estimators import per_sample_grads

    layer = _check_layer(net, layer)
    X, tt = _statistics(net, x, t)
    M = X.shape[0]
    q = net.lemma13(X)
    theta = torch.as_tensor(net.theta, dtype=torch.float64)
    total = np.zeros((net.widths[layer],) * 2)
    for m in range(M):
        hv = torch.tensor(q.h(layer)[m], dtype=torch.float64, requires_grad=True)
        hL = net.torch_forward_from(theta, hv, layer)
        ell = torch.as_tensor(tt[:, m]) @ hL - net.family.log_partition(hL[None])[0]
        G = per_sample_grads(ell, hv).detach().numpy()
        total += G.T @ G / tt.shape[0]
    return total / M
