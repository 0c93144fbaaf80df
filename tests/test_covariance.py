"""Closed-form covariances (thm-4, thm-6, cov-n) against the definition route (exact
expectation over y) and calibrated Monte Carlo; norms, diagonals, refusals; fig-1."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fisher_verify as fv
from fisher_verify._src.fisher.covariance import (
    MAX_FULL_P,
    cov1_frobenius,
    cov1_tensor,
    cov1_total_variance,
    cov1_variance,
    cov2_frobenius,
    cov2_tensor,
    cov2_total_variance,
    cov2_variance,
    covariance_by_expectation,
    moment_excess,
)
from fisher_verify._src.testing.calibrated import assert_variance_matches, bonferroni
from fisher_verify._src.testing.strategies import (
    C2_ACTIVATIONS,
    FAMILY_POINTS,
    bernoulli_half_network,
    small_networks,
)
from fisher_verify.errors import ShapeError, UnsupportedError


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _random_derivatives(rng: np.random.Generator, M: int, nl: int, P: int):
    J = rng.normal(size=(M, nl, P))
    A = rng.normal(size=(M, nl, P, P))
    return J, A + A.transpose(0, 1, 3, 2)


@pytest.mark.parametrize(("name", "params", "h0"), FAMILY_POINTS, ids=[f[0] for f in FAMILY_POINTS])
def test_closed_forms_match_definition_route(name, params, h0) -> None:
    """thm-4 and thm-6 (and cov-n's 1/N, M-input averaging) vs E over y on exact nodes."""
    fam = fv.family(name, **params)
    rng = np.random.default_rng(len(name))
    h = np.array([h0, 0.5 * np.array(h0)])
    J, H = _random_derivatives(rng, 2, fam.dim, 5)
    I, K = fam.fisher(h), fam.central_moment4(h)
    for n in (1, 7):
        c1 = cov1_tensor(J, K, I, n)
        c2 = cov2_tensor(H, I, n)
        assert _rel(c1, covariance_by_expectation(fam, h, J=J, estimator=1, n=n)) <= 1e-10
        assert _rel(c2, covariance_by_expectation(fam, h, H=H, estimator=2, n=n)) <= 1e-10
        # derived quantities without P^4 tensors
        assert _rel(cov1_variance(J, K, I, n), np.einsum("ijij->ij", c1)) <= 1e-12
        assert _rel(cov2_variance(H, I, n), np.einsum("ijij->ij", c2)) <= 1e-12
        assert _rel(cov1_variance(J, K, I, n, diagonal=True), np.einsum("iiii->i", c1)) <= 1e-12
        assert _rel(cov2_variance(H, I, n, diagonal=True), np.einsum("iiii->i", c2)) <= 1e-12
        assert cov1_frobenius(J, K, I, n) == pytest.approx(np.linalg.norm(c1), rel=1e-12)
        assert cov2_frobenius(H, I, n) == pytest.approx(np.linalg.norm(c2), rel=1e-12)
        assert cov1_total_variance(J, K, I, n) == pytest.approx(np.einsum("ijij->", c1), rel=1e-12)
        assert cov2_total_variance(H, I, n) == pytest.approx(np.einsum("ijij->", c2), rel=1e-12)


def test_single_input_shapes_and_symmetries() -> None:
    fam = fv.family("categorical", K=3)
    rng = np.random.default_rng(0)
    J, H = _random_derivatives(rng, 1, 3, 4)
    h = np.array([0.2, -0.1, 0.4])
    c1 = cov1_tensor(J[0], fam.central_moment4(h), fam.fisher(h), 2)
    c2 = cov2_tensor(H[0], fam.fisher(h), 2)
    for c in (c1, c2):
        assert c.shape == (4, 4, 4, 4)
        for perm in ((1, 0, 2, 3), (2, 3, 0, 1), (0, 1, 3, 2)):
            np.testing.assert_allclose(c, c.transpose(perm), atol=1e-14)
        # a covariance: p.s.d. as a (P^2 x P^2) matrix
        assert np.linalg.eigvalsh(c.reshape(16, 16)).min() >= -1e-12
    # remark-4.1: K - I(x)I is the covariance of (t-eta)(t-eta)^T, p.s.d. too
    C = moment_excess(fam.central_moment4(h), fam.fisher(h))
    assert np.linalg.eigvalsh(C.reshape(9, 9)).min() >= -1e-14


def test_refusals_and_shape_errors() -> None:
    P = MAX_FULL_P + 1
    J = np.ones((1, P))
    with pytest.raises(UnsupportedError, match=rf"P = {P}.*MAX_FULL_P = {MAX_FULL_P}"):
        cov1_tensor(J, np.ones((1, 1, 1, 1)), np.ones((1, 1)))
    with pytest.raises(UnsupportedError, match=str(P)):
        cov2_tensor(np.ones((1, P, P)), np.ones((1, 1)))
    # norms and variances need no P^4 array: fine at that P
    assert cov1_frobenius(J, np.full((1, 1, 1, 1), 3.0), np.ones((1, 1))) > 0
    with pytest.raises(ShapeError):
        cov1_variance(np.ones((2, 3)), np.ones((3, 3, 3, 3)), np.ones((3, 3)))
    with pytest.raises(ShapeError):
        cov2_variance(np.ones((2, 3, 4)), np.ones((2, 2)))
    with pytest.raises(ShapeError, match="n must be"):
        cov1_variance(np.ones((1, 3)), np.ones((1, 1, 1, 1)), np.ones((1, 1)), 0)
    net, x = bernoulli_half_network()
    with pytest.raises(ShapeError, match="which must be 'I1'.* got 3"):
        fv.variance(net, x, which=3)  # type: ignore[arg-type]


@given(small_networks(activations=C2_ACTIVATIONS), st.integers(1, 5))
def test_network_level_matches_definition_route(pair, n) -> None:
    """covariance/variance/covariance_norm on random small networks vs the definition route."""
    net, x = pair
    h = net.forward(x)
    J, H = net.jacobian(x), net.output_hessians(x)
    P = net.num_params
    if P <= 12:
        for e, kw in ((1, {"J": J}), (2, {"H": H})):
            ref = covariance_by_expectation(net.family, h, estimator=e, n=n, **kw)
            full = fv.covariance(net, x, which=f"I{e}", n=n)
            assert _rel(full, ref) <= 1e-9 or np.max(np.abs(full - ref)) <= 1e-13
            assert fv.covariance_norm(net, x, which=f"I{e}", n=n) == pytest.approx(
                np.linalg.norm(ref), rel=1e-9, abs=1e-13)
            np.testing.assert_allclose(fv.variance(net, x, which=f"I{e}", n=n),
                                       np.einsum("ijij->ij", ref), rtol=1e-9, atol=1e-13)
    else:
        for e in (1, 2):
            v = fv.variance(net, x, which=f"I{e}", n=n)
            assert v.shape == (P, P) and np.all(v >= -1e-12)
            np.testing.assert_allclose(fv.variance(net, x, which=f"I{e}", n=n, diagonal=True),
                                       np.diag(v), rtol=1e-10, atol=1e-14)


def test_fig1_bernoulli_half_zero_variance() -> None:
    """fig-1 at network level: Bernoulli output with h_L = 0 gives Var(Î₁) = 0 for any net,
    while Var(Î₂) need not vanish; every draw gives the same Î₁ = I(θ)."""
    net, x = bernoulli_half_network()
    # h_L = 1.3·a − 1.3·a is 0 in exact arithmetic; a fused multiply-add kernel (AVX-512
    # OpenBLAS) leaves a rounding residue, so compare to the size of the terms that cancel.
    # The exact zero of K − I² at p = 1/2 is the symbolic proof's claim (fig-1).
    eps = np.finfo(float).eps
    hidden = np.tanh(net.weights[0] @ np.append(x, 1.0))
    cancelling = float(np.sum(np.abs(net.weights[1][0, :-1] * hidden)))
    assert abs(net.forward(x)[0]) <= 4 * eps * cancelling
    # Var(Î₁) = J⁴ (K − I⊗I) with K = κ₄ + 3I²: at p = 1/2 the terms |κ₄| = 1/8, 3I² = 3/16
    # and I² = 1/16 cancel, each multiplied by ‖J‖⁴
    fam = net.family
    h0 = np.zeros((1, 1))
    i0, k0 = fam.fisher(h0)[0, 0, 0], fam.kappa4(h0)[0, 0, 0, 0, 0]
    j4 = np.linalg.norm(net.jacobian(x)) ** 4
    tol = 64 * eps * (abs(k0) + 4 * i0**2) * j4
    assert fv.covariance_norm(net, x, which="I1") <= tol
    assert np.max(np.abs(fv.variance(net, x, which="I1"))) <= tol
    assert fv.covariance_norm(net, x, which="I2") > 1e6 * tol
    exact = fv.exact_fisher(net, x)
    for seed in range(3):
        est = fv.sample_estimators(net, x, 5, np.random.default_rng(seed))
        np.testing.assert_allclose(est.i1, exact, rtol=1e-13, atol=1e-15)
    # any random network, last bias shifted to h_L(x) = 0: variance at rounding level
    rng = np.random.default_rng(5)
    for act in ("tanh", "softplus"):
        net = fv.Network.random([3, 4, 1], act, fv.family("bernoulli"), 2.0, rng)
        x = rng.normal(size=3)
        w = [W.copy() for W in net.weights]
        w[-1][0, -1] -= net.forward(x)[0]
        net = fv.Network.from_weights(w, act, fv.family("bernoulli"))
        scale = np.linalg.norm(net.jacobian(x)) ** 4
        assert fv.covariance_norm(net, x, which="I1") <= 1e-14 * scale


# --- Monte Carlo: the third route, with calibrated assertions -------------------------------


MC_CASES = [
    ("bernoulli", {}, [3, 3, 1]),
    ("poisson", {}, [2, 3, 1]),
    ("categorical", {"K": 3}, [2, 2, 3]),
    ("normal_unknown_variance", {}, [2, 2, 2]),
]
ALPHA = bonferroni(1e-6 * 2 * len(MC_CASES), 2 * len(MC_CASES))  # 1e-6 per check


@pytest.mark.parametrize(("name", "params", "widths"), MC_CASES, ids=[c[0] for c in MC_CASES])
def test_monte_carlo_variance_of_projections(name, params, widths) -> None:
    """Var(⟨U, Î⟩) = U:Cov(Î):U (thm-4, thm-6) checked on R replicates of Î with N draws.

    Statistic: D = ⟨U, Î⟩ − ⟨U, I(θ)⟩, E[D²] is the closed form; Var(D²) is exact from the
    4th moment of the mean of N i.i.d. single-sample terms (computed on exact nodes), so the
    median-of-means threshold has false-alarm rate ≤ 1e-6.
    """
    fam = fv.family(name, **params)
    rng = np.random.default_rng(2024)
    net = fv.Network.random(widths, "tanh", fam, 1.0, rng)
    x = rng.normal(size=widths[0])
    if name == "normal_unknown_variance":
        w = [W.copy() for W in net.weights]
        w[-1][1, -1] -= net.forward(x)[1] + 1.0
        net = fv.Network.from_weights(w, "tanh", fam)
    P, N, R = net.num_params, 3, 4000
    U = rng.normal(size=(P, P))
    U = U + U.T
    h = net.forward(x)
    J, H = net.jacobian(x), net.output_hessians(x)
    eta, I = fam.mean(h), fam.fisher(h)
    exact = J.T @ I @ J
    t = fam.sample_statistic(h, N * R, rng).reshape(R, N, fam.dim)
    r = t - eta
    # eq-7 / eq-8 from the draws (the estimators' structured route, checked elsewhere vs autodiff)
    A = J @ U @ J.T  # <U, J^T r r^T J> = r^T A r
    s1 = np.einsum("rna,ab,rnb->r", r, A, r) / N
    s2 = np.einsum("ra,aij,ij->r", -r.mean(axis=1), H, U) + np.sum(U * exact)
    mu = float(np.sum(U * exact))
    # single-sample terms z on exact nodes, for the 4th moment of their N-mean
    nodes, wts, _ = fam.expectation_nodes(h, degree=8)
    wts = wts / wts.sum()
    rn = nodes - eta
    z1 = np.einsum("sa,ab,sb->s", rn, A, rn) - mu
    z2 = -rn @ np.einsum("aij,ij->a", H, U)
    for e, (s, z) in enumerate(((s1, z1), (s2, z2)), start=1):
        var = float(np.einsum("ijkl,ij,kl->", fv.covariance(net, x, which=f"I{e}", n=N), U, U))
        m2, m4 = float(wts @ z**2), float(wts @ z**4)
        assert var == pytest.approx(m2 / N, rel=1e-9)  # closed form = definition route
        fourth = m4 / N**3 + 3 * (N - 1) * m2**2 / N**3
        assert_variance_matches(s - mu, var, fourth, alpha=ALPHA, what=f"{name}: Var <U, I{e}>")


def test_monte_carlo_through_sample_estimators() -> None:
    """The public sampler agrees too (fewer replicates; median of means, alpha = 1e-6)."""
    fam = fv.family("poisson")
    rng = np.random.default_rng(9)
    net = fv.Network.random([2, 2, 1], "sigmoid", fam, 1.0, rng)
    X = rng.normal(size=(2, 2))
    N, R = 2, 600
    P = net.num_params
    U = rng.normal(size=(P, P))
    U = U + U.T
    exact = fv.exact_fisher(net, X)
    mu = float(np.sum(U * exact))
    d = np.empty((2, R))
    for k in range(R):
        est = fv.sample_estimators(net, X, N, rng)
        d[0, k] = np.sum(U * est.i1) - mu
        d[1, k] = np.sum(U * est.i2) - mu
    for e in (1, 2):
        var = float(np.einsum("ijkl,ij,kl->", fv.covariance(net, X, which=f"I{e}", n=N), U, U))
        # exact E[D^4]: D is a sum over inputs of independent N-means of terms z/M
        h = net.forward(X)
        nodes, wts, _ = fam.expectation_nodes(h, degree=8)
        wts = wts / wts.sum(axis=-1, keepdims=True)
        J, H, eta = net.jacobian(X), net.output_hessians(X), fam.mean(h)
        Ms = []
        for m in range(2):
            rn = nodes[m] - eta[m]
            if e == 1:
                A = J[m] @ U @ J[m].T
                c = np.sum(U * (J[m].T @ fam.fisher(h)[m] @ J[m]))
                z = (np.einsum("sa,ab,sb->s", rn, A, rn) - c) / 2
            else:
                z = -rn @ np.einsum("aij,ij->a", H[m], U) / 2
            Ms.append((float(wts[m] @ z**2), float(wts[m] @ z**4)))
        v = [m2 / N for m2, _ in Ms]
        q = [m4 / N**3 + 3 * (N - 1) * m2**2 / N**3 for m2, m4 in Ms]
        fourth = q[0] + q[1] + 6 * v[0] * v[1]
        assert var == pytest.approx(sum(v), rel=1e-9)
        assert_variance_matches(d[e - 1], var, fourth, what=f"sample_estimators: Var <U, I{e}>")
