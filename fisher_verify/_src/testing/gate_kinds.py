"""Exact laws of the estimator gate's statistics for estimator kinds beyond ``Î₁`` and ``Î₂``
(``ext-gnb``, ``ext-hutchinson``, ``ext-subsampled``; K-FAC's gradient factor in
:mod:`.gate_kfac`, ``ext-kfac``; Sun's one-backward estimator in :mod:`.gate_onebackward`,
``ext-one-backward``).

Each kind needs only the Jacobians ``J_m``, the family's cumulants at ``h_L(x_m)`` and
``I(θ)``; it returns an :class:`~fisher_verify._src.testing.gate_exact.ExactStatistics` whose
variances, covariances, combination variances and fourth moments are those of the kind, so
the gate's per-statistic Catoni tests, spread tests and pooled tests run unchanged.

**Sophia's Gauss–Newton–Bartlett estimator** (``kind="gnb"``; Liu et al. 2023). One label
``ŷ_m ~ p(y|x_m, θ)`` per input (the batch is all ``M`` inputs), ``ĝ = (1/M) Σ_m J_mᵀ r_m``
the gradient of the batch-mean negative log-likelihood (up to sign), ``r_m = t(ŷ_m) − η_m``
independent across inputs, and the estimate ``Ĝ = M ĝ ĝᵀ`` (Sophia uses its diagonal
``M ĝ ⊙ ĝ``); ``n`` independent such estimates averaged. With ``s = √M ĝ`` every statistic
``⟨W, Ĝ⟩ = sᵀ W s = Rᵀ A R`` is a quadratic form in the stacked ``R = (r_1, …, r_M)`` with
``A_mm' = J_m W J_m'ᵀ / M``. Independent blocks give (``ext-gnb``)

    E⟨W, Ĝ⟩ = ⟨W, I(θ)⟩,
    Var⟨W, Ĝ⟩ = (1/n) [ (1/M²) Σ_m κ₄_m[A_m, A_m] + 2 tr(W I(θ) W I(θ)) ],   A_m = J_m W J_mᵀ,

i.e. the variance of ``Î₁`` with one draw plus the cross-input terms
``(2/M²) Σ_{m≠m'} ‖G_m W G_m'ᵀ‖_F²`` (``G_m = L_mᵀ J_m``, ``I_m = L_m L_mᵀ``). A diagonal
element ``Ĝ_ii = s_i²`` has ``Var = (1/n)[(1/M²) Σ_m κ₄(u_mi⁴) + 2 I_ii²]``, ``u_mi = J_m e_i``:
it does not shrink with ``M`` (a ``χ²₁``-like relative sd of ``√2``). Its fourth central moment
comes from the cumulants of ``s_i``, ``κ_k(s_i) = Σ_m κ_k(u_miᵀ r_m) / M^{k/2}`` (moments of
``uᵀr`` up to order 8 by :func:`~fisher_verify._src.families.higher_moments.projected_central_moments`),
as ``c₄ = μ₈ − 4μ₆μ₂ + 6μ₄μ₂² − 3μ₂⁴`` for ``s²``, then ``(c₄ + 3(n−1)c₂²)/n³`` for a mean of ``n``.
The same holds for the rank-one forms ``vᵀĜv = (vᵀs)²``; the ``Diag(v²)`` forms of a diagonal
estimate get their exact variance, not a fourth moment (their spread is not tested).

**Hutchinson's diagonal estimator** (``kind="hutchinson-rademacher"`` / ``"hutchinson-gaussian"``):
``D̂ = v ⊙ (F v)`` with ``F = I(θ)`` exact and probes ``v`` of i.i.d. entries with mean 0,
variance 1 and fourth cumulant ``κ`` (−2 Rademacher, 0 Gaussian), ``n`` probes averaged. A
statistic ``⟨w, D̂⟩ = vᵀ B v``, ``B = (Diag(w) F + F Diag(w))/2``, has mean ``Σ_i w_i F_ii`` and
(``ext-hutchinson``)

    Cov(⟨a, D̂⟩, ⟨b, D̂⟩) = (1/n) aᵀ C b,   C = F∘F + Diag(Σ_j F_ij² + κ F_ii²),

so ``Var D̂_i = Σ_{j≠i} F_ij²`` (Rademacher) or ``F_ii² + Σ_j F_ij²`` (Gaussian). With
``τ² = Σ_{j≠i} F_ij²`` the fourth central moment of one probe's ``D̂_i`` is
``3τ⁴ − 2 Σ_{j≠i} F_ij⁴`` (Rademacher: ``D̂_i − F_ii = v_i Σ_{j≠i} F_ij v_j``) or
``60 F_ii⁴ + 60 F_ii² τ² + 9 τ⁴`` (Gaussian: ``F_ii(z² − 1) + z T``, ``T ~ N(0, τ²)``).
The kind is diagonal only and needs the ``P×P`` Fisher (``P ≤ HUTCHINSON_P_LIMIT``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import FisherVerifyError, UnsupportedError
from ..families.higher_moments import projected_central_moments
from ..fisher.diagonal import sampling_variance
from ..networks.network import Network
from .cumulants import sum_moments
from .gate_exact import (
    ExactStatistics,
    checked_outputs,
    combination_variance,
    exact_statistics,
    statistics_covariance,
)
from .gate_kfac import KFAC, check_kfac, kfac_alternatives, kfac_statistics, kfac_target
from .gate_onebackward import (
    OneBackward,
    check_one_backward,
    one_backward_alternatives,
    one_backward_statistics,
)

__all__ = ["KFAC", "OneBackward", "Subsampled", "sum_moments"]

@dataclass(frozen=True)
class Subsampled:
    """An estimator that uses a random subset of ``inputs`` of the M inputs per call
    (``ext-subsampled``): ``which`` ``"I1"`` / ``"I2"`` (``Î₁`` / ``Î₂`` with ``n`` draws per chosen
    input) or ``"exact"`` (the exact Fisher of the chosen inputs, e.g. mini-batch EWC); the subset
    is drawn uniformly without replacement (``replace=False``) or as ``inputs`` independent
    uniform picks (``replace=True``), with the gate's generator."""

    inputs: int
    which: Literal["I1", "I2", "exact"] = "I1"
    replace: bool = False

    @property
    def kind(self) -> Any:
        """The estimator on the chosen inputs as the gate computes it: 1, 2 or ``"exact"``."""
        return {"I1": 1, "I2": 2, "exact": "exact"}.get(self.which) \
            if isinstance(self.which, str) else None


#: The gate's ``which`` (public) -> its kind (internal: the paper's estimator numbers 1, 2)
WHICH_KINDS: dict[str, Any] = {"I1": 1, "I2": 2, "gnb": "gnb",
                               "hutchinson-rademacher": "hutchinson-rademacher",
                               "hutchinson-gaussian": "hutchinson-gaussian"}


def kind_of(which: Any) -> Any:
    """The internal kind of a public ``which`` (``"I1"`` -> 1, a :class:`Subsampled` as is).

    Raises:
        FisherVerifyError: an unknown ``which``, naming the valid ones.
    """
    if isinstance(which, str) and which in WHICH_KINDS:
        return WHICH_KINDS[which]
    if dataclasses.is_dataclass(which) and not isinstance(which, type):
        return which  # a Subsampled, KFAC or OneBackward: the gate checks its fields
    valid = ", ".join(repr(k) for k in WHICH_KINDS)
    hint = (f" (the estimator is named, not numbered: which='I{which}')"
            if which in (1, 2) and not isinstance(which, bool) else "")
    raise FisherVerifyError(f"which must be one of {valid} or a fisher_verify.Subsampled, KFAC or "
                            "OneBackward(...); "
                            f"got {which!r}{hint}")


Kind = Literal[1, 2, "gnb", "hutchinson-rademacher", "hutchinson-gaussian"] | Subsampled | KFAC | OneBackward

#: What each kind is, for the gate's messages.
KIND_NAMES: dict[Any, str] = {
    1: "Î₁ (score outer products)",
    2: "Î₂ (negative Hessians)",
    "gnb": "Sophia's Gauss–Newton–Bartlett M·ĝ⊙ĝ (one sampled label per input)",
    "hutchinson-rademacher": "Hutchinson's v⊙(I(θ)v), Rademacher probes",
    "hutchinson-gaussian": "Hutchinson's v⊙(I(θ)v), Gaussian probes",
}

#: Short name of each new kind in diagnoses (``Î1``, ``Î2`` for the paper's).
_TAGS = {"gnb": "_GNB", "hutchinson-rademacher": "_Hutch(±1)", "hutchinson-gaussian": "_Hutch(N)"}

#: Fourth cumulant of one probe entry.
_PROBE_KAPPA4 = {"hutchinson-rademacher": -2.0, "hutchinson-gaussian": 0.0}

#: Largest P for the Hutchinson kinds (their law needs F∘F, P×P).
HUTCHINSON_P_LIMIT = 4000

#: Largest S·(M·d)² entries for the GNB cross-input covariance of all statistics at once.
_CROSS_ENTRIES = 30_000_000


def kind_note(kind: Any, cause: str, factor: str) -> str:
    """What a diagnosis means for the kind's own public bugs (appended to the gate's text)."""
    if isinstance(kind, KFAC):
        if cause == "scale" and factor == "M":
            return " For K-FAC: Ĝ is a mean over the M inputs (a sum is missing its 1/M)."
        if cause == "scale" and factor == "1/M²":
            return (" For K-FAC: the per-example gradients g = ∂ℓ_m/∂z must not carry the "
                    "batch-mean 1/M (multiply the hook's gradient by M, or use a summed loss).")
        if cause in ("data_labels", "deterministic"):
            return (" For K-FAC: the Monte Carlo G needs labels sampled from the model; the "
                    "data's labels give the empirical G.")
    if isinstance(kind, OneBackward) and cause in ("scale", "noisier", "distribution"):
        return (" For the one-backward estimator: ξ needs i.i.d. entries of mean 0 and variance 1, "
                "p = softmax(h) detached, and s = Σ_k ξ_k √p_k (h_k − Σ_j p_j h_j).")
    if kind == "gnb":
        if cause == "scale" and factor == "1/M":
            return (" For GNB: the batch size B (= M) is missing from B·ĝ⊙ĝ (ĝ, the gradient of the "
                    "batch-mean loss, is already divided by B).")
        if cause == "scale":
            return (" For GNB: 1/k² is a loss divided by k accumulation steps (the gradient is "
                    "squared), 1/W a mean over W data-parallel ranks scaled by the per-rank batch "
                    "size instead of the global one.")
        if cause in ("data_labels", "deterministic"):
            return (" For GNB: labels must be sampled from the model for every example; the data's "
                    "labels give the squared training gradient (an empirical-Fisher-like estimate).")
    if str(kind).startswith("hutchinson") and cause in ("scale", "noisier", "distribution"):
        return (" For Hutchinson: probes need i.i.d. entries of mean 0 and variance 1 (unnormalised: "
                "no v/‖v‖); the spread is that of the declared probe law (Rademacher or Gaussian).")
    return ""


def describe_kind(kind: Any) -> str:
    """What the kind is, for the gate's messages."""
    if isinstance(kind, KFAC):
        what = "Ĝ ⊗ A (the layer's K-FAC block)" if kind.factor == "block" else "Ĝ"
        return (f"K-FAC's Monte Carlo gradient factor {what} of layer {kind.layer!r} (Î₁ of its "
                f"pre-activations, K-FAC-{kind.sharing}), against the exact factor")
    if isinstance(kind, OneBackward):
        return (f"Sun's one-backward estimator, {kind.probe} ξ"
                + ("" if kind.centered else ", uncentred (an estimator of Jᵀdiag(p)J ⪰ I(θ))"))
    if isinstance(kind, Subsampled):
        inner = "the exact Fisher" if kind.kind == "exact" else KIND_NAMES[kind.kind]
        how = "with" if kind.replace else "without"
        return f"{inner} of {kind.inputs} inputs drawn {how} replacement per call"
    return KIND_NAMES[kind]


def check_kind(kind: Any, diagonal_only: bool, M: int | None = None) -> None:
    """Refuse an unknown kind, or a Hutchinson kind with a full-matrix estimate."""
    if isinstance(kind, KFAC):
        check_kfac(kind)
        return
    if isinstance(kind, OneBackward):
        check_one_backward(kind)
        return
    if isinstance(kind, Subsampled):
        if kind.kind is None:
            raise FisherVerifyError(
                f"Subsampled.which must be 'I1', 'I2' or 'exact' (the estimator on the chosen "
                f"inputs), got {kind.which!r}"
            )
        top = M if M is not None and not kind.replace else None
        if isinstance(kind.inputs, bool) or not isinstance(kind.inputs, int) or kind.inputs < 1 or (
            top is not None and kind.inputs > top
        ):
            bound = f"1..{top} (without replacement from M = {top} inputs)" if top else "≥ 1"
            raise FisherVerifyError(f"Subsampled.inputs must be an integer in {bound}, got {kind.inputs!r}")
        return
    try:
        known = kind in KIND_NAMES and not isinstance(kind, bool | np.bool_)
    except TypeError:  # unhashable
        known = False
    if not known:
        valid = ", ".join(repr(k) for k in KIND_NAMES)
        raise FisherVerifyError(f"kind must be one of {valid}; got {kind!r}")
    if str(kind).startswith("hutchinson") and not diagonal_only:
        raise FisherVerifyError(
            f"kind={kind!r} is a diagonal estimator v⊙(Fv): pass diagonal_only=True (its estimate "
            "is the (P,) diagonal)"
        )


def _square_moments(mu: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(variance, fourth central moment) of the mean of ``n`` i.i.d. copies of ``s²``."""
    m2, m4, m6, m8 = mu[..., 2], mu[..., 4], mu[..., 6], mu[..., 8]
    c2 = np.maximum(m4 - m2 * m2, 0.0)
    c4 = np.maximum(m8 - 4.0 * m6 * m2 + 6.0 * m4 * m2 * m2 - 3.0 * m2**4, 0.0)
    return c2 / n, np.maximum((c4 + 3.0 * (n - 1) * c2 * c2) / n**3, (c2 / n) ** 2)


def _whitened(fam: Any, h: np.ndarray, J: np.ndarray) -> np.ndarray:
    """``G_m = L_mᵀ J_m`` (M, d, P) with ``L_m L_mᵀ = I(h_m)`` (so ``G_mᵀ G_m = J_mᵀ I_m J_m``)."""
    Ih = np.asarray(fam.fisher(h), dtype=np.float64)
    lam, Q = np.linalg.eigh(Ih)
    root = Q * np.sqrt(np.maximum(lam, 0.0))[:, None, :]  # L = Q √Λ
    return np.einsum("mab,map->mbp", root, J)


def _cross_blocks(G: np.ndarray, diag_w: np.ndarray, rank_c: np.ndarray | None,
                  V: np.ndarray | None) -> np.ndarray:
    """``Q_k = G W_k Gᵀ`` (K, M·d, M·d) with its diagonal blocks zeroed; ``W_k = Diag(diag_w_k)
    + Σ_j rank_c[k, j] v_j v_jᵀ``."""
    M, d, P = G.shape
    Gf = G.reshape(M * d, P)
    Q = (Gf[None] * diag_w[:, None, :]) @ Gf.T
    if rank_c is not None and V is not None and V.shape[0]:
        g = Gf @ V.T  # (M·d, D)
        Q = Q + np.einsum("kj,aj,bj->kab", rank_c, g, g)
    blocks = Q.reshape(-1, M, d, M, d)
    idx = np.arange(M)
    blocks[:, idx, :, idx, :] = 0.0
    return blocks.reshape(-1, M * d * M * d)


def gnb_statistics(
    net: Network, X: np.ndarray, n: int, V: np.ndarray, diagonal_only: bool,
    *, fourth_moments: bool = True,
) -> ExactStatistics:
    """The exact law of the gate's statistics for Sophia's GNB estimator (``ext-gnb``; module
    docstring): the ``Î₁`` law with one draw plus the cross-input terms, divided by ``n``."""
    base = exact_statistics(net, X, 1, 1, V, diagonal_only, fourth_moments=False)
    fam = net.family
    M, d, P = base.J.shape
    D = V.shape[0]
    G = _whitened(fam, base.h, base.J)
    norm = 2.0 / (M * M)
    # rank-one statistics e_i e_iᵀ: ‖G W Gᵀ‖² − Σ_m ‖G_m W G_mᵀ‖² = (Σ_m a_m)² − Σ_m a_m²
    a = np.einsum("map,map->mp", G, G)
    cross_diag = norm * (a.sum(0) ** 2 - (a * a).sum(0))
    if diagonal_only:
        Qd = _cross_blocks(G, V * V, None, None) if D else np.zeros((0, 1))
        cross_dir = norm * np.einsum("ka,ka->k", Qd, Qd)
    else:
        gv = np.einsum("mbp,kp->mkb", G, V)  # (M, D, d): G_m v
        b = np.einsum("mkb,mkb->mk", gv, gv)
        cross_dir = norm * (b.sum(0) ** 2 - (b * b).sum(0))
    cross = np.concatenate([cross_diag, cross_dir])
    variance = np.maximum(base.variance + cross, 0.0) / n

    def combination(coeffs: np.ndarray) -> np.ndarray:
        c = np.atleast_2d(np.asarray(coeffs, dtype=np.float64))
        if diagonal_only:
            Q = _cross_blocks(G, c[:, :P] + c[:, P:] @ (V * V), None, None)
        else:
            Q = _cross_blocks(G, c[:, :P], c[:, P:], V)
        extra = norm * np.einsum("ka,ka->k", Q, Q)
        return np.maximum(combination_variance(base, fam, c) + extra, 0.0) / n

    def covariance() -> np.ndarray:
        S = P + D
        if S * (M * d) ** 2 > _CROSS_ENTRIES:
            return np.diag(variance)  # any fixed weights are valid; these cost nothing
        eye = np.eye(S)
        if diagonal_only:
            Q = _cross_blocks(G, eye[:, :P] + eye[:, P:] @ (V * V), None, None)
        else:
            Q = _cross_blocks(G, eye[:, :P], eye[:, P:], V)
        return (statistics_covariance(base, fam) + norm * (Q @ Q.T)) / n

    def at_labels(t: np.ndarray) -> np.ndarray:
        r = np.asarray(t, dtype=np.float64) - base.eta[None]  # (k, M, d)
        s = np.einsum("kma,map->kp", r, base.J) / np.sqrt(M)
        diag = (s * s).mean(axis=0)
        dirs = (V * V) @ diag if diagonal_only else ((s @ V.T) ** 2).mean(axis=0)
        return np.concatenate([diag, dirs])

    fourth = np.full(P + D, np.nan)
    if fourth_moments:
        proj = np.swapaxes(base.J, 1, 2)  # (M, P, d)
        if not diagonal_only:
            proj = np.concatenate([proj, np.einsum("map,kp->mka", base.J, V)], axis=1)
        mu = sum_moments(projected_central_moments(fam, base.h, proj, 8), 1.0 / np.sqrt(M))
        _, mu4 = _square_moments(mu, n)
        fourth[: mu4.shape[0]] = mu4
    return _replace(base, variance=variance, fourth=fourth, kind="gnb", n=n,
                    combination=combination, covariance=covariance, labels_fn=at_labels,
                    tag=_TAGS["gnb"])


def _replace(ex: ExactStatistics, **changes: Any) -> ExactStatistics:
    from dataclasses import replace

    return replace(ex, **changes)


def hutchinson_probe_law(F: np.ndarray, kappa4: float) -> np.ndarray:
    """``C`` (P, P) with ``Cov(⟨a, D̂⟩, ⟨b, D̂⟩) = aᵀ C b`` for one probe (``ext-hutchinson``)."""
    F2 = F * F
    return F2 + np.diag(F2.sum(axis=1) + kappa4 * np.diag(F) ** 2)


def hutchinson_diagonal_moments(F: np.ndarray, kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(variance, fourth central moment) of ``D̂_i`` averaged over ``n`` probes (``ext-hutchinson``)."""
    f = np.diag(F)
    F2 = F * F
    tau2 = F2.sum(axis=1) - f * f
    if kind == "hutchinson-rademacher":
        c2 = tau2
        c4 = 3.0 * tau2 * tau2 - 2.0 * ((F2 * F2).sum(axis=1) - f**4)
    else:
        c2 = 2.0 * f * f + tau2
        c4 = 60.0 * f**4 + 60.0 * f * f * tau2 + 9.0 * tau2 * tau2
    c2 = np.maximum(c2, 0.0)
    c4 = np.maximum(c4, 0.0)
    return c2 / n, np.maximum((c4 + 3.0 * (n - 1) * c2 * c2) / n**3, (c2 / n) ** 2)


def hutchinson_statistics(
    net: Network, X: np.ndarray, kind: str, n: int, V: np.ndarray, *, fourth_moments: bool = True,
) -> ExactStatistics:
    """The exact law of the gate's statistics (diagonal elements and ``Σ_i v_i² D̂_i``) for
    Hutchinson's ``v ⊙ (I(θ) v)`` with ``n`` probes (``ext-hutchinson``; module docstring)."""
    P = net.num_params
    if P > HUTCHINSON_P_LIMIT:
        raise UnsupportedError(
            f"kind={kind!r}: P = {P} parameters exceeds {HUTCHINSON_P_LIMIT}, the largest for "
            "which the gate forms I(θ)∘I(θ) (P×P) for the probes' law"
        )
    fam = net.family
    M = X.shape[0]
    h, eta = checked_outputs(net, X)
    Ih = np.asarray(fam.fisher(h), dtype=np.float64)
    J = np.asarray(net.jacobian(X), dtype=np.float64)
    d = J.shape[1]
    IJ = np.einsum("mab,mbp->map", Ih, J)
    F = J.reshape(M * d, P).T @ IJ.reshape(M * d, P) / M
    F = 0.5 * (F + F.T)
    W2 = V * V
    C = hutchinson_probe_law(F, _PROBE_KAPPA4[kind]) / n
    f = np.diag(F)
    var_diag, mu4 = hutchinson_diagonal_moments(F, kind, n)
    expected = np.concatenate([f, W2 @ f])
    variance = np.concatenate([var_diag, np.einsum("kp,pq,kq->k", W2, C, W2)])
    row = np.abs(F).sum(axis=1)  # the magnitude of (F v)_i for |v_j| ≈ 1
    scales = np.concatenate([row, W2 @ row])
    fourth = np.full(P + V.shape[0], np.nan)
    if fourth_moments:
        fourth[:P] = mu4

    def weights(coeffs: np.ndarray) -> np.ndarray:
        c = np.atleast_2d(np.asarray(coeffs, dtype=np.float64))
        return c[:, :P] + c[:, P:] @ W2

    def combination(coeffs: np.ndarray) -> np.ndarray:
        b = weights(coeffs)
        return np.maximum(np.einsum("kp,pq,kq->k", b, C, b), 0.0)

    def covariance() -> np.ndarray:
        B = weights(np.eye(P + V.shape[0]))
        return B @ C @ B.T

    def at_labels(t: np.ndarray) -> np.ndarray:
        # labels play no part in a probe estimator: nothing to compare
        return np.full(P + V.shape[0], np.nan)

    return ExactStatistics(
        expected=expected, variance=np.maximum(variance, 0.0), fourth=fourth, scales=scales,
        kind=kind, n=int(n), diagonal_only=True, V=V, h=h, eta=eta, dense_J=J, w=None, fisher_full=F,
        combination=combination, covariance=covariance, labels_fn=at_labels, tag=_TAGS[kind],
    )


def kind_statistics(
    kind: Any, net: Network, X: np.ndarray, n: int, V: np.ndarray, diagonal_only: bool,
) -> ExactStatistics:
    """The exact law of the gate's statistics for any kind (``thm-4``, ``thm-6``, ``ext-gnb``,
    ``ext-hutchinson``)."""
    check_kind(kind, diagonal_only, X.shape[0])
    if isinstance(kind, KFAC):
        return kfac_statistics(kind, net, X, n, V, diagonal_only)
    if isinstance(kind, OneBackward):
        return one_backward_statistics(kind, net, X, n, V, diagonal_only)
    if isinstance(kind, Subsampled):
        return subsampled_statistics(kind, net, X, n, V, diagonal_only)
    if kind in (1, 2):
        return exact_statistics(net, X, int(kind), n, V, diagonal_only)
    if kind == "gnb":
        return gnb_statistics(net, X, n, V, diagonal_only)
    return hutchinson_statistics(net, X, str(kind), n, V)


def kind_target(kind: Any, net: Any, X: np.ndarray) -> tuple[int, list[str] | None, list[Any] | None]:
    """(P, labels of the diagonal, plausible wrong orders) of what the kind estimates: I(θ)'s
    (the network's own labels and orders: None) or a K-FAC factor's."""
    if isinstance(kind, KFAC):
        return kfac_target(kind, net, X)
    return int(net.num_params), None, None


def kind_alternatives(kind: Any, net: Any, X: np.ndarray, V: np.ndarray,
                      diagonal_only: bool) -> list[tuple[str, np.ndarray]]:
    """The exact statistics of the kind's known faults that are not a factor or an order (the
    wrong layer's K-FAC factor; the one-backward estimator's undetached p, missing centring or
    missing √p), each with the sentence that names it."""
    if isinstance(kind, KFAC):
        return kfac_alternatives(kind, net, X, V, diagonal_only)
    if isinstance(kind, OneBackward):
        return one_backward_alternatives(kind, net, X, V, diagonal_only)
    return []


#: A clipped GNB is named when a tie of its size at the largest trace has probability at most
#: this under the GNB law (the bound of :func:`gnb_clipping`).
CLIP_LEVEL = 1e-6


def gnb_clipping(traces: np.ndarray, fam: Any, h: np.ndarray) -> str:
    """The sentence naming a clipped gradient in Sophia's GNB, or "" (``ext-gnb``).

    Norm clipping caps ``tr Ĝ = M‖ĝ‖²`` at ``M c²``: every clipped replicate has exactly that
    trace, the largest observed. Under the GNB law a trace value is an atom only through a label
    set (one per input), so any value recurs ``k`` times among ``R`` replicates with probability
    at most ``C(R, k) π*^(k−1)``, ``π* = Π_m max_y p(y|x_m)`` the most likely label set's
    probability (0 for a continuous family: any tie is decisive). The clipping is named when
    ``k`` replicates tie (relative 1e-9) at the largest trace and that bound is at most
    :data:`CLIP_LEVEL`.
    """
    R = traces.shape[0]
    top = float(np.max(traces))
    if not (np.isfinite(top) and top > 0):
        return ""
    k = int(np.sum(np.abs(traces - top) <= 1e-9 * top))
    if k < 2:
        return ""
    if fam.definition.support.kind == "continuous":
        log_pi = -math.inf
    else:
        _, w, _ = fam.expectation_nodes(h, degree=2)
        w = np.asarray(w, dtype=np.float64)
        log_pi = float(np.sum(np.log(np.max(w / w.sum(axis=-1, keepdims=True), axis=-1))))
    log_bound = (math.lgamma(R + 1) - math.lgamma(k + 1) - math.lgamma(R - k + 1)
                 + (k - 1) * log_pi)
    if log_bound > math.log(CLIP_LEVEL):
        return ""
    return (f" A clipped gradient: {k} of {R} replicates share the largest trace Σ_i Ĝ_ii = "
            f"{top:.6g} exactly (norm clipping caps M‖ĝ‖² at M·c²); under the GNB law a tie that "
            f"size has probability ≤ {math.exp(log_bound):.2g}. Do not clip ĝ before squaring it.")


def fisher_statistics(net: Any, X: np.ndarray, V: np.ndarray, diagonal_only: bool) -> np.ndarray:
    """The statistics ``⟨W, I(θ)⟩`` (eq-6) of the gate (diagonal, then directions)."""
    M = X.shape[0]
    h = np.asarray(net.forward(X), dtype=np.float64).reshape(M, -1)
    Ih = np.asarray(net.family.fisher(h), dtype=np.float64)
    J = np.asarray(net.jacobian(X), dtype=np.float64)
    diag = np.einsum("map,mab,mbp->p", J, Ih, J) / M
    if diagonal_only:
        return np.concatenate([diag, (V * V) @ diag])
    u = np.einsum("map,kp->mka", J, V)
    return np.concatenate([diag, np.einsum("mka,mab,mkb->k", u, Ih, u) / M])


def subsampled_statistics(
    kind: Subsampled, net: Network, X: np.ndarray, n: int, V: np.ndarray, diagonal_only: bool,
) -> ExactStatistics:
    """The exact law of the gate's statistics for an estimator on a random subset of ``m`` of
    the ``M`` inputs (``ext-subsampled``; per statistic the law of total variance of ``d24-xy``,
    :func:`~fisher_verify._src.fisher.diagonal.sampling_variance`).

    With ``f_s`` the statistic of input ``s``'s exact Fisher ``J_sᵀ I_s J_s`` and ``v_s`` the
    variance of the per-input estimator (``thm-4`` / ``thm-6`` at ``M = 1``; 0 for ``"exact"``):
    ``E = (1/M) Σ_s f_s = ⟨W, I(θ)⟩``, and

        Var = (1/(mM)) Σ_s v_s + c/m · (1/M) Σ_s (f_s − f̄)²,   c = (M − m)/(M − 1) without
        replacement (the finite-population correction), 1 with,

    the same bilinear form for covariances and combinations. The fourth moments are not given
    (the spread is not tested for this kind).
    """
    M = X.shape[0]
    m = int(kind.inputs)
    per = [exact_statistics(net, X[s : s + 1], 1 if kind.kind == "exact" else int(kind.kind), n, V,
                            diagonal_only, fourth_moments=False) for s in range(M)]
    fam = net.family
    f = np.stack([e.expected for e in per])  # (M, S)
    fbar = f.mean(axis=0)
    dev = f - fbar
    fpc = 1.0 if kind.replace or M == 1 else (M - m) / (M - 1)
    within = 0.0 if kind.kind == "exact" else 1.0
    between = fpc / (m * M)
    full = exact_statistics(net, X, 1 if kind.kind == "exact" else int(kind.kind), n, V,
                            diagonal_only, fourth_moments=False)
    # d24-xy's law of total variance, per statistic (one-draw label variance n·v_s per input)
    one_draw = within * float(n) * np.stack([e.variance for e in per])
    variance = sampling_variance(one_draw, f, m, n, replace=kind.replace).total

    def combination(coeffs: np.ndarray) -> np.ndarray:
        c = np.atleast_2d(np.asarray(coeffs, dtype=np.float64))
        inner = within * sum(combination_variance(e, fam, c) for e in per) / (m * M)
        return np.maximum(inner + between * ((dev @ c.T) ** 2).sum(axis=0), 0.0)

    def covariance() -> np.ndarray:
        inner = within * sum(statistics_covariance(e, fam) for e in per) / (m * M)
        return inner + between * dev.T @ dev

    def at_labels(t: np.ndarray) -> np.ndarray:
        # which inputs a call used is not known: nothing to compare the labels with
        return np.full(fbar.shape, np.nan)

    return _replace(full, expected=fbar, variance=np.maximum(variance, 0.0),
                    fourth=np.full(fbar.shape, np.nan), kind=kind, combination=combination,
                    covariance=covariance, labels_fn=at_labels, tag="_sub")
