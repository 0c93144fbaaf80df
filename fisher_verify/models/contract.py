"""The family's moments contracted with Jacobian columns, batched and without an ``n_L⁴ P`` array.

For one input with ``h = h_L(x)`` and a column ``u = J[:, i]`` (``n_L`` entries):

* eq-6:  ``uᵀ I(h) u``;
* thm-4: ``C[u, u, u, u]`` with ``C = K − I⊗I`` (remark-4.1), ``K`` the 4th central moment.

For the categorical family the contractions are the direct forms on the finite support of
:mod:`fisher_verify.families.onehot` (``uᵀIu = Σ_k p_k d_k²``, ``C[u⁴] = Σ_k p_k d_k⁴ −
(Σ_k p_k d_k²)²`` with ``d = u − pᵀu`` centred at the dominant class, so saturated logits keep
their relative accuracy): O(K) per parameter, the same functions the Eq. 3 path of
:mod:`fisher_verify.models.mlp` uses. For other families ``C`` is formed per input
(:func:`fisher_verify.models.mlp_norms.dense_excess`, ``n_L⁴`` numbers) and contracted with
``u ⊗ u`` (``n_L² P`` per input). The pair contractions of thm-7 are those of the streamed
norms (:mod:`fisher_verify.models.mlp_norms`).
"""

from __future__ import annotations

from typing import Any

from ..families.onehot import onehot_excess4_diagonal, onehot_fisher_bilinear
from .mlp import _tau_sq_categorical
from .mlp_norms import dense_excess, dense_pair_values, excess_fro_norms

__all__ = ["Contractor", "excess_pairs", "per_parameter_factor"]


def per_parameter_factor(categorical: bool, n_L: int, fourth: bool) -> int:
    """Numbers held per parameter per output per input (Jacobian rows and temporaries)."""
    if categorical or not fourth:
        return 5
    return 4 + 2 * n_L


class Contractor:
    """``uᵀIu`` and ``C[u⁴]`` for one batch of natural parameters ``h`` (B, n_L)."""

    def __init__(self, family: Any, categorical: bool, h: Any) -> None:
        import torch

        self.torch = torch
        self.family = family
        self.categorical = categorical
        self.h = h
        if categorical:
            self.p = torch.softmax(h, dim=-1)[:, :, None]  # classes on axis 1, as in J
        else:
            self.I = torch.as_tensor(family.fisher(h), dtype=h.dtype, device=h.device)
        self._C: Any = None

    def bilinear(self, u: Any, v: Any) -> Any:
        """``uᵀ I(h) v`` for u, v of shape (B, n_L, ...): shape (B, ...)."""
        B, n = u.shape[0], u.shape[1]
        rest = u.shape[2:]
        u3 = u.reshape(B, n, -1)
        v3 = u3 if v is u else v.reshape(B, n, -1)
        if self.categorical:
            out = onehot_fisher_bilinear(self.p, u3, v3, axis=1)
        else:
            out = (u3 * self.torch.bmm(self.I, v3)).sum(1)
        return out.reshape(B, *rest)

    def fisher_and_excess(self, J: Any, fourth: bool) -> tuple[Any, Any]:
        """``(uᵀIu, C[u⁴])`` for every column of J (B, n_L, p): shapes (B, p); C None unless asked."""
        torch = self.torch
        if self.categorical:
            if not fourth:
                return onehot_fisher_bilinear(self.p, J, J, axis=1), None
            excess, quad = onehot_excess4_diagonal(self.p, J, axis=1)
            return quad, excess
        quad = (J * torch.bmm(self.I, J)).sum(1)
        if not fourth:
            return quad, None
        if self._C is None:
            C = dense_excess(self.family, self.h)
            n = J.shape[1]
            # (a c), (b d) so that C[u⁴] = Σ (u_a u_c) C_acbd (u_b u_d) after the transpose
            self._C = C.permute(0, 1, 3, 2, 4).reshape(J.shape[0], n * n, n * n)
        B, n, p = J.shape
        Q = (J[:, :, None, :] * J[:, None, :, :]).reshape(B, n * n, p)
        return quad, (Q * torch.bmm(self._C, Q)).sum(1)


def excess_pairs(family: Any, categorical: bool, h: Any, G: Any) -> tuple[Any, Any]:
    """``⟨C_m, C_{m'} ×₄ G_{mm'}⟩`` for every pair (M, M) and ``‖C_m‖_F`` (M,) (thm-4, thm-7).

    ``G[m, m'] = J_m J_{m'}ᵀ`` (M, M, n_L, n_L). Categorical: ``Σ_{k,k'} p_k p'_{k'}
    tr(A_k G A'_{k'} Gᵀ)²`` with ``A_k = s_k s_kᵀ − I`` over the support, O(K²) per pair
    (:func:`fisher_verify.models.mlp._tau_sq_categorical`); other families the dense ``C``
    (:func:`fisher_verify.models.mlp_norms.dense_pair_values`). One row of pairs at a time.
    """
    import torch

    M = G.shape[0]
    if categorical:
        p = torch.softmax(h, dim=-1)
        rows = [_tau_sq_categorical(G[m : m + 1], p[m : m + 1, None, :], p[None])[0]
                for m in range(M)]
    else:
        C = dense_excess(family, h)
        rows = [dense_pair_values(C[m : m + 1], C, G[m : m + 1])[0] for m in range(M)]
    return torch.stack(rows), excess_fro_norms(family, categorical, h)
