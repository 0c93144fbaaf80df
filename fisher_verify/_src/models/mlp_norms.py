"""``‖Cov(Î₁)‖_F`` and ``‖Cov(Î₂)‖_F`` (thm-7, thm-8) at data-set scale: streamed, costed, sampled.

Both squared norms are sums over pairs of inputs (``thm-4``, ``thm-6``):

    ‖Cov(Î₁)‖_F² = (M²N)⁻² Σ_{m,m'} ⟨C_m, C_{m'} ×₄ J_m J_{m'}ᵀ⟩,
    ‖Cov(Î₂)‖_F² = (M²N)⁻² Σ_{m,m'} tr(I_m T^{mm'} I_{m'} T^{mm'ᵀ}),   T^{mm'}_{αβ} = tr(H^α_m H^β_{m'}),

so they are computed over pairs of input *blocks* (``a ≤ b``, symmetry halves the work) and
never hold the ``(M n_L)²`` Gram matrices: memory is the per-input factors (forward pass and
``G_l``, ``O(M (Σ n_l + n_L Σ n_{l+1}))``) plus one block pair, sized from ``memory_budget``.

**Folding I into the factors.** Every α-indexed factor of :mod:`fisher_verify._src.models.mlp`
(``G_l``, ``Γ^α_l``, ``λ^α_k``) is linear in the rows of ``G_{L-1} = I``. Starting the backward
pass from ``R_m`` instead, with ``R_mᵀ R_m = I(h_L(x_m))``, turns ``T^{mm'}`` into
``R_m T^{mm'} R_{m'}ᵀ`` and ``tr(I_m T I_{m'} Tᵀ) = ‖R_m T R_{m'}ᵀ‖_F²``: no per-pair product with
I. Categorical: ``R = diag(√p)(I − 1pᵀ)`` exactly (its finite support); other families: the
symmetric square root from ``eigh``. For ``thm-7`` (categorical) the backward pass starts from
the centred support ``S = I − 1pᵀ`` (rows ``s_k = e_k − p``), so the per-pair ``s_kᵀ J_m J_{m'}ᵀ
s'_{k'}`` is one Gram matrix, and ``⟨C_m, C_{m'} ×₄ G⟩ = Σ_{kk'} p_k p'_{k'} τ_{kk'}²`` with
``τ = X − (X p')_k − (pᵀX)_{k'} + pᵀXp'``, ``X = (s_kᵀ G s'_{k'})²``.

**Cost.** thm-7: ``O(M² (Σ_l (n_l + 1) + n_L² Σ_l n_{l+1}))`` multiply-adds and ``O(M² n_L²)``
elementwise for the categorical family (``O(M² n_L⁶)`` for a dense ``K − I⊗I``); thm-8:
``O(M² n_L² Σ_{l≤k} f_{lk})`` with ``f_{lk}`` the features of the closed form (``n_{k+1}`` for
the diagonal ``Γ_{L-2}``, ``n_{l+1} n_{k+1}`` where a full ``Γ_k`` or ``J_{kl}`` enters) plus
forming the full ``Γ_k`` once per input, ``O(M n_L Σ_{k<L-2} n_{k+1}² n_{k+2})``. Block pairs
of at most 640 (input, output) rows a side keep the elementwise work in cache.

**Cost model.** :func:`norm_cost` counts the multiply-adds of the block products and the
elementwise work and the bytes held (per-input factors plus one block pair), and estimates
the seconds by timing one real block pair on the device times the number of block pairs
(small calls are priced at a low nominal rate instead). ``method="exact"`` refuses a call above the
memory or time budget naming both; ``method="auto"`` then uses ``"sampled"``.

**Sampled pairs.** The diagonal ``f(m, m)`` is exact for every input (``O(M)``); the
off-diagonal sum is ``M(M−1) Ū`` with ``Ū`` the U-statistic (order 2, kernel ``f``) over all
distinct pairs of ``s`` inputs drawn without replacement (seeded): unbiased, with a
delete-one jackknife standard error; the norm's standard error is by the delta method.
Results are labelled ``exact=False``.

**Sharding.** The block pairs ``a ≤ b`` are independent: with ``distributed`` (an initialized
``torch.distributed`` group, started by ``torchrun``) each process takes a disjoint, balanced
share of them (:func:`fisher_verify._src.distributed.balanced_shares`, weighted by the inputs² of
each pair) and the partial sums are all-reduced, through the same mechanism as the data-set
workload of the any-model path (:mod:`fisher_verify._src.distributed`). So are the per-input sums
(the right-hand sides, the sampled path's diagonal) and the sampled path's kernel matrix. The
per-input factors are computed by every process (``O(M)``, against the ``O(M²)`` pairs); the
cost model's seconds are the maximum over processes of the timed estimate divided by the
number of processes, so every process takes the same branch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..distributed import all_reduce_max, all_reduce_sums, balanced_shares, process_group
from ..errors import ShapeError, UnsupportedError
from ..fisher.ustat import jackknife_stderr, u_statistic_deleted
from ..validation import check_budget
from .mlp import (
    Estimate,
    _check_n,
    _forward_backward,
    _Pass,
    _Setup,
    _setup,
)

__all__ = ["pair_norm"]

#: Seconds a norm may be estimated to take before ``method="exact"`` refuses it.
DEFAULT_TIME_BUDGET = 900.0
#: Rows (input, output unit) of one side of a block pair: (640)² float64 = 3.3 MB stay in cache.
CACHE_BLOCK_ROWS = 640
#: Inputs drawn for ``method="sampled"`` unless the caller gives ``sample_inputs``.
DEFAULT_SAMPLE_INPUTS = 512

NormMethod = Literal["auto", "exact", "sampled"]


# --- per-input factors ---------------------------------------------------------------------------


def _top_rows(s: _Setup, h: Any, statement: str) -> Any:
    """Rows the backward pass starts from (the module docstring): ``S``, ``R`` or ``Id``."""
    ctr = s.family.contractions(h)  # the family's rows (Family.contractions)
    return ctr.score_rows() if statement == "thm-7" else ctr.fisher_rows()


def _factors(s: _Setup, X: Any, top: Any | None) -> _Pass:
    """Forward/backward of inputs X with ``G_{L-1} = top`` (``None``: the identity)."""
    q = _forward_backward(s, X)
    if top is None:
        return q
    G: list[Any] = [None] * len(s.weights)
    G[-1] = top
    for layer in range(len(s.weights) - 2, -1, -1):
        G[layer] = (G[layer + 1] @ s.weights[layer + 1][:, :-1]) * q.d1[layer][:, None, :]
    return _Pass(h=q.h, hbar=q.hbar, pre=q.pre, d1=q.d1, d2=q.d2, G=G)


def _all_factors(s: _Setup, statement: str, chunk: int, transformed: bool = True) -> _Pass:
    """Factors of every input, computed ``chunk`` inputs at a time and concatenated."""
    parts = []
    for start in range(0, s.M, chunk):
        X = s.X[start : start + chunk]
        q = _forward_backward(s, X)
        parts.append(_factors(s, X, _top_rows(s, q.h, statement)) if transformed else q)
    cat = s.torch.cat
    return _Pass(
        h=cat([q.h for q in parts]),
        hbar=[cat([q.hbar[i] for q in parts]) for i in range(len(parts[0].hbar))],
        pre=[cat([q.pre[i] for q in parts]) for i in range(len(parts[0].pre))],
        d1=[cat([q.d1[i] for q in parts]) for i in range(len(parts[0].d1))],
        d2=[cat([q.d2[i] for q in parts]) for i in range(len(parts[0].d2))],
        G=[cat([q.G[i] for q in parts]) for i in range(len(parts[0].G))],
    )


def _rows(q: _Pass, idx: Any) -> _Pass:
    return _Pass(h=q.h[idx], hbar=[a[idx] for a in q.hbar], pre=[a[idx] for a in q.pre],
                 d1=[a[idx] for a in q.d1], d2=[a[idx] for a in q.d2], G=[a[idx] for a in q.G])


# --- thm-7: one block pair ------------------------------------------------------------------------


def _cov1_block(s: _Setup, qa: _Pass, qb: _Pass, ctr: Any, idx_a: Any, idx_b: Any) -> Any:
    """``⟨C_m, C_{m'} ×₄ J_m J_{m'}ᵀ⟩`` for m in block a, m' in block b: (Ra, Rb) (thm-4, thm-7).

    In-place, broadcast (no expanded copies): the block arrays are meant to stay in cache. The
    Gram block is contracted with C by the family (``contractions(h).pair_block``: O(K²) per
    pair for the categorical family, the dense ``C`` otherwise).
    """
    Ra, Rb, K = qa.h.shape[0], qb.h.shape[0], s.n_L
    S: Any = None
    for Ga, Gb, ha, hb in zip(qa.G, qb.G, qa.hbar, qb.hbar):
        gram = (Ga.reshape(Ra * K, -1) @ Gb.reshape(Rb * K, -1).T).view(Ra, K, Rb, K)
        hd = (ha @ hb.T)[:, None, :, None]
        S = gram.mul_(hd) if S is None else S.addcmul_(hd, gram)
    return ctr.pair_block(S, idx_a, idx_b)


# --- thm-8: one block pair ------------------------------------------------------------------------


@dataclass
class _Diag:
    """A diagonal matrix per (input[, output]) held as its diagonal ``v``."""

    v: Any


def _gamma_compact(s: _Setup, q: _Pass) -> list[Any]:
    """``Γ^α_l``: ``None`` (l = L−1), ``_Diag(λ)`` (l = L−2), full (m, n_L, n, n) below."""
    torch = s.torch
    L = len(s.weights)
    out: list[Any] = [None] * L
    for layer in range(L - 2, -1, -1):
        Wm = s.weights[layer + 1][:, :-1]
        lam = q.d2[layer][:, None, :] * (q.G[layer + 1] @ Wm)
        nxt = out[layer + 1]
        if nxt is None:
            out[layer] = _Diag(lam)
            continue
        WD = Wm[None] * q.d1[layer][:, None, :]  # (m, n_{l+2}, n_{l+1})
        if isinstance(nxt, _Diag):
            full = torch.einsum("msr,mas,msu->maru", WD, nxt.v, WD)
        else:
            full = WD.transpose(-1, -2)[:, None] @ nxt @ WD[:, None]
        idx = torch.arange(lam.shape[-1], device=s.device)
        full[:, :, idx, idx] += lam
        out[layer] = full
    return out


@dataclass
class _A:
    """``A_{lk} = J_{kl}ᵀ Γ_k`` (m, n_L, n_{l+1}, n_{k+1}) or its factors."""

    diag: Any = None  # λ when l = k and Γ_k is diagonal
    J: Any = None  # J_{kl} (m, n_{k+1}, n_{l+1}) when Γ_k is diagonal and k > l + 1
    lam: Any = None
    full: Any = None
    d: Any = None  # σ'(a_l) (m, n_{l+1}) when k = l + 1 and Γ_k diagonal: J = W_k D_l
    W: Any = None

    def features(self) -> Any:
        """One row per (input, output unit): (m n_L, features)."""
        if self.diag is not None:
            return self.diag.reshape(self.diag.shape[0] * self.diag.shape[1], -1)
        if self.full is None:
            J = self.J if self.d is None else self.W[None] * self.d[:, None, :]
            self.full = J.transpose(1, 2)[:, None] * self.lam[:, :, None, :]
        return self.full.reshape(self.full.shape[0] * self.full.shape[1], -1)


def _a_factor(s: _Setup, gam: Any, B: Any, k: int, lo: int) -> _A:
    if k == lo:
        return _A(diag=gam.v) if isinstance(gam, _Diag) else _A(full=gam)
    Wk = s.weights[k][:, :-1]
    if isinstance(gam, _Diag) and isinstance(B, _Diag):
        return _A(lam=gam.v, d=B.v, W=Wk)
    J = Wk[None] * B.v[:, None, :] if isinstance(B, _Diag) else Wk @ B
    if isinstance(gam, _Diag):
        return _A(J=J, lam=gam.v)
    return _A(full=J.transpose(1, 2)[:, None] @ gam)


def _gram_a(Aa: _A, Ab: _A) -> Any:
    """``⟨A^{mα}, A^{m'β}⟩`` (Ra n_L, Rb n_L).

    For ``A[r, s] = W[s, r] d[r] λ[s]`` (k = l + 1, Γ_k diagonal) without the n_{l+1} n_{k+1}
    features: ``Σ_s λ^α_s λ'^β_s V[m, m', s]`` with ``V = (W∘W)(d ∘ d')``, one GEMM per block.
    """
    if Aa.d is None or Ab.d is None:
        return Aa.features() @ Ab.features().T
    import torch

    Ra, Rb, nL = Aa.d.shape[0], Ab.d.shape[0], Aa.lam.shape[1]
    W2 = Aa.W * Aa.W
    V = ((Aa.d[:, None, :] * Ab.d[None, :, :]).reshape(Ra * Rb, -1) @ W2.T).view(Ra, Rb, -1)
    out = torch.empty(Ra, nL, Rb, nL, dtype=V.dtype, device=V.device)
    step = max(1, (1 << 22) // max(1, nL * Rb * V.shape[-1]))  # bounds the (m, α, n, s) product
    for m0 in range(0, Ra, step):
        mm = slice(m0, m0 + step)
        lv = Aa.lam[mm, :, None, :] * V[mm, None]  # (m, α, n, s)
        out[mm] = torch.einsum("mans,nbs->manb", lv, Ab.lam)
    return out.reshape(Ra * nL, Rb * nL)


def _cross(s: _Setup, A: _A, B_other: Any, h: Any, G_other: Any) -> Any:
    """``X[mα, nβ] = Σ_{r,s} A^{mα}[r,s] (B_nᵀ h_m)[r] g^{nβ}[s]`` (module docstring of large)."""
    torch = s.torch
    if isinstance(B_other, _Diag):
        V = h[:, None, :] * B_other.v[None, :, :]  # (Ra, Rb, n_{l+1})
    else:
        V = torch.einsum("nek,me->mnk", B_other, h)
    if A.d is not None:  # Σ_r W[s, r] d_m[r] V[m, n, r], one GEMM
        Ra, Rb = V.shape[0], V.shape[1]
        JV = ((V * A.d[:, None, :]).reshape(Ra * Rb, -1) @ A.W.T).view(Ra, Rb, -1)
        Z = A.lam[:, :, None, :] * JV[:, None]
    elif A.J is not None:
        Z = A.lam[:, :, None, :] * torch.einsum("msr,mnr->mns", A.J, V)[:, None]
    else:
        Z = torch.einsum("mars,mnr->mans", A.full, V)
    X = torch.einsum("mans,nbs->manb", Z, G_other)
    return X.reshape(X.shape[0] * X.shape[1], -1)


def _gram_b(Ba: Any, Bb: Any) -> Any:
    if isinstance(Ba, _Diag):
        return Ba.v @ Bb.v.T
    return Ba.reshape(Ba.shape[0], -1) @ Bb.reshape(Bb.shape[0], -1).T


def _next_b(s: _Setup, q: _Pass, B: Any, k: int, lo: int) -> Any:
    """``B_{k,l} = ∂h_k/∂a_l``: ``_Diag(σ'(a_l))`` at k = l+1, then ``D_{k-1} W_{k-1}⁻ B``."""
    if k == lo + 1:
        return _Diag(q.d1[lo])
    W = s.weights[k - 1][:, :-1]
    prod = W[None] * B.v[:, None, :] if isinstance(B, _Diag) else W @ B  # W D is a scaling
    return q.d1[k - 1][:, :, None] * prod


def _trace_block(s: _Setup, qa: _Pass, qb: _Pass, ga: list[Any], gb: list[Any]) -> Any:
    """``T[(m,α),(m',β)] = tr(H^α_m H^β_{m'})`` for m in a, m' in b: (Ra n_L, Rb n_L).

    The closed form of :mod:`fisher_verify._src.models.mlp` (module docstring, "Closed-form
    traces") restricted to two blocks, with the diagonal ``Γ_{L-2}`` and ``B_{l+1,l} = D_l``
    kept diagonal (so no width² features for them); every term is added in place with its
    per-pair weight broadcast (no expanded copies).
    """
    torch = s.torch
    L, nL = len(s.weights), s.n_L
    Ra, Rb = qa.h.shape[0], qb.h.shape[0]
    hdot = [ha @ hb.T for ha, hb in zip(qa.hbar, qb.hbar)]
    T = torch.zeros(Ra, nL, Rb, nL, dtype=s.dtype, device=s.device)

    def add(weight: Any, block: Any) -> None:  # T += weight[m, m'] · block[(m,α), (m',β)]
        T.addcmul_(weight[:, None, :, None], block.view(Ra, nL, Rb, nL))

    for lo in range(L):
        Ba: Any = None
        Bb: Any = None
        for k in range(lo, L):
            w = hdot[lo] * (1.0 if k == lo else 2.0)
            if k > lo:
                Ba, Bb = _next_b(s, qa, Ba, k, lo), _next_b(s, qb, Bb, k, lo)
            if ga[k] is not None:
                Aa, Ab = _a_factor(s, ga[k], Ba, k, lo), _a_factor(s, gb[k], Bb, k, lo)
                add(w * hdot[k], _gram_a(Aa, Ab))
                if k > lo:
                    add(w, _cross(s, Aa, Bb, qa.hbar[k][:, :-1], qb.G[k]))
                    add(w, _cross(s, Ab, Ba, qb.hbar[k][:, :-1], qa.G[k]).T)
            if k > lo:
                Gg = qa.G[k].reshape(Ra * nL, -1) @ qb.G[k].reshape(Rb * nL, -1).T
                add(w * _gram_b(Ba, Bb), Gg)
    return T.view(Ra * nL, Rb * nL)


def _cov2_block(s: _Setup, qa: _Pass, qb: _Pass, ga: list[Any], gb: list[Any]) -> Any:
    """``‖R_m T^{mm'} R_{m'}ᵀ‖_F² = tr(I_m T I_{m'} Tᵀ)`` per pair (Ra, Rb) (factors from R)."""
    T = _trace_block(s, qa, qb, ga, gb)
    Ra, Rb = qa.h.shape[0], qb.h.shape[0]
    T4 = T.view(Ra, s.n_L, Rb, s.n_L)
    return T4.mul_(T4).sum((1, 3))


# --- the cost model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NormCost:
    """What one exact streamed norm needs, said before it runs (:func:`norm_cost`).

    Attributes:
        statement: ``"thm-7"`` or ``"thm-8"``.
        inputs: M.
        block: inputs per block (both sides of a block pair).
        held_bytes: per-input factors held for the whole call.
        block_bytes: the largest arrays of one block pair.
        gemm_flops / elementwise: multiply-adds and elementwise operations, all pairs.
        seconds: the estimate (one block pair timed on the device × block pairs).
        memory_budget / time_budget: the budgets it was sized against.
        cache_gamma: whether every block's pre-activation Hessians are kept (thm-8; counted in
            ``held_bytes``) rather than formed again for each block pair.
        processes: the ``torch.distributed`` processes sharing the block pairs (``seconds``
            is per process).
    """

    statement: str
    inputs: int
    block: int
    held_bytes: int
    block_bytes: int
    gemm_flops: float
    elementwise: float
    seconds: float
    memory_budget: int
    time_budget: float
    cache_gamma: bool = False
    processes: int = 1

    @property
    def fits(self) -> bool:
        """Whether the exact call fits both budgets."""
        return self.fits_memory and self.seconds <= self.time_budget

    @property
    def fits_memory(self) -> bool:
        """Whether the exact call fits the memory budget."""
        return self.held_bytes + self.block_bytes <= self.memory_budget and self.block >= 1

    def __str__(self) -> str:
        shared = "" if self.processes == 1 else f", each of {self.processes} processes"
        return (f"{self.statement} exact at M = {self.inputs}: about {self.seconds:.3g} s "
                f"({self.gemm_flops:.3g} multiply-adds, {self.elementwise:.3g} elementwise), "
                f"{(self.held_bytes + self.block_bytes) / 2**20:.4g} MiB (blocks of {self.block} "
                f"inputs{shared}); budgets {self.memory_budget / 2**20:.4g} MiB, "
                f"{self.time_budget:g} s")


def _subsetup(s: _Setup, idx: Any) -> _Setup:
    """The same network and device on the inputs ``idx`` only."""
    return _Setup(**{**s.__dict__, "X": s.X[idx], "M": int(idx.shape[0])})


def _time_one_block(s: _Setup, statement: str, R: int, cache_gamma: bool) -> float:
    """Seconds of all block pairs, from one block pair of R inputs timed (median of five after
    a warm-up) plus, for thm-8, forming one block's pre-activation Hessians timed once (per
    block when cached, per block pair otherwise)."""
    torch = s.torch
    idx = torch.arange(min(R, s.M), device=s.device)
    sub = _subsetup(s, idx)
    q = _all_factors(sub, statement, R)
    ctr = sub.family.contractions(q.h) if statement == "thm-7" else None

    def timed(fn: Any) -> tuple[float, Any]:
        if s.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if s.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, out

    t_gam, gam = timed(lambda: _gamma_compact(sub, q)) if statement == "thm-8" else (0.0, None)
    _block_values(sub, statement, q, idx, idx, ctr, gam, gam)  # warm-up: allocator, kernels
    times = sorted(timed(lambda: _block_values(sub, statement, q, idx, idx, ctr, gam, gam))[0]
                   for _ in range(5))
    scale = R / max(int(idx.shape[0]), 1)
    blocks = math.ceil(s.M / R)
    pairs = blocks * (blocks + 1) / 2
    # the median, not the best: on a shared machine the best of five undershoots the run
    return times[2] * scale**2 * pairs + t_gam * scale * (blocks if cache_gamma else 2 * pairs)


def _widths(s: _Setup) -> tuple[list[int], list[int]]:
    return [int(W.shape[1]) for W in s.weights], [int(W.shape[0]) for W in s.weights]


def _per_input(s: _Setup) -> int:
    ins, outs = _widths(s)
    return sum(ins) + (3 + s.n_L) * sum(outs) + s.n_L * s.n_L + s.family.contraction_entries()


def _pair_costs(s: _Setup, statement: str) -> tuple[float, float, float, float]:
    """Per pair of inputs: (multiply-adds, elementwise ops, block elements per pair, per input)."""
    ins, outs = _widths(s)
    nL, L = s.n_L, len(s.weights)
    if statement == "thm-7":
        gram = float(sum(ins) + nL * nL * sum(outs))
        return s.family.thm7_pair_cost(nL, L, gram)  # the family's route (O(K²) categorical)
    flops, elem, per_pair, per_in = float(sum(ins)), 0.0, 6.0 * nL * nL + L, 0.0
    for lo in range(L):
        for k in range(lo, L):
            full_gamma = k < L - 2
            if k < L - 1:  # Γ_k present
                if k == lo + 1 and not full_gamma:  # V = (W∘W)(d∘d'), no per-input features
                    flops += outs[lo] * outs[k] + nL * nL * outs[k]
                    per_pair += outs[k] + outs[lo]
                else:
                    feat = outs[k] if (k == lo and not full_gamma) else outs[lo] * outs[k]
                    flops += nL * nL * feat
                    per_in += 2 * nL * feat
                if k > lo:
                    flops += 2 * (outs[lo] * (ins[k] - 1 if k > lo + 1 else 1)
                                  + (outs[k] * outs[lo] if not full_gamma else
                                     nL * outs[lo] * outs[k]) + nL * nL * outs[k])
                    per_pair += 2 * (outs[lo] + nL * outs[k])
                if full_gamma:
                    per_in += nL * outs[k] * outs[k]
            if k > lo:
                flops += nL * nL * outs[k] + (outs[lo] if k == lo + 1 else (ins[k] - 1) * outs[lo])
                per_in += 0 if k == lo + 1 else 2 * (ins[k] - 1) * outs[lo]
            elem += 6 * nL * nL
    return flops, elem, per_pair, per_in


def min_block_elements(s: _Setup, statement: str) -> int:
    """Elements of the closed form's smallest block pair (one input against one input)."""
    _, _, per_pair, per_in = _pair_costs(s, statement)
    return int(3 * (per_pair + 2 * per_in))


def _block_size(per_pair: float, per_input: float, budget_elems: float, M: int) -> int:
    """Largest R with ``R² per_pair + 2 R per_input`` ≤ ``budget_elems`` (1 when none fits)."""
    if per_pair <= 0:
        return M
    b = 2 * per_input
    R = int((-b + math.sqrt(b * b + 4 * per_pair * max(budget_elems, 0))) / (2 * per_pair))
    return max(1, min(M, R))


def _cost(s: _Setup, statement: str, memory_budget: int, time_budget: float,
          M: int | None = None, world: int = 1) -> NormCost:
    M = s.M if M is None else M
    item = 8 if s.dtype == s.torch.float64 else 4
    flops, elem, per_pair, per_in = _pair_costs(s, statement)
    held = M * _per_input(s) * item
    outs = _widths(s)[1]
    gamma_elems = s.n_L * sum(o * o for o in outs[:-2]) if statement == "thm-8" else 0  # full Γ_k
    cache_gamma = statement == "thm-8" and held + M * gamma_elems * item <= memory_budget // 2
    if cache_gamma:
        held += M * gamma_elems * item
    # a factor 3 on the block arrays for the temporaries of einsum/expand
    R = _block_size(3 * per_pair, 3 * per_in, (memory_budget - held) / item, M)
    # blocks whose (R n_L)² arrays stay in cache: measured 2–8x faster than large blocks,
    # whose elementwise passes are bound by memory bandwidth
    R = max(1, min(R, CACHE_BLOCK_ROWS // s.n_L))
    blocks = math.ceil(M / R)
    pairs = blocks * (blocks + 1) / 2 * R * R
    block_bytes = int(3 * (R * R * per_pair + 2 * R * per_in) * item)
    # forming the full pre-activation Hessians: once per input, or per block pair uncached
    form = M * s.n_L * sum(o * o * p for o, p in zip(outs[:-2], outs[1:-1])) \
        if statement == "thm-8" else 0
    form *= 1 if cache_gamma or statement != "thm-8" else blocks
    if flops * pairs + form < 1e9:  # small calls: a low nominal rate, nothing measured
        seconds = (flops * pairs + form) / 1e9 + elem * pairs / 1e8
    else:  # one real block pair timed, times the number of block pairs
        seconds = _time_one_block(s, statement, R, cache_gamma)
    if world > 1:  # the slowest process's timing decides, for every process alike
        t = s.torch.tensor([seconds], dtype=s.torch.float64, device=s.device)
        all_reduce_max([t], world)
        seconds = float(t[0]) / world
    return NormCost(statement, M, R, held, block_bytes, float(flops * pairs + form),
                    float(elem * pairs),
                    seconds, memory_budget, float(time_budget), cache_gamma, world)


def norm_cost(net: Any, x: Any, statement: str, *, memory_budget: int | None = None,
              time_budget: float | None = None, device: str | None = None,
              dtype: Any = None, distributed: bool | None = None) -> NormCost:
    """What the exact streamed ``thm-7`` or ``thm-8`` norm needs for ``net`` at inputs ``x``.

    Time (seconds: one block pair timed on the device, times the number of block pairs, per
    process when ``distributed``) and bytes (the per-input factors plus one block pair), before
    the full computation runs. With a process group every process must call it (the timing is
    all-reduced).
    """
    if statement not in ("thm-7", "thm-8"):
        raise ShapeError(f"statement must be 'thm-7' or 'thm-8', got {statement!r}")
    s = _setup(net, x, device, dtype)
    _, world = process_group(distributed)
    return _cost(s, statement, check_budget(memory_budget), _time_budget(time_budget),
                 world=world)


def _time_budget(time_budget: float | None) -> float:
    if time_budget is None:
        return DEFAULT_TIME_BUDGET
    if isinstance(time_budget, bool) or not float(time_budget) > 0:
        raise ShapeError(f"time_budget must be a number of seconds > 0, got {time_budget!r}")
    return float(time_budget)


# --- the streamed sums ----------------------------------------------------------------------------


def _block_values(s: _Setup, statement: str, q: _Pass, idx_a: Any, idx_b: Any,
                  ctr: Any, ga: Any = None, gb: Any = None) -> Any:
    qa, qb = _rows(q, idx_a), _rows(q, idx_b)
    if statement == "thm-7":
        return _cov1_block(s, qa, qb, ctr, idx_a, idx_b)
    ga = _gamma_compact(s, qa) if ga is None else ga
    gb = _gamma_compact(s, qb) if gb is None else gb
    return _cov2_block(s, qa, qb, ga, gb)


def pair_sum(s: _Setup, statement: str, q: _Pass, block: int, index: Any | None = None,
             keep: bool = False, cache_gamma: bool = True, rank: int = 0,
             world: int = 1, progress: Any = None) -> tuple[float, Any]:
    """``Σ_{m,m'} f(m, m')`` over the inputs ``index`` (all when None), block pairs ``a ≤ b``.

    Returns the sum and, with ``keep``, the (n, n) matrix of ``f`` (for the U-statistic).
    ``cache_gamma`` keeps every block's pre-activation Hessians (thm-8) instead of forming
    the column block's again for each pair (:class:`NormCost` decides from the budget).
    With ``world > 1`` process ``rank`` computes its balanced share of the block pairs
    (:func:`fisher_verify._src.distributed.balanced_shares`) and the sum (and the matrix) are
    all-reduced: every process returns the whole.
    """
    torch = s.torch
    idx = torch.arange(s.M, device=s.device) if index is None else index
    n = int(idx.shape[0])
    ctr = s.family.contractions(q.h) if statement == "thm-7" else None
    F = torch.zeros(n, n, dtype=s.dtype, device=s.device) if keep else None
    total = torch.zeros((), dtype=torch.float64, device=s.device)
    starts = list(range(0, n, block))
    pairs = [(a, b) for i, a in enumerate(starts) for b in starts[i:]]
    sizes = [min(block, n - a) * min(block, n - b) for a, b in pairs]
    cached: dict[int, Any] = {}

    def gamma(start: int) -> Any:  # Γ of a block: formed once per block when cache_gamma
        if statement != "thm-8":
            return None
        if start in cached:
            return cached[start]
        g = _gamma_compact(s, _rows(q, idx[start : start + block]))
        if cache_gamma:
            cached[start] = g
        return g

    mine = balanced_shares(sizes, rank, world)
    for done, (a, b) in enumerate(pairs[j] for j in mine):
        if progress is not None:  # (block pairs done, of this process's share)
            progress(done, len(mine))
        ia, ib = idx[a : a + block], idx[b : b + block]
        ga = gamma(a)
        vals = _block_values(s, statement, q, ia, ib, ctr, ga, ga if a == b else gamma(b))
        total += (1.0 if a == b else 2.0) * vals.sum().to(torch.float64)
        if F is not None:
            F[a : a + block, b : b + block] = vals
            F[b : b + block, a : a + block] = vals.T
    all_reduce_sums([total] if F is None else [total, F], world)
    return float(total), F


def self_values(s: _Setup, statement: str, q: _Pass, block: int) -> Any:
    """``f(m, m)`` for every input (M,), in blocks (only the diagonal pairs)."""
    torch = s.torch
    ctr = s.family.contractions(q.h) if statement == "thm-7" else None
    out = []
    for a in range(0, s.M, block):
        ia = torch.arange(a, min(s.M, a + block), device=s.device)
        out.append(torch.diagonal(_block_values(s, statement, q, ia, ia, ctr)))
    return torch.cat(out)


def pair_norm(
    net: Any, x: Any, n: int, statement: str, *, method: NormMethod = "auto",
    memory_budget: int | None = None, time_budget: float | None = None,
    sample_inputs: int | None = None, seed: int = 0, device: str | None = None,
    dtype: Any = None, block: int | None = None, distributed: bool | None = None,
    progress: Any = None,
) -> tuple[Estimate, NormCost]:
    """``‖Cov(Î₁)‖_F`` (statement ``"thm-7"``, ``thm-4``) or ``‖Cov(Î₂)‖_F`` (``"thm-8"``,
    ``thm-6``), streamed over block pairs of inputs, with the cost it was planned with.

    ``method="exact"``: refused (UnsupportedError naming the estimate and the budgets) when
    :func:`norm_cost` exceeds ``memory_budget`` bytes (default 1 GiB) or ``time_budget``
    seconds (default 900); ``"sampled"``: the U-statistic over ``sample_inputs`` inputs
    (default 512) with its standard error, ``exact=False``; ``"auto"``: exact when it fits,
    else sampled. ``block`` overrides the block size (tests). ``distributed``: share the block
    pairs over the ``torch.distributed`` group (default: when one is initialized; every process
    must call with the same arguments and gets the whole result), see the module docstring.
    ``progress(done, total)`` is called before each block pair of the exact sum.
    """
    if method not in ("auto", "exact", "sampled"):
        raise ShapeError(f"method must be 'auto', 'exact' or 'sampled', got {method!r}")
    s = _setup(net, x, device, dtype)
    N = _check_n(n)
    if statement == "thm-8":
        net.require_c2("output Hessians (thm-3)", x)
    budget, tbudget = check_budget(memory_budget), _time_budget(time_budget)
    rank, world = process_group(distributed)
    cost = _cost(s, statement, budget, tbudget, world=world)
    scale = (s.M * s.M * N) ** 2
    if method == "exact" or (method == "auto" and cost.fits):
        if not cost.fits:
            raise UnsupportedError(
                f"{cost}: above the budget; pass a larger memory_budget/time_budget or "
                "method='sampled' for an unbiased estimate with its standard error")
        q = _all_factors(s, statement, max(1, cost.block))
        total, _ = pair_sum(s, statement, q, int(block or cost.block),
                            cache_gamma=cost.cache_gamma, rank=rank, world=world,
                            progress=progress)
        return Estimate(math.sqrt(max(total, 0.0) / scale), 0.0, True, "exact", 0,
                        {"cost": cost, "squared_norm": total / scale}), cost
    k = min(s.M, DEFAULT_SAMPLE_INPUTS if sample_inputs is None else int(sample_inputs))
    if k < 3 and k < s.M:
        raise ShapeError(f"sample_inputs must be >= 3, got {sample_inputs!r}")
    sub = _cost(s, statement, budget, tbudget, M=k, world=world)
    if not sub.fits_memory:
        raise UnsupportedError(f"{statement} sampled over {k} inputs needs "
                               f"{(sub.held_bytes + sub.block_bytes) / 2**20:.4g} MiB, above "
                               f"memory_budget = {budget / 2**20:.4g} MiB")
    blk = int(block or sub.block)
    if k >= s.M:  # every pair: exact after all
        total, _ = pair_sum(s, statement, _all_factors(s, statement, blk), blk,
                            cache_gamma=sub.cache_gamma, rank=rank, world=world)
        return Estimate(math.sqrt(max(total, 0.0) / scale), 0.0, True, "exact", 0,
                        {"cost": cost}), cost
    # f(m, m) for every input, a chunk of inputs at a time (only the sample is held)
    diag = s.torch.zeros((), dtype=s.torch.float64, device=s.device)
    for start in range(rank * k, s.M, world * k):  # this process's chunks of inputs
        part = _subsetup(s, s.torch.arange(start, min(s.M, start + k), device=s.device))
        diag += self_values(part, statement, _all_factors(part, statement, blk),
                            max(1, min(blk, 64))).sum().to(s.torch.float64)
    all_reduce_sums([diag], world)
    diag_sum = float(diag)
    gen = np.random.default_rng(int(seed))
    pick = s.torch.as_tensor(np.sort(gen.choice(s.M, size=k, replace=False)), device=s.device)
    sample = _subsetup(s, pick)
    _, F = pair_sum(sample, statement, _all_factors(sample, statement, blk), blk, keep=True,
                    cache_gamma=sub.cache_gamma, rank=rank, world=world)
    U, se_U = u_statistic(F)
    pairs = s.M * (s.M - 1)
    total = diag_sum + pairs * U
    se_total = pairs * se_U
    value = math.sqrt(max(total, 0.0) / scale)
    se = (se_total / scale) / (2.0 * value) if value > 0 else math.sqrt(se_total / scale)
    return Estimate(value, se, False, "sampled", k,
                    {"cost": cost, "squared_norm": total / scale,
                     "squared_norm_stderr": se_total / scale, "sample_inputs": k,
                     "seed": int(seed)}), cost


def u_statistic(F: Any) -> tuple[float, float]:
    """The U-statistic ``Ū = Σ_{i≠j} F_ij / (k(k−1))`` of a symmetric (k, k) kernel matrix over
    k inputs drawn without replacement (unbiased for the mean of ``f`` over distinct pairs of
    the population) and its delete-one jackknife standard error."""
    U, U_del = u_statistic_deleted(F.sum(), F.diagonal(), F.sum(1))
    return float(U), (math.inf if U_del is None else float(jackknife_stderr(U_del)))


# --- the right-hand sides (per input, O(M)) --------------------------------------------------------


def thm7_rhs(s: _Setup, N: float, chunk: int, rank: int = 0,
             world: int = 1) -> tuple[float, float]:
    """``(Σ_m ‖J_m‖_F⁴ ‖C_m‖_F, Σ_m ‖J_m‖₂⁴ ‖C_m‖_F) / (M²N)`` (thm-7 and its spectral variant).

    With ``world > 1`` process ``rank`` sums every ``world``-th chunk and the sums are
    all-reduced."""
    torch = s.torch
    sums = torch.zeros(2, dtype=torch.float64, device=s.device)
    for start in range(rank * chunk, s.M, world * chunk):
        q = _forward_backward(s, s.X[start : start + chunk])
        gram = sum((hb * hb).sum(-1)[:, None, None] * (G @ G.transpose(1, 2))
                   for G, hb in zip(q.G, q.hbar))
        jf2 = torch.diagonal(gram, dim1=-2, dim2=-1).sum(-1)
        j2 = torch.linalg.eigvalsh(gram)[:, -1].clamp(min=0)
        cn = s.family.contractions(q.h).excess_fro_norms()
        sums[0] += (jf2**2 * cn).sum().to(torch.float64)
        sums[1] += (j2**2 * cn).sum().to(torch.float64)
    all_reduce_sums([sums], world)
    scale = s.M * s.M * N
    return float(sums[0]) / scale, float(sums[1]) / scale


def thm8_rhs(s: _Setup, N: float, chunk: int, rank: int = 0, world: int = 1) -> float:
    """``Σ_m ‖∂²h_L(x_m)‖_F² ‖I_m‖_F / (M²N)`` with ``‖∂²h_L‖_F² = Σ_α tr(H^α_m H^α_m)``.

    From the diagonal block pairs (blocks of at most 32 inputs) of :func:`_trace_block`; with
    ``world > 1`` process ``rank`` sums every ``world``-th block and the sums are all-reduced.
    """
    torch = s.torch
    total = torch.zeros((), dtype=torch.float64, device=s.device)
    step = min(chunk, 32)
    for start in range(rank * step, s.M, world * step):
        q = _forward_backward(s, s.X[start : start + step])
        m = q.h.shape[0]
        gam = _gamma_compact(s, q)
        T = _trace_block(s, q, q, gam, gam).reshape(m, s.n_L, m, s.n_L)
        own = torch.einsum("iaia->i", T)
        inorm = s.family.contractions(q.h).fisher_fro_norms()  # O(K) for the categorical family
        total += (own * inorm).sum().to(torch.float64)
    all_reduce_sums([total], world)
    return float(total) / (s.M * s.M * N)
