"""Closed forms for the diagonal Fisher estimators beyond the paper (NumPy, dense reference).

The follow-ups to Soen & Sun (2021) study the *diagonals* of the two estimators: Soen & Sun,
NeurIPS 2024, "Trade-offs of diagonal Fisher information matrix estimators" (arXiv 2402.05379),
and Sun, ICLR 2026 (arXiv 2505.13614) for the categorical core's spectrum. The forms here are
derived from thm-4, thm-6 and lemma-5 (paper/STATEMENTS.md, "Beyond the paper"); each function
cites the statement id whose proof in ``proofs/`` checks it against an independent route
(the dense thm-4/thm-6 tensors of :mod:`.covariance`, exact expectations over the labels,
eigen-decompositions).

Array conventions are those of :mod:`.covariance`: ``J`` ``(M, n_L, P)``, diagonals of the
output Hessians ``Hd`` ``(M, n_L, P)`` (``Hd[m, a, i] = ∂²_ii h^a_L(x_m)``), ``I`` ``(M, n_L,
n_L)``, ``kappa4`` and ``C = K − I⊗I`` ``(M, n_L, n_L, n_L, n_L)``; N label draws per input and
``Var(Î) = (1/(M² N)) Σ_m Var_m`` (one-draw variance per input ``Var_m``).

- ``d24-var``: :func:`score_variance_per_input`, :func:`hessian_variance_per_input`,
  :func:`diagonal_variances`;
- ``d24-bounds``: :func:`unfolding`, :func:`spectral_pieces`, :func:`variance_bounds`;
- ``d24-last-layer``: :func:`last_layer_variances`;
- ``d24-groups``: :func:`group_variances`;
- ``d24-pwl``: :func:`pwl_hessian_estimate_diagonal`;
- ``d24-xy``: :func:`sampling_variance`;
- ``d24-emp``: :func:`empirical_bias`;
- ``sun26-spectrum``: :func:`categorical_spectrum`, :func:`pulled_back_envelopes`,
  :func:`pulled_back_diagonals`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..validation import check_count

__all__ = ["pulled_back_diagonals", "sampling_variance"]

#: An eigenvalue of I(h_L) at most ``RANK_RTOL · λ_max`` is taken as a structural zero (the
#: categorical family's ``I(h)·1 = 0`` comes out of ``eigh`` at about 1e-17·λ_max); a genuine
#: eigenvalue that small would make the refined lower bound of ``d24-bounds`` wrong by at
#: most that relative amount.
RANK_RTOL = 1e-12


def _batched(a: Any, ndim: int, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == ndim - 1:
        arr = arr[None]
    if arr.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim - 1} or {ndim} axes, got shape {arr.shape}")
    return arr


def _n(n: int) -> float:
    return float(check_count(n, "n (label draws per input)"))


# --- d24-var ---------------------------------------------------------------------------------


def score_variance_per_input(J: Any, I: Any, kappa4: Any) -> np.ndarray:
    """One-draw ``Var(∂_iℓ²)`` at each input, ``κ₄[u,u,u,u] + 2 (uᵀ I u)²`` with ``u = ∂_i h_L``
    (``d24-var``; the i = j = k = l case of thm-4 through lemma-5), shape ``(M, P)``."""
    Jb = _batched(J, 3, "J")
    Ib = _batched(I, 3, "I")
    kb = _batched(kappa4, 5, "kappa4")
    quad = np.einsum("mai,mab,mbi->mi", Jb, Ib, Jb)
    k4 = np.einsum("mabcd,mai,mbi,mci,mdi->mi", kb, Jb, Jb, Jb, Jb)
    return k4 + 2.0 * quad**2


def hessian_variance_per_input(Hd: Any, I: Any) -> np.ndarray:
    """One-draw ``Var(−∂²_iiℓ)`` at each input, ``wᵀ I w`` with ``w = ∂²_ii h_L`` (``d24-var``;
    the diagonal of thm-6), shape ``(M, P)``."""
    Hb = _batched(Hd, 3, "Hd")
    Ib = _batched(I, 3, "I")
    return np.einsum("mai,mab,mbi->mi", Hb, Ib, Hb)


def diagonal_variances(J: Any, Hd: Any, I: Any, kappa4: Any, n: int = 1
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(Var(Î₁(θ_i)), Var(Î₂(θ_i)))``, each ``(P,)``, for N draws per input over M inputs
    (``d24-var``)."""
    v1 = score_variance_per_input(J, I, kappa4)
    v2 = hessian_variance_per_input(Hd, I)
    scale = v1.shape[0] ** 2 * _n(n)
    return v1.sum(axis=0) / scale, v2.sum(axis=0) / scale


# --- d24-bounds ------------------------------------------------------------------------------


def unfolding(C: Any) -> np.ndarray:
    """The ``n_L² × n_L²`` unfolding ``𝓜[(a,b),(c,d)] = C_abcd`` (batched), so that
    ``C[u,u,u,u] = (u⊗u)ᵀ 𝓜 (u⊗u)`` (``d24-bounds``)."""
    Cb = np.asarray(C, dtype=np.float64)
    n = Cb.shape[-1]
    if Cb.ndim < 4 or Cb.shape[-4:] != (n,) * 4:
        raise ShapeError(f"C must end in four equal axes (n_L,)*4, got shape {Cb.shape}")
    return Cb.reshape(Cb.shape[:-4] + (n * n, n * n))


def _sym_basis(Q: np.ndarray) -> np.ndarray:
    """Orthonormal basis (columns, ``n² × r(r+1)/2``) of the symmetric matrices ``Q S Qᵀ``."""
    n, r = Q.shape
    cols = []
    for a in range(r):
        for b in range(a, r):
            m = np.outer(Q[:, a], Q[:, b])
            m = m if a == b else (m + m.T) / np.sqrt(2.0)
            cols.append(m.reshape(n * n))
    return np.stack(cols, axis=1) if cols else np.zeros((n * n, 0))


@dataclass(frozen=True)
class SpectralPieces:
    """Extreme eigenvalues behind ``d24-bounds``, per input (each ``(M,)``), and the range
    of ``I(h_L)``.

    ``lam_I``/``lam_M``: (min, max) of ``I(h_L)`` and of the plain unfolding ``𝓜`` over all of
    ℝⁿ and ℝ^{n²}. ``lam_I_range``/``lam_M_sym``: the same restricted to the range ``R`` of
    ``I(h_L)`` and to the symmetric matrices on ``R`` (where ``u⊗u`` lives after projecting
    ``u`` onto ``R``: directions in the kernel of ``I`` carry no variance, so ``C`` vanishes on
    them). ``projector``: the orthogonal projector onto ``R`` ``(M, n, n)``; ``null_dim``:
    ``n − rank`` per input.
    """

    lam_I: tuple[np.ndarray, np.ndarray]
    lam_M: tuple[np.ndarray, np.ndarray]
    lam_I_range: tuple[np.ndarray, np.ndarray]
    lam_M_sym: tuple[np.ndarray, np.ndarray]
    projector: np.ndarray
    null_dim: np.ndarray


def spectral_pieces(I: Any, C: Any) -> SpectralPieces:
    """Extreme eigenvalues of ``I(h_L)`` and of the unfolding of ``C = K − I⊗I``, plain and
    restricted to where the score lives (``d24-bounds``)."""
    Ib = _batched(I, 3, "I")
    Mb = unfolding(_batched(C, 5, "C"))
    M, n, _ = Ib.shape
    out: dict[str, list[float]] = {k: [] for k in
                                   ("imin", "imax", "mmin", "mmax", "irmin", "irmax", "msmin",
                                    "msmax")}
    proj = np.zeros((M, n, n))
    null = np.zeros(M, dtype=int)
    for m in range(M):
        lam, vec = np.linalg.eigh((Ib[m] + Ib[m].T) / 2)
        keep = lam > RANK_RTOL * max(float(lam[-1]), 0.0)
        Q = vec[:, keep]
        proj[m] = Q @ Q.T
        null[m] = n - Q.shape[1]
        lm = np.linalg.eigvalsh((Mb[m] + Mb[m].T) / 2)
        B = _sym_basis(Q)
        ls = np.linalg.eigvalsh(B.T @ Mb[m] @ B) if B.shape[1] else np.zeros(1)
        lr = lam[keep] if keep.any() else np.zeros(1)
        for key, val in (("imin", lam[0]), ("imax", lam[-1]), ("mmin", lm[0]),
                         ("mmax", lm[-1]), ("irmin", lr[0]), ("irmax", lr[-1]),
                         ("msmin", ls[0]), ("msmax", ls[-1])):
            out[key].append(float(val))
    a = {k: np.array(v) for k, v in out.items()}
    return SpectralPieces((a["imin"], a["imax"]), (a["mmin"], a["mmax"]),
                          (a["irmin"], a["irmax"]), (a["msmin"], a["msmax"]), proj, null)


@dataclass(frozen=True)
class Bounds:
    """Both sides of ``d24-bounds`` for every parameter, each ``(P,)``.

    ``lower1 ≤ Var(Î₁(θ_i)) ≤ upper1`` and ``lower2 ≤ Var(Î₂(θ_i)) ≤ upper2`` (refined forms:
    ``u``, ``w`` projected on the range of ``I(h_L)``, ``λ`` over symmetric directions there);
    ``plain_*`` the forms with ``‖u‖``, ``‖w‖`` and ``λ`` of the whole ``I(h_L)`` and ``𝓜``.
    ``trivial1``/``trivial2``: per input, the refined lower bound's eigenvalue is 0 (at
    ``RANK_RTOL``), so that side says only ``Var ≥ 0`` and is returned as exactly 0.
    """

    lower1: np.ndarray
    upper1: np.ndarray
    lower2: np.ndarray
    upper2: np.ndarray
    plain_lower1: np.ndarray
    plain_upper1: np.ndarray
    plain_lower2: np.ndarray
    plain_upper2: np.ndarray
    trivial1: np.ndarray
    trivial2: np.ndarray
    pieces: SpectralPieces


def variance_bounds(J: Any, Hd: Any, I: Any, C: Any, n: int = 1) -> Bounds:
    """``(1/N)‖u‖⁴ λ_min(𝓜) ≤ Var(Î₁(θ_i)) ≤ (1/N)‖u‖⁴ λ_max(𝓜)`` and
    ``(1/N)‖w‖² λ_min(I) ≤ Var(Î₂(θ_i)) ≤ (1/N)‖w‖² λ_max(I)`` summed over inputs with the
    ``1/(M² N)`` of thm-4 (``d24-bounds``; Theorem 4.1 of arXiv 2402.05379 in this form).

    The plain ``λ_min(𝓜)`` is 0 for ``n_L ≥ 2`` (antisymmetric directions), and for the
    categorical family ``I(h)·1 = 0``; the refined bounds project ``u``, ``w`` on the range of
    ``I(h_L)`` and take ``λ`` over the symmetric matrices there.
    """
    Jb = _batched(J, 3, "J")
    Hb = _batched(Hd, 3, "Hd")
    sp = spectral_pieces(I, C)
    M = Jb.shape[0]
    scale = M * M * _n(n)
    Pu = np.einsum("mab,mbi->mai", sp.projector, Jb)
    Pw = np.einsum("mab,mbi->mai", sp.projector, Hb)
    u2 = np.sum(Jb**2, axis=1)
    w2 = np.sum(Hb**2, axis=1)
    pu2 = np.sum(Pu**2, axis=1)
    pw2 = np.sum(Pw**2, axis=1)

    def side(norm: np.ndarray, lam: np.ndarray) -> np.ndarray:
        return np.sum(norm * lam[:, None], axis=0) / scale

    ms_min, ms_max = sp.lam_M_sym
    ir_min, ir_max = sp.lam_I_range
    trivial1 = ms_min <= RANK_RTOL * np.abs(ms_max)
    trivial2 = ir_min <= RANK_RTOL * np.abs(ir_max)
    return Bounds(
        lower1=side(pu2**2, np.where(trivial1, 0.0, ms_min)), upper1=side(pu2**2, ms_max),
        lower2=side(pw2, np.where(trivial2, 0.0, ir_min)), upper2=side(pw2, ir_max),
        plain_lower1=side(u2**2, np.maximum(sp.lam_M[0], 0.0)),
        plain_upper1=side(u2**2, sp.lam_M[1]),
        plain_lower2=side(w2, np.maximum(sp.lam_I[0], 0.0)), plain_upper2=side(w2, sp.lam_I[1]),
        trivial1=trivial1, trivial2=trivial2,
        pieces=sp,
    )


# --- d24-last-layer and d24-groups -----------------------------------------------------------


def last_layer_variances(hbar: Any, C: Any, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(Var(Î₁), Var(Î₂))`` of the last layer's weights ``W_{L−1}[a, b]``, each
    ``(n_L, n_{L−1} + 1)`` (row-major as in flat θ) (``d24-last-layer``, Remark 4.4 of
    arXiv 2402.05379).

    ``h_L`` is linear in ``W_{L−1}`` (``∂h_L/∂W_{L−1}[a,b] = e_a h̄_b``), so
    ``Var(Î₁) = (1/(M²N)) Σ_m h̄_{m,b}⁴ C_m[a,a,a,a]`` and ``Var(Î₂) = 0`` for every activation
    and family. ``hbar``: ``h̄_{L−1}`` ``(M, n_{L−1} + 1)``; ``C``: ``K − I⊗I`` per input.
    """
    hb = _batched(hbar, 2, "hbar")
    Cb = _batched(C, 5, "C")
    M = hb.shape[0]
    if Cb.shape[0] != M:
        raise ShapeError(f"hbar has {M} inputs but C has {Cb.shape[0]}")
    caaaa = np.einsum("maaaa->ma", Cb)
    v1 = np.einsum("ma,mb->ab", caaaa, hb**4) / (M * M * _n(n))
    return v1, np.zeros_like(v1)


@dataclass(frozen=True)
class GroupVariances:
    """``d24-groups`` for the weights ``W_{L−2}[j, k]`` of the layer before the last.

    ``var1``, ``var2``: ``(n_{L−1}, n_{L−2} + 1)``; ``ratio``: per input and unit ``j``,
    ``Var(Î₂)/Var(Î₁) = σ''(z_j)² w_jᵀ I w_j / (σ'(z_j)⁴ C[w_j, w_j, w_j, w_j])`` ``(M,
    n_{L−1})``, the same for every ``k`` (``inf`` where the denominator is 0 and the numerator
    not, ``nan`` where both are 0: the ratio is undefined there, and says so).
    """

    var1: np.ndarray
    var2: np.ndarray
    ratio: np.ndarray


def group_variances(W_last: Any, z: Any, hbar: Any, d1: Any, d2: Any, I: Any, C: Any,
                    n: int = 1) -> GroupVariances:
    """Closed forms of ``d24-groups``: for ``θ = W_{L−2}[j,k]``, ``u = σ'(z_j) h̄_k w_j`` and
    ``∂²_θθ h_L = σ''(z_j) h̄_k² w_j``, so ``Var(Î₁) = (1/N) h̄_k⁴ σ'(z_j)⁴ C[w_j⁴]`` and
    ``Var(Î₂) = (1/N) h̄_k⁴ σ''(z_j)² w_jᵀ I w_j`` per input, with ``w_j`` column ``j`` of
    ``W_{L−1}⁻``.

    Args:
        W_last: ``W_{L−1}`` ``(n_L, n_{L−1} + 1)`` (its bias column is not used).
        z: pre-activations ``W_{L−2} h̄_{L−2}`` ``(M, n_{L−1})``.
        hbar: ``h̄_{L−2}`` ``(M, n_{L−2} + 1)``.
        d1: ``σ'(z)`` ``(M, n_{L−1})``.
        d2: ``σ''(z)`` ``(M, n_{L−1})``.
        I: ``I(h_L)`` per input ``(M, n_L, n_L)``.
        C: ``K − I⊗I`` per input ``(M, n_L, n_L, n_L, n_L)``.
        n: label draws per input.
    """
    Wm = np.asarray(W_last, dtype=np.float64)[:, :-1]
    zb = _batched(z, 2, "z")
    hb = _batched(hbar, 2, "hbar")
    s1 = _batched(d1, 2, "d1")
    s2 = _batched(d2, 2, "d2")
    Ib = _batched(I, 3, "I")
    Cb = _batched(C, 5, "C")
    M = zb.shape[0]
    if Wm.shape[1] != zb.shape[1]:
        raise ShapeError(f"W_last has {Wm.shape[1]} input units but z has {zb.shape[1]}")
    quad = np.einsum("aj,mab,bj->mj", Wm, Ib, Wm)
    c4 = np.einsum("mabcd,aj,bj,cj,dj->mj", Cb, Wm, Wm, Wm, Wm)
    scale = M * M * _n(n)
    v1 = np.einsum("mj,mk->jk", s1**4 * c4, hb**4) / scale
    v2 = np.einsum("mj,mk->jk", s2**2 * quad, hb**4) / scale
    num, den = s2**2 * quad, s1**4 * c4
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(den > 0, num / np.where(den > 0, den, 1.0),
                         np.where(num > 0, np.inf, np.nan))
    return GroupVariances(v1, v2, ratio)


# --- d24-pwl ---------------------------------------------------------------------------------


def pwl_hessian_estimate_diagonal(J: Any, I: Any) -> np.ndarray:
    """``diag Î₂`` of a piecewise-linear network (ReLU, no weight tied across layers) at inputs
    away from its kinks: ``∂²_ii h_L = 0`` for every parameter (each θ_i enters h_L linearly
    once the activation pattern is fixed), so ``−∂²_iiℓ = uᵀ I u`` whatever the label and
    ``diag Î₂ = diag I(θ) = (1/M) Σ_m diag(J_mᵀ I_m J_m)`` exactly, with zero variance in every
    layer (``d24-pwl``). Shape ``(P,)``. The off-diagonal cross-layer entries of Î₂ still vary.
    """
    Jb = _batched(J, 3, "J")
    Ib = _batched(I, 3, "I")
    return np.einsum("mai,mab,mbi->i", Jb, Ib, Jb) / Jb.shape[0]


# --- d24-xy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingVariance:
    """``d24-xy``: ``total = label + input`` (law of total variance), each ``(P,)`` or as given.

    ``factor``: the finite-population correction applied to the input term (1 with
    replacement, ``(M − m)/(M − 1)`` without).
    """

    label: np.ndarray
    input: np.ndarray
    total: np.ndarray
    factor: float


def sampling_variance(label_variance: Any, values: Any, m: int, n: int, *,
                      replace: bool) -> SamplingVariance:
    """Variance of a diagonal estimate from ``m`` inputs drawn uniformly from a data set of M
    (with or without replacement) and ``n`` labels per drawn input (``d24-xy``).

    ``Var = E[Var(Î | inputs)] + Var(E[Î | inputs]) = v̄/(m n) + s²/m · f`` with ``v̄`` the mean
    over the data set of the one-draw label variance, ``s² = (1/M) Σ (f_x − f̄)²`` the population
    variance of the per-input value ``f_x`` (``I(θ|x)_ii``) and ``f = 1`` with replacement,
    ``(M − m)/(M − 1)`` without.

    Args:
        label_variance: one-draw label variance per input ``(M, …)`` (``d24-var`` per input).
        values: the per-input expectation ``(M, …)``.
        m: inputs drawn (without replacement at most M).
        n: labels per drawn input.
        replace: draw the inputs with replacement.
    """
    lv = np.asarray(label_variance, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    if lv.ndim == 0 or lv.shape != vals.shape:
        raise ShapeError(f"label_variance {lv.shape} and values {vals.shape} must both be "
                         "(M, …) with the same shape")
    M = lv.shape[0]
    mm, nn = check_count(m, "m (inputs drawn)"), check_count(n, "n (labels per input)")
    if not replace and mm > M:
        raise ShapeError(f"m = {mm} inputs cannot be drawn without replacement from a data set "
                         f"of M = {M}; use m <= {M} or replace=True")
    factor = 1.0 if replace else (0.0 if M == 1 else (M - mm) / (M - 1))
    label = lv.mean(axis=0) / (mm * nn)
    inp = vals.var(axis=0) / mm * factor
    return SamplingVariance(label, inp, label + inp, factor)


# --- d24-emp ---------------------------------------------------------------------------------


def empirical_bias(J: Any, r: Any, I: Any) -> np.ndarray:
    """``E[Î₁ with data labels] − I(θ) = (1/M) Σ_m J_mᵀ (r_m r_mᵀ − I(h_m)) J_m`` with
    ``r_m = t(y_m) − η(h_m)`` (``d24-emp``), shape ``(P, P)``."""
    Jb = _batched(J, 3, "J")
    rb = _batched(r, 2, "r")
    Ib = _batched(I, 3, "I")
    if not (Jb.shape[0] == rb.shape[0] == Ib.shape[0]):
        raise ShapeError(f"J, r and I must have the same number of inputs, got {Jb.shape[0]}, "
                         f"{rb.shape[0]}, {Ib.shape[0]}")
    A = rb[:, :, None] * rb[:, None, :] - Ib
    return np.einsum("mai,mab,mbj->ij", Jb, A, Jb) / Jb.shape[0]


# --- sun26-spectrum --------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoricalSpectrum:
    """Bounds on the spectrum of ``I(h) = diag(p) − ppᵀ`` (``sun26-spectrum``), each ``(…,)``.

    ``lower_simple = max_k p_k(1 − p_k)`` and ``upper_simple = 1 − ‖p‖²``; the two-largest
    forms with ``p₁ ≥ p₂`` the two largest probabilities: ``lower_two = ((p₁+p₂) −
    (p₁−p₂)²)/2`` (the Rayleigh quotient on ``(e₁ − e₂)/√2``, at least ``p₂``) and
    ``upper_two``, the root in ``[p₂, p₁]`` of ``(p₁−λ)(λ−p₂) = p₁²(λ−p₂) − s(p₁−λ)`` with
    ``s = ‖p‖² − p₁²`` (exact for K = 2). ``lower`` / ``upper``: the best of each side.
    ``floor = p_min`` bounds the smallest eigenvalue on ``1⊥`` from below (interlacing).
    """

    lower_simple: np.ndarray
    upper_simple: np.ndarray
    lower_two: np.ndarray
    upper_two: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    floor: np.ndarray


def categorical_spectrum(p: Any) -> CategoricalSpectrum:
    """``sun26-spectrum``: bounds on ``λ_max(diag(p) − ppᵀ)``, batched over leading axes.

    Derivation of ``upper_two``: ``λ = λ_max`` solves ``1 = Σ_k p_k²/(p_k − λ)`` on
    ``[p₂, p₁]`` (interlacing); replacing ``λ − p_k`` by ``λ − p₂ ≤ λ − p_k`` for k ≥ 2 gives a
    lower envelope of that increasing function, whose root lies above ``λ``.
    """
    pa = np.asarray(p, dtype=np.float64)
    if pa.ndim == 0 or pa.shape[-1] < 2:
        raise ShapeError(f"p must end in an axis of K >= 2 probabilities, got shape {pa.shape}")
    q = -np.sort(-pa, axis=-1)
    p1, p2 = q[..., 0], q[..., 1]
    K = pa.shape[-1]
    # 1 − p_k and 1 − ‖p‖² as sums of positive terms (Σp = 1): no cancellation when p₁ ≈ 1
    off = 1.0 - np.eye(K)
    rest = np.einsum("...j,kj->...k", pa, off)  # Σ_{j≠k} p_j
    pairs = np.einsum("...j,...k,jk->...", pa, pa, off)  # Σ_{j≠k} p_j p_k = 1 − ‖p‖²
    rest1 = np.sum(q[..., 1:], axis=-1)
    s = np.sum(q[..., 1:] ** 2, axis=-1)
    lower_simple = np.max(pa * rest, axis=-1)
    upper_simple = pairs
    # ((p₁+p₂) − (p₁−p₂)²)/2 = (p₁(1−p₁) + p₂(1 + 2p₁ − p₂))/2
    lower_two = (p1 * rest1 + p2 * (1.0 + 2.0 * p1 - p2)) / 2.0
    # with μ = λ − p₂, δ = p₁ − p₂: μ² − (δ − ‖p‖²)μ − sδ = 0, positive root, written without
    # cancellation for either sign of δ − ‖p‖² = p₁(1−p₁) − p₂ − s
    delta = p1 - p2
    g = p1 * rest1 - (p2 + s)
    disc = np.sqrt(g * g + 4.0 * s * delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.where(g >= 0, (g + disc) / 2.0,
                      np.where(disc - g > 0, 2.0 * s * delta / (disc - g), 0.0))
    upper_two = np.clip(p2 + mu, p2, p1)
    return CategoricalSpectrum(lower_simple, upper_simple, lower_two, upper_two,
                               np.maximum(lower_simple, lower_two),
                               np.minimum(upper_simple, upper_two), q[..., -1])


def pulled_back_envelopes(J: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(JᵀLJ, JᵀUJ)`` averaged over inputs, with the envelopes ``L = p_min P`` and
    ``U = λ̄ P`` (``P = Id − 11ᵀ/K``, ``λ̄`` the ``upper`` of :func:`categorical_spectrum`), so
    that ``JᵀLJ ⪯ I(θ) ⪯ JᵀUJ`` (``sun26-spectrum``): ``1`` is an eigenvector of ``I(h)``
    with eigenvalue 0 and every other eigenvalue lies in ``[p_min, λ_max]``."""
    Jb = _batched(J, 3, "J")
    pb = _batched(p, 2, "p")
    if pb.shape[0] != Jb.shape[0] or pb.shape[1] != Jb.shape[1]:
        raise ShapeError(f"p {pb.shape} must be (M, K) for J {Jb.shape}")
    spec = categorical_spectrum(pb)
    Jc = Jb - Jb.mean(axis=1, keepdims=True)  # P J, P the projector off 1
    G = np.einsum("mai,maj->mij", Jc, Jc)
    M = Jb.shape[0]
    low = np.einsum("m,mij->ij", spec.floor, G) / M
    up = np.einsum("m,mij->ij", spec.upper, G) / M
    return low, up


def pulled_back_diagonals(J: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """The diagonals of :func:`pulled_back_envelopes` without forming ``P × P``:
    ``(JᵀLJ)_ii = (1/M) Σ_m p_min,m ‖P J_m e_i‖²`` and ``(JᵀUJ)_ii = (1/M) Σ_m λ̄_m ‖P J_m e_i‖²``
    (``sun26-spectrum``), each ``(P,)``; ``JᵀLJ ⪯ I(θ) ⪯ JᵀUJ`` puts every ``I(θ)_ii`` and the
    trace between them."""
    Jb = _batched(J, 3, "J")
    pb = _batched(p, 2, "p")
    if pb.shape[0] != Jb.shape[0] or pb.shape[1] != Jb.shape[1]:
        raise ShapeError(f"p {pb.shape} must be (M, K) for J {Jb.shape}")
    spec = categorical_spectrum(pb)
    Jc = Jb - Jb.mean(axis=1, keepdims=True)
    g = np.sum(Jc**2, axis=1)  # (M, P): ‖P J_m e_i‖²
    M = Jb.shape[0]
    return spec.floor @ g / M, spec.upper @ g / M
