"""Î₁, Î₂ two ways on the same draws (eq-7/eq-8 vs autodiff of Eq. 2), eq-11, delta-i."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given

import fisher_verify as fv
from fisher_verify import Network, exact_fisher, sample_estimators
from fisher_verify.errors import DomainError, FisherVerifyError, ShapeError
from fisher_verify.fisher.backprop import (
    backprop_estimator,
    backprop_estimator_autodiff,
    backprop_fisher,
)
from fisher_verify.fisher.estimators import delta_estimators, estimators_from_draws
from fisher_verify.testing.strategies import (
    bernoulli_half_network,
    one_output_network,
    small_networks,
)


def _close(a: np.ndarray, b: np.ndarray, rel: float = 1e-10, scale: float = 0.0) -> None:
    """max|a − b| <= rel · max(|b|, scale, 1) (scale: the size of the terms b was made from)."""
    scale = max(float(np.max(np.abs(b), initial=0.0)), scale, 1.0)
    assert float(np.max(np.abs(a - b), initial=0.0)) <= rel * scale


@given(small_networks(max_depth=2, max_width=4, max_inputs=2))
@example(bernoulli_half_network())
@example(one_output_network())
def test_structured_matches_generic(net_x: tuple[Network, np.ndarray]) -> None:
    net, x = net_x
    est = sample_estimators(net, x, 7, rng=0)
    M = 1 if np.ndim(x) == 1 else x.shape[0]
    assert est.t.shape == (
        (7, net.family.dim) if M == 1 and np.ndim(x) == 1 else (7, M, net.family.dim)
    )
    gen = estimators_from_draws(net, x, est.y, route="generic")
    assert est.i1.shape == (net.num_params,) * 2
    _close(est.i1, gen.i1)
    _close(est.i2, gen.i2)
    # delta-i: closed forms against direct autodiff of l̃
    y_target = est.y[0]
    d_s = delta_estimators(net, x, y_target, est)
    d_g = delta_estimators(net, x, y_target, est, route="generic")
    # ΔÎ = (single-target term) − Î: the generic route subtracts two separately computed
    # matrices, so its rounding error scales with their size, not with the difference
    _close(d_s[0], d_g[0], scale=float(np.max(np.abs(gen.i1)) + np.max(np.abs(d_g[0] + gen.i1))))
    _close(d_s[1], d_g[1], scale=float(np.max(np.abs(gen.i2)) + np.max(np.abs(d_g[1] + gen.i2))))


@given(small_networks(max_inputs=2))
def test_backprop_fisher_eq11(net_x: tuple[Network, np.ndarray]) -> None:
    net, x = net_x
    t = net.family.sample_statistic(net.forward(x), 5, np.random.default_rng(1))
    for layer in range(net.depth + 1):
        _close(backprop_estimator(net, x, t, layer), backprop_estimator_autodiff(net, x, t, layer))
    # at the output, eq-11 is I(h_L) itself
    I_out = np.atleast_3d(net.family.fisher(net.forward(x))).reshape(
        -1, net.family.dim, net.family.dim
    )
    _close(backprop_fisher(net, x, net.depth), I_out.mean(axis=0), rel=1e-12)


def test_bernoulli_half_i1_is_exact() -> None:
    """fig-1: at p = 1/2, (t−η)² = 1/4 for every y, so Î₁ = I(θ) for any draws."""
    net, x = bernoulli_half_network()
    est = sample_estimators(net, x, 3, rng=5)
    _close(est.i1, exact_fisher(net, x), rel=1e-14)


def test_several_inputs_average_per_input() -> None:
    net, X = one_output_network("poisson")
    est = sample_estimators(net, X, 11, rng=2)
    assert est.y.shape == (11, 2) and est.t.shape == (11, 2, 1)
    parts = [estimators_from_draws(net, X[m], est.y[:, m]) for m in range(2)]
    _close(est.i1, (parts[0].i1 + parts[1].i1) / 2, rel=1e-14)
    _close(est.i2, (parts[0].i2 + parts[1].i2) / 2, rel=1e-14)
    _close(exact_fisher(net, X), exact_fisher(net, X, per_input=True).mean(0), rel=1e-14)
    _close(exact_fisher(net, X), exact_fisher(net, X, method="autodiff"))


def test_errors() -> None:
    net, x = one_output_network("poisson")
    with pytest.raises(FisherVerifyError, match="n must be >= 1"):
        sample_estimators(net, x, 0)
    with pytest.raises(FisherVerifyError, match="unknown route"):
        estimators_from_draws(net, x, np.zeros((3, 2)), route="other")  # type: ignore[arg-type]
    with pytest.raises(FisherVerifyError, match="layer must be an integer 0..2"):
        backprop_fisher(net, x, 3)
    for backprop in (backprop_estimator, backprop_estimator_autodiff):
        with pytest.raises(ShapeError, match=r"statistics t must have shape \(n, 2, 1\)"):
            backprop(net, x, np.zeros((5, 3, 1)), 1)
    geo = Network.random([2, 3, 1], "tanh", fv.family("geometric"), rng=0)
    geo.weights[-1][0, -1] = 5.0  # h_L > 0: outside h < 0
    with pytest.raises(DomainError):
        exact_fisher(geo, np.zeros(2))
