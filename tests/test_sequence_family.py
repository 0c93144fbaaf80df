"""``family("sequence", K=V, T=T)`` (``ext-sequence``): categoricals over T positions with a
padding mask, against an independent enumeration of every label sequence (written here from the
definition: probabilities are products of softmaxes over the unmasked positions) and against the
dense symbolic product of categoricals (:func:`fisher_verify.product`) on the unmasked positions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify._src.families.sequence import IGNORE, SequenceFamily
from fisher_verify._src.testing.calibrated import assert_mean_matches
from fisher_verify.errors import DomainError, ParameterError, ShapeError, UnknownFamilyError

V, T = 3, 3
MASKS = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=float)


def _h(seed: int = 0, masks: np.ndarray = MASKS, scale: float = 1.5) -> np.ndarray:
    fam = fv.family("sequence", K=V, T=T)
    logits = np.random.default_rng(seed).normal(scale=scale, size=(masks.shape[0], T, V))
    return fam.join(logits, masks)


def _enumerated_moments(h_row: np.ndarray) -> tuple[np.ndarray, ...]:
    """(mean, covariance, third and fourth central moment tensors) of t(y) by enumeration."""
    d = T * (V + 1)
    hh = h_row.reshape(T, V + 1)
    logits, mask = hh[:, :V], hh[:, V]
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    real = [t for t in range(T) if mask[t] == 1.0]
    pts, wts = [], []
    for labels in itertools.product(range(V), repeat=len(real)):
        t_vec = np.zeros(d)
        w = 1.0
        for pos, y in zip(real, labels):
            t_vec[pos * (V + 1) + y] = 1.0
            w *= p[pos, y]
        pts.append(t_vec)
        wts.append(w)
    pts_a, w_a = np.array(pts), np.array(wts)
    assert abs(w_a.sum() - 1.0) < 1e-12
    mean = w_a @ pts_a
    c = pts_a - mean
    cov = np.einsum("s,sa,sb->ab", w_a, c, c)
    m3 = np.einsum("s,sa,sb,sc->abc", w_a, c, c, c)
    m4 = np.einsum("s,sa,sb,sc,sd->abcd", w_a, c, c, c, c)
    return mean, cov, m3, m4


def _kappa4(m4: np.ndarray, cov: np.ndarray) -> np.ndarray:
    return (m4 - np.einsum("ab,cd->abcd", cov, cov) - np.einsum("ac,bd->abcd", cov, cov)
            - np.einsum("ad,bc->abcd", cov, cov))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_cumulants_against_enumeration(backend: str) -> None:
    """η, I, κ₃, κ₄ and K equal the moments of the enumerated law; a masked position
    contributes nothing (its block and the mask entries are exactly 0)."""
    fam = fv.family("sequence", K=V, T=T)
    h = _h()
    arg = h
    if backend == "torch":
        import torch

        arg = torch.as_tensor(h)

    def get(q: str) -> np.ndarray:
        out = getattr(fam, q)(arg)
        return out.numpy() if hasattr(out, "numpy") else np.asarray(out)

    for m in range(h.shape[0]):
        mean, cov, m3, m4 = _enumerated_moments(h[m])
        scale = 1.0
        np.testing.assert_allclose(get("mean")[m], mean, atol=1e-13 * scale)
        np.testing.assert_allclose(get("fisher")[m], cov, atol=1e-13)
        np.testing.assert_allclose(get("kappa3")[m], m3, atol=1e-13)
        np.testing.assert_allclose(get("kappa4")[m], _kappa4(m4, cov), atol=1e-13)
        np.testing.assert_allclose(get("central_moment4")[m], m4, atol=1e-13)
        # log-partition: log Σ_y exp(t(y)ᵀh) over the unmasked positions
        hh = h[m].reshape(T, V + 1)
        lse = sum(np.log(np.exp(hh[t, :V]).sum()) for t in range(T) if hh[t, V] == 1)
        assert float(np.asarray(fam.log_partition(h[m]))) == pytest.approx(lse, rel=1e-13)


def test_against_the_dense_product_of_categoricals() -> None:
    """On the unmasked positions the cumulants are those of the symbolic product of
    categoricals (an independent derivation: SymPy derivatives of Σ logsumexp), and zero
    elsewhere."""
    fam = fv.family("sequence", K=V, T=T)
    h = _h(seed=3)
    I, k3, k4 = fam.fisher(h), fam.kappa3(h), fam.kappa4(h)
    for m in range(h.shape[0]):
        hh = h[m].reshape(T, V + 1)
        real = [t for t in range(T) if hh[t, V] == 1]
        idx = np.array([t * (V + 1) + k for t in real for k in range(V)])
        prod = fv.product(*[fv.family("categorical", K=V) for _ in real])
        hp = np.concatenate([hh[t, :V] for t in real])
        np.testing.assert_allclose(I[m][np.ix_(idx, idx)], prod.fisher(hp), atol=1e-13)
        np.testing.assert_allclose(k3[m][np.ix_(idx, idx, idx)], prod.kappa3(hp), atol=1e-13)
        np.testing.assert_allclose(k4[m][np.ix_(idx, idx, idx, idx)], prod.kappa4(hp), atol=1e-13)
        others = np.setdiff1d(np.arange(fam.dim), idx)
        assert np.all(I[m][others] == 0.0) and np.all(I[m][:, others] == 0.0)
        assert np.all(k4[m][others] == 0.0)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_contractions_against_the_dense_tensors(backend: str) -> None:
    """The O(T·V) forms (fisher_bilinear, excess4_diagonal, kappa4_contract) equal the dense
    contractions of the enumerated tensors, also at saturated logits."""
    fam = fv.family("sequence", K=V, T=T)
    rng = np.random.default_rng(4)
    for scale in (1.0, 30.0):
        h = _h(seed=5, scale=scale)
        M, d = h.shape
        U = rng.normal(size=(M, 6, d))  # 6 columns per input, the h-axis second
        J = np.swapaxes(U, 1, 2)  # (M, d, 6): the engine's layout, h-axis 1
        I_ref, C_ref, k4_ref = [], [], []
        for m in range(M):
            _, cov, _, m4 = _enumerated_moments(h[m])
            I_ref.append(np.einsum("ka,ab,kb->k", U[m], cov, U[m]))
            C = m4 - np.einsum("ab,cd->abcd", cov, cov)
            C_ref.append(np.einsum("abcd,ka,kb,kc,kd->k", C, U[m], U[m], U[m], U[m]))
            k4_ref.append(np.einsum("abcd,ka,kb,kc,kd->k", _kappa4(m4, cov), *(U[m],) * 4))
        args = (h, J)
        if backend == "torch":
            import torch

            args = (torch.as_tensor(h), torch.as_tensor(J))
        quad = np.asarray(fam.fisher_bilinear(args[0], args[1], args[1], axis=1))
        excess, quad2 = (np.asarray(a) for a in fam.excess4_diagonal(args[0], args[1], axis=1))
        k4 = np.asarray(fam.kappa4_contract(h[:, None, :], U, U, U, U))
        for got, ref in ((quad, I_ref), (quad2, I_ref), (excess, C_ref), (k4, k4_ref)):
            ref_a = np.array(ref)
            np.testing.assert_allclose(got, ref_a, rtol=1e-10, atol=1e-14 * np.abs(ref_a).max())


def test_projected_moments_against_enumeration() -> None:
    """Central moments 0..8 of uᵀ(t − η) (the gate's and the audit's Monte Carlo laws) equal the
    enumerated ones."""
    fam = fv.family("sequence", K=V, T=T)
    h = _h(seed=6)
    U = np.random.default_rng(7).normal(size=(h.shape[0], 3, fam.dim))
    got = fam.projected_central_moments(h, U, 8)
    for m in range(h.shape[0]):
        hh = h[m].reshape(T, V + 1)
        p = np.exp(hh[:, :V]) / np.exp(hh[:, :V]).sum(-1, keepdims=True)
        real = [t for t in range(T) if hh[t, V] == 1]
        eta = np.zeros(fam.dim)
        for t in real:
            eta[t * (V + 1): t * (V + 1) + V] = p[t]
        for k in range(3):
            ref = np.zeros(9)
            for labels in itertools.product(range(V), repeat=len(real)):
                tv = np.zeros(fam.dim)
                w = 1.0
                for pos, y in zip(real, labels):
                    tv[pos * (V + 1) + y] = 1.0
                    w *= p[pos, y]
                s = U[m, k] @ (tv - eta)
                ref += w * s ** np.arange(9)
            np.testing.assert_allclose(got[m, k], ref, rtol=1e-10, atol=1e-13)


def test_expectation_nodes_and_log_density_sum_to_the_law() -> None:
    """The nodes' weights sum to 1, give η, and exp(log_density) of every label sequence sums
    to 1 (masked positions labelled IGNORE)."""
    fam = fv.family("sequence", K=V, T=T)
    h = _h(seed=8)
    t, w, tail = fam.expectation_nodes(h)
    assert tail == 0.0
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(np.einsum("ms,msd->md", w, t), fam.mean(h), atol=1e-14)
    for m in range(h.shape[0]):
        mask = h[m].reshape(T, V + 1)[:, V]
        total = 0.0
        for labels in itertools.product(range(V), repeat=T):
            y = np.where(mask == 1, labels, IGNORE)
            if not all(lab == 0 or mask[i] == 1 for i, lab in enumerate(labels)):
                continue  # one label per masked position
            total += float(np.exp(fam.log_density(y, h[m])))
        assert total == pytest.approx(1.0, rel=1e-12)


def test_sampler_mean_is_eta() -> None:
    """The sampler draws from p(y|h): the mean of t(y) over 4000 draws matches η per
    coordinate (calibrated, false-alarm 1e-6 each), and masked positions are IGNORE."""
    fam = fv.family("sequence", K=V, T=T)
    h = _h(seed=9)
    y = fam.sample(h, 4000, np.random.default_rng(10))
    assert y.shape == (4000, h.shape[0], T)
    masks = h.reshape(-1, T, V + 1)[..., V]
    assert np.all((y == IGNORE) == (masks[None] == 0))
    t = fam.statistic(y)
    eta, I = fam.mean(h), fam.fisher(h)
    for m in range(h.shape[0]):
        for a in range(fam.dim):
            if I[m, a, a] > 0:
                assert_mean_matches(t[:, m, a], eta[m, a], I[m, a, a], alpha=1e-6)


def test_refusals_name_the_problem() -> None:
    fam = fv.family("sequence", K=V, T=T)
    h = _h()
    bad = h.copy()
    bad[1, 2 * (V + 1) + V] = 0.5
    with pytest.raises(DomainError, match="position 2"):
        fam.fisher(bad)
    with pytest.raises(ShapeError, match="T = 3 positions"):
        fam.fisher(h[:, :-1])
    with pytest.raises(DomainError, match="not a label"):
        fam.check_labels(np.array([0, 3, 1]))
    with pytest.raises(ShapeError, match=r"\(\.\.\., T = 3\)"):
        fam.check_labels(np.array([0, 1]))
    with pytest.raises(DomainError, match="unmasked position"):
        fam.log_density(np.array([IGNORE, IGNORE, 0]), h[0])
    with pytest.raises(ParameterError, match="K=1"):
        fv.family("sequence", K=1, T=3)
    with pytest.raises(ParameterError, match="T=0"):
        fv.family("sequence", K=3, T=0)
    with pytest.raises(ParameterError, match="exactly the parameters K"):
        fv.family("sequence", K=3)
    with pytest.raises(UnknownFamilyError, match="sequence"):
        fv.family("sequences")
    with pytest.raises(fv.FisherVerifyError, match="no symbolic derivation"):
        _ = fam.derivation


def test_registry_builds_once_and_large_vocabularies_are_cheap() -> None:
    """The registry knows the family (one object per (K, T)); V = 10⁴ over 64 positions is built
    without a symbolic object per coordinate."""
    assert fv.family("sequence", K=V, T=T) is fv.family("sequence", K=V, T=T)
    big = fv.family("sequence", K=10_000, T=64)
    assert isinstance(big, SequenceFamily) and big.dim == 64 * 10_001
    assert big.label == "sequence(K=10000, T=64)"
