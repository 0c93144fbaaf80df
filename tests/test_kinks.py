"""thm-3-ae: a pre-activation counts as at a kink exactly when it lies within the rounding
bound of its own computation (fisher_verify/_src/networks/kinks.py), pinned here to that formula."""

from __future__ import annotations

import numpy as np

import fisher_verify as fv
from fisher_verify._src.networks.activations import get_activation
from fisher_verify._src.networks.kinks import find_kinks

U = 2.0**-53


def _gamma(n: int) -> float:
    return n * U / (1 - n * U)


def test_kink_radius_is_the_dot_product_rounding_bound() -> None:
    """a = 1·x + b with x = 1 and b = −1 + δ is computed exactly (Sterbenz) as δ; its rounding
    bound is γ₂ (|1·1| + |b|). δ below the bound is a kink, δ above it is not."""
    relu = get_activation("relu")
    X = np.array([[1.0]])
    for k in (1, 2, 3, 4, 8, 16):
        delta = k * U
        W0 = np.array([[1.0, -1.0 + delta]])
        W1 = np.array([[1.0, 0.0]])
        bound = _gamma(2) * (1.0 + abs(-1.0 + delta))
        found = find_kinks([W0, W1], relu, X)
        assert (len(found) == 1) == (delta <= bound), (k, found)
        if found:
            assert found[0].value == delta and found[0].tolerance == bound
            assert (found[0].input, found[0].layer, found[0].unit) == (0, 0, 0)


def test_kink_radius_carries_the_layer_below() -> None:
    """Layer 2's bound adds |W_1⁻| times layer 1's bound (ReLU is 1-Lipschitz and exact)."""
    relu = get_activation("relu")
    X = np.array([[3.0, -2.0]])
    W0 = np.array([[0.7, 0.2, 0.1], [-0.3, 0.5, 0.9]])
    h1 = np.maximum(W0[:, :2] @ X[0] + W0[:, 2], 0.0)
    e1 = _gamma(3) * (np.abs(W0[:, :2]) @ np.abs(X[0]) + np.abs(W0[:, 2]))
    w1 = np.array([2.0, -4.0])
    b1 = -float(w1 @ h1)  # unit 0 of layer 2 lands on the kink up to rounding
    W1 = np.array([[w1[0], w1[1], b1]])
    W2 = np.array([[1.0, 0.0]])
    found = find_kinks([W0, W1, W2], relu, X)
    bound2 = _gamma(3) * (np.abs(w1) @ h1 + abs(b1)) + np.abs(w1) @ e1
    assert [(k.input, k.layer, k.unit) for k in found] == [(0, 1, 0)]
    assert np.isclose(found[0].tolerance, bound2, rtol=1e-12, atol=0)


def test_no_kinks_for_smooth_activations_and_generic_inputs() -> None:
    net = fv.Network.random([3, 5, 4, 2], "relu", fv.family("categorical", K=2), rng=1)
    X = np.random.default_rng(2).normal(size=(50, 3))
    assert net.kinks(X) == []
    smooth = fv.Network(net.weights, "tanh", net.family)
    assert smooth.kinks(np.zeros((2, 3))) == []
