"""Exact mean, variance and fourth central moment of every statistic the estimator gate tests.

Each statistic is ``s(Î) = ⟨W, Î⟩`` with ``W = e_i e_iᵀ`` (a diagonal element), ``W = v vᵀ``
(a random quadratic form) or ``W = Diag(v²)`` (the form of a diagonal estimate). A correct
estimator with ``N = n`` draws per input is ``Î = (1/M) Σ_m (1/N) Σ_i term(x_m, y_mi)``, so
``s(Î) − s(I) = Σ_{m,i} Z_mi`` with independent, centred ``Z_mi = (g_m(y_mi) − E g_m)/(MN)``
and ``g_m(y) = ⟨W, term(x_m, y)⟩``:

* ``Î₁`` (``eq-7``): ``g_m = rᵀ A_m r``, ``r = t − η``, ``A_m = J_m W J_mᵀ``; for rank-one ``W``
  (diagonal elements and ``v vᵀ``) ``g_m = s²`` with ``s = uᵀ r``, ``u = J_m v``.
* ``Î₂`` (``eq-8``): ``g_m = const − wᵀ r`` with ``w_a = ⟨W, H^a_m⟩``: linear in ``r``.

Variance (``thm-4`` / ``thm-6``, ``cov-n``): ``σ² = Σ_m c₂(g_m) / (M² N)``. Fourth central
moment of a sum of independent centred terms: ``μ₄ = Σ E Z⁴ + 3[(Σ E Z²)² − Σ (E Z²)²]``, i.e.

    μ₄ = Σ_m c₄(g_m) / (M⁴ N³) + 3 σ⁴ − 3 Σ_m c₂(g_m)² / (M⁴ N³),

where ``c₂, c₄`` are the central moments of one draw's ``g_m``: from the moments of ``s`` up to
order 8 (``Î₁``: ``c₂ = μ₄(s) − μ₂², c₄ = μ₈ − 4μ₆μ₂ + 6μ₄μ₂² − 3μ₂⁴``) or 4 (``Î₂``:
``c₂ = μ₂(s), c₄ = μ₄(s)``), by :func:`~fisher_verify._src.families.higher_moments.projected_central_moments`.
The fourth moment is not given for ``Î₁``'s rank>1 forms ``Diag(v²)`` (NaN: their spread is
not tested; the diagonal elements are).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..families.higher_moments import projected_central_moments
from ..networks.network import Network

__all__: list[str] = []  # nothing for other rooms

#: Above this many entries of the output Hessians ``(M, n_L, P, P)`` the ``Î₂`` variances use
#: the PyTorch path (:mod:`fisher_verify._src.models.mlp` and Hessian-vector products).
DENSE_HESSIAN_LIMIT = 20_000_000

#: Above this many parameters the ``Î₁`` diagonal variances use
#: :func:`fisher_verify._src.models.mlp.variance1_diagonal` (PyTorch, lemma-13 factors).
LARGE_DIAGONAL_P = 2000


@dataclass(frozen=True)
class ExactStatistics:
    """The exact law (first, second and fourth central moments) of the S gate statistics.

    Attributes:
        expected: ``⟨W, I(θ)⟩`` (S,) (``eq-6``).
        variance: variance of one replicate (S,) (``thm-4`` / ``thm-6``).
        fourth: fourth central moment of one replicate (S,), NaN where not provided.
        scales: ``⟨|W|, |I(θ)|⟩`` (S,), the magnitude for rounding tolerances.
        kind, n, diagonal_only, V: how the statistics were defined.
        h: output natural parameters (M, d); eta their means.
        dense_J: the Jacobians (M, d, P), or None when ``factors`` give them (:attr:`J` then
            multiplies them out on first use: a passing diagonal gate never needs them).
        w: for ``kind=2`` the weights ``⟨W, H^a_m⟩`` (M, d, S), else None.
        fisher_full: ``I(θ)`` (P, P) when the estimate is a full matrix, else None.
        combination, covariance, labels_fn: for the other estimator kinds
            (:mod:`fisher_verify._src.testing.gate_kinds`): their combination variances, statistics
            covariance and statistics at given labels, replacing the ``Î₁`` / ``Î₂`` ones.
        tag: the kind's short name in diagnoses (``Î{tag}``); empty: the kind number.
        factors: an Eq. 3 network's J in lemma-13 factors (``_eq3_factors``), for the
            diagonal estimate's Gram matrices; None: from ``J``.
    """

    expected: np.ndarray
    variance: np.ndarray
    fourth: np.ndarray
    scales: np.ndarray
    kind: Any
    n: int
    diagonal_only: bool
    V: np.ndarray
    h: np.ndarray
    eta: np.ndarray
    dense_J: np.ndarray | None
    w: np.ndarray | None
    fisher_full: np.ndarray | None
    combination: Callable[[np.ndarray], np.ndarray] | None = None
    covariance: Callable[[], np.ndarray] | None = None
    labels_fn: Callable[[np.ndarray], np.ndarray] | None = None
    tag: str = ""
    factors: list[tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def J(self) -> np.ndarray:
        """The Jacobians ``J_m = ∂h_L/∂θ`` (M, d, P), from ``factors`` on first use."""
        if self.dense_J is None:
            assert self.factors is not None
            object.__setattr__(self, "dense_J", _jacobian_from_factors(self.factors))
        assert self.dense_J is not None
        return self.dense_J

    @property
    def name(self) -> str:
        """``Î1``, ``Î2`` or the other kind's name, for messages."""
        return f"Î{self.tag or self.kind}"

    def at_labels(self, t: np.ndarray) -> np.ndarray:
        """The statistics of ``Î_kind`` computed from given sufficient statistics ``t``.

        ``t`` is ``(k, M, d)`` (k labels per input, e.g. the data's labels or the most likely
        label): ``Î₁`` (``eq-7``) or ``Î₂`` (``eq-8``) from those labels, reduced like the
        replicates. Used by the diagnosis (empirical Fisher, argmax labels).
        """
        if self.labels_fn is not None:
            return self.labels_fn(t)
        r = np.asarray(t, dtype=np.float64) - self.eta[None]  # (k, M, d)
        k, M = r.shape[0], r.shape[1]
        P = self.J.shape[-1]
        if self.kind == 2:
            assert self.w is not None
            return self.expected - np.einsum("kma,mas->s", r, self.w) / (k * M)
        g = np.einsum("kma,map->kmp", r, self.J)  # per-label scores J_mᵀ r
        diag = np.einsum("kmp,kmp->p", g, g) / (k * M)
        if self.diagonal_only:
            dirs = (self.V * self.V) @ diag
        else:
            proj = np.einsum("kmp,dp->kmd", g, self.V)
            dirs = np.einsum("kmd,kmd->d", proj, proj) / (k * M)
        out = np.concatenate([diag, dirs])
        assert out.shape[0] == P + self.V.shape[0]
        return out


def checked_outputs(net: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The output natural parameters ``h`` (M, d) of the inputs ``X``, refused by the family
    where outside its domain, and their means ``η(h)``: what ``I(h_m)`` and the residuals
    ``t − η`` of the gate's statistics are read at (``eq-6``, ``thm-4``)."""
    h = np.asarray(net.forward(X), dtype=np.float64).reshape(X.shape[0], -1)
    net.family.check_natural(h)
    return h, np.asarray(net.family.mean(h), dtype=np.float64)


def _kappa4_pairs(fam: Any, h: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``κ₄[A_m, A_m]`` (M,) for symmetric ``A`` (M, d, d), by eigenvectors and kappa4_contract."""
    lam, Q = np.linalg.eigh(A)  # A = Q diag(lam) Qᵀ
    q = np.swapaxes(Q, 1, 2)  # (M, r, d): rows are eigenvectors
    qk, ql = q[:, :, None, :], q[:, None, :, :]
    hh = h[:, None, None, :]
    k4 = np.asarray(fam.kappa4_contract(hh, qk, qk, ql, ql), dtype=np.float64)  # (M, r, r)
    return np.einsum("mk,mkl,ml->m", lam, k4, lam)


def weighted_grams(J: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``A[k, m] = J_m Diag(W_k) J_mᵀ`` (K, M, d, d) for weights ``W`` (K, P): per input and
    block of parameters one matrix product ``[J_m ∘ W_1; …; J_m ∘ W_K] J_mᵀ`` (a ``K·d × d``
    result: one BLAS call for every row of W instead of K small ones), the blocks small enough
    to stay in cache (no ``M·d·P`` temporary per row of W)."""
    K = W.shape[0]
    M, d, P = J.shape
    out = np.zeros((M, K * d, d))
    step = max(1, (1 << 16) // max(1, K * d))
    for lo in range(0, P, step):
        Wc = W[:, None, lo : lo + step]  # (K, 1, p)
        for m in range(M):
            Jm = J[m, :, lo : lo + step]
            out[m] += (Wc * Jm).reshape(K * d, -1) @ Jm.T
    return np.ascontiguousarray(out.reshape(M, K, d, d).swapaxes(0, 1))


def _jacobian_from_factors(factors: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``J_m[a, W_l[r, c]] = G[m, a, r] h̄[m, c]`` (M, d, P), the products that
    ``networks.analytic.jacobian`` forms, in flat-θ order."""
    M, d = factors[0][0].shape[:2]
    J = np.empty((M, d, sum(G.shape[2] * hbar.shape[1] for G, hbar in factors)))
    at = 0
    for G, hbar in factors:
        rows, cols = G.shape[2], hbar.shape[1]
        blk = J[:, :, at : at + rows * cols].reshape(M, d, rows, cols)
        np.multiply(G[:, :, :, None], hbar[:, None, None, :], out=blk)
        at += rows * cols
    return J


def _factored_grams(factors: list[tuple[np.ndarray, np.ndarray]], W: np.ndarray) -> np.ndarray:
    """:func:`weighted_grams` of an Eq. 3 network from lemma-13's factors: with
    ``J_m[:, W_l[r, c]] = h̄_c g_r``, ``J_m Diag(w) J_mᵀ = Σ_l Σ_r t_r g_r g_rᵀ``,
    ``t_r = Σ_c w_rc h̄_c²`` (K, M, d, d)."""
    K = W.shape[0]
    out: np.ndarray | None = None
    at = 0
    for G, hbar in factors:
        rows, cols = G.shape[2], hbar.shape[1]
        Wl = W[:, at : at + rows * cols].reshape(K * rows, cols)
        T = (Wl @ (hbar * hbar).T).reshape(K, rows, -1)  # (K, rows, M)
        A = np.einsum("mar,krm,mbr->kmab", G, T, G, optimize=True)
        out = A if out is None else out + A
        at += rows * cols
    assert out is not None and at == W.shape[1]
    return out


def combination_variance(ex: ExactStatistics, fam: Any, coeffs: np.ndarray) -> np.ndarray:
    """Exact variance of one replicate of ``Σ_j a_j s_j(Î)`` for each row ``a`` of ``coeffs``
    (K, S): the pooled tests' statistics (``thm-4`` / ``thm-6``, ``cov-n``).

    A combination of the gate's statistics is again one linear statistic ``⟨W_a, Î⟩`` with
    ``W_a = Σ_j a_j W_j``, so its per-draw term is ``rᵀ A_m r`` with ``A_m = J_m W_a J_mᵀ``
    (``Î₁``; variance ``κ₄[A_m, A_m] + 2 tr(I_m A_m I_m A_m)``, thm-4 / lemma-5) or
    ``const − w̄ᵀ r`` with ``w̄ = Σ_j a_j w_j`` (``Î₂``; variance ``w̄ᵀ I_m w̄``, thm-6), and
    ``Var = Σ_m c₂(g_m) / (M² N)``. The correlations between the statistics are therefore
    exact, not bounded.
    """
    if ex.combination is not None:
        return ex.combination(coeffs)
    a = np.atleast_2d(np.asarray(coeffs, dtype=np.float64))
    K = a.shape[0]
    M, d = ex.h.shape
    P = ex.expected.shape[0] - ex.V.shape[0]  # read without forming J from factors
    h = ex.h
    Ih = np.asarray(fam.fisher(h), dtype=np.float64)  # (M, d, d)
    norm = 1.0 / (M * M * float(ex.n))
    if ex.kind == 2:
        assert ex.w is not None
        wbar = np.einsum("mas,ks->kma", ex.w, a)
        return np.einsum("kma,mab,kmb->k", wbar, Ih, wbar) * norm
    D = ex.V.shape[0]
    if ex.diagonal_only:
        b = a[:, :P] + a[:, P : P + D] @ (ex.V * ex.V)  # Diag(v²) forms are diagonal weights
        A = weighted_grams(ex.J, b) if ex.factors is None else _factored_grams(ex.factors, b)
    else:
        A = weighted_grams(ex.J, a[:, :P])
        if D:
            u = np.swapaxes(np.matmul(ex.J, ex.V.T), 1, 2)  # (M, D, d)
            A = A + np.einsum("kd,mda,mdb->kmab", a[:, P : P + D], u, u)
    A = 0.5 * (A + np.swapaxes(A, -1, -2))
    hK = np.broadcast_to(h[None], (K, M, d)).reshape(K * M, d)
    k4 = _kappa4_pairs(fam, hK, A.reshape(K * M, d, d)).reshape(K, M)
    IA = np.einsum("mab,kmbc->kmac", Ih, A)
    tr = np.einsum("kmab,kmba->km", IA, IA)
    return np.maximum((k4 + 2.0 * tr).sum(axis=1) * norm, 0.0)


def statistics_covariance(ex: ExactStatistics, fam: Any) -> np.ndarray:
    """Exact covariance (S, S) of one replicate's statistics (``thm-4`` / ``thm-6``, ``cov-n``).

    ``Cov(s_j, s_k) = Σ_m Cov(g_mj, g_mk) / (M² N)``. For ``Î₂`` that is ``w_jᵀ I_m w_k``; for
    ``Î₁`` each ``g_mj`` is a quadratic in ``r = t − η`` and the products are of degree 4, which
    the family's exact-expectation nodes (every support point, or quadrature exact for degree 4)
    integrate exactly. Used to choose the pooled scale test's weights (any fixed weights give a
    valid test; these give a small variance); cost ``M · nodes · S²``.
    """
    if ex.covariance is not None:
        return ex.covariance()
    M, d, P = ex.J.shape
    norm = 1.0 / (M * M * float(ex.n))
    if ex.kind == 2:
        assert ex.w is not None
        Ih = np.asarray(fam.fisher(ex.h), dtype=np.float64)
        return np.einsum("maj,mab,mbk->jk", ex.w, Ih, ex.w) * norm
    t, w, _ = fam.expectation_nodes(ex.h, degree=4)
    t = np.asarray(t, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    w = w / w.sum(axis=-1, keepdims=True)
    r = t - np.einsum("mq,mqd->md", w, t)[:, None, :]  # (M, Q, d)
    s_diag = np.einsum("mqa,map->mqp", r, ex.J) ** 2  # (M, Q, P): (J_m e_i)ᵀ r, squared
    if ex.diagonal_only:
        g_dir = s_diag @ (ex.V * ex.V).T  # Σ_p v_p² s_p²
    else:
        g_dir = np.einsum("mqa,map,kp->mqk", r, ex.J, ex.V) ** 2
    G = np.concatenate([s_diag, g_dir], axis=2)  # (M, Q, S)
    G = (G - np.einsum("mq,mqs->ms", w, G)[:, None, :]) * np.sqrt(w)[:, :, None]
    flat = G.reshape(-1, G.shape[-1])  # one BLAS product: cost M · nodes · S²
    return np.asarray(flat.T @ flat) * norm


def _torch_second_directional(net: Network, X: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``vᵀ H^a_m v`` (M, n_L, D) by forward-over-forward differentiation (no ``P×P`` array)."""
    import torch
    from torch.func import jvp, vmap

    th = torch.as_tensor(net.theta, dtype=torch.float64)
    Xt = torch.as_tensor(X, dtype=torch.float64)
    Vt = torch.as_tensor(V, dtype=torch.float64)

    def second(x: Any, v: Any) -> Any:
        def first(t: Any) -> Any:
            return jvp(lambda s: net.torch_forward(s, x), (t,), (v,))[1]

        return jvp(first, (th,), (v,))[1]

    per_v = vmap(vmap(second, in_dims=(None, 0)), in_dims=(0, None))(Xt, Vt)  # (M, D, n_L)
    return per_v.permute(0, 2, 1).detach().numpy()


#: statistics whose fourth moments are worked on at once: (M, 4096, 9) moments, so the whole
#: ``(M, S, 9)`` array (2 GiB at M = 32, P ~ 1e6) is never held
_MOMENT_BLOCK = 4096


def _central(mu: np.ndarray, kind: int) -> tuple[np.ndarray, np.ndarray]:
    """``(c₂, c₄)`` of one draw's term from the moments of ``s``: ``s²`` (kind 1) or ``−s``."""
    if kind == 1:
        m2, m4, m6, m8 = mu[..., 2], mu[..., 4], mu[..., 6], mu[..., 8]
        c2 = m4 - m2 * m2
        c4 = m8 - 4.0 * m6 * m2 + 6.0 * m4 * m2 * m2 - 3.0 * m2**4
    else:
        c2, c4 = mu[..., 2], mu[..., 4]
    return np.maximum(c2, 0.0), np.maximum(c4, 0.0)


def _moment_sums(
    fam: Any, h: np.ndarray, parts: list[np.ndarray], kind: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Σ_m c₂, Σ_m c₄, Σ_m c₂²)`` per statistic, the projections ``parts`` taken in blocks."""
    order = 8 if kind == 1 else 4
    total = sum(part.shape[1] for part in parts)
    c2_sum, c4_sum, c2_sq = np.empty(total), np.empty(total), np.empty(total)
    at = 0
    for part in parts:
        for lo in range(0, part.shape[1], _MOMENT_BLOCK):
            proj = part[:, lo : lo + _MOMENT_BLOCK]
            c2, c4 = _central(projected_central_moments(fam, h, proj, order), kind)
            k = proj.shape[1]
            c2_sum[at : at + k] = c2.sum(axis=0)
            c4_sum[at : at + k] = c4.sum(axis=0)
            c2_sq[at : at + k] = (c2 * c2).sum(axis=0)
            at += k
    return c2_sum, c4_sum, c2_sq


def _factored_moment_sums(
    fam: Any, h: np.ndarray, factors: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_moment_sums` of the diagonal elements of ``Î₁`` from lemma-13's factors.

    At ``θ_i = W_l[r, c]`` the projection is ``u = J_m e_i = h̄_c g_r`` (``g_r = G_m[:, r]``), so
    ``s = h̄_c (g_rᵀ r)`` and ``μ_j(s) = h̄_c^j μ_j(g_rᵀ r)``: ``c₂ = h̄_c⁴ c₂(g_r)``,
    ``c₄ = h̄_c⁸ c₄(g_r)``, and the sums over inputs are matrix products of the ``n_{l+1}``
    moments per input with the powers of ``h̄``, in the flat-θ order (row-major ``[W | b]``).
    """
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for G, hbar in factors:
        c2, c4 = _central(projected_central_moments(fam, h, np.swapaxes(G, 1, 2), 8), 1)
        h4 = hbar**4
        h8 = h4 * h4
        out.append(((c2.T @ h4).ravel(), (c4.T @ h8).ravel(), ((c2 * c2).T @ h8).ravel()))
    return tuple(np.concatenate([o[i] for o in out]) for i in range(3))  # type: ignore[return-value]


def _moments_from_sums(
    sums: tuple[np.ndarray, np.ndarray, np.ndarray], M: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(σ², μ₄) from ``(Σ_m c₂, Σ_m c₄, Σ_m c₂²)`` (module docstring)."""
    c2_sum, c4_sum, c2_sq = sums
    var = c2_sum / (M * M * float(n))
    per = float(M) ** 4 * float(n) ** 3
    fourth = c4_sum / per + 3.0 * var * var - 3.0 * c2_sq / per
    return var, np.maximum(fourth, var * var)


def _statistic_moments(
    fam: Any, h: np.ndarray, parts: np.ndarray | list[np.ndarray], kind: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(σ², μ₄) of the statistics whose per-draw term is ``s²`` (kind 1) or ``−s`` (kind 2),
    ``s = projᵀ r``; the projections are ``parts`` (M, K, d), or the concatenation of a list of
    such arrays (views such as a transposed Jacobian), taken in blocks of statistics. See the
    module docstring."""
    if isinstance(parts, np.ndarray):
        parts = [parts]
    return _moments_from_sums(_moment_sums(fam, h, parts, kind), h.shape[0], n)


def _eq3_factors(net: Any, X: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """An Eq. 3 network's Jacobian in lemma-13 factors, layer by layer in flat-θ order:
    ``(G, h̄)`` with ``G = B_{l+1} D_l`` (M, n_L, n_{l+1}) and ``h̄_l`` (M, n_l + 1), so that
    ``J_m[a, W_l[r, c]] = G[m, a, r] h̄[m, c]`` (what ``Network.jacobian`` multiplies out).
    None for any other network (a subclass, any ``nn.Module``): its dense J is used."""
    if type(net) is not Network:
        return None
    q = net.lemma13(X)
    return [(q.B[layer + 1] * q.D[layer][:, None, :], q.hbar[layer]) for layer in range(net.depth)]


def exact_statistics(
    net: Network, X: np.ndarray, kind: int, n: int, V: np.ndarray, diagonal_only: bool,
    *, fourth_moments: bool = True,
) -> ExactStatistics:
    """Exact values, variances and fourth moments of the gate's statistics (``eq-6``, ``thm-4``,
    ``thm-6``); see the module docstring."""
    from ..fisher.covariance import network_variance

    fam = net.family
    M = X.shape[0]
    h, eta = checked_outputs(net, X)
    Ih = np.asarray(fam.fisher(h), dtype=np.float64)  # (M, d, d)
    # an Eq. 3 network's diagonal-estimate statistics come from lemma-13's factors: O(M·d·n_{l+1})
    # work and matrix products with h̄ instead of passes over the (M, d, P) Jacobian, which is
    # then formed only if a diagnosis asks for it (ExactStatistics.J)
    factors = _eq3_factors(net, X) if kind == 1 and diagonal_only else None
    J = np.empty((0, 0, 0)) if factors is not None else np.asarray(net.jacobian(X), dtype=np.float64)
    P = int(net.num_params) if factors is not None else J.shape[-1]
    d = h.shape[1]
    D = V.shape[0]
    norm = 1.0 / (M * M * float(n))
    dense_h = kind == 2 and M * d * P * P <= DENSE_HESSIAN_LIMIT
    H = np.asarray(net.output_hessians(X), dtype=np.float64) if dense_h else None

    # diagonal elements (eq-6; thm-4 / thm-6 via fisher.covariance.network_variance or the large path)
    # batched matrix products (BLAS) rather than einsum's loops: P ~ 1e5 makes these the bulk
    IJ_all: np.ndarray | None = None
    if factors is not None:
        # I_ii = (1/M) Σ_m h̄_c² (g_rᵀ I_m g_r) at θ_i = W_l[r, c]
        diag_I = np.concatenate([
            (np.einsum("mar,mab,mbr->mr", G, Ih, G).T @ (hbar * hbar)).ravel() / M
            for G, hbar in factors
        ])
    elif diagonal_only:
        # I_ii = (1/M) Σ_m (J_m e_i)ᵀ I_m (J_m e_i) a block of parameters at a time: no
        # (M, d, P) product held (a diagonal estimate never needs I(θ) off the diagonal)
        diag_I = np.empty(P)
        step = max(1, (1 << 18) // max(1, M * d))
        for lo in range(0, P, step):
            Jc = J[:, :, lo : lo + step]
            diag_I[lo : lo + step] = np.einsum("map,map->p", Jc, np.matmul(Ih, Jc)) / M
    else:
        IJ_all = np.matmul(Ih, J)  # (M, d, P)
        diag_I = np.einsum("map,map->p", J, IJ_all) / M
    own_variance = getattr(net, "variance_diagonal", None)  # any nn.Module: from its dense J
    if kind == 1 and P > LARGE_DIAGONAL_P and own_variance is not None:
        var_diag = np.asarray(own_variance(X, 1, n), dtype=np.float64)
    elif (kind == 1 and P <= LARGE_DIAGONAL_P) or dense_h:
        var_diag = np.asarray(network_variance(net, X, kind, n, diagonal=True), dtype=np.float64)  # type: ignore[arg-type]
    elif kind == 1:
        from ..models.mlp import variance1_diagonal

        var_diag = variance1_diagonal(net, X, n)
    else:
        from ..models.mlp import variance2_diagonal

        var_diag = variance2_diagonal(net, X, n)

    Hd: np.ndarray | None = None
    if kind == 2:
        if H is not None:
            Hd = np.ascontiguousarray(np.diagonal(H, axis1=2, axis2=3))  # (M, d, P)
        else:
            from ..models.mlp import output_hessian_diagonals

            Hd = output_hessian_diagonals(net, X)

    # directions
    W2 = V * V  # (D, P): weights of vᵀ Diag(Î) v
    fisher_full: np.ndarray | None = None
    w_dir: np.ndarray | None = None  # kind 2: (M, d, D)
    u_dir: np.ndarray | None = None  # kind 1, full: (M, D, d)
    if diagonal_only:
        exp_dir = W2 @ diag_I
        scale_dir = W2 @ np.abs(diag_I)
        if kind == 1 and D == 0:
            var_dir = np.zeros(0)  # no directions: nothing to stack
        elif kind == 1:
            # A_mk = J_m diag(v_k²) J_mᵀ, one direction at a time (memory M·d·P)
            if factors is not None:
                A = np.swapaxes(_factored_grams(factors, W2), 0, 1)
            else:
                A = np.swapaxes(weighted_grams(J, W2), 0, 1)  # (M, D, d, d)
            hD = np.repeat(h[:, None, :], D, axis=1).reshape(-1, d)
            k4 = _kappa4_pairs(fam, hD, A.reshape(-1, d, d)).reshape(M, -1)
            IA = np.einsum("mab,mkbc->mkac", Ih, A)
            tr = np.einsum("mkab,mkba->mk", IA, IA)
            var_dir = (k4 + 2.0 * tr).sum(0) * norm
        else:
            assert Hd is not None
            w_dir = np.einsum("kp,map->mak", W2, Hd)  # (M, d, D)
            var_dir = np.einsum("mak,mab,mbk->k", w_dir, Ih, w_dir) * norm
    else:
        # |I(θ)| (eq-6) for the rounding scale, as one (M·d × P)ᵀ(M·d × P) product
        assert IJ_all is not None
        IJ = IJ_all
        fisher_full = J.reshape(M * d, P).T @ IJ.reshape(M * d, P) / M
        absV = np.abs(V)
        scale_dir = np.einsum("kp,pq,kq->k", absV, np.abs(fisher_full), absV)
        u_dir = np.einsum("map,kp->mka", J, V)  # (M, D, d): u = J_m v
        quad = np.einsum("mka,mab,mkb->mk", u_dir, Ih, u_dir)
        exp_dir = quad.mean(axis=0)  # vᵀ I(θ) v
        if kind == 1:
            hD = h[:, None, :]
            k4 = np.asarray(fam.kappa4_contract(hD, u_dir, u_dir, u_dir, u_dir), dtype=np.float64)
            var_dir = (k4 + 2.0 * quad * quad).sum(0) * norm
        else:
            if H is not None:
                w_dir = np.einsum("kp,mapq,kq->mak", V, H, V)
            else:
                w_dir = _torch_second_directional(net, X, V)
            var_dir = np.einsum("mak,mab,mbk->k", w_dir, Ih, w_dir) * norm

    expected = np.concatenate([diag_I, exp_dir])
    var = np.maximum(np.concatenate([var_diag, var_dir]), 0.0)
    scales = np.concatenate([np.abs(diag_I), scale_dir])
    w_all: np.ndarray | None = None
    if kind == 2:
        assert Hd is not None and w_dir is not None
        w_all = np.concatenate([Hd, w_dir], axis=2)  # (M, d, S)

    fourth = np.full(P + D, np.nan)
    if fourth_moments:
        if factors is not None:
            sums = _factored_moment_sums(fam, h, factors)  # the diagonal; no u_dir (diagonal)
            _, mu4 = _moments_from_sums(sums, M, n)
        else:
            if kind == 1:
                parts = [np.swapaxes(J, 1, 2)]  # (M, P, d): u = J_m e_i, a view
                if u_dir is not None:
                    parts.append(u_dir)
            else:
                assert w_all is not None
                parts = [np.swapaxes(w_all, 1, 2)]  # (M, S, d)
            _, mu4 = _statistic_moments(fam, h, parts, kind, n)
        fourth[: mu4.shape[0]] = mu4
    return ExactStatistics(
        expected=expected, variance=var, fourth=fourth, scales=scales, kind=int(kind), n=int(n),
        diagonal_only=bool(diagonal_only), V=V, h=h, eta=eta,
        dense_J=None if factors is not None else J, w=w_all,
        fisher_full=fisher_full, factors=factors,
    )
