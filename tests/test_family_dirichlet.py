"""The Dirichlet family and the beta with both shapes unknown (issue 18): kernels against mpmath's
polygamma at the edges of the domain (α of 1e-6 and 1e6), the exact-expectation route against the
density's own integrals, the sampler's moments, and bad input refused by name."""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import strategies as st

import fisher_verify as fv
from fisher_verify._src.families import dirichlet as dmod
from fisher_verify._src.testing.calibrated import assert_mean_matches, bonferroni
from fisher_verify.errors import DomainError, ParameterError, ShapeError

EDGES = [
    (1e-6, 1e-6, 1e-6), (1e6, 1e6, 1e6), (1e6, 1e-6, 1.0), (1e-6, 1e6, 1e6), (1e6, 2.0, 3.0),
    (0.5, 1e6, 1e-6), (1.5, 0.8, 2.2),
]


def _textbook(alpha: tuple[float, ...], digits: int = 60) -> dict[str, np.ndarray]:
    """η, I, κ₃, κ₄ and F from mpmath's polygamma at ``digits`` plus the digits the differences
    cancel (log10 of the spread of α): F = Σ log Γ(α_i) − log Γ(α₀), h = −α."""
    k = len(alpha)
    extra = int(math.log10(max(alpha) / min(alpha))) + 20
    out: dict[str, np.ndarray] = {}
    with mpmath.workdps(digits + extra):
        a = [mpmath.mpf(v) for v in alpha]
        a0 = mpmath.fsum(a)
        out["log_partition"] = np.array(float(mpmath.fsum(mpmath.loggamma(v) for v in a)
                                              - mpmath.loggamma(a0)))
        # F's terms cancel (α = (1e6, 1e-6, 1): terms of 14, F = −1.4e-5): judged on their size
        out["terms"] = np.array(float(mpmath.fsum(abs(mpmath.loggamma(v)) for v in a)
                                      + abs(mpmath.loggamma(a0))))
        for order, name in ((1, "mean"), (2, "fisher"), (3, "kappa3"), (4, "kappa4")):
            sign = (-1) ** order  # d/dh = −d/dα
            t = np.zeros((k,) * order)
            for idx in np.ndindex(t.shape):
                value = -mpmath.psi(order - 1, a0)
                if len(set(idx)) == 1:
                    value += mpmath.psi(order - 1, a[idx[0]])
                t[idx] = float(sign * value)
            out[name] = t
    return out


@pytest.mark.parametrize("alpha", EDGES, ids=[str(a) for a in EDGES])
def test_kernels_match_mpmath_polygamma_at_the_edges(alpha) -> None:
    """NumPy and PyTorch kernels of dirichlet(K=3) and of beta_both (the first two α) equal
    mpmath's textbook polygamma values, each entry within 1e-12 of its natural scale (the entry
    itself, Π sd(t_i) for an entry that cancels, the size of F's log Γ terms for F)."""
    for name, a in (("dirichlet", alpha), ("beta_both", alpha[:2])):
        fam = fv.family(name, **({"K": 3} if name == "dirichlet" else {}))
        h = -np.array(a)
        want = _textbook(a)
        terms = float(want.pop("terms"))
        sd = np.sqrt(np.diagonal(want["fisher"]))
        for backend_h in (h, torch.tensor(h, dtype=torch.float64)):
            for q, expected in want.items():
                got = np.asarray(getattr(fam, q)(backend_h), dtype=float)
                assert np.all(np.isfinite(got)), (name, a, q)
                for idx in np.ndindex(expected.shape):
                    natural = float(np.prod(sd[list(idx)])) if len(idx) >= 2 else 0.0
                    if q == "log_partition":
                        natural = terms
                    ref = max(abs(float(expected[idx])), natural, 1e-300)
                    assert abs(float(got[idx]) - float(expected[idx])) <= 1e-12 * ref, (
                        name, a, q, idx, float(got[idx]), float(expected[idx]))


def _beta_density_moments(alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """E t, Cov t and E (t − E t)^⊗4 of t = (−log y, −log(1 − y)) under Beta(α, β), by
    mpmath.quad of the density (nothing of this package): y < 1/2 in u = −log y and y > 1/2 in
    v = −log(1 − y), both over (log 2, ∞), where y^{α−1} dy = e^{−αu} du has no singularity
    (tanh-sinh on y itself stops near (10^−dps)^α: 1e-6 at α = 0.2)."""
    with mpmath.workdps(30):
        a, b = mpmath.mpf(alpha), mpmath.mpf(beta)
        ln2 = mpmath.log(2)

        def integral(g):
            def left(u):
                v = -mpmath.log1p(-mpmath.exp(-u))
                return g(u, v) * mpmath.exp(-a * u - (b - 1) * v)

            def right(v):
                u = -mpmath.log1p(-mpmath.exp(-v))
                return g(u, v) * mpmath.exp(-(a - 1) * u - b * v)
            return mpmath.quad(left, [ln2, mpmath.inf]) + mpmath.quad(right, [ln2, mpmath.inf])

        z = integral(lambda u, v: 1)
        mean = [integral(lambda u, v: u) / z, integral(lambda u, v: v) / z]
        cov = np.zeros((2, 2))
        k4 = np.zeros((2, 2, 2, 2))
        for idx in np.ndindex(2, 2):
            cov[idx] = float(integral(lambda u, v, i=idx: (
                ((u, v)[i[0]] - mean[i[0]]) * ((u, v)[i[1]] - mean[i[1]]))) / z)
        for idx in np.ndindex(2, 2, 2, 2):
            if idx != tuple(sorted(idx)):
                continue

            def g(u, v, i=idx):
                tv = (u, v)
                return mpmath.fprod(tv[j] - mean[j] for j in i)
            k4[idx] = float(integral(g) / z)
        for idx in np.ndindex(2, 2, 2, 2):
            k4[idx] = k4[tuple(sorted(idx))]
        return np.array([float(m) for m in mean]), cov, k4


@pytest.mark.parametrize(("alpha", "beta"), [(1.5, 2.5), (0.2, 1.4), (40.0, 3.0), (0.7, 0.4)])
def test_beta_both_nodes_and_kernels_match_the_density(alpha, beta) -> None:
    """The exact-expectation nodes and the kernels give the density's E t, Cov t and fourth
    central moment (mpmath.quad, 30 digits) to 1e-12 of their scale."""
    fam = fv.family("beta_both")
    h = np.array([-alpha, -beta])
    mean, cov, k4 = _beta_density_moments(alpha, beta)
    t, w, tail = fam.expectation_nodes(h, 4)
    assert tail == 0.0 and np.all(w > 0)
    eta = w @ t
    d = t - eta
    got_cov = np.einsum("s,sa,sb->ab", w, d, d)
    got_k4 = np.einsum("s,sa,sb,sc,sd->abcd", w, d, d, d, d)
    scale = np.sqrt(np.diagonal(cov))
    np.testing.assert_allclose(eta, mean, rtol=1e-12, atol=1e-13 * scale.max())
    np.testing.assert_allclose(got_cov, cov, rtol=0, atol=1e-12 * np.outer(scale, scale).max())
    np.testing.assert_allclose(got_k4, k4, rtol=0, atol=1e-11 * scale.max() ** 4)
    np.testing.assert_allclose(fam.mean(h), mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(fam.fisher(h), cov, rtol=0, atol=1e-12 * scale.max() ** 2)
    np.testing.assert_allclose(fam.central_moment4(h), k4, rtol=0, atol=1e-11 * scale.max() ** 4)


def test_dirichlet_nodes_match_the_sticks_mpmath_route_up_to_degree_8() -> None:
    """dirichlet(K=3): the nodes' moments of t of every degree ≤ 8 along two directions equal
    the density's (each stick's beta integrals in mpmath, :meth:`moment_mp`) to 1e-11 of
    their scale; the weights are positive and sum to 1."""
    fam = fv.family("dirichlet", K=3)
    h = np.array([-1.5, -0.8, -2.2])
    t, w, _ = fam.expectation_nodes(h, 8)
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-14
    eta = w @ t
    hm = [mpmath.mpf(v) for v in h]
    with mpmath.workdps(30):
        for powers in [(2, 0, 0), (1, 1, 0), (0, 3, 1), (2, 0, 2), (4, 0, 0), (3, 3, 2),
                       (0, 0, 8), (2, 2, 2)]:
            want = float(fam.moment_mp(powers, hm))
            got = float(w @ np.prod((t - eta) ** np.array(powers), axis=-1))
            scale = float(w @ np.prod(np.abs(t - eta) ** np.array(powers), axis=-1))
            assert abs(got - want) <= 1e-11 * scale, (powers, got, want)


def test_stick_rule_verification_can_fail_and_refuses_below_float64() -> None:
    """A rule off by one ulp-scale perturbation of its step is still verified against the exact
    moments (the check is not vacuous: a shifted node set fails it); a concentration whose nodes
    fall below float64 is refused naming the limit."""
    z, w = dmod._stick_nodes(1.5, 0.8, 0.05)
    moments, (mu_u, mu_v, sd_u, sd_v) = dmod.stick_moments(1.5, 0.8, 4)
    keys = sorted(moments)

    def worst(zz):
        x = (np.logaddexp(0, -zz) - float(mu_u)) / float(sd_u)
        y = (np.logaddexp(0, zz) - float(mu_v)) / float(sd_v)
        vals = np.array([x**i * y**j for i, j in keys])
        exact = np.array([float(moments[k]) for k in keys])
        return float(np.max(np.abs(vals @ w - exact) / np.maximum(1, np.abs(vals) @ w)))

    assert worst(z) <= dmod.VERIFY_TOL
    assert worst(z + 1e-6) > dmod.VERIFY_TOL  # a shift of the nodes by 1e-6 is caught
    with pytest.raises(DomainError, match="700"):
        dmod.stick_rule(1e-3, 2.0, 4)
    # beta_both's scalar y cannot hold 1 − y below 1e-16, where at β = 0.4 its degree-8
    # moments still have mass: its t comes from the sticks' log-space values, not from y
    fam = fv.family("beta_both")
    h = np.array([-0.7, -0.4])
    t, w, _ = fam.expectation_nodes(h, 8)
    assert np.all(np.isfinite(t)) and np.all(w >= 0) and t[:, 1].max() > 60
    np.testing.assert_allclose(w @ t, fam.mean(h), rtol=1e-13)


@pytest.mark.parametrize("h", [(-1.5, -0.8, -2.2), (-0.05, -0.3, -2.0), (-300.0, -1.0, -20.0)])
def test_sampler_moments_are_calibrated(h) -> None:
    """Sample means of t_a and (t_a − η_a)² match η and I (variances I and K − I² exact),
    false-alarm rate 1e-6 in all (Bonferroni over 2K checks); small α exercise the log-space
    gamma draws, whose plain Gamma(0.05) form underflows to y = 0."""
    fam = fv.family("dirichlet", K=3)
    hh = np.array(h)
    t = fam.sample_statistic(hh, 40_000, np.random.default_rng(20261202))
    assert np.all(np.isfinite(t))
    eta, fisher, k4 = fam.mean(hh), fam.fisher(hh), fam.central_moment4(hh)
    alpha = bonferroni(1e-6, 2 * fam.dim)
    for a in range(fam.dim):
        assert_mean_matches(t[:, a], eta[a], fisher[a, a], alpha=alpha, what=f"E t_{a}")
        assert_mean_matches((t[:, a] - eta[a]) ** 2, fisher[a, a],
                            k4[a, a, a, a] - fisher[a, a] ** 2, alpha=alpha, what=f"Var t_{a}")


@pytest.mark.parametrize(("params", "fragment"), [
    ({"K": 1}, "K=1"), ({"K": 9}, "K=9"), ({"K": 2.0}, "K=2.0"), ({"K": True}, "K=True"),
    ({"K": "3"}, "K='3'"),
])
def test_bad_parameters_are_refused_by_name(params, fragment) -> None:
    with pytest.raises(ParameterError, match=fragment) as err:
        fv.family("dirichlet", **params)
    assert "integer from 2 to 8" in str(err.value)
    with pytest.raises(ParameterError, match="no parameter"):
        fv.family("beta_both", b=2)


def test_bad_natural_parameters_and_labels_are_refused() -> None:
    fam = fv.family("dirichlet", K=3)
    with pytest.raises(DomainError, match="component 1"):
        fam.fisher(np.array([-1.0, 0.0, -2.0]))
    with pytest.raises(ShapeError, match="size 3"):
        fam.fisher(np.array([-1.0, -2.0]))
    with pytest.raises(DomainError, match="labels.*summing to 1"):
        fam.check_labels(np.array([[0.2, 0.3, 0.4]]))
    with pytest.raises(DomainError, match="labels"):
        fam.check_labels(np.array([[0.0, 0.5, 0.5]]))
    with pytest.raises(ShapeError, match="last axis of size 3"):
        fam.check_labels(np.array([[0.5, 0.5]]))
    y = fam.sample(np.array([-1.5, -0.8, -2.2]), 100, np.random.default_rng(0))
    assert fam.check_labels(y) is not None  # the sampler's own draws are on the simplex
    with pytest.raises(DomainError, match="h1"):
        fv.family("beta_both").mean(np.array([-1.0, 1.0]))


def test_softplus_beta_head_gets_the_exact_fisher() -> None:
    """A Beta head outputting (u, v) with α = softplus(u), β = softplus(v) (link
    ``softplus-beta``): fv.exact_fisher of the LinkedNetwork equals E[∂ℓ∂ℓᵀ] and E[−∂²ℓ] with ℓ
    from torch.distributions.Beta by autograd in θ, the expectations from the density's own
    moments by mpmath quadrature (the score and −∂²ℓ are affine in t = (−log y, −log(1 − y)),
    read off autograd at three labels and checked at a fourth)."""
    from torch.func import grad, hessian

    from fisher_verify._src.families.links import link
    from fisher_verify._src.networks.autodiff import unflatten

    L = link("softplus-beta")
    assert L.family.name == "beta_both"
    rng = np.random.default_rng(3)
    net = fv.LinkedNetwork.random((2, 3, 2), "tanh", L, 0.8, rng)
    X = rng.normal(size=(2, 2))
    base = net.base
    theta = torch.tensor(base.theta, dtype=torch.float64)

    def loglik(th, x, y):
        h = torch.as_tensor(x, dtype=torch.float64)
        weights = unflatten(th, base.shapes)
        for layer, W in enumerate(weights):
            h = W[:, :-1] @ h + W[:, -1]
            if layer < len(weights) - 1:
                h = torch.tanh(h)
        a, b = torch.nn.functional.softplus(h[0]), torch.nn.functional.softplus(h[1])
        return torch.distributions.Beta(a, b).log_prob(torch.tensor(y, dtype=torch.float64))

    P = theta.numel()
    outer = np.zeros((P, P))
    neg_hess = np.zeros((P, P))
    labels = (0.2, 0.5, 0.9, 0.37)
    for x in X:
        stat = np.array([[-math.log(y), -math.log1p(-y), 1.0] for y in labels])
        scores = np.array([grad(loglik)(theta, x, y).numpy() for y in labels])
        hess = np.array([-hessian(loglik)(theta, x, y).numpy().reshape(-1) for y in labels])
        coef_s = np.linalg.solve(stat[:3], scores[:3])  # rows: A₀, A₁, c
        coef_h = np.linalg.solve(stat[:3], hess[:3])
        np.testing.assert_allclose(stat[3] @ coef_s, scores[3], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(stat[3] @ coef_h, hess[3], rtol=1e-9, atol=1e-12)
        with torch.no_grad():
            f = base.forward(x)
        a, b = np.log1p(np.exp(f))
        mean, cov, _ = _beta_density_moments(float(a), float(b))
        second = np.zeros((3, 3))
        second[:2, :2] = cov + np.outer(mean, mean)
        second[:2, 2] = second[2, :2] = mean
        second[2, 2] = 1.0
        outer += coef_s.T @ second @ coef_s / len(X)
        neg_hess += (np.append(mean, 1.0) @ coef_h).reshape(P, P) / len(X)
    exact = fv.exact_fisher(net, X)
    scale = float(np.max(np.abs(exact)))
    np.testing.assert_allclose(exact, outer, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(exact, neg_hess, rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("h", [(-0.5, -0.5, -0.5), (-0.9, -1.7, -0.6), (-2e3, -0.5, -0.5)])
def test_torch_log_partition_differentiates_to_the_cumulants(h) -> None:
    """torch.func.hessian and double backward of the torch F give I(h) (mpmath polygamma)
    to 1e-13, at equal concentrations too: a min/max split of the terms gives the average of
    two Hessians at a tie (3/4 of the truth, caught by d24-pwl), torch's own trigamma (the
    backward of torch.digamma, the second derivative of torch.lgamma) is ~1e-10 accurate."""
    from torch.func import hessian

    fam = fv.family("dirichlet", K=3)
    F = fam.kernel("log_partition", "torch")
    ht = torch.tensor(h, dtype=torch.float64)
    want = _textbook(tuple(-v for v in h))["fisher"]
    H = hessian(lambda v: F(v[None, :]).reshape(-1)[0])(ht).numpy()
    hr = ht.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F(hr[None, :]).sum(), hr, create_graph=True)
    H2 = torch.stack([torch.autograd.grad(g[i], hr, retain_graph=True)[0] for i in range(3)])
    for got in (H, H2.detach().numpy()):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * np.max(np.abs(want)))


def test_random_test_networks_keep_the_concentrations_the_route_answers() -> None:
    """The Hypothesis strategies keep a Dirichlet network's h ≤ −strategy_margin = −0.5 at every
    input (α ≥ 0.5), where the sticks' route answers; at α ≈ 0.07 it refuses by name, which a
    random network hit in CI (tests/test_expect.py)."""
    from hypothesis import given, settings

    from fisher_verify._src.testing.strategies import small_networks

    assert fv.family("beta_both").strategy_margin == 0.5
    assert fv.product(fv.family("normal"), fv.family("beta_both")).strategy_margin == 0.5

    @settings(max_examples=30, deadline=None, derandomize=True)
    @given(small_networks(st.sampled_from([fv.family("beta_both"), fv.family("dirichlet", K=3)])))
    def check(net_x: Any) -> None:
        net, x = net_x
        assert np.all(net.forward(np.atleast_2d(x)) <= -0.5 + 1e-12)

    check()
