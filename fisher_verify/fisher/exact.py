"""The exact Fisher information of a network (eq-6), the generalized Gauss–Newton form."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..networks.network import Method, Network


def output_quantities(net: Network, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """h_L ``(M, n_L)``, η(h_L) ``(M, n_L)`` and I(h_L) ``(M, n_L, n_L)``, h_L domain-checked."""
    h = net.forward(X)
    net.family.check_natural(h)
    return h, np.asarray(net.family.mean(h)), np.asarray(net.family.fisher(h))


def exact_fisher(
    net: Network, x: Any, method: Method = "analytic", per_input: bool = False
) -> np.ndarray:
    """I(θ) = Jᵀ I(h_L) J (eq-6), shape ``(P, P)``.

    With several inputs ``(M, n_0)`` it is their average (p(x) empirical), or the ``(M, P, P)``
    stack when ``per_input``. ``method`` picks the Jacobian route (lemma-13 or torch.func).

    Raises:
        DomainError: h_L(x) lies outside the family's natural-parameter domain.
    """
    X, _ = net.inputs(x)
    _, _, I = output_quantities(net, X)
    J = net.jacobian(X, method=method)
    per = np.einsum("map,mab,mbq->mpq", J, I, J)
    return per if per_input else per.mean(axis=0)
