"""Cumulants of a one-hot statistic (categorical family) from its moments, in O(K) per contraction.

For t(y) = e_y with P(y = k) = p_k every moment is diagonal: E[Π_i ⟨t, v_i⟩] = Σ_k p_k Π_i v_i[k].
Joint cumulants follow from moments by the set-partition (Möbius) formula
κ(X_1..X_r) = Σ_π (−1)^{|π|−1} (|π|−1)! Π_{B∈π} E[Π_{i∈B} X_i].
This is a second derivation route, independent of differentiating F = logsumexp: the
tests compare the two for small K, and large K uses this one (a dense K⁴ tensor from the
symbolic route is neither needed nor affordable there).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np


def set_partitions(n: int) -> list[list[tuple[int, ...]]]:
    """All set partitions of {0, …, n-1} (Bell(n) of them)."""
    return [[tuple(b) for b in p] for p in _partitions(tuple(range(n)))]


@cache
def _partitions(items: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], ...], ...]:
    if not items:
        return ((),)
    first, rest = items[0], items[1:]
    out = []
    for part in _partitions(rest):
        out.append(((first,), *part))
        for i in range(len(part)):
            out.append((*part[:i], (first, *part[i]), *part[i + 1 :]))
    return tuple(out)


def _xp(a: Any) -> Any:
    if type(a).__module__.startswith("torch"):
        import torch

        return torch
    return np


def onehot_cumulant_contract(p: Any, vectors: list[Any]) -> Any:
    """κ_r[v_1, …, v_r] of a one-hot statistic with class probabilities p (..., K).

    Costs O(Bell(r)·r·K) per batch element; vectors broadcast against p. For r ≥ 2 the
    partition formula runs on the centred statistic s = t − η (cumulants of order ≥ 2 do not
    see a shift; blocks of size 1 vanish), with ⟨s_k, v⟩ from :func:`_centred_values`. The raw
    moments are O(|v|^r) while κ_r is O(1 − max p) at saturated logits, so the raw route left
    rounding noise of 1e-16·|v|^r on a value of e^-400 (softmax logits of ±700); the centred
    one keeps the relative accuracy of the other kernels there (ext-kernel-stability).
    """
    xp = _xp(p)
    r = len(vectors)
    if r == 1:
        return xp.sum(p * vectors[0], -1)
    values = [_centred_values(p, v, xp) for v in vectors]
    total = 0
    for part in set_partitions(r):
        if any(len(block) == 1 for block in part):
            continue
        term = 1
        for block in part:
            prod = p
            for i in block:
                prod = prod * values[i]
            term = term * xp.sum(prod, -1)
        m = len(part)
        total = total + (-1) ** (m - 1) * math.factorial(m - 1) * term
    return total


def _centred_values(p: Any, v: Any, xp: Any) -> Any:
    """⟨e_k − p, v⟩ = v_k − pᵀv for every class k, without cancellation at a dominant class.

    With k* = argmax p and d = v − v_{k*}: v_k − pᵀv = d_k − Σ_j p_j d_j. At k = k* this is
    −Σ_{j≠k*} p_j d_j, a sum of small terms, instead of the difference of two O(|v|) numbers.
    """
    pb = p + 0 * v
    vb = v + 0 * p
    if xp is np:
        top = np.take_along_axis(vb, np.argmax(pb, axis=-1)[..., None], axis=-1)
    else:
        top = xp.gather(vb, -1, pb.argmax(-1, keepdim=True))
    d = vb - top
    return d - xp.sum(pb * d, -1)[..., None]


def onehot_cumulant_dense(p: Any, order: int) -> Any:
    """The dense cumulant tensor of order ``order`` (…, K, …, K) of a one-hot statistic."""
    xp = _xp(p)
    k = p.shape[-1]
    eye = xp.eye(k, dtype=p.dtype) if xp is np else xp.eye(k, dtype=p.dtype, device=p.device)
    letters = "abcd"[:order]
    total = 0
    for part in set_partitions(order):
        factors = []
        subs = []
        for block in part:
            # the diagonal moment tensor of the block: p_a δ_{a…a}
            factors.append(p if len(block) == 1 else _diag_tensor(p, eye, len(block)))
            subs.append("..." + "".join(letters[i] for i in block))
        m = len(part)
        expr = ",".join(subs) + "->..." + letters
        total = total + (-1) ** (m - 1) * math.factorial(m - 1) * xp.einsum(expr, *factors)
    return total


def _diag_tensor(p: Any, eye: Any, order: int) -> Any:
    """p_a δ_{a a … a} as a dense (…, K, …, K) tensor of the given order."""
    if order == 2:
        return p[..., :, None] * eye
    if order == 3:
        return p[..., :, None, None] * eye[:, :, None] * eye[:, None, :]
    return (
        p[..., :, None, None, None]
        * eye[:, :, None, None]
        * eye[:, None, :, None]
        * eye[:, None, None, :]
    )


def _wsum(p: Any, v: Any, axis: int, keep: bool, xp: Any) -> Any:
    """``Σ_k p_k v_k`` along ``axis`` (NumPy and torch spell the reduction differently).

    One p per row shared by many columns (the classes on axis 1 of (B, K, P) with p (B, K, 1),
    or last with p (..., 1, K)) is a batched matrix product: no ``p ∘ v`` temporary, and a
    third of the time of the elementwise product and sum on the models' Jacobian rows.
    """
    if xp is np:
        return np.sum(p * v, axis=axis, keepdims=keep)
    ax = axis % v.ndim
    if p.dtype != v.dtype:
        return (p * v).sum(ax, keepdim=keep)
    if v.ndim == 3 and p.ndim == 3 and ax == 1 and p.shape[2] == 1 and p.shape[0] == v.shape[0]:
        out = xp.bmm(p.transpose(1, 2), v)  # (B, 1, P)
        return out if keep else out[:, 0]
    if v.ndim >= 2 and p.ndim == v.ndim and ax == v.ndim - 1 and p.shape[-2] == 1:
        out = xp.matmul(v, p.transpose(-1, -2))  # (..., r, 1)
        return out if keep else out[..., 0]
    return (p * v).sum(ax, keepdim=keep)


def onehot_centred(p: Any, g: Any, axis: int = -1) -> Any:
    """``d = g − pᵀg``: the values ``⟨t − η, g⟩ = g_k − pᵀg`` of the score direction on the
    support ``t = e_k`` (probability ``p_k``), the classes along ``axis`` of g and p (the two
    broadcast against each other). A new array, which callers may overwrite.

    Centred at the dominant class k* as :func:`_centred_values` (``d = (g − g_{k*}) −
    pᵀ(g − g_{k*})``, so saturated logits keep their relative accuracy), but without
    broadcasting p to g's shape first: p may carry size-1 axes where g has many (a network's
    ``n_{l+1}`` units, a model's parameters share one p per input), and the argmax is taken
    once per p.
    """
    xp = _xp(p)
    nd = max(p.ndim, g.ndim)  # pad the leading axes, as broadcasting does
    p = p.reshape((1,) * (nd - p.ndim) + tuple(p.shape))
    g = g.reshape((1,) * (nd - g.ndim) + tuple(g.shape))
    ax = axis % nd
    shape = list(np.broadcast_shapes(tuple(p.shape), tuple(g.shape)))
    shape[ax] = 1
    full = list(shape)
    full[ax] = int(g.shape[ax])
    if xp is np:
        k = np.broadcast_to(np.argmax(p, axis=ax, keepdims=True), shape)
        top = np.take_along_axis(np.broadcast_to(g, full), k, axis=ax)
    else:
        k = p.argmax(ax, keepdim=True).expand(shape)
        top = xp.gather(g.expand(full), ax, k)
    d = g - top
    d -= _wsum(p, d, ax, True, xp)
    return d


#: projections worked on at once by :func:`onehot_projected_moments`: (K, 4096) float64 per
#: power, a few hundred KiB, so the eight passes over them stay in cache
_MOMENT_COLUMNS = 4096


def onehot_projected_moments(p: np.ndarray, U: np.ndarray, order: int) -> np.ndarray:
    """``E[(uᵀ(t − η))^j] = Σ_k p_k d_k^j``, ``j = 0..order``, ``d = u − pᵀu`` centred at the
    dominant class as :func:`onehot_centred` (lemma-2 on the support ``t = e_k``), O(K) per
    projection. p (M, K) NumPy, U (M, R, K): (M, R, order + 1).

    Worked per input on blocks of projections with the classes as rows (``(K, n)``, contiguous
    when U is a transposed Jacobian ``(M, K, P)``), each weighted sum one matrix-vector
    product: about 10x the elementwise route over the whole ``(M, R, K)`` array at P ~ 1e5.
    """
    M, R, K = U.shape
    G = np.swapaxes(U, 1, 2)  # (M, K, R): one projection per column
    out = np.empty((M, R, order + 1))
    top = np.argmax(p, axis=-1)
    for m in range(M):
        pm = p[m]
        for lo in range(0, R, _MOMENT_COLUMNS):
            hi = min(R, lo + _MOMENT_COLUMNS)
            Gm = G[m, :, lo:hi]
            d = Gm - Gm[top[m]]
            d -= pm @ d
            block = out[m, lo:hi]
            block[:, 0] = pm.sum()
            if order >= 1:
                block[:, 1] = pm @ d
            power = d
            for j in range(2, order + 1):
                power = power * d if j == 2 else np.multiply(power, d, out=power)
                block[:, j] = pm @ power
    return out


def onehot_fisher_bilinear(p: Any, a: Any, b: Any, axis: int = -1) -> Any:
    """``aᵀ I b = E[(sᵀa)(sᵀb)] = Σ_k p_k d_k e_k`` of a one-hot statistic (eq-6, lemma-5), with
    ``d = a − pᵀa``, ``e = b − pᵀb`` centred as :func:`onehot_centred` (classes along ``axis``).

    The raw form ``Σ p a b − (pᵀa)(pᵀb)`` cancels two O(|a||b|) numbers to an O(1 − max p)
    result at saturated logits; the centred one keeps its relative accuracy there.
    """
    xp = _xp(p)
    d = onehot_centred(p, a, axis)
    if b is a:
        d *= d
    else:  # a and b may broadcast to a larger shape than each
        d = d * onehot_centred(p, b, axis)
    return _wsum(p, d, axis, False, xp)


def onehot_excess4_diagonal(p: Any, g: Any, axis: int = -1) -> tuple[Any, Any]:
    """``(C[g,g,g,g], gᵀ I g)`` for ``C = K − I⊗I`` of a one-hot statistic (lemma-5), direct form.

    On the finite support ``t = e_k`` with probability ``p_k`` the centred statistic is
    ``s = e_k − p``, so with ``d = g − pᵀg``: ``gᵀIg = E[(sᵀg)²] = Σ_k p_k d_k²`` and
    ``C[g⁴] = E[(sᵀg)⁴] − (E[(sᵀg)²])² = Σ_k p_k d_k⁴ − (Σ_k p_k d_k²)²``. This equals
    ``κ₄[g⁴] + 2 (gᵀIg)²`` of the set-partition route (:func:`onehot_cumulant_contract`) at a
    fraction of its cost (2 moments instead of Bell(4) = 15 partition terms). The classes lie
    along ``axis``; one array of g's size is held besides g (squared in place).
    """
    xp = _xp(p)
    d = onehot_centred(p, g, axis)
    d *= d
    m2 = _wsum(p, d, axis, False, xp)
    d *= d
    m4 = _wsum(p, d, axis, False, xp)
    return m4 - m2 * m2, m2


def onehot_excess4_mixed(p: Any, a: Any, b: Any) -> Any:
    """``C[a, b, a, b] = E[(sᵀa)²(sᵀb)²] − (aᵀIb)²`` of a one-hot statistic (lemma-5), direct form:
    ``Σ_k p_k d_k² e_k² − (Σ_k p_k d_k e_k)²`` with ``d = a − pᵀa``, ``e = b − pᵀb``."""
    xp = _xp(p)
    de = onehot_centred(p, a) * onehot_centred(p, b)
    pde = p * de
    m11 = xp.sum(pde, -1)
    return xp.sum(pde * de, -1) - m11 * m11
