"""The mpmath route (lemma-13, eq-6, thm-4, thm-6 at high precision) against the float64
routes, a case where float64 loses digits and mpmath converges, and refusals."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify._src.networks.highprec import (
    mp_exact_fisher,
    mp_jacobian,
    mp_output_hessians,
    mp_variance,
)
from fisher_verify.errors import ShapeError, UnsupportedError

TOL = 1e-12

CASES = [
    ((2, 3, 1), "tanh", ("bernoulli", {})),
    ((2, 3, 3), "gelu", ("categorical", {"K": 3})),
    ((2, 3, 2), "softplus", ("normal_unknown_variance", {})),
    ((1, 2, 2, 1), "sigmoid", ("poisson", {})),
    ((2, 2, 1), "identity", ("normal", {})),
]


def _rel(mp: np.ndarray, f64: np.ndarray) -> float:
    """Normwise relative difference ``max |mp − f64| / max |mp|``, evaluated in mpmath."""
    a = np.asarray(mp, dtype=object).ravel()
    b = np.asarray(f64, dtype=float).ravel()
    assert a.shape == b.shape
    with mpmath.workdps(60):
        num = max(abs(a[k] - mpmath.mpf(b[k])) for k in range(a.size))
        den = max(abs(v) for v in a)
        return float(num / den)


def _net(widths: tuple[int, ...], act: str, fam: tuple[str, dict]) -> tuple[fv.Network, np.ndarray]:
    name, params = fam
    net = fv.Network.random(widths, act, fv.family(name, **params), rng=sum(widths))
    x = np.random.default_rng(len(widths)).normal(size=(3, widths[0]))
    return net.into_domain(x), x


@pytest.mark.parametrize(("widths", "act", "fam"), CASES)
def test_mp_route_agrees_with_float64(widths, act, fam) -> None:
    net, x = _net(widths, act, fam)
    J = mp_jacobian(net, x)
    assert J.shape == net.jacobian(x).shape and isinstance(J[0, 0, 0], mpmath.mpf)
    assert _rel(J, net.jacobian(x)) <= TOL
    assert _rel(mp_output_hessians(net, x), net.output_hessians(x)) <= TOL
    assert _rel(mp_exact_fisher(net, x), fv.exact_fisher(net, x)) <= TOL
    for est in (1, 2):
        assert _rel(mp_variance(net, x, f"I{est}", n=4), fv.variance(net, x, which=f"I{est}", n=4)) <= TOL


def test_single_input_shapes_and_batch_consistency() -> None:
    net, x = _net((2, 3, 3), "tanh", ("categorical", {"K": 3}))
    P = net.num_params
    J1 = mp_jacobian(net, x[0])
    H1 = mp_output_hessians(net, x[0])
    assert J1.shape == (3, P) and H1.shape == (3, P, P)
    assert all(a == b for a, b in zip(J1.ravel(), mp_jacobian(net, x)[0].ravel()))
    assert mp_exact_fisher(net, x[0]).shape == (P, P)
    # one input with N draws: the paper's thm-4 / thm-6 verbatim, Var scales as 1/N
    v1, v5 = mp_variance(net, x[0], "I2", n=1), mp_variance(net, x[0], "I2", n=5)
    with mpmath.workdps(60):
        assert max(abs(a - 5 * b) for a, b in zip(v1.ravel(), v5.ravel())) <= 1e-45 * max(abs(v) for v in v1.ravel())


def _cancelling_net() -> fv.Network:
    """h_L = A tanh(x) − A tanh(x + δ) + b ≈ 40 with A = 1e12, δ = 1e-10: float64's rounding of
    tanh (≈ 5e-17) is amplified by A into an absolute error ≈ 5e-5 in h_L, hence in
    I(h_L) = σ(h_L)σ(−h_L) ≈ e^{−40}, while mpmath evaluates the same float64 weights exactly."""
    A, delta = 1e12, 1e-10
    W0 = np.array([[1.0, 0.0], [1.0, delta]])
    W1 = np.array([[A, -A, 131.7]])
    return fv.Network.from_weights([W0, W1], "tanh", fv.family("bernoulli"))


def test_float64_loses_digits_mpmath_converges() -> None:
    net, x = _cancelling_net(), np.array([0.3])
    h = float(net.forward(x)[0])
    assert 39.0 < h < 41.0
    F64 = fv.exact_fisher(net, x)
    F50 = mp_exact_fisher(net, x, dps=50)
    F100 = mp_exact_fisher(net, x, dps=100)
    b = net.num_params - 1  # last bias: I(θ)_bb = I(h_L) exactly
    with mpmath.workdps(110):
        assert abs(F100[b, b] / mpmath.exp(-40) - 1) < 1  # I(h_L) ≈ e^-40
        err64 = abs(mpmath.mpf(F64[b, b]) - F100[b, b]) / F100[b, b]
        err50 = abs(F50[b, b] - F100[b, b]) / F100[b, b]
        assert err64 > 1e-7  # float64: only ~5 correct digits
        assert err50 < 1e-35  # dps=50 agrees with dps=100 far beyond float64
    assert _rel(F100, F64) > 1e-7
    with mpmath.workdps(110):
        flat50, flat100 = F50.ravel(), F100.ravel()
        num = max(abs(flat50[k] - flat100[k]) for k in range(flat50.size))
        assert num / max(abs(v) for v in flat100) < 1e-35


def test_float64_underflow_mpmath_exact() -> None:
    """h_L = 800: float64 I(h_L) = e^-800 underflows to 0; mpmath keeps it."""
    net = fv.Network.from_weights([np.array([[0.0, 800.0]])], "identity", fv.family("bernoulli"))
    x = np.array([1.0])
    assert fv.exact_fisher(net, x)[1, 1] == 0.0
    F = mp_exact_fisher(net, x, dps=50)
    with mpmath.workdps(50):
        expect = mpmath.exp(-800) / (1 + mpmath.exp(-800)) ** 2
        assert abs(F[1, 1] / expect - 1) < mpmath.mpf(10) ** -45
        assert F[0, 0] == F[1, 1]  # x = 1: J = (x, 1)


def test_relu_hessians_away_from_kinks_and_refused_at_one() -> None:
    """thm-3-ae: mpmath output Hessians of a ReLU network agree with the float64 routes away
    from the kinks (σ'' = 0, cross-layer blocks only) and are refused at a kink."""
    net = fv.Network.random((2, 3, 2, 1), "relu", fv.family("bernoulli"), rng=4)
    x = np.array([0.5, -0.2])
    assert net.kinks(x) == []
    H = mp_output_hessians(net, x)
    assert _rel(H, net.output_hessians(x, method="autodiff")) <= TOL
    assert _rel(mp_variance(net, x, which="I2"), fv.variance(net, x, which="I2")) <= TOL
    weights = [W.copy() for W in net.weights]
    weights[0][2, -1] = -float(weights[0][2, :-1] @ x)
    kinked = fv.Network(weights, "relu", net.family)
    with pytest.raises(UnsupportedError, match="kink .* input 0: pre-activation 2 of layer 1"):
        mp_output_hessians(kinked, x)
    with pytest.raises(UnsupportedError, match="thm-6"):
        mp_variance(kinked, x, which="I2")
    # first-order quantities exist for ReLU (sigma'(0) = 0 convention) and agree
    assert _rel(mp_jacobian(net, x), net.jacobian(x)) <= TOL
    assert _rel(mp_exact_fisher(net, x), fv.exact_fisher(net, x)) <= TOL


def test_bad_arguments_refused() -> None:
    net, x = _net((2, 3, 1), "tanh", ("bernoulli", {}))
    with pytest.raises(ShapeError):
        mp_variance(net, x, which=3)  # type: ignore[arg-type]
    with pytest.raises(ShapeError):
        mp_variance(net, x, which="I1", n=0)
    with pytest.raises(ShapeError):
        mp_jacobian(net, x, dps=5)
    with pytest.raises(ShapeError):
        mp_jacobian(net, np.zeros(5))
    big = fv.Network.random((30, 20, 1), "tanh", fv.family("bernoulli"), rng=0)
    with pytest.raises(UnsupportedError, match="MAX_MP_PARAMS"):
        mp_jacobian(big, np.zeros(30))
