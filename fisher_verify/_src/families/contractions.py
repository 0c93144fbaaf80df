"""A family's moments at a batch of natural parameters, contracted with the engine's vectors.

The PyTorch engine (:mod:`fisher_verify._src.models`: its Eq. 3 rule
:mod:`~fisher_verify._src.models.mlp`, :mod:`~fisher_verify._src.models.mlp_norms` and its generic rule)
needs four things of the output family at ``h`` (torch, (m, d)), each contracted with Jacobian
columns or rows and never formed as an ``n_L⁴ P`` array:

* eq-6, lemma-5: ``uᵀ I(h) v``;
* thm-4 (remark-4.1): ``C[u⁴]`` and ``C[a, b, a, b]`` with ``C = K − I⊗I``, ``K`` the fourth
  central moment, and ``κ₄[u, v, w, z]``;
* thm-7: ``⟨C_m, C_{m'} ×₄ G_{mm'}⟩`` for pairs of inputs and ``‖C_m‖_F``;
* thm-8: a factor ``R`` with ``RᵀR = I(h)``.

:class:`DenseContractions` is the generic route, from the family's dense tensors
(``Family.fisher``, ``Family.kappa4``, ``Family.central_moment4``): ``d⁴`` numbers per input.
:class:`OneHotContractions` is the categorical family's: direct forms on the finite support
``t = e_k`` (:mod:`fisher_verify._src.families.onehot`), O(K) per contraction and O(K²) per pair,
never a ``K⁴`` array. A family picks its route by overriding ``Family.contractions``; the
engines never ask which family they hold.
"""

from __future__ import annotations

from typing import Any

from . import onehot  # looked up at call time, so a test can watch which route runs


def _torch() -> Any:
    import torch

    return torch


class DenseContractions:
    """The generic contractions from the family's dense ``I``, ``κ₄`` and ``K`` at h (m, d)."""

    #: whether the fourth-order contractions are direct forms that hold no dense κ₄ or C
    direct = False

    def __init__(self, family: Any, h: Any) -> None:
        self.family = family
        self.h = h
        self._I: Any = None
        self._k4: Any = None
        self._C: Any = None
        self._C_pairs: Any = None

    # --- dense tensors, formed once per batch --------------------------------------------------

    @property
    def I(self) -> Any:  # noqa: E743 (the paper's name)
        """``I(h)`` (m, d, d) in h's dtype and device (lemma-2)."""
        if self._I is None:
            h = self.h
            self._I = _torch().as_tensor(self.family.fisher(h), dtype=h.dtype, device=h.device)
        return self._I

    def dense_kappa4(self) -> Any:
        """``κ₄(h)`` (m, d, d, d, d) in h's dtype and device (lemma-5)."""
        if self._k4 is None:
            h = self.h
            self._k4 = _torch().as_tensor(self.family.kappa4(h), dtype=h.dtype, device=h.device)
        return self._k4

    def dense_excess(self) -> Any:
        """``C = K − I⊗I`` (remark-4.1, thm-4) per input: (m, d, d, d, d)."""
        if self._C is None:
            h = self.h
            K = _torch().as_tensor(self.family.central_moment4(h), dtype=h.dtype, device=h.device)
            I = self.I
            self._C = K - I[:, :, :, None, None] * I[:, None, None, :, :]
        return self._C

    # --- second order (eq-6) -------------------------------------------------------------------

    def quad(self, u: Any, v: Any) -> Any:
        """``uᵀ I(h) v`` for u, v (m, d, ...) broadcasting against each other, contracted over
        axis 1 (eq-6)."""
        Iv = _torch().einsum("mab,mb...->ma...", self.I, v)
        return (u * Iv).sum(1)

    def bilinear(self, u: Any, v: Any) -> Any:
        """``uᵀ I(h) v`` for u, v of the same shape (B, d, ...): (B, ...) (eq-6)."""
        B, n = u.shape[0], u.shape[1]
        rest = u.shape[2:]
        u3 = u.reshape(B, n, -1)
        v3 = u3 if v is u else v.reshape(B, n, -1)
        return self._bilinear3(u3, v3).reshape(B, *rest)

    def _bilinear3(self, u3: Any, v3: Any) -> Any:
        return (u3 * _torch().bmm(self.I, v3)).sum(1)

    # --- fourth order (thm-4, lemma-5) -----------------------------------------------------------

    def kappa4(self, u: Any, v: Any, w: Any, z: Any) -> Any:
        """``κ₄[u, v, w, z]`` for vectors (m, ..., d) broadcasting against each other (lemma-5)."""
        t = self.dense_kappa4()
        extra = u.ndim - 2
        t = t.reshape(t.shape[0], *([1] * extra), *t.shape[1:])
        t = (t * z[..., None, None, None, :]).sum(-1)
        t = (t * w[..., None, None, :]).sum(-1)
        t = (t * v[..., None, :]).sum(-1)
        return (t * u).sum(-1)

    def excess4(self, u: Any) -> tuple[Any, Any]:
        """``(C[u⁴], uᵀIu)`` for u (m, r, d) contracted over its last axis (thm-4):
        ``κ₄[u⁴] + 2 (uᵀIu)²`` with κ₄ in the family's direct form (``Family.kappa4_diagonal``)."""
        Iu = _torch().einsum("mab,mrb->mra", self.I, u)
        quad = (u * Iu).sum(-1)
        return self.family.kappa4_diagonal(self.h, u) + 2.0 * quad * quad, quad

    def excess4_mixed(self, u: Any, quad: Any) -> Any:
        """``C[u_r, u_s, u_r, u_s]`` (m, r, r) for u (m, r, d) given ``quad = u_rᵀ I u_s`` (thm-4):
        ``κ₄[u_r, u_s, u_r, u_s] + (u_rᵀIu_r)(u_sᵀIu_s) + (u_rᵀIu_s)²``."""
        dq = _torch().diagonal(quad, dim1=1, dim2=2)
        return (self.kappa4(u[:, :, None, :], u[:, None, :, :], u[:, :, None, :], u[:, None, :, :])
                + dq[:, :, None] * dq[:, None, :] + quad * quad)

    def fisher_and_excess(self, J: Any, fourth: bool) -> tuple[Any, Any]:
        """``(uᵀIu, C[u⁴])`` for every column u of J (B, d, p): shapes (B, p); C None unless
        ``fourth`` (eq-6, thm-4). Dense: ``C`` contracted with ``u ⊗ u`` (``d² p`` per input)."""
        torch = _torch()
        quad = (J * torch.bmm(self.I, J)).sum(1)
        if not fourth:
            return quad, None
        B, n, p = J.shape
        if self._C_pairs is None:
            # (a c), (b d) so that C[u⁴] = Σ (u_a u_c) C_acbd (u_b u_d) after the transpose
            self._C_pairs = self.dense_excess().permute(0, 1, 3, 2, 4).reshape(B, n * n, n * n)
        Q = (J[:, :, None, :] * J[:, None, :, :]).reshape(B, n * n, p)
        return quad, (Q * torch.bmm(self._C_pairs, Q)).sum(1)

    # --- pairs of inputs (thm-7) and the rhs norms -------------------------------------------------

    def score_rows(self) -> Any:
        """The rows the thm-7 backward pass starts from: the identity (m, d, d); the pair values
        then contract the dense ``C``."""
        torch = _torch()
        m, n = self.h.shape
        return torch.eye(n, dtype=self.h.dtype, device=self.h.device).expand(m, n, n)

    def fisher_rows(self) -> Any:
        """``R`` (m, d, d) with ``RᵀR = I(h)`` (thm-8): the symmetric square root from ``eigh``."""
        w, U = _torch().linalg.eigh(self.I)
        return w.clamp(min=0).sqrt()[:, :, None] * U.transpose(1, 2)

    def pair_block(self, S: Any, ia: Any, ib: Any) -> Any:
        """``⟨C_m, C_{m'} ×₄ G_{mm'}⟩`` (thm-4, thm-7) for the inputs ``ia`` × ``ib`` of this
        batch, from ``S`` (Ra, d, Rb, d) = ``J_m J_{m'}ᵀ`` on :meth:`score_rows` (may be
        overwritten): (Ra, Rb)."""
        C = self.dense_excess()
        return dense_pair_values(C[ia], C[ib], S.permute(0, 2, 1, 3))

    def pair_rows(self, G: Any) -> Any:
        """``⟨C_m, C_{m'} ×₄ G_{mm'}⟩`` for every pair (M, M) from ``G[m, m'] = J_m J_{m'}ᵀ``
        (M, M, d, d), one row of pairs at a time (thm-4, thm-7)."""
        C = self.dense_excess()
        M = G.shape[0]
        return _torch().stack([dense_pair_values(C[m : m + 1], C, G[m : m + 1])[0]
                               for m in range(M)])

    def magnitude(self, u: Any) -> Any:
        """``|u|ᵀ |I(h)| |u|`` for u (m, d) (m,): the size of the terms of ``uᵀIu``, the scale of
        its rounding (the coordinate audit, ``ext-sequence``)."""
        a = u.abs()
        return _torch().einsum("ma,mab,mb->m", a, self.I.abs(), a)

    def fisher_fro_norms(self) -> Any:
        """``‖I_m‖_F`` per input (m,) (the thm-8 rhs)."""
        return self.I.reshape(self.h.shape[0], -1).norm(dim=1)

    def excess_fro_norms(self) -> Any:
        """``‖C_m‖_F = ‖K_m − I_m⊗I_m‖_F`` per input (m,) (the thm-7 rhs)."""
        m = self.h.shape[0]
        c2 = (self.dense_excess().reshape(m, -1) ** 2).sum(-1)
        return c2.clamp(min=0).sqrt()


def dense_pair_values(Ca: Any, Cb: Any, G: Any) -> Any:
    """``⟨C_m, C_{m'} ×₄ G_{mm'}⟩`` (thm-4) for dense ``C = K − I⊗I`` of the inputs m (Ca,
    (Ra, n, n, n, n)) and m' (Cb, (Rb, n, n, n, n)) and ``G_{mm'} = J_m J_{m'}ᵀ`` (Ra, Rb, n, n):
    (Ra, Rb). O(n⁵) per pair."""
    torch = _torch()
    Ra, Rb = G.shape[0], G.shape[1]
    out = Cb[None].expand(Ra, Rb, *Cb.shape[1:])
    for _ in range(4):  # C_{m'} ×₄ G: contract each index of C_{m'} with G
        out = torch.einsum("rmabcd,rmea->rmbcde", out, G)
    return (out * Ca[:, None]).sum((-1, -2, -3, -4))


class OneHotContractions(DenseContractions):
    """The categorical family's contractions: direct forms on the support ``t = e_k`` with
    probabilities ``p = softmax(h)`` (lemma-5), O(K) per vector and O(K²) per pair of inputs;
    no dense ``I`` beyond what a caller asks for, never a ``K⁴`` array."""

    direct = True

    def __init__(self, family: Any, h: Any) -> None:
        super().__init__(family, h)
        self.p = _torch().softmax(h, dim=-1)

    def quad(self, u: Any, v: Any) -> Any:
        """``uᵀ I(h) v`` in the centred direct form (:func:`onehot_fisher_bilinear`, eq-6)."""
        p = self.p.reshape(self.p.shape + (1,) * (u.ndim - 2))
        return onehot.onehot_fisher_bilinear(p, u, v, axis=1)

    def _bilinear3(self, u3: Any, v3: Any) -> Any:
        return onehot.onehot_fisher_bilinear(self.p[:, :, None], u3, v3, axis=1)

    def kappa4(self, u: Any, v: Any, w: Any, z: Any) -> Any:
        """``κ₄[u, v, w, z]`` by the one-hot moment route (``Family.kappa4_contract``, O(K))."""
        torch = _torch()
        hh = self.h.reshape(self.h.shape[0], *([1] * (u.ndim - 2)), self.h.shape[1])
        out = self.family.kappa4_contract(hh, u, v, w, z)
        return torch.as_tensor(out, dtype=self.h.dtype, device=self.h.device)

    def excess4(self, u: Any) -> tuple[Any, Any]:
        """``(C[u⁴], uᵀIu) = (Σ_k p_k d_k⁴ − (Σ_k p_k d_k²)², Σ_k p_k d_k²)`` with ``d = u − pᵀu``
        (:func:`onehot_excess4_diagonal`, thm-4)."""
        return onehot.onehot_excess4_diagonal(self.p[:, None, :], u)

    def excess4_mixed(self, u: Any, quad: Any) -> Any:
        """``C[u_r, u_s, u_r, u_s]`` on the finite support (:func:`onehot_excess4_mixed`, thm-4)."""
        p = self.p
        return onehot.onehot_excess4_mixed(p[:, None, None, :], u[:, :, None, :], u[:, None, :, :])

    def fisher_and_excess(self, J: Any, fourth: bool) -> tuple[Any, Any]:
        """``(uᵀIu, C[u⁴])`` for the columns of J (B, K, p) in O(K) each (eq-6, thm-4)."""
        p = self.p[:, :, None]  # classes on axis 1, as in J
        if not fourth:
            return onehot.onehot_fisher_bilinear(p, J, J, axis=1), None
        excess, quad = onehot.onehot_excess4_diagonal(p, J, axis=1)
        return quad, excess

    def score_rows(self) -> Any:
        """``s_k = e_k − p`` (m, K, K): the centred statistic at each support point (thm-7)."""
        torch = _torch()
        eye = torch.eye(self.h.shape[1], dtype=self.h.dtype, device=self.h.device)
        return eye - self.p[:, None, :]

    def fisher_rows(self) -> Any:
        """``R = diag(√p)(Id − 1pᵀ)``, ``RᵀR = diag p − ppᵀ = I(h)`` (thm-8), without ``eigh``."""
        torch = _torch()
        p = self.p
        eye = torch.eye(self.h.shape[1], dtype=self.h.dtype, device=self.h.device)
        return p.sqrt()[:, :, None] * (eye - p[:, None, :])

    def pair_block(self, S: Any, ia: Any, ib: Any) -> Any:
        """``Σ_{k,k'} p_k p'_{k'} τ_{kk'}²`` (thm-7) from ``S[a, k, b, k'] = s_kᵀ G s'_{k'}`` on
        :meth:`score_rows`, in place: ``τ = (s_kᵀGs'_{k'})² − s_kᵀ G I' Gᵀ s_k − s'ᵀ Gᵀ I G s'
        + tr(I G I' Gᵀ)``. O(K²) per pair."""
        torch = _torch()
        pa, pb = self.p[ia], self.p[ib]  # (Ra, K) over k, (Rb, K) over k'
        X = S.mul_(S)  # (s_kᵀ G s'_k')², (Ra, K, Rb, K)
        w = torch.einsum("akbj,bj->akb", X, pb)  # s_kᵀ G I' Gᵀ s_k
        u = torch.einsum("akbj,ak->abj", X, pa)  # s'ᵀ Gᵀ I G s'
        t = torch.einsum("akb,ak->ab", w, pa)  # tr(I G I' Gᵀ)
        X.sub_((w - t[:, None, :])[..., None]).sub_(u[:, None])  # τ
        X.mul_(X)
        return torch.einsum("akbj,ak,bj->ab", X, pa, pb)

    def pair_rows(self, G: Any) -> Any:
        """``Σ_{k,k'} p_k p'_{k'} tr(A_k G A'_{k'} Gᵀ)²`` with ``A_k = s_k s_kᵀ − I`` for every
        pair (M, M), O(K²) per pair (thm-7), one row of pairs at a time."""
        p = self.p
        M = G.shape[0]
        return _torch().stack([tau_sq_onehot(G[m : m + 1], p[m : m + 1, None, :], p[None])[0]
                               for m in range(M)])

    def magnitude(self, u: Any) -> Any:
        """``Σ_k p_k (|u_k| + pᵀ|u|)²`` for u (m, K) (m,): the size of the terms of the centred
        ``uᵀIu = Σ_k p_k (u_k − pᵀu)²`` (the coordinate audit, ``ext-sequence``), O(K)."""
        a = u.abs()
        return (self.p * (a + (self.p * a).sum(-1, keepdim=True)) ** 2).sum(-1)

    def fisher_fro_norms(self) -> Any:
        """``‖diag p − ppᵀ‖_F² = Σ_k p_k² − 2 Σ_k p_k³ + (Σ_k p_k²)²`` (thm-8 rhs), O(K)."""
        p = self.p
        p2 = (p * p).sum(-1)
        return (p2 - 2.0 * (p * p * p).sum(-1) + p2 * p2).clamp(min=0).sqrt()

    def excess_fro_norms(self) -> Any:
        """``‖C‖_F² = Σ_{k,k'} p_k p_{k'} tr(A_k A_{k'})²`` over the support (O(K²) per input,
        :func:`tau_sq_onehot` with G = Id; the thm-7 rhs)."""
        torch = _torch()
        m, n = self.h.shape
        p = self.p
        eye = torch.eye(n, dtype=self.h.dtype, device=self.h.device)
        c2 = tau_sq_onehot(eye.expand(m, 1, n, n), p[:, None], p[:, None])[:, 0]
        return c2.clamp(min=0).sqrt()


def tau_sq_onehot(Gr: Any, P1: Any, P2: Any) -> Any:
    """``Σ_{k,k'} p_k p'_{k'} tr(A_k G A'_{k'} Gᵀ)²`` per pair of inputs (thm-7, categorical).

    ``Gr`` (r, c, K, K) holds ``G = J_m J_{m'}ᵀ``; ``P1``, ``P2`` (broadcasting to (r, c, K)) the
    class probabilities p of input m and p' of input m'. O(K²) per pair.
    """
    pG = (P1[..., :, None] * Gr).sum(-2)  # pᵀG, (r, M, K) over k'
    Gp = (Gr * P2[..., None, :]).sum(-1)  # G p', (r, M, K) over k
    pGp = (pG * P2).sum(-1)  # (r, M)
    # s_kᵀ G s'_k'
    sGs = Gr - pG[..., None, :] - Gp[..., :, None] + pGp[..., None, None]
    # Q = Gᵀ I G with I = diag p − p pᵀ; u_k' = s'_k'ᵀ Q s'_k'
    Qdiag = (P1[..., :, None] * Gr * Gr).sum(-2) - pG**2
    Qp = (Gr * (P1 * Gp)[..., :, None]).sum(-2) - pG * pGp[..., None]
    pQp = (P1 * Gp**2).sum(-1) - pGp**2
    u = Qdiag - 2.0 * Qp + pQp[..., None]
    # R = G I' Gᵀ; w_k = s_kᵀ R s_k
    Rdiag = (P2[..., None, :] * Gr * Gr).sum(-1) - Gp**2
    Rp = (Gr * (P2 * pG)[..., None, :]).sum(-1) - Gp * pGp[..., None]
    pRp = (P2 * pG**2).sum(-1) - pGp**2
    w = Rdiag - 2.0 * Rp + pRp[..., None]
    # tr(I G I' Gᵀ) = Σ_ab (I G)_ab (G I')_ab
    IG = P1[..., :, None] * Gr - P1[..., :, None] * pG[..., None, :]
    GI = Gr * P2[..., None, :] - Gp[..., :, None] * P2[..., None, :]
    tr = (IG * GI).sum((-1, -2))
    tau = sGs**2 - u[..., None, :] - w[..., :, None] + tr[..., None, None]
    return (P1[..., :, None] * P2[..., None, :] * tau * tau).sum((-1, -2))
