"""The exact-expectation route: E[score scoreᵀ] and E[−∂²ℓ] from the definition (eq-4, Eq. 2)
against eq-6 and thm-3."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given

import fisher_verify as fv
from fisher_verify import Network, exact_fisher
from fisher_verify._src.expect.single_sample import (
    expect_single_sample,
    expected_neg_hessian,
    expected_score_outer,
)
from fisher_verify._src.testing.strategies import (
    C2_ACTIVATIONS,
    bernoulli_half_network,
    one_output_network,
    small_networks,
)


def _close(a: np.ndarray, b: np.ndarray, rel: float = 1e-10) -> None:
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    assert float(np.max(np.abs(a - b), initial=0.0)) <= rel * scale


@given(small_networks(max_depth=2, max_width=4, max_inputs=2))
@example(bernoulli_half_network())
@example(one_output_network("geometric"))
def test_score_outer_expectation_is_eq6(net_x: tuple[Network, np.ndarray]) -> None:
    net, x = net_x
    _close(expected_score_outer(net, x), exact_fisher(net, x))


@given(small_networks(activations=C2_ACTIVATIONS, max_depth=2, max_width=4, max_inputs=2))
@example(one_output_network("poisson"))
def test_thm3_neg_hessian_expectation_is_fisher(net_x: tuple[Network, np.ndarray]) -> None:
    net, x = net_x
    _close(expected_neg_hessian(net, x), exact_fisher(net, x))


def test_thm3_on_relu_away_from_kinks() -> None:
    net = Network.random([2, 4, 3, 1], "relu", fv.family("poisson"), rng=4)
    x = np.array([[0.8, -0.3], [0.1, 1.4]])
    _close(expected_neg_hessian(net, x), exact_fisher(net, x))


def test_bernoulli_by_hand() -> None:
    """One Bernoulli output: E over y ∈ {0, 1} written out by hand."""
    net, x = one_output_network("bernoulli")
    X = np.atleast_2d(x)
    got = expect_single_sample(net, X, lambda s: s.score_outer, degree=2, per_input=True)
    for m in range(X.shape[0]):
        h = float(net.forward(X[m])[0])
        p = 1.0 / (1.0 + np.exp(-h))
        g = net.jacobian(X[m])[0]
        ref = p * (1 - p) ** 2 * np.outer(g, g) + (1 - p) * p**2 * np.outer(g, g)
        _close(got[m], ref, rel=1e-13)


def test_covariance_of_single_sample_terms_shape() -> None:
    """The helper the covariance issue uses: E and Cov of ∂ℓ∂ℓᵀ for one input (thm-4 input)."""
    net, x = one_output_network("poisson")
    x1 = x[0]
    m1 = expect_single_sample(net, x1, lambda s: s.score_outer, degree=2)
    m2 = expect_single_sample(
        net, x1, lambda s: np.einsum("sij,skl->sijkl", s.score_outer, s.score_outer), degree=4
    )
    cov = m2 - np.einsum("ij,kl->ijkl", m1, m1)
    P = net.num_params
    assert cov.shape == (P,) * 4
    # one output: Cov = J⊗J⊗J⊗J (K − I²) with K, I from the family's kernels (thm-4)
    h = net.forward(x1)
    K = net.family.central_moment4(h)[0, 0, 0, 0]
    I = net.family.fisher(h)[0, 0]
    g = net.jacobian(x1)[0]
    ref = np.einsum("i,j,k,l->ijkl", g, g, g, g) * (K - I * I)
    _close(cov, ref, rel=1e-9)
