"""The exact Fisher information of a network (eq-6), the generalized Gauss–Newton form."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..networks.network import Method, Network, require_network
from ..validation import check_flag


def output_quantities(net: Network, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """h_L ``(M, n_L)``, η(h_L) ``(M, n_L)`` and I(h_L) ``(M, n_L, n_L)`` (``lemma-2``: ``I =
    ∂η/∂h``), h_L domain-checked."""
    h = net.forward(X)
    net.family.check_natural(h)
    return h, np.asarray(net.family.mean(h)), np.asarray(net.family.fisher(h))


def gauss_newton(J: Any, A: Any) -> np.ndarray:
    """``(1/M) Σ_m J_mᵀ A_m J_m`` ``(P, P)`` from ``J`` ``(M, n_L, P)`` and ``A`` ``(M, n_L, n_L)``
    (``eq-6`` with ``A = I(h_L)``; ``eq-7`` with ``A`` the sample covariance of ``t``).

    One BLAS product over the stacked ``(M n_L, P)`` rows: ``O(M n_L P²)``, no ``(M, P, P)``
    stack and no naive three-operand einsum (``O(M n_L² P²)``).
    """
    Jb = np.asarray(J, dtype=np.float64)
    M, _, P = Jb.shape
    AJ = np.asarray(A, dtype=np.float64) @ Jb
    return Jb.reshape(-1, P).T @ AJ.reshape(-1, P) / M


def network_fisher(
    net: Network, x: Any, method: Method = "analytic", per_input: bool = False
) -> np.ndarray:
    """I(θ) = Jᵀ I(h_L) J (eq-6), shape ``(P, P)``.

    With several inputs ``(M, n_0)`` it is their average (p(x) empirical), or the ``(M, P, P)``
    stack when ``per_input``. ``method`` picks the Jacobian route (lemma-13 or torch.func).

    Raises:
        DomainError: h_L(x) lies outside the family's natural-parameter domain.
    """
    net = require_network(net)
    per_input = bool(check_flag(per_input, "per_input"))
    X, _ = net.inputs(x)
    _, _, I = output_quantities(net, X)
    J = net.jacobian(X, method=method)
    if per_input:
        return np.einsum("map,maq->mpq", J, I @ J)
    return gauss_newton(J, I)
