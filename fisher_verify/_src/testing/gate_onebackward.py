"""The exact law of the gate's statistics for Sun's one-backward estimator
(``kind=OneBackward(...)``, ``ext-one-backward``; Sun, ICLR 2026, arXiv 2505.13614, form derived).

For a categorical output with logits ``h`` and probabilities ``p`` (held fixed: detached),
draw ``ξ ∈ R^K`` with i.i.d. entries of mean 0, variance 1 and fourth cumulant ``κ`` (−2
Rademacher, 0 Gaussian) and take one backward pass of

    s(θ) = Σ_k ξ_k √p_k (h_k − Σ_j p_j h_j):   ĝ = J_mᵀ B ξ,   B = diag(√p) − p √pᵀ,

so ``E ĝĝᵀ = J_mᵀ B Bᵀ J_m = J_mᵀ (diag p − p pᵀ) J_m``: one input's Fisher (eq-6). The gate's
estimate averages ``ĝ_m ĝ_mᵀ`` (or ``ĝ_m ⊙ ĝ_m``) over the M inputs and ``n`` draws. Any family
works with a square root ``B Bᵀ = I(h)``: the symmetric one ``I(h)^{1/2}`` for the other
families (with Gaussian probes the law depends on ``B Bᵀ`` only). ``centered=False`` drops the
centring (``B = diag √p``): an unbiased estimator of ``Jᵀ diag(p) J ⪰ I(θ)``, the upper envelope
of ``sun26-spectrum``, to be gated with ``side="upper"``.

Every statistic ``⟨W, Î⟩`` is, per input and draw, ``ξᵀ Q ξ`` with ``Q = Bᵀ J W Jᵀ B``, and for
i.i.d. unit-variance entries

    E ξᵀQξ = tr Q,   Cov(ξᵀQξ, ξᵀRξ) = 2 tr(QR) + κ Σ_k Q_kk R_kk.

A diagonal element has ``Q = a aᵀ``, ``a_k = √p_k (J e_i)ᵀ(e_k − p)`` (categorical), so
``Var = 2(Σ_k a_k²)² − 2 Σ_k a_k⁴`` (Rademacher) or ``2 (Σ_k a_k²)²`` (Gaussian): its sd is at
most ``√2 ×`` its mean ``Σ_k a_k²``, per input and draw, hence (Minkowski) for the average. The
fourth central moments of the rank-one statistics come from the cumulants of ``aᵀξ``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import FisherVerifyError, UnsupportedError
from .cumulants import sum_moments
from .gate_exact import ExactStatistics, checked_outputs

__all__ = ["OneBackward"]

#: Largest M·S·K² entries of the per-input matrices Q of all statistics at once.
ONE_BACKWARD_ENTRY_LIMIT = 30_000_000

#: Fourth cumulant of one probe entry.
_KAPPA4 = {"rademacher": -2.0, "gaussian": 0.0}


@dataclass(frozen=True)
class OneBackward:
    """Sun's one-backward estimator (``ext-one-backward``): ``probe`` ``"rademacher"`` or
    ``"gaussian"`` entries of ξ; ``centered=False``: the uncentred form (categorical only), an
    estimator of the upper bound ``Jᵀ diag(p) J``."""

    probe: Literal["rademacher", "gaussian"] = "rademacher"
    centered: bool = True


def check_one_backward(kind: OneBackward) -> None:
    """Refuse a malformed :class:`OneBackward` kind, naming the field."""
    if kind.probe not in _KAPPA4:
        raise FisherVerifyError(f"OneBackward.probe must be 'rademacher' or 'gaussian', got {kind.probe!r}")
    if not isinstance(kind.centered, bool):
        raise FisherVerifyError(f"OneBackward.centered must be True or False, got {kind.centered!r}")


def _probabilities(fam: Any, h: np.ndarray) -> np.ndarray:
    """All K class probabilities (M, K) of a categorical family (the reference class appended
    when the natural parameter has K − 1 entries)."""
    p = np.asarray(fam.mean(h), dtype=np.float64)
    rest = 1.0 - p.sum(axis=1, keepdims=True)
    if np.all(np.abs(rest) <= 1e-12):
        return p
    return np.concatenate([p, np.maximum(rest, 0.0)], axis=1)


def one_backward_roots(fam: Any, h: np.ndarray, centered: bool = True,
                       fault: str = "") -> np.ndarray:
    """``B_m`` (M, d, K) with ``ĝ_m = J_mᵀ B_m ξ`` (``ext-one-backward``): Sun's form for a
    categorical output, ``I(h)^{1/2}`` otherwise. ``fault`` gives the faulty forms the diagnosis
    names: ``"undetached"`` (gradient through p), ``"no_sqrt"`` (√p missing)."""
    d = h.shape[1]
    if fam.name != "categorical":
        if not centered or fault:
            raise UnsupportedError("OneBackward(centered=False) and its faults are defined for a "
                                   "categorical output (logits and probabilities)")
        lam, Q = np.linalg.eigh(np.asarray(fam.fisher(h), dtype=np.float64))
        return np.asarray(np.einsum("mak,mk,mbk->mab", Q, np.sqrt(np.maximum(lam, 0.0)), Q))
    p = _probabilities(fam, h)
    M, K = p.shape
    sq = np.sqrt(p)
    eye = np.eye(K)
    if not centered:
        B = eye[None] * sq[:, None, :]
    elif fault == "no_sqrt":
        B = eye[None] - p[:, :, None]  # ∂/∂h_a Σ ξ_k (h_k − p·h) = ξ_a − p_a Σ ξ
    elif fault == "undetached":
        hf = np.concatenate([h, np.zeros((M, K - d))], axis=1) if K > d else h
        dev = hf - np.einsum("mk,mk->m", p, hf)[:, None]  # h_k − h̄
        # ∂s/∂h_a with p = softmax(h): ½√p_k(δ_ka − p_a)(h_k − h̄) + √p_k(δ_ka − p_a − p_a(h_a − h̄))
        B = (0.5 * (eye[None] - p[:, :, None]) * (sq * dev)[:, None, :]
             + (eye[None] - p[:, :, None] * (1.0 + dev[:, :, None])) * sq[:, None, :])
    else:
        B = eye[None] * sq[:, None, :] - p[:, :, None] * sq[:, None, :]
    return np.asarray(B[:, :d, :])


def probe_moments(probe: str, order: int = 8) -> np.ndarray:
    """``E ξ^j`` for j = 0..order of one probe entry."""
    if probe == "rademacher":
        return np.array([1.0 if j % 2 == 0 else 0.0 for j in range(order + 1)])
    out = np.zeros(order + 1)
    out[0] = 1.0
    for j in range(2, order + 1, 2):
        out[j] = out[j - 2] * (j - 1)
    return out


def _statistic_vectors(a: np.ndarray, V: np.ndarray, diagonal_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """``Q`` (M, S, K, K) of every statistic and the rank-one vectors (M, S1, K) of the first S1
    (diagonal elements and, for a full estimate, the directions); ``a = Bᵀ J`` (M, K, P)."""
    M, K, P = a.shape
    diag_vec = np.swapaxes(a, 1, 2)  # (M, P, K): a_i = Bᵀ J e_i
    if diagonal_only:
        rank_one = diag_vec
        dirs = np.einsum("mkp,dp,mlp->mdkl", a, V * V, a)
    else:
        dir_vec = np.einsum("mkp,dp->mdk", a, V)
        rank_one = np.concatenate([diag_vec, dir_vec], axis=1)
        dirs = np.zeros((M, 0, K, K))
    Q1 = np.einsum("msk,msl->mskl", rank_one, rank_one)
    return np.concatenate([Q1, dirs], axis=1), rank_one


def one_backward_statistics(
    kind: OneBackward, net: Any, X: np.ndarray, n: int, V: np.ndarray, diagonal_only: bool,
    *, fourth_moments: bool = True,
) -> ExactStatistics:
    """The exact law of the gate's statistics for Sun's one-backward estimator with ``n`` draws
    per input (``ext-one-backward``; module docstring)."""
    check_one_backward(kind)
    fam = net.family
    M = X.shape[0]
    h, eta = checked_outputs(net, X)
    J = np.asarray(net.jacobian(X), dtype=np.float64)
    B = one_backward_roots(fam, h, kind.centered)
    K = B.shape[-1]
    P = J.shape[-1]
    S = P + V.shape[0]
    if M * S * K * K > ONE_BACKWARD_ENTRY_LIMIT:
        raise UnsupportedError(
            f"kind={kind!r}: {M} inputs × {S} statistics × K² = {M * S * K * K:,} entries exceed "
            f"{ONE_BACKWARD_ENTRY_LIMIT:,}; lower the inputs or directions"
        )
    a = np.einsum("mdk,mdp->mkp", B, J)  # (M, K, P)
    Q, rank_one = _statistic_vectors(a, V, diagonal_only)
    kappa = _KAPPA4[kind.probe]
    norm = 1.0 / (M * M * float(n))
    expected = np.einsum("mskk->s", Q) / M
    absa = np.einsum("mdk,mdp->mkp", np.abs(B), np.abs(J))
    Qa, _ = _statistic_vectors(absa, np.abs(V), diagonal_only)
    scales = np.einsum("mskk->s", Qa) / M
    Qf = Q.reshape(M, S, K * K)
    Qd = np.einsum("mskk->msk", Q)

    def combination(coeffs: np.ndarray) -> np.ndarray:
        c = np.atleast_2d(np.asarray(coeffs, dtype=np.float64))
        qf = np.einsum("ks,msx->kmx", c, Qf, optimize=True)
        qd = np.einsum("ks,msx->kmx", c, Qd, optimize=True)
        return np.maximum((2.0 * (qf * qf).sum(-1) + kappa * (qd * qd).sum(-1)).sum(1) * norm, 0.0)

    def covariance() -> np.ndarray:
        # one BLAS product each (cost S² · M · K²)
        f = np.swapaxes(Qf, 0, 1).reshape(S, -1)
        dd = np.swapaxes(Qd, 0, 1).reshape(S, -1)
        return np.asarray((2.0 * (f @ f.T) + kappa * (dd @ dd.T)) * norm)

    def at_labels(t: np.ndarray) -> np.ndarray:
        return np.full(S, np.nan)  # labels play no part in a probe estimator

    variance = np.maximum((2.0 * (Qf * Qf).sum(-1) + kappa * (Qd * Qd).sum(-1)).sum(0) * norm, 0.0)
    fourth = np.full(S, np.nan)
    if fourth_moments:
        S1 = rank_one.shape[1]
        mom = probe_moments(kind.probe)
        central = rank_one[..., None] ** np.arange(9) * mom  # (M, S1, K, 9): a_k ξ_k
        mu = sum_moments(np.moveaxis(central, 2, 0).reshape(K, M * S1, 9), 1.0).reshape(M, S1, 9)
        m2, m4, m6, m8 = mu[..., 2], mu[..., 4], mu[..., 6], mu[..., 8]
        c2 = np.maximum(m4 - m2 * m2, 0.0)
        c4 = np.maximum(m8 - 4.0 * m6 * m2 + 6.0 * m4 * m2 * m2 - 3.0 * m2**4, 0.0)
        var1 = c2.sum(0) * norm
        per = float(M) ** 4 * float(n) ** 3
        fourth[:S1] = np.maximum(c4.sum(0) / per + 3.0 * var1 * var1 - 3.0 * (c2 * c2).sum(0) / per,
                                 var1 * var1)
    full = None
    if not diagonal_only:
        full = np.einsum("mkp,mkq->pq", a, a) / M
    return ExactStatistics(
        expected=expected, variance=variance, fourth=fourth, scales=scales, kind=kind, n=int(n),
        diagonal_only=bool(diagonal_only), V=V, h=h, eta=eta, dense_J=J, w=None, fisher_full=full,
        combination=combination, covariance=covariance, labels_fn=at_labels, tag="_1bwd",
    )


#: The faults of public ports, named by the diagnosis: (fault code, centered, text).
_FAULTS = [
    ("undetached", True, "p not detached (the backward pass also differentiates the "
     "probabilities): use p = softmax(h).detach()"),
    ("", False, "the centring h_k − Σ_j p_j h_j is missing: this estimates the upper bound "
     "Jᵀ diag(p) J ⪰ I(θ) (gate it with side='upper')"),
    ("no_sqrt", True, "the factor √p_k is missing from Σ_k ξ_k √p_k (h_k − Σ_j p_j h_j)"),
]


def one_backward_alternatives(kind: OneBackward, net: Any, X: np.ndarray, V: np.ndarray,
                              diagonal_only: bool) -> list[tuple[str, np.ndarray]]:
    """Exact statistics of the faulty forms (categorical output), for the diagnosis."""
    fam = net.family
    if fam.name != "categorical" or not kind.centered:
        return []
    M = X.shape[0]
    h = np.asarray(net.forward(X), dtype=np.float64).reshape(M, -1)
    J = np.asarray(net.jacobian(X), dtype=np.float64)
    out = []
    for fault, centered, text in _FAULTS:
        B = one_backward_roots(fam, h, centered, fault)
        a = np.einsum("mdk,mdp->mkp", B, J)
        diag = np.einsum("mkp,mkp->p", a, a) / M
        if diagonal_only:
            dirs = (V * V) @ diag
        else:
            av = np.einsum("mkp,dp->mdk", a, V)
            dirs = np.einsum("mdk,mdk->d", av, av) / M
        out.append((text, np.concatenate([diag, dirs])))
    return out
