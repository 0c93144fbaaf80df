"""p.s.d. results for Î₂: thm-10 (probability bound vs observed frequency) and thm-11
(λ_min lower bound per draw; Var(η − t̄) = I_aa/N)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fisher_verify as fv
from fisher_verify._src.fisher.estimators import estimators_from_draws
from fisher_verify._src.fisher.psd import (
    bias_variance_exact,
    hessian_estimator,
    psd_probability_bound,
    sample_psd,
    spectral_radii,
    thm11_lower_bound,
)
from fisher_verify._src.testing.calibrated import (
    assert_frequency_at_least,
    assert_mean_matches,
    bonferroni,
)
from fisher_verify._src.testing.strategies import C2_ACTIVATIONS, FAMILY_POINTS, small_networks


@given(small_networks(activations=C2_ACTIVATIONS), st.integers(1, 6), st.integers(0, 2**31))
def test_thm11_holds_for_every_draw(pair, n, seed) -> None:
    """λ_min(Î₂) ≥ −(1/M)Σ ρ_a|η_a − t̄_a| for each sampled Î₂ (deterministic inequality)."""
    net, x = pair
    s = sample_psd(net, x, n, 20, seed)
    scale = max(1.0, float(np.abs(s.thm11_bound).max()))
    assert np.all(s.lambda_min >= s.thm11_bound - 1e-10 * scale)
    assert s.bound.bound is None or s.bound.bound <= s.bound.bound_trace + 1e-15


def test_eq8_sampler_matches_library_estimator() -> None:
    """hessian_estimator (eq-8 from sample means) equals sample_estimators' Î₂ on the same draws."""
    rng = np.random.default_rng(0)
    fam = fv.family("categorical", K=3)
    net = fv.Network.random([2, 3, 3], "softplus", fam, 1.0, rng)
    X = rng.normal(size=(2, 2))
    h = net.forward(X)
    y = fam.sample(h, 5, rng)  # (5, 2)
    est = estimators_from_draws(net, X, y)
    t = fam.statistic(y)
    mine = hessian_estimator(net.jacobian(X), net.output_hessians(X), fam.fisher(h),
                             fam.mean(h), t.mean(axis=0))
    np.testing.assert_allclose(mine, est.i2, rtol=1e-12, atol=1e-14)
    rho = spectral_radii(net.output_hessians(X))
    assert rho.shape == (2, 3) and np.all(rho >= 0)


@pytest.mark.parametrize(("name", "params", "h0"), FAMILY_POINTS, ids=[f[0] for f in FAMILY_POINTS])
def test_thm11_variance_of_bias(name, params, h0) -> None:
    """Var(η_a − t̄_a) = I_aa/N: the definition route (nodes) to 1e-10, and Monte Carlo."""
    fam = fv.family(name, **params)
    h = np.asarray(h0, dtype=float)
    N = 4
    exact = bias_variance_exact(fam, h, N)
    np.testing.assert_allclose(exact, np.diag(fam.fisher(h)) / N, rtol=1e-10)
    rng = np.random.default_rng(1)
    R = 2000
    t = fam.sample_statistic(h, N * R, rng).reshape(R, N, fam.dim)
    d = (fam.mean(h) - t.mean(axis=1))[:, 0]
    # Var(d^2) exact from nodes: E[d^4] for the mean of N i.i.d. centred terms
    nodes, w, _ = fam.expectation_nodes(h, degree=4)
    w = w / w.sum()
    c = nodes[:, 0] - w @ nodes[:, 0]
    m2, m4 = w @ c**2, w @ c**4
    fourth = m4 / N**3 + 3 * (N - 1) * m2**2 / N**3
    assert_mean_matches(d * d, exact[0], fourth - exact[0] ** 2,
                        alpha=bonferroni(1e-6 * len(FAMILY_POINTS), len(FAMILY_POINTS)),
                        what=f"{name}: E[(eta - tbar)^2] = I_aa/N")


def _positive_definite_case():
    """Poisson output at rate e^6, 6 inputs, P = 5: λ_min(I(θ)) > 0 and an informative bound
    (seed 12 gives c ≈ 32, so the bound reaches 1/2 at N = 64)."""
    rng = np.random.default_rng(12)
    fam = fv.family("poisson")
    net = fv.Network.random([2, 1, 1], "tanh", fam, 2.0, rng)
    xs = 1.5 * rng.normal(size=(6, 2))
    w = [W.copy() for W in net.weights]
    w[-1][0, -1] += 6.0 - net.forward(xs)[:, 0].mean()
    return fv.Network.from_weights(w, "tanh", fam), xs, rng


def test_thm10_bound_formula_and_frequency() -> None:
    """thm-10: the bound 1 − c/N (c from ρ, λ_max(I(h_L)), λ_min(I(θ))); the observed p.s.d.
    frequency of Î₂ is at least the bound (exact binomial tail, alpha = 1e-6)."""
    net, xs, rng = _positive_definite_case()
    J, H = net.jacobian(xs), net.output_hessians(xs)
    h = net.forward(xs)
    I = net.family.fisher(h)
    b1 = psd_probability_bound(J, H, I, 1)
    assert b1.applicable and b1.lambda_min_fisher > 0
    M = 6
    lam = np.linalg.eigvalsh(fv.exact_fisher(net, xs))[0]
    rho = spectral_radii(H)
    c = 1 * np.sum(rho**2) * np.sum(np.linalg.eigvalsh(I)[:, -1]) / (M**2 * lam**2)
    assert b1.constant == pytest.approx(c, rel=1e-9)
    N = int(np.ceil(2 * b1.constant))  # bound = 1/2
    s = sample_psd(net, xs, N, 400, rng)
    assert s.bound.bound == pytest.approx(1 - b1.constant / N, rel=1e-12)
    assert s.bound.bound >= 0.5 - 1e-12
    assert_frequency_at_least(s.psd_count, s.draws, s.bound.bound, what="P(I2 psd) >= thm-10")
    b = fv.bounds(net, xs, n=N, psd_draws=200, rng=3)
    assert b.psd_probability.rhs == pytest.approx(s.bound.bound)
    assert b.psd_probability.lhs is not None and b.psd_probability.holds
    assert np.all(s.lambda_min >= s.thm11_bound - 1e-9)


def test_thm10_not_applicable_for_singular_fisher() -> None:
    """One input, P > n_L: I(θ) has rank ≤ n_L, λ_min = 0, the theorem says nothing."""
    rng = np.random.default_rng(2)
    net = fv.Network.random([2, 3, 1], "tanh", fv.family("bernoulli"), 1.0, rng)
    x = rng.normal(size=2)
    b = fv.bounds(net, x, n=10)
    assert b.psd_probability.rhs is None and b.psd_probability.holds is None
    assert b.psd_probability.details["applicable"] is False
    # thm-11 bound is zero when t̄ = η exactly
    eta = net.family.mean(net.forward(x))
    assert thm11_lower_bound(net.output_hessians(x), eta, eta[None]) == pytest.approx(0.0)


def _dense_constants(net, X):
    """thm-10's c (paper form, M inputs) and trace-form c from torch.func derivatives and
    Cov(t) at the exact-expectation nodes (independent of fisher/psd.py)."""
    from fisher_verify._src.proofs.support import dense_derivatives, output_moments

    J, H = dense_derivatives(net, X)
    I, _ = output_moments(net.family, net.forward(X))
    M, n_l = J.shape[:2]
    lam = np.linalg.eigvalsh(np.einsum("map,mab,mbq->pq", J, I, J) / M)[0]
    rho2 = np.sum(np.max(np.abs(np.linalg.eigvalsh(H)), axis=-1) ** 2)
    c = n_l * rho2 * np.sum(np.linalg.eigvalsh(I)[:, -1]) / (M * M * lam**2)
    c_tr = rho2 * np.sum(np.trace(I, axis1=1, axis2=2)) / (M * M * lam**2)
    return c, c_tr


@pytest.mark.parametrize(("widths", "act", "fam"), [
    ((2, 2, 2), "tanh", fv.product(fv.family("poisson"), fv.family("bernoulli"))),
    ((3, 2, 3), "softplus", fv.product(*[fv.family("bernoulli")] * 3)),
    ((2, 2, 2), "sigmoid", fv.product(fv.family("normal"), fv.family("normal", sigma=2.0))),
])
def test_thm10_both_forms_on_multi_output_networks(widths, act, fam) -> None:
    """thm-10's paper form 1 − n_L‖ρ‖²Σλ_max(I_m)/(N M²λ_min²) and trace form
    1 − ‖ρ‖²Σ tr I_m/(N M²λ_min²) on networks with n_L > 1 (the n_L factor and the square of
    λ_min are visible there), from dense derivatives."""
    rng = np.random.default_rng(7)
    net = fv.Network.random(list(widths), act, fam, 1.0, rng)
    M = 4 * net.num_params // widths[-1]
    X = 2.0 * rng.normal(size=(M, widths[0]))
    c, c_tr = _dense_constants(net, X)
    N = 10
    pb = psd_probability_bound(net.jacobian(X), net.output_hessians(X),
                               fam.fisher(net.forward(X)), N)
    assert pb.applicable
    assert pb.constant == pytest.approx(c, rel=1e-6)
    assert pb.bound == pytest.approx(1 - c / N, rel=1e-6)
    assert pb.bound_trace == pytest.approx(1 - c_tr / N, rel=1e-6)
    assert c_tr < c  # unequal λ_max per output: the trace form is strictly better here
    b = fv.bounds(net, X, n=N).psd_probability
    assert b.rhs == pytest.approx(1 - c / N, rel=1e-6)
    assert b.details["bound_trace"] == pytest.approx(1 - c_tr / N, rel=1e-6)


def test_thm10_constant_is_attained() -> None:
    """One parameter, Bernoulli output, N = 1: by enumeration of t ∈ {0, 1} the failure
    probability is p and thm-10's c is p(1+δ)²/(1−p), so a constant 2 % larger (looser) or any
    smaller one would be visible."""
    p, delta = 1e-3, 1e-3
    v = p * (1 - p)
    hess = p * (1 + delta)
    pb = psd_probability_bound(np.array([[1.0]]), np.array([[[hess]]]), np.array([[v]]), 1)
    fail = sum(w for t, w in ((0.0, 1 - p), (1.0, p)) if v + (p - t) * hess < 0)
    assert fail == pytest.approx(p)
    assert pb.constant == pytest.approx(p * (1 + delta) ** 2 / (1 - p), rel=1e-12)
    for bound in (pb.bound, pb.bound_trace):
        assert 0.98 * (1 - bound) <= fail <= 1 - bound
