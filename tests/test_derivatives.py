"""Network derivatives two ways (lemma-13 analytic vs torch.func) and an mpmath reference."""

from __future__ import annotations

import mpmath
import numpy as np
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fisher_verify as fv
from fisher_verify import Network
from fisher_verify._src.expect.relu import relu_report
from fisher_verify._src.networks.activations import ACTIVATIONS
from fisher_verify._src.testing.strategies import (
    bernoulli_half_network,
    one_output_network,
    small_networks,
)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), 1e-300))


@given(small_networks())
@example(bernoulli_half_network())
@example(one_output_network())
def test_analytic_matches_autodiff(net_x: tuple[Network, np.ndarray]) -> None:
    net, x = net_x
    J = net.jacobian(x)
    assert J.shape == np.shape(x)[:-1] + (net.family.dim, net.num_params)
    assert _rel(J, net.jacobian(x, method="autodiff")) <= 1e-10
    H = net.output_hessians(x)
    assert H.shape == J.shape + (net.num_params,)
    H_ad = net.output_hessians(x, method="autodiff")
    assert np.max(np.abs(H - H_ad)) <= 1e-10 * max(np.max(np.abs(H_ad)), 1.0)
    np.testing.assert_array_equal(H, np.swapaxes(H, -1, -2))


def _mp_forward(net: Network, theta: list, x: np.ndarray) -> list:
    f = ACTIVATIONS[net.activation].mp_f
    h = [mpmath.mpf(float(v)) for v in x]
    pos = 0
    for layer, (rows, cols) in enumerate(net.shapes):
        a = []
        for _ in range(rows):
            w = theta[pos : pos + cols]
            pos += cols
            a.append(mpmath.fsum(wi * hi for wi, hi in zip(w[:-1], h, strict=True)) + w[-1])
        h = a if layer == net.depth - 1 else [f(v) for v in a]
    return h


@settings(max_examples=6)
@given(
    small_networks(
        families_=st.sampled_from([fv.family("bernoulli"), fv.family("normal")]),
        max_depth=2,
        max_width=2,
        max_inputs=1,
    )
)
def test_mpmath_finite_differences(net_x: tuple[Network, np.ndarray]) -> None:
    """Central differences at mp.dps = 40: the reference for J and ∂²h_L on tiny networks."""
    net, x = net_x
    x1 = np.atleast_2d(x)[0]
    P = net.num_params
    with mpmath.workdps(40):
        theta = [mpmath.mpf(float(v)) for v in net.theta]
        e1, e2 = mpmath.mpf("1e-15"), mpmath.mpf("1e-10")

        def f(shifts: dict[int, object]) -> object:
            th = list(theta)
            for i, s in shifts.items():
                th[i] += s
            return _mp_forward(net, th, x1)[0]

        J = [(f({i: e1}) - f({i: -e1})) / (2 * e1) for i in range(P)]
        H = np.zeros((P, P))
        for i in range(P):
            for j in range(i, P):
                if i == j:
                    v = (f({i: 2 * e2}) - 2 * f({}) + f({i: -2 * e2})) / (4 * e2**2)
                else:
                    v = (
                        f({i: e2, j: e2})
                        - f({i: e2, j: -e2})
                        - f({i: -e2, j: e2})
                        + f({i: -e2, j: -e2})
                    ) / (4 * e2**2)
                H[i, j] = H[j, i] = float(v)
        J_ref = np.array([float(v) for v in J])
    np.testing.assert_allclose(net.jacobian(x1)[0], J_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.output_hessians(x1)[0], H, rtol=1e-9, atol=1e-12)


@given(small_networks(max_inputs=2))
def test_lemma13_B_is_output_jacobian_wrt_layer(net_x: tuple[Network, np.ndarray]) -> None:
    """B_l = ∂h_L/∂h_l (lemma-13), against torch.func.jacrev from layer l."""
    net, x = net_x
    X = np.atleast_2d(x)
    q = net.lemma13(X)
    theta = torch.as_tensor(net.theta)
    for layer in range(net.depth + 1):
        for m in range(X.shape[0]):
            h = q.h(layer)[m]
            ref = torch.func.jacrev(lambda v, lay=layer: net.torch_forward_from(theta, v, lay))(
                torch.as_tensor(h)
            )
            np.testing.assert_allclose(q.B[layer][m], ref.numpy(), rtol=1e-10, atol=1e-13)


def test_relu_hessian_structure_and_kink() -> None:
    """ReLU: within-layer Hessian blocks vanish, cross-layer ones do not; at a kink the
    one-sided Jacobians differ and both routes use relu'(0) = 0 (the left derivative)."""
    fam = fv.family("poisson")
    W0 = np.array([[0.5, -0.3, 0.0], [0.2, 0.4, 0.1], [-0.6, 0.3, 0.2]])
    W1 = np.array([[0.7, -0.5, 0.4, -0.2]])
    net = Network([W0, W1], "relu", fam)
    x_kink = np.zeros(2)  # pre-activation of unit 0 is exactly 0
    rep = relu_report(net, x_kink)
    assert rep.kinks == [(0, 0, 0)]
    assert rep.kink_jacobian_gap > 0.1
    assert rep.autodiff_is_left_derivative
    # both routes take the same one-sided derivative: they agree to rounding (the two sides
    # differ by more than 0.1, see kink_jacobian_gap), not bit for bit (BLAS kernels differ)
    assert _rel(net.jacobian(x_kink), net.jacobian(x_kink, method="autodiff")) <= 1e-13
    generic = relu_report(net, np.array([[0.9, -0.4], [0.3, 1.1]]))
    assert generic.kinks == [] and not generic.is_c2
    assert generic.within_layer_hessian_max == 0.0
    assert generic.cross_layer_hessian_max > 0.1  # Î₂ ≠ I(θ) in general for ReLU, depth 2
    assert generic.thm3_gap <= 1e-12  # but E[−∂²ℓ] = I(θ) away from kinks
