"""Closed-form covariance of the two Fisher estimators (``thm-4``, ``thm-6``, ``cov-n``).

Array level (pure functions of the network's derivatives and the family's moments):

- ``J``: Jacobian ``∂h_L/∂θ``, shape ``(n_L, P)`` for one input or ``(M, n_L, P)`` for M inputs;
- ``H``: output Hessians ``∂²h_L/∂θ∂θᵀ``, shape ``(n_L, P, P)`` or ``(M, n_L, P, P)``;
- ``I``: ``I(h_L)``, shape ``(n_L, n_L)`` or ``(M, n_L, n_L)``;
- ``K``: 4th central moment of t, shape ``(n_L,)*4`` or ``(M, n_L, n_L, n_L, n_L)``.

Several inputs (empirical ``p(x)`` over M inputs). Convention, shared with
:func:`fisher_verify._src.fisher.estimators.sample_estimators`: **N draws per input**,
``Î = (1/M) Σ_m (1/N) Σ_i term(x_m, y_{m,i})`` with ``y_{m,i} ~ p(y|x_m, θ)`` independent, so
``E[Î] = I(θ) = (1/M) Σ_m J_mᵀ I(h_L(x_m)) J_m`` and

    Cov(Î) = (1/(M² N)) Σ_m Cov(term(x_m, y)).

With M = 1 these are the paper's formulas verbatim (``cov-n``: ``Cov(Î) = Cov(term)/N``).

Nothing of size ``P⁴`` is formed unless asked for (:func:`cov1_tensor`, :func:`cov2_tensor`, and
then only for ``P ≤ MAX_FULL_P``). Variance matrices cost ``O(n_L⁴P + n_L²P²)``; Frobenius
norms go through the Gram matrices ``G = J_m J_{m'}ᵀ`` and traces ``T_αβ = tr(H^α H^β)``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..errors import ShapeError, UnsupportedError
from ..networks.network import require_network
from ..validation import check_count, check_flag

__all__ = ["network_covariance", "network_covariance_norm", "network_variance"]

#: Largest P for which a full ``P⁴`` covariance tensor is built (40⁴ float64 = 20 MB).
MAX_FULL_P = 40

Estimator = Literal[1, 2]

#: What a non-C² network is refused for (the words of the CLI's ``analyze`` refusal).
HESSIAN_VARIANCE = "the variance of the Hessian estimator (thm-6)"


# --- shape helpers ----------------------------------------------------------------------------


def _batched(a: Any, ndim: int, name: str) -> np.ndarray:
    """Float64 array with a leading input axis M (added when a single input is given)."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == ndim:
        arr = arr[None]
    if arr.ndim != ndim + 1:
        raise ShapeError(f"{name} must have {ndim} or {ndim + 1} axes, got shape {arr.shape}")
    return arr


def _check_n(n: int) -> float:
    return float(check_count(n, "number of draws per input n", error=ShapeError))


def _prepare1(J: Any, K: Any, I: Any) -> tuple[np.ndarray, np.ndarray]:
    Jb = _batched(J, 2, "J")
    Cb = moment_excess(K, I)
    if Cb.ndim == 4:
        Cb = Cb[None]
    M, nl, _ = Jb.shape
    if Cb.shape[0] != M or Cb.shape[1:] != (nl,) * 4:
        raise ShapeError(
            f"moments of shape {Cb.shape} do not fit a Jacobian of shape {Jb.shape} "
            f"(expected ({M}, {nl}, {nl}, {nl}, {nl}))"
        )
    return Jb, Cb


def _prepare2(H: Any, I: Any) -> tuple[np.ndarray, np.ndarray]:
    Hb = _batched(H, 3, "H")
    Ib = _batched(I, 2, "I")
    M, nl, P, P2 = Hb.shape
    if P != P2 or Ib.shape != (M, nl, nl):
        raise ShapeError(
            f"Hessians of shape {Hb.shape} and I(h_L) of shape {Ib.shape} do not fit "
            f"(expected H (M, n_L, P, P) and I (M, n_L, n_L))"
        )
    return Hb, Ib


def _refuse_large(P: int) -> None:
    if P > MAX_FULL_P:
        raise UnsupportedError(
            f"the full covariance tensor has P^4 entries; P = {P} exceeds the limit "
            f"MAX_FULL_P = {MAX_FULL_P} (use variance or covariance_norm instead)"
        )


# --- moments ----------------------------------------------------------------------------------


def moment_excess(K: Any, I: Any) -> np.ndarray:
    """``K − I⊗I``, the covariance of the random matrix ``(t−η)(t−η)ᵀ`` (``remark-4.1``).

    ``(I⊗I)_abcd = I_ab I_cd``; batched over leading axes.
    """
    Ka = np.asarray(K, dtype=np.float64)
    Ia = np.asarray(I, dtype=np.float64)
    if Ka.shape[:-4] != Ia.shape[:-2] or Ka.shape[-4:] != (Ia.shape[-1],) * 4:
        raise ShapeError(f"K of shape {Ka.shape} does not fit I of shape {Ia.shape}")
    return Ka - Ia[..., :, :, None, None] * Ia[..., None, None, :, :]


# --- estimator 1: score outer products (thm-4) ------------------------------------------------


def cov1_tensor(J: Any, K: Any, I: Any, n: int = 1) -> np.ndarray:
    """Full ``Cov(Î₁)^{ijkl} = (1/N) J_ai J_bj J_ck J_dl (K_abcd − I_ab I_cd)`` (``thm-4``).

    Averaged over inputs as described in the module docstring. Shape ``(P, P, P, P)``; refused
    with :class:`UnsupportedError` for ``P > MAX_FULL_P``.
    """
    Jb, Cb = _prepare1(J, K, I)
    M, _, P = Jb.shape
    _refuse_large(P)
    out = np.zeros((P, P, P, P))
    for m in range(M):
        t = np.tensordot(Cb[m], Jb[m], axes=([3], [0]))  # abc l
        t = np.tensordot(t, Jb[m], axes=([2], [0]))  # ab l k
        t = np.tensordot(t, Jb[m], axes=([1], [0]))  # a l k j
        t = np.tensordot(t, Jb[m], axes=([0], [0]))  # l k j i
        out += t.transpose(3, 2, 1, 0)
    return out / (M * M * _check_n(n))


def cov1_variance(J: Any, K: Any, I: Any, n: int = 1, *, diagonal: bool = False) -> np.ndarray:
    """Element-wise ``Var(Î₁)_ij = Cov(Î₁)^{ijij}`` (``thm-4``), shape ``(P, P)``.

    ``Var_ij = (1/N) Σ C_abcd (J_a∘J_c)_i (J_b∘J_d)_j``: a quadratic form of the ``n_L² × P``
    matrix of Hadamard products, ``O(n_L⁴ P + n_L² P²)``. With ``diagonal=True`` only
    ``Var(Î₁)_ii`` (shape ``(P,)``), ``O(n_L⁴ P)``.
    """
    Jb, Cb = _prepare1(J, K, I)
    M, nl, P = Jb.shape
    # all inputs at once (batched BLAS, no per-input Python loop): Σ_m Q_mᵀ C_m Q_m
    Q = (Jb[:, :, None, :] * Jb[:, None, :, :]).reshape(M, nl * nl, P)  # m, (a c), i
    C = Cb.transpose(0, 1, 3, 2, 4).reshape(M, nl * nl, nl * nl)  # m, (a c), (b d)
    CQ = C @ Q
    if diagonal:
        out = np.einsum("mxi,mxi->i", Q, CQ)
    else:
        out = Q.reshape(M * nl * nl, P).T @ CQ.reshape(M * nl * nl, P)
    return out / (M * M * _check_n(n))


def cov1_total_variance(J: Any, K: Any, I: Any, n: int = 1) -> float:
    """``Σ_ij Var(Î₁)_ij = E‖Î₁ − I(θ)‖_F²`` without forming ``P×P`` arrays (``lemma-12``).

    ``= (1/(M²N)) Σ_m C_abcd G_ac G_bd`` with ``G = J_m J_mᵀ``.
    """
    Jb, Cb = _prepare1(J, K, I)
    M = Jb.shape[0]
    total = 0.0
    for m in range(M):
        G = Jb[m] @ Jb[m].T
        total += float(np.einsum("abcd,ac,bd->", Cb[m], G, G))
    return total / (M * M * _check_n(n))


def _contract_all(C: np.ndarray, G: np.ndarray) -> np.ndarray:
    """``C'_{a'b'c'd'} = C_abcd G_aa' G_bb' G_cc' G_dd'``, one index at a time (``O(n_L⁵)``)."""
    out = C
    for _ in range(4):
        # contracting axis 0 and appending the new axis at the end cycles the four axes
        out = np.tensordot(out, G, axes=([0], [0]))
    return out


def cov1_frobenius(J: Any, K: Any, I: Any, n: int = 1) -> float:
    """``‖Cov(Î₁)‖_F`` through the Gram matrices ``G^{mm'} = J_m J_{m'}ᵀ`` (``thm-4``, ``thm-7``).

    ``‖Cov‖_F² = (1/(M²N))² Σ_{m,m'} Σ C^m_abcd C^{m'}_{a'b'c'd'} G_aa' G_bb' G_cc' G_dd'``;
    cost ``O(M² (n_L² P + n_L⁵))``, no ``P⁴`` or ``P²`` array.
    """
    Jb, Cb = _prepare1(J, K, I)
    M = Jb.shape[0]
    sq = 0.0
    for m in range(M):
        for mp in range(m, M):
            G = Jb[m] @ Jb[mp].T
            val = float(np.sum(_contract_all(Cb[m], G) * Cb[mp]))
            sq += val if mp == m else 2.0 * val
    return float(np.sqrt(max(sq, 0.0))) / (M * M * _check_n(n))


# --- estimator 2: negative Hessians (thm-6) ---------------------------------------------------


def cov2_tensor(H: Any, I: Any, n: int = 1) -> np.ndarray:
    """Full ``Cov(Î₂)^{ijkl} = (1/N) H^α_ij H^β_kl I_αβ(h_L)`` (``thm-6``), shape ``(P,)*4``.

    Refused for ``P > MAX_FULL_P``.
    """
    Hb, Ib = _prepare2(H, I)
    M, _, P, _ = Hb.shape
    _refuse_large(P)
    out = np.zeros((P, P, P, P))
    for m in range(M):
        IH = np.tensordot(Ib[m], Hb[m], axes=([1], [0]))  # α k l
        out += np.tensordot(Hb[m], IH, axes=([0], [0]))
    return out / (M * M * _check_n(n))


def cov2_variance(H: Any, I: Any, n: int = 1, *, diagonal: bool = False) -> np.ndarray:
    """Element-wise ``Var(Î₂)_ij = (1/N) H^α_ij H^β_ij I_αβ`` (``thm-6``), ``O(n_L² P²)``.

    With ``diagonal=True`` only ``Var(Î₂)_ii``.
    """
    Hb, Ib = _prepare2(H, I)
    M, nl, P, _ = Hb.shape
    # all inputs at once: Σ_{m,a} H^a_m ∘ (I_m H_m)^a
    Hm = np.diagonal(Hb, axis1=2, axis2=3) if diagonal else Hb.reshape(M, nl, P * P)
    out = np.einsum("map,map->p", Hm, Ib @ Hm)
    out = out if diagonal else out.reshape(P, P)
    return out / (M * M * _check_n(n))


def _traces(Ha: np.ndarray, Hb_: np.ndarray) -> np.ndarray:
    """``T_αβ = tr(H^α H^βᵀ) = ⟨H^α, H^β⟩``."""
    nl, P, _ = Ha.shape
    return Ha.reshape(nl, P * P) @ Hb_.reshape(Hb_.shape[0], P * P).T


def cov2_total_variance(H: Any, I: Any, n: int = 1) -> float:
    """``Σ_ij Var(Î₂)_ij = (1/(M²N)) Σ_m tr(T_m I_m) = E‖Î₂ − I(θ)‖_F²`` (``lemma-12``)."""
    Hb, Ib = _prepare2(H, I)
    M = Hb.shape[0]
    total = sum(float(np.sum(_traces(Hb[m], Hb[m]) * Ib[m])) for m in range(M))
    return total / (M * M * _check_n(n))


def cov2_frobenius(H: Any, I: Any, n: int = 1) -> float:
    """``‖Cov(Î₂)‖_F`` through ``T_αβ = tr(H^α H^β)`` (``thm-6``, ``thm-8``).

    ``‖Cov‖_F² = (1/(M²N))² Σ_{m,m'} tr(I_m T^{mm'} I_{m'} T^{mm'ᵀ})``, no ``P⁴`` array.
    """
    Hb, Ib = _prepare2(H, I)
    M = Hb.shape[0]
    sq = 0.0
    for m in range(M):
        for mp in range(m, M):
            T = _traces(Hb[m], Hb[mp])
            val = float(np.trace(Ib[m] @ T @ Ib[mp] @ T.T))
            sq += val if mp == m else 2.0 * val
    return float(np.sqrt(max(sq, 0.0))) / (M * M * _check_n(n))


# --- network level ----------------------------------------------------------------------------


def network_moments(net: Any, x: Any, estimator: Estimator) -> dict[str, np.ndarray]:
    """Derivatives and moments ``thm-4`` (estimator 1) or ``thm-6`` (estimator 2) needs, batched
    over inputs (leading axis M).

    Returns ``h`` (M, n_L), ``I`` (M, n_L, n_L) and, for estimator 1, ``J`` (M, n_L, P) and
    ``K`` (M, n_L⁴); for estimator 2, ``H`` (M, n_L, P, P).

    Raises:
        UnsupportedError: estimator 2 on a network whose σ is not C² (thm-6 rests on thm-3).
    """
    _check_estimator(estimator)
    net = require_network(net)
    if estimator == 2:
        net.require_c2(HESSIAN_VARIANCE, x)
    fam = net.family
    h = _batched(net.forward(x), 1, "h_L")
    out: dict[str, np.ndarray] = {"h": h, "I": np.asarray(fam.fisher(h), dtype=np.float64)}
    if estimator == 1:
        out["J"] = _batched(net.jacobian(x), 2, "J")
        out["K"] = np.asarray(fam.central_moment4(h), dtype=np.float64)
    else:
        out["H"] = _batched(net.output_hessians(x), 3, "H")
    return out


def _check_estimator(estimator: Any) -> None:
    if isinstance(estimator, bool | np.bool_) or estimator not in (1, 2):
        raise ShapeError(
            "estimator must be 1 (score outer products) or 2 (negative Hessians), "
            f"got {estimator!r}"
        )


def network_covariance(net: Any, x: Any, estimator: Estimator = 1, n: int = 1) -> np.ndarray:
    """Full covariance tensor ``Cov(Î)^{ijkl}`` of estimator 1 (``thm-4``) or 2 (``thm-6``).

    ``n`` draws per input; several inputs average (module docstring). Shape ``(P, P, P, P)``;
    :class:`UnsupportedError` when ``P > MAX_FULL_P``.
    """
    _check_estimator(estimator)
    _check_n(n)
    _refuse_large(int(require_network(net).num_params))
    q = network_moments(net, x, estimator)
    if estimator == 1:
        return cov1_tensor(q["J"], q["K"], q["I"], n)
    return cov2_tensor(q["H"], q["I"], n)


def network_variance(
    net: Any, x: Any, estimator: Estimator = 1, n: int = 1, *, diagonal: bool = False
) -> np.ndarray:
    """Element-wise variance ``Var(Î)_ij`` (``thm-4``/``thm-6``), ``(P, P)``, or its diagonal."""
    diagonal = bool(check_flag(diagonal, "diagonal"))
    _check_estimator(estimator)
    _check_n(n)
    q = network_moments(net, x, estimator)
    if estimator == 1:
        return cov1_variance(q["J"], q["K"], q["I"], n, diagonal=diagonal)
    return cov2_variance(q["H"], q["I"], n, diagonal=diagonal)


def network_covariance_norm(net: Any, x: Any, estimator: Estimator = 1, n: int = 1) -> float:
    """``‖Cov(Î)‖_F`` without a ``P⁴`` tensor (``thm-4``/``thm-6``; lhs of ``thm-7``/``thm-8``)."""
    _check_estimator(estimator)
    _check_n(n)
    q = network_moments(net, x, estimator)
    if estimator == 1:
        return cov1_frobenius(q["J"], q["K"], q["I"], n)
    return cov2_frobenius(q["H"], q["I"], n)


# --- the independent route: expectation over y from the definition ----------------------------


def covariance_by_expectation(
    family: Any,
    h: Any,
    *,
    J: Any = None,
    H: Any = None,
    estimator: Estimator = 1,
    n: int = 1,
) -> np.ndarray:
    """``Cov(Î)`` from the definition: an exact expectation over y, no cumulant formula (``cov-n``).

    The single-sample term is a polynomial in ``t(y)`` (degree 2 for the score outer product
    ``Jᵀ(t−η)(t−η)ᵀJ``, degree 1 for the negative Hessian ``Jᵀ I J − (t−η)_a H^a``), so its
    covariance is a degree-4 (resp. 2) expectation, computed exactly on the nodes of
    ``family.expectation_nodes``; ``η`` is itself computed on the nodes. Only the ``t``-dependent
    part of the Hessian enters, since the constant ``Jᵀ I J`` has no variance. Independent of
    ``thm-4``/``thm-6`` and of ``lemma-5``; used to verify them. Returns ``(P, P, P, P)``.
    """
    _check_estimator(estimator)
    hb = _batched(h, 1, "h")
    M = hb.shape[0]
    t, w, _ = family.expectation_nodes(hb, degree=4 if estimator == 1 else 2)
    w = w / np.sum(w, axis=-1, keepdims=True)
    eta = np.einsum("ms,msa->ma", w, t)
    dev = t - eta[:, None, :]  # (M, S, n_L)
    if estimator == 1:
        Jb = _batched(J, 2, "J")
        _refuse_large(Jb.shape[-1])
        g = np.einsum("msa,mai->msi", dev, Jb)  # scores per node
        terms = g[..., :, None] * g[..., None, :]  # (M, S, P, P)
    else:
        Hb = _batched(H, 3, "H")
        _refuse_large(Hb.shape[-1])
        terms = -np.einsum("msa,maij->msij", dev, Hb)
    mean = np.einsum("ms,msij->mij", w, terms)
    cent = terms - mean[:, None]
    cov = np.einsum("ms,msij,mskl->ijkl", w, cent, cent)
    return cov / (M * M * _check_n(n))
