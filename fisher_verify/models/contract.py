"""The family's moments contracted with Jacobian columns, batched and without an ``n_L⁴ P`` array.

For one input with ``h = h_L(x)`` and a column ``u = J[:, i]`` (``n_L`` entries):

* eq-6:  ``uᵀ I(h) u``;
* thm-4: ``C[u, u, u, u]`` with ``C = K − I⊗I`` (remark-4.1), ``K`` the 4th central moment.

For the categorical family ``t`` is one-hot with probabilities ``p = softmax(h)``, so with the
centred column ``c = u − (pᵀu) 1``: ``uᵀIu = Σ_k p_k c_k²`` and ``K[u⁴] = E[(uᵀ(t−p))⁴] =
Σ_k p_k c_k⁴``, hence ``C[u⁴] = Σ_k p_k c_k⁴ − (Σ_k p_k c_k²)²``: O(K) per parameter, no
cancellation beyond that of the variance itself. (This equals ``κ₄[u⁴] + 2 (uᵀIu)²``, the form
:mod:`fisher_verify.fisher.large` evaluates through ``Family.kappa4_contract``; the tests check
both against the dense ``K`` of the symbolic derivation.) For other families ``C`` is formed
per input (``n_L⁴`` numbers) and contracted with ``u ⊗ u`` (``n_L² P`` per input).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Contractor", "per_parameter_factor"]


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
            self.p = torch.softmax(h, dim=-1)
        else:
            self.I = torch.as_tensor(family.fisher(h), dtype=h.dtype, device=h.device)
        self._C: Any = None

    def _centred(self, u: Any) -> Any:
        """``c = u − (pᵀu)`` for u of shape (B, K, m)."""
        pu = self.torch.bmm(self.p[:, None, :], u)  # (B, 1, m)
        return u - pu

    def bilinear(self, u: Any, v: Any) -> Any:
        """``uᵀ I(h) v`` for u, v of shape (B, n_L, ...): shape (B, ...)."""
        B, n = u.shape[0], u.shape[1]
        rest = u.shape[2:]
        u3, v3 = u.reshape(B, n, -1), v.reshape(B, n, -1)
        if self.categorical:
            cu, cv = self._centred(u3), self._centred(v3)
            out = self.torch.bmm(self.p[:, None, :], cu * cv)[:, 0]
        else:
            out = (u3 * self.torch.bmm(self.I, v3)).sum(1)
        return out.reshape(B, *rest)

    def fisher_and_excess(self, J: Any, fourth: bool) -> tuple[Any, Any]:
        """``(uᵀIu, C[u⁴])`` for every column of J (B, n_L, p): shapes (B, p); C None unless asked."""
        torch = self.torch
        if self.categorical:
            c = self._centred(J)
            c.mul_(c)  # c² in place
            pt = self.p[:, None, :]
            quad = torch.bmm(pt, c)[:, 0]
            if not fourth:
                return quad, None
            c.mul_(c)  # c⁴
            return quad, torch.bmm(pt, c)[:, 0] - quad * quad
        quad = (J * torch.bmm(self.I, J)).sum(1)
        if not fourth:
            return quad, None
        if self._C is None:
            K = torch.as_tensor(self.family.central_moment4(self.h), dtype=J.dtype, device=J.device)
            C = K - self.I[:, :, :, None, None] * self.I[:, None, None, :, :]
            n = J.shape[1]
            # (a c), (b d) so that C[u⁴] = Σ (u_a u_c) C_acbd (u_b u_d) after the transpose
            self._C = C.permute(0, 1, 3, 2, 4).reshape(J.shape[0], n * n, n * n)
        B, n, p = J.shape
        Q = (J[:, :, None, :] * J[:, None, :, :]).reshape(B, n * n, p)
        return quad, (Q * torch.bmm(self._C, Q)).sum(1)


def excess_pairs(family: Any, categorical: bool, h: Any, G: Any) -> tuple[Any, Any]:
    """``⟨C_m, C_{m'} ×₄ G_{mm'}⟩`` for every pair (M, M) and ``‖C_m‖_F`` (M,) (thm-4, thm-7).

    ``G[m, m'] = J_m J_{m'}ᵀ`` (M, M, n_L, n_L). Categorical: ``t − p`` takes the value
    ``s_k = e_k − p`` with probability ``p_k``, so ``C = Σ_k p_k A_k ⊗ A_k`` with
    ``A_k = s_k s_kᵀ − I`` and the pair value is ``Σ_{k,k'} p_k p'_{k'} tr(A_k G A'_{k'} Gᵀ)²``,
    a sum of squares, in O(K²) per pair. Other families: the dense ``C`` (``n_L⁴`` per input).
    """
    import torch

    M, n = G.shape[0], G.shape[-1]
    if categorical:
        p = torch.softmax(h, dim=-1)
        eye = torch.eye(n, dtype=G.dtype, device=G.device)
        S = eye[None] - p[:, None, :]  # S[m, k] = s_k of input m, (M, K, K)
        Imat = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]

        def tau_sq(m: int, Gm: Any, Pm: Any, Sm: Any, Im: Any) -> Any:
            """Σ_{k,k'} p_k p'_k' τ² for input m against every m' (Gm: (M, n, n))."""
            sGs = torch.einsum("ka,nab,nlb->nkl", S[m], Gm, Sm)  # s_kᵀ G s'_l
            R = torch.einsum("nab,nbc,ndc->nad", Gm, Im, Gm)  # G I' Gᵀ
            Q = torch.einsum("nba,bc,ncd->nad", Gm, Imat[m], Gm)  # Gᵀ I G
            u = torch.einsum("ka,nab,kb->nk", S[m], R, S[m])
            w = torch.einsum("nla,nab,nlb->nl", Sm, Q, Sm)
            tr = torch.einsum("ab,nbc,ncd,nad->n", Imat[m], Gm, Im, Gm)
            tau = sGs**2 - u[:, :, None] - w[:, None, :] + tr[:, None, None]
            return (p[m][None, :, None] * Pm[:, None, :] * tau * tau).sum((-1, -2))

        pair = torch.stack([tau_sq(m, G[m], p, S, Imat) for m in range(M)])
        eyes = eye.expand(1, n, n)
        cnorm = torch.stack([tau_sq(m, eyes, p[m:m + 1], S[m:m + 1], Imat[m:m + 1])[0]
                             for m in range(M)])
        return pair, cnorm.clamp(min=0).sqrt()
    K = torch.as_tensor(family.central_moment4(h), dtype=G.dtype, device=G.device)
    Imat = torch.as_tensor(family.fisher(h), dtype=G.dtype, device=G.device)
    C = K - Imat[:, :, :, None, None] * Imat[:, None, None, :, :]
    pair = torch.empty(M, M, dtype=G.dtype, device=G.device)
    for m in range(M):
        Z = C  # C_{m'} ×₄ G_{m m'}: contract each index of C_{m'} with G[m, m']
        for _ in range(4):
            Z = torch.einsum("nbcde,nab->ncdea", Z, G[m])
        pair[m] = (Z * C[m][None]).sum((-1, -2, -3, -4))
    return pair, (C.reshape(M, -1) ** 2).sum(-1).sqrt()
