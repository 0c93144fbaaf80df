"""Î₁, Î₂ two ways on the same draws (eq-7/eq-8 vs autodiff of Eq. 2), eq-11, delta-i."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given

import fisher_verify as fv
from fisher_verify import Network, exact_fisher, sample_estimators
from fisher_verify._src.fisher.backprop import (
    backprop_estimator,
    backprop_estimator_autodiff,
    backprop_fisher,
)
from fisher_verify._src.fisher.estimators import delta_estimators, estimators_from_draws
from fisher_verify._src.testing.strategies import (
    bernoulli_half_network,
    one_output_network,
    small_networks,
)
from fisher_verify.errors import DomainError, FisherVerifyError, ShapeError, UnsupportedError


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
    if net.kinks(x):  # ReLU at a kink: Î₁ exists, Î₂ and ΔÎ are refused there (thm-3-ae)
        for sample in (est, gen):
            with pytest.raises(UnsupportedError, match="Hessian estimator I2 .* kink"):
                _ = sample.i2
        with pytest.raises(UnsupportedError, match="kink"):
            delta_estimators(net, x, est.y[0], est)
        return
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
    with pytest.raises(FisherVerifyError, match="n must be an integer >= 1, got 0"):
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


@pytest.mark.parametrize("n", [True, False, 2.5, "3", None, float("nan"), -1, np.bool_(True)])
def test_sample_count_refuses_bools_and_non_integers(n: object) -> None:
    """issue 8: sample_estimators(n=True) was silently one draw."""
    net, x = one_output_network("poisson")
    with pytest.raises(FisherVerifyError, match="number of samples n must be an integer >= 1"):
        sample_estimators(net, x, n)  # type: ignore[arg-type]


def test_sample_count_accepts_whole_numbers() -> None:
    net, x = one_output_network("poisson")
    a = sample_estimators(net, x, np.int64(3), rng=1)
    b = sample_estimators(net, x, 3.0, rng=1)  # type: ignore[arg-type]
    assert a.n == b.n == 3 and np.array_equal(a.i1, b.i1)


@pytest.mark.parametrize("rng", ["a", -1, 1.5, True, object()])
def test_bad_rng_is_named(rng: object) -> None:
    """issue 8: bad rng values gave raw NumPy errors."""
    net, x = one_output_network("poisson")
    with pytest.raises(FisherVerifyError, match="rng must be a seed \\(an integer >= 0\\)"):
        sample_estimators(net, x, 2, rng=rng)  # type: ignore[arg-type]


def _relu_net() -> tuple[Network, np.ndarray]:
    return Network.random([2, 3, 1], "relu", fv.family("poisson"), rng=2), np.array([0.3, -0.7])


def _relu_net_at_kink() -> tuple[Network, np.ndarray]:
    """The same network with hidden unit 1's bias moved so that its pre-activation at x is 0
    up to the rounding of ``x·w + b``."""
    net, x = _relu_net()
    weights = [W.copy() for W in net.weights]
    weights[0][1, -1] = -float(weights[0][1, :-1] @ x)
    return Network(weights, "relu", net.family), x


def test_relu_network_gives_i2_away_from_kinks_and_refuses_at_one() -> None:
    """thm-3-ae: away from its kinks a ReLU network is smooth in θ, so Î₂ exists and the
    structured route agrees with autodiff; at a kink Î₂ is refused naming input, layer, unit,
    while Î₁ (which needs only J) is still given."""
    net, x = _relu_net()
    assert net.kinks(x) == []
    est = sample_estimators(net, x, 5, rng=0)
    gen = estimators_from_draws(net, x, est.y, route="generic")
    _close(est.i1, gen.i1)
    _close(est.i2, gen.i2)
    kinked, x = _relu_net_at_kink()
    est = sample_estimators(kinked, x, 5, rng=0)
    _close(est.i1, estimators_from_draws(kinked, x, est.y, route="generic").i1)
    with pytest.raises(UnsupportedError, match="input 0: pre-activation 1 of layer 1 .* kink"):
        _ = est.i2


def _i2_entry_points() -> list[tuple[str, object]]:
    from fisher_verify._src.fisher.psd import sample_psd
    from fisher_verify._src.networks.highprec import mp_variance

    return [
        ("variance", lambda net, x: fv.variance(net, x, which="I2")),
        ("covariance", lambda net, x: fv.covariance(net, x, which="I2")),
        ("covariance_norm", lambda net, x: fv.covariance_norm(net, x, which="I2", n=3)),
        ("bounds (thm-8, thm-10)", lambda net, x: fv.bounds(net, x, n=2)),
        ("sample_psd (thm-10, thm-11)", lambda net, x: sample_psd(net, x, 2, 3, rng=0)),
        ("mp_variance", lambda net, x: mp_variance(net, x, which="I2")),
        ("analyze", lambda net, x: fv.analyze(net, x)),
        ("estimators_from_draws .i2", lambda net, x: estimators_from_draws(
            net, x, np.array([1, 2])).i2),
    ]


@pytest.mark.parametrize("name", [name for name, _ in _i2_entry_points()])
def test_every_i2_entry_point_refuses_relu_only_at_a_kink(name: str) -> None:
    """issue 17: every Î₂ quantity (thm-6, thm-8, thm-10, thm-11, sampled Î₂) of a ReLU network
    is computed at an input away from its kinks and refused at a kink, naming the input, the
    layer and the unit (thm-3-ae), in the Python API as in the CLI."""
    call = dict(_i2_entry_points())[name]
    net, x = _relu_net()
    call(net, x)  # type: ignore[operator]
    kinked, x = _relu_net_at_kink()
    with pytest.raises(UnsupportedError, match="not defined at a kink of relu .* input 0: "
                       "pre-activation 1 of layer 1"):
        call(kinked, x)  # type: ignore[operator]


def test_estimator_1_quantities_still_work_for_relu() -> None:
    net, x = _relu_net_at_kink()
    assert fv.variance(net, x, which="I1").shape == (net.num_params,) * 2
    assert fv.covariance_norm(net, x, which="I1") > 0


def _rng_takers() -> list[tuple[str, object]]:
    from fisher_verify._src.fisher.bounds import lemma12_coverage
    from fisher_verify._src.fisher.psd import sample_psd
    from fisher_verify._src.fisher.spectral import tensor_spectral_norm
    from fisher_verify._src.fisher.tightness import tightness_sweep

    net, x = one_output_network("poisson")
    return [
        ("Network.random", lambda rng: Network.random([2, 1], family=fv.family("poisson"),
                                                       rng=rng)),
        ("sample_estimators", lambda rng: sample_estimators(net, x, 2, rng=rng)),
        ("sample_psd", lambda rng: sample_psd(net, x, 2, 2, rng=rng)),
        ("bounds", lambda rng: fv.bounds(net, x, psd_draws=2, rng=rng)),
        ("lemma12_coverage", lambda rng: lemma12_coverage(net, x, 2, 0.1, 2, rng=rng)),
        ("tensor_spectral_norm", lambda rng: tensor_spectral_norm(np.ones((2, 2, 2)), rng=rng)),
        ("tightness_sweep", lambda rng: tightness_sweep(1, rng=rng)),
        ("Family.sample", lambda rng: net.family.sample(np.zeros(1), 2, rng)),
        ("check_fisher_estimator", lambda rng: fv.check_estimator(
            lambda g: np.eye(net.num_params), net, x, n=1, replications=4, rng=rng)),
    ]


@pytest.mark.parametrize("name", [name for name, _ in _rng_takers()])
@pytest.mark.parametrize("rng", ["a", -1, 1.5, True])
def test_every_rng_taker_names_a_bad_rng(name: str, rng: object) -> None:
    """issue 8: rng="a", -1 or 1.5 gave raw NumPy errors; one validator serves every function."""
    call = dict(_rng_takers())[name]
    with pytest.raises(FisherVerifyError, match=f"rng must be a seed .* got {rng!r}"):
        call(rng)  # type: ignore[operator]


def _count_takers() -> list[tuple[str, object]]:
    from fisher_verify._src.fisher.covariance import cov2_variance
    from fisher_verify._src.fisher.psd import bias_variance_exact, psd_probability_bound, sample_psd
    from fisher_verify._src.fisher.tightness import tightness_sweep
    from fisher_verify._src.networks.highprec import mp_variance

    net, x = one_output_network("poisson")
    P = net.num_params
    J, H, I = np.ones((1, P)), np.zeros((1, P, P)), np.ones((1, 1))
    return [
        ("sample_estimators n", lambda v: sample_estimators(net, x, v)),
        ("sample_psd n", lambda v: sample_psd(net, x, v, 2)),
        ("sample_psd draws", lambda v: sample_psd(net, x, 2, v)),
        ("variance n", lambda v: fv.variance(net, x, n=v)),
        ("covariance_norm n", lambda v: fv.covariance_norm(net, x, which="I2", n=v)),
        ("cov2_variance n", lambda v: cov2_variance(H, I, v)),
        ("psd_probability_bound n", lambda v: psd_probability_bound(J, H, I, v)),
        ("bias_variance_exact n", lambda v: bias_variance_exact(net.family, np.zeros(1), v)),
        ("mp_variance n", lambda v: mp_variance(net, x, n=v)),
        ("tightness_sweep count", lambda v: tightness_sweep(v)),
        ("Network.random widths", lambda v: Network.random([2, v], family=fv.family("poisson"))),
        ("Family.sample n", lambda v: net.family.sample(np.zeros(1), v, 0)),
        ("analyze n", lambda v: fv.analyze(net, x, n=v)),
        ("check_fisher_estimator n", lambda v: fv.check_estimator(
            lambda g: np.eye(P), net, x, n=v, replications=4)),
        ("check_fisher_estimator replications", lambda v: fv.check_estimator(
            lambda g: np.eye(P), net, x, n=1, replications=v)),
    ]


@pytest.mark.parametrize("name", [name for name, _ in _count_takers()])
@pytest.mark.parametrize("value", [True, 2.5, "2", 0])
def test_every_count_refuses_bools_and_non_integers(name: str, value: object) -> None:
    call = dict(_count_takers())[name]
    with pytest.raises(FisherVerifyError, match=f"must be an integer >= 1, got {value!r}"):
        call(value)  # type: ignore[operator]
