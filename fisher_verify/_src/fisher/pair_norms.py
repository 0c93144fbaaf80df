"""``‖Cov(Î₁)‖_F`` and ``‖Cov(Î₂)‖_F`` of any network interface over pairs of inputs (``thm-4``,
``thm-6``; the left sides of ``thm-7``/``thm-8``), for ``fv.analyze``'s dense route of a network
that the lemma-13 closed forms of :mod:`fisher_verify._src.models.mlp_norms` do not read (a head
through a link, ``ext-links``).

Both covariances are sums of per-input terms, ``Cov(Î) = (M²N)⁻¹ Σ_m V_m A_m V_mᵀ`` with ``V_m``
acting on ``P × P`` matrices, so their squared norms are sums over pairs of inputs of

* thm-7: ``f(m, m') = tr(C_m W C_{m'} Wᵀ)``, ``W = G ⊗ G``, ``G = J_m J_{m'}ᵀ``, ``C = K − I⊗I``
  as an ``n_L² × n_L²`` matrix (``⟨J_a J_bᵀ, J'_c J'_dᵀ⟩ = G_ac G_bd``);
* thm-8: ``f(m, m') = tr(I_m T I_{m'} Tᵀ)``, ``T_αβ = ⟨H^α_m, H^β_{m'}⟩``;

formed a block of inputs against a block at a time from the per-input ``J`` (``M n_L P``
numbers) or output Hessians (``M n_L P²``) held at once. The cost is priced from timed work
(one input's factors, one block of inputs against itself). When those do not fit
``memory_budget`` or the pair sum is priced above ``time_budget``, the off-diagonal part is
the order-2 U-statistic over the pairs of ``k`` inputs drawn without replacement (seeded),
the diagonal ``f(m, m)`` stays exact for every input, and the standard error is the delete-one
jackknife's (delta method for the norm): labelled ``exact=False``. The bounds' right sides
(per-input sums) are exact either way.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from .covariance import moment_excess

__all__ = ["PairNorm", "pair_norm_dense"]

#: Inputs a sampled estimate draws at most.
SAMPLE_INPUTS = 512
#: Inputs of one block of the pair sums (keeps a block's ``(b n_L)²`` Gram in cache).
BLOCK = 64


@dataclass(frozen=True)
class PairNorm:
    """``‖Cov(Î)‖_F`` with its standard error (0 when exact) and how it was computed."""

    value: float
    stderr: float
    exact: bool
    sample_inputs: int  # k of the sampled estimate; M when exact
    seconds: float  # the priced cost of the exact sum
    held_bytes: int  # what the exact sum would hold
    rhs: float  # the bound's right side, (M²N)⁻¹ Σ_m (per-input term), exact


def _factors(net: Any, X: np.ndarray, statement: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-input ``(J, C)`` (thm-7: ``(M, n, P)``, ``(M, n², n²)``) or ``(H, I)`` (thm-8:
    ``(M, n, P²)``, ``(M, n, n)``)."""
    fam = net.family
    h = np.atleast_2d(np.asarray(net.forward(X), dtype=np.float64))
    I = np.asarray(fam.fisher(h), dtype=np.float64)
    M, n = h.shape
    if statement == "thm-7":
        C = moment_excess(np.asarray(fam.central_moment4(h), dtype=np.float64), I)
        return np.asarray(net.jacobian(X), dtype=np.float64), C.reshape(M, n * n, n * n)
    H = np.asarray(net.output_hessians(X), dtype=np.float64)
    return H.reshape(M, n, -1), I


def _block(statement: str, Fa: np.ndarray, Aa: np.ndarray, Fb: np.ndarray,
           Ab: np.ndarray) -> np.ndarray:
    """``f(m, m')`` for every ``m`` of block a and ``m'`` of block b, shape ``(a, b)``."""
    a, n, _ = Fa.shape
    b = Fb.shape[0]
    G = np.tensordot(Fa, Fb, axes=([2], [2])).transpose(0, 2, 1, 3)  # (a, b, n, n)
    if statement == "thm-7":
        G = (G[:, :, :, None, :, None] * G[:, :, None, :, None, :]).reshape(a, b, n * n, n * n)
    left = np.matmul(Aa[:, None], G)  # C_m W (thm-7), I_m T (thm-8)
    right = np.matmul(G, Ab[None])  # W C_m', T I_m'
    return np.sum(left * right, axis=(2, 3))


def _self(statement: str, F: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``f(m, m)`` for every input of a chunk, shape ``(m,)``."""
    G = np.einsum("xap,xbp->xab", F, F)
    if statement == "thm-7":
        c, n, _ = G.shape
        G = np.einsum("xac,xbd->xabcd", G, G).reshape(c, n * n, n * n)
    return np.einsum("xij,xjk,xkl,xil->x", A, G, A, G)


def _pair_sum(statement: str, F: np.ndarray, A: np.ndarray, progress: Any = None,
              keep: bool = False) -> tuple[float, np.ndarray | None]:
    """``Σ_{m,m'} f(m, m')`` over every pair (blocks a ≤ b, symmetry) and, with ``keep``, the
    matrix of f; ``progress(done, total)`` before each row of blocks."""
    M = F.shape[0]
    K = np.zeros((M, M)) if keep else None
    total = 0.0
    rows = -(-M // BLOCK)
    for row, lo in enumerate(range(0, M, BLOCK)):
        if progress is not None:
            progress(row, rows)
        for lo2 in range(lo, M, BLOCK):
            blk = _block(statement, F[lo:lo + BLOCK], A[lo:lo + BLOCK], F[lo2:lo2 + BLOCK],
                         A[lo2:lo2 + BLOCK])
            total += float(blk.sum()) * (1.0 if lo2 == lo else 2.0)
            if K is not None:
                K[lo:lo + BLOCK, lo2:lo2 + BLOCK] = blk
                K[lo2:lo2 + BLOCK, lo:lo + BLOCK] = blk.T
    return total, K


def _width(statement: str, P: int) -> int:
    """Numbers per output unit of one input's factor: ``J`` rows (P) or output Hessians (P²)."""
    return P if statement == "thm-7" else P * P


def _held(statement: str, M: int, n: int, P: int, keep: bool) -> int:
    """Bytes a pair sum over ``M`` inputs holds: the factors of every input (×4 for the
    temporaries of forming them), one block pair's ``(a, b, n², n²)`` arrays, and with
    ``keep`` the ``M × M`` matrix of f (the sampled estimate's)."""
    width = _width(statement, P)
    return 8 * (4 * M * n * width + M * n**4 + 6 * BLOCK * BLOCK * n**4) + (
        8 * M * M if keep else 0)


def _price(statement: str, net: Any, X: np.ndarray, memory_budget: int,
           time_budget: float) -> tuple[float, float]:
    """Seconds per input of forming its factors and per pair of inputs of the pair sum, timed:
    one input first, or up to 16 when that one is cheap (refused at once when every input's
    would exceed ``time_budget``), then a block of up to :data:`BLOCK` inputs against itself."""
    M, P, nL = int(X.shape[0]), int(net.num_params), int(net.widths[-1])
    cap = max(1, memory_budget // (32 * nL * _width(statement, P)))
    t0 = time.perf_counter()
    _factors(net, X[:1], statement)
    per_input = time.perf_counter() - t0
    few = min(M, 16, cap)
    if per_input * M > time_budget and few > 1 and few * per_input <= time_budget / 10:
        # one input's time is mostly the call's overhead: time a few together before refusing
        t0 = time.perf_counter()
        _factors(net, X[:few], statement)
        per_input = (time.perf_counter() - t0) / few
    if per_input * M > time_budget:
        what = "Jacobians" if statement == "thm-7" else "output Hessians"
        raise UnsupportedError(
            f"{statement}: forming the {what} of M = {M} inputs is estimated at "
            f"{per_input * M:.4g} s ({per_input * 1e3:.3g} ms per input, timed), above "
            f"{time_budget:.4g} s")
    # a block of the size the sum uses (a smaller one prices a pair up to 20 times too low:
    # the per-pair work does not stay in cache as the block grows)
    b = min(M, BLOCK, cap)
    t0 = time.perf_counter()
    F, A = _factors(net, X[:b], statement)
    t1 = time.perf_counter()
    _block(statement, F, A, F, A)
    return max(per_input, (t1 - t0) / b), (time.perf_counter() - t1) / (b * b)


def _seconds(per_input: float, per_pair: float, M: int, k: int) -> float:
    """Every input's factors plus the block pairs over ``k`` inputs (``k(k + BLOCK)/2`` pairs
    of inputs: the upper triangle of blocks)."""
    return per_input * (M + (k if k < M else 0)) + per_pair * k * (k + BLOCK) / 2


def _rhs(statement: str, F: np.ndarray, A: np.ndarray) -> float:
    """The per-input sum of the bound: ``Σ_m ‖J_m‖_F⁴ ‖C_m‖_F`` (thm-7) or
    ``Σ_m ‖∂²h(x_m)‖_F² ‖I_m‖_F`` (thm-8), unscaled."""
    c = F.shape[0]
    fn = np.linalg.norm(F.reshape(c, -1), axis=1)
    an = np.linalg.norm(A.reshape(c, -1), axis=1)
    return float(np.sum((fn**4 if statement == "thm-7" else fn**2) * an))


def pair_norm_dense(net: Any, X: np.ndarray, n: int, statement: str, *, memory_budget: int,
                    time_budget: float, seed: int = 0,
                    sample_inputs: int | None = None, sampled: bool = True,
                    progress: Any = None) -> PairNorm:
    """``‖Cov(Î₁)‖_F`` (``"thm-7"``, thm-4) or ``‖Cov(Î₂)‖_F`` (``"thm-8"``, thm-6) of ``net``
    over the inputs ``X`` ``(M, n_0)`` with ``n`` draws per input, and the bound's right side:
    exact when the pair sum fits ``memory_budget`` bytes and ``time_budget`` seconds, else the
    sampled-pairs estimate (module docstring). ``sample_inputs`` (≥ 3) forces the sampled
    estimate over that many inputs.

    Raises:
        UnsupportedError: at once, when not even three inputs' factors fit ``memory_budget``
            or forming every input's factors once (which every route does) is estimated, from
            one timed input, above ``time_budget``; naming the numbers.
    """
    M, P, nL = int(X.shape[0]), int(net.num_params), int(net.widths[-1])
    width = _width(statement, P)
    least = _held(statement, min(M, 3), nL, P, True)
    if least > memory_budget:
        what = "Jacobians" if statement == "thm-7" else "output Hessians"
        raise UnsupportedError(
            f"{statement}: the {what} of {min(M, 3)} inputs need {least / 2**20:.4g} MiB "
            f"(n_L = {nL}, P = {P}), above memory_budget = {memory_budget / 2**20:.4g} MiB")
    per_input, per_pair = _price(statement, net, X, memory_budget, time_budget)
    scale = float(M * M * n) ** 2
    bound_scale = float(M * M * n)
    held = _held(statement, M, nL, P, False)
    seconds = _seconds(per_input, per_pair, M, M)
    if sample_inputs is None and held <= memory_budget and seconds <= time_budget:
        F, A = _factors(net, X, statement)
        total, _ = _pair_sum(statement, F, A, progress)
        return PairNorm(math.sqrt(max(total, 0.0) / scale), 0.0, True, M, seconds, held,
                        _rhs(statement, F, A) / bound_scale)
    if not sampled:
        raise UnsupportedError(
            f"{statement}: the exact ||Cov||_F over every pair of the M = {M} inputs is priced "
            f"at {seconds:.3g} s (timed) and {held / 2**20:.4g} MiB, above {time_budget:.4g} s "
            f"or memory_budget = {memory_budget / 2**20:.4g} MiB")
    k = min(M, SAMPLE_INPUTS if sample_inputs is None else max(3, int(sample_inputs)))
    while sample_inputs is None and k > 3 and (
            _held(statement, k, nL, P, True) > memory_budget
            or _seconds(per_input, per_pair, M, k) > time_budget):
        k = max(3, k // 2)
    if k >= M:  # every pair after all (M ≤ 3, or asked for): exact, no U-statistic
        F, A = _factors(net, X, statement)
        total, _ = _pair_sum(statement, F, A, progress)
        return PairNorm(math.sqrt(max(total, 0.0) / scale), 0.0, True, M, seconds, held,
                        _rhs(statement, F, A) / bound_scale)
    chunk = max(1, min(BLOCK, memory_budget // (32 * nL * width)))
    diag = rhs = 0.0
    for lo in range(0, M, chunk):  # f(m, m) and the bound's term of every input, exact
        F, A = _factors(net, X[lo:lo + chunk], statement)
        diag += float(np.sum(_self(statement, F, A)))
        rhs += _rhs(statement, F, A)
    pick = np.sort(np.random.default_rng(int(seed)).choice(M, size=k, replace=False))
    F, A = _factors(net, X[pick], statement)
    tot, K = _pair_sum(statement, F, A, keep=True)
    assert K is not None
    self_terms = np.diagonal(K).copy()
    cross = K.sum(1)
    Q = self_terms.sum()
    U = (tot - Q) / (k * (k - 1))
    U_del = (tot - 2.0 * cross + 2.0 * self_terms - Q) / ((k - 1) * (k - 2))
    se_U = math.sqrt(max((k - 1) / k * float(np.sum((U_del - U_del.mean()) ** 2)), 0.0))
    pairs = M * (M - 1)
    total = diag + pairs * U
    value = math.sqrt(max(total, 0.0) / scale)
    se_total = pairs * se_U / scale
    se = se_total / (2.0 * value) if value > 0 else math.sqrt(se_total)
    return PairNorm(value, se, False, k, seconds, held, rhs / bound_scale)
