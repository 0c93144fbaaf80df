"""K-FAC's exact cases (``ext-kfac``, :mod:`fisher_verify._src.fisher.kfac`) against independent
routes: the Fisher block from torch.func's Jacobian (eq-6), the flat-θ order of ``W_l`` read
off :meth:`Network.with_theta`, and per-label gradients in ``a_l`` by autograd, averaged over
every label with its probability ``p(y|x)``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

import fisher_verify as fv
from fisher_verify._src.fisher.kfac import (
    gradient_factor_estimate,
    gradient_factor_variance,
    kfac_block,
    kfac_factors,
    layer_slice,
    preactivation_jacobian,
)
from fisher_verify.errors import FisherVerifyError

RTOL = 1e-10


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(before)


CASES = [("bernoulli", {}, "tanh"), ("categorical", {"K": 3}, "sigmoid"),
         ("poisson", {}, "softplus")]


def _net(name: str, params: dict, act: str, M: int = 3, seed: int = 0) -> tuple[fv.Network, np.ndarray]:
    fam = fv.family(name, **params)
    rng = np.random.default_rng(seed)
    net = fv.Network.random((2, 3, 4, fam.dim), act, fam, 1.0, rng)
    return net, rng.normal(size=(M, 2))


def _close(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> None:
    scale = float(np.max(np.abs(expected)))
    assert scale > 0
    assert float(np.max(np.abs(actual - expected))) <= rtol * scale


def _rel_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_flat_theta_order_of_a_layer_is_row_major() -> None:
    """θ[offset_l + r (n_l + 1) + c] is W_l[r, c]: read off with_theta, not assumed."""
    net, _ = _net("bernoulli", {}, "tanh")
    for layer in range(net.depth):
        sl = layer_slice(net, layer)
        n_out, n_in1 = net.shapes[layer]
        assert sl.stop - sl.start == n_out * n_in1
        for r in range(n_out):
            for c in range(n_in1):
                th = np.zeros(net.num_params)
                th[sl.start + r * n_in1 + c] = 1.0
                W = net.with_theta(th).weights[layer]
                assert W[r, c] == 1.0 and np.count_nonzero(W) == 1


@pytest.mark.parametrize(("name", "params", "act"), CASES)
def test_one_input_kronecker_is_the_exact_block(name: str, params: dict, act: str) -> None:
    """M = 1: G_l ⊗ A_l is the W_l block of I(θ) from torch.func's Jacobian, entry by entry
    (G[r, s] A[c, d] at θ indices r(n_l+1)+c, s(n_l+1)+d); A ⊗ G is not."""
    net, X = _net(name, params, act)
    for m in range(len(X)):
        F = fv.exact_fisher(net, X[m], method="autodiff")
        for layer in range(net.depth):
            sl = layer_slice(net, layer)
            block = F[sl, sl]
            A, G = kfac_factors(net, X[m], layer)
            _close(kfac_block(net, X[m], layer), block)
            n_in1 = A.shape[0]
            r, s, c, d = G.shape[0] - 1, 0, n_in1 - 2, n_in1 - 1
            assert block[r * n_in1 + c, s * n_in1 + d] == pytest.approx(G[r, s] * A[c, d],
                                                                         rel=1e-10)
            if A.shape == G.shape:
                assert _rel_gap(np.kron(A, G), block) > 1e-3


def test_input_factor_is_the_mean_of_hbar_outer_products() -> None:
    """A_l from a plain forward pass: h̄_0 = (x, 1), h̄_1 = (σ(W_0 h̄_0), 1)."""
    net, X = _net("bernoulli", {}, "tanh")
    hb0 = np.column_stack([X, np.ones(len(X))])
    hb1 = np.column_stack([np.tanh(hb0 @ net.weights[0].T), np.ones(len(X))])
    _close(kfac_factors(net, X, 0)[0], hb0.T @ hb0 / len(X))
    _close(kfac_factors(net, X, 1)[0], hb1.T @ hb1 / len(X))


@pytest.mark.parametrize(("name", "params", "act"), CASES)
def test_several_inputs_is_an_approximation_exact_for_identical_inputs(
    name: str, params: dict, act: str
) -> None:
    """M = 3: the block is the mean of the per-input products and G ⊗ A differs from it (by
    far more than rounding); with identical inputs they agree."""
    net, X = _net(name, params, act)
    F = fv.exact_fisher(net, X, method="autodiff")
    same = np.repeat(X[1:2], 3, axis=0)
    F_same = fv.exact_fisher(net, same, method="autodiff")
    for layer in range(net.depth):
        sl = layer_slice(net, layer)
        per = [np.kron(*kfac_factors(net, X[m], layer)[::-1]) for m in range(len(X))]
        _close(np.mean(per, axis=0), F[sl, sl])
        assert _rel_gap(kfac_block(net, X, layer), F[sl, sl]) > 1e-6
        _close(kfac_block(net, same, layer), F_same[sl, sl])


def _grad_in_preactivation(net: fv.Network, x: np.ndarray, t: np.ndarray, layer: int) -> np.ndarray:
    """∂ℓ/∂a_l by autograd: a_l from the forward pass, then σ and the rest of the network."""
    h = x
    for i in range(layer):
        h = net.act.np_f(net.weights[i] @ np.append(h, 1.0))
    a = torch.tensor(net.weights[layer] @ np.append(h, 1.0), dtype=torch.float64,
                     requires_grad=True)
    theta = torch.tensor(net.theta, dtype=torch.float64)
    last = layer == net.depth - 1
    hL = a if last else net.torch_forward_from(theta, net.act.torch_f(a), layer + 1)
    ell = (torch.as_tensor(t) * hL).sum() - net.family.log_partition(hL)
    (g,) = torch.autograd.grad(ell, a)
    return g.numpy()


def _labels(fam: fv.Family) -> list[float]:
    return [0.0, 1.0] if fam.name == "bernoulli" else [float(k) for k in range(fam.dim)]


@pytest.mark.parametrize(("name", "params", "act"), CASES[:2])
def test_monte_carlo_gradient_factor_has_mean_g(name: str, params: dict, act: str) -> None:
    """Ĝ_l from one label is g gᵀ (g = ∂ℓ/∂a_l by autograd); over labels drawn from the model
    its exact mean (a finite sum weighted by p(y|x)) is G_l; a fixed data label's is not."""
    net, X = _net(name, params, act)
    fam = net.family
    ys = _labels(fam)
    for layer in range(net.depth):
        G = kfac_factors(net, X, layer)[1]
        mean = np.zeros_like(G)
        data = np.zeros_like(G)
        for m in range(len(X)):
            h = net.forward(X[m])
            p = np.exp(fam.log_density(np.array(ys), np.broadcast_to(h, (len(ys), h.size))))
            assert np.sum(p) == pytest.approx(1.0, rel=1e-12)
            for y, py in zip(ys, p, strict=True):
                t = fam.statistic(np.array([y]))
                g = _grad_in_preactivation(net, X[m], t[0], layer)
                one = gradient_factor_estimate(net, X[m], t, layer)
                _close(one, np.outer(g, g))
                mean += py * one / len(X)
            data += gradient_factor_estimate(net, X[m], fam.statistic(np.array([ys[-1]])),
                                             layer) / len(X)
        _close(mean, G)
        assert _rel_gap(data, G) > 1e-3  # the training-label fault is not unbiased


def test_preactivation_jacobian_includes_the_activation_derivative() -> None:
    """∂h_L/∂a_l by finite differences of a_l on the rest of the network (central, step 1e-6)."""
    net, X = _net("categorical", {"K": 3}, "tanh", M=1)
    Ja = preactivation_jacobian(net, X, 0)[0]
    a0 = net.weights[0] @ np.append(X[0], 1.0)
    theta = torch.tensor(net.theta, dtype=torch.float64)

    def rest(a: np.ndarray) -> np.ndarray:
        return net.torch_forward_from(theta, torch.tensor(np.tanh(a)), 1).numpy()

    eps = 1e-6
    fd = np.column_stack([(rest(a0 + eps * e) - rest(a0 - eps * e)) / (2 * eps)
                          for e in np.eye(a0.size)])
    _close(Ja, fd, rtol=1e-7)


@pytest.mark.parametrize("layer", [-1, 3, 1.0, True, "0"])
def test_bad_layer_is_refused_naming_it(layer: object) -> None:
    net, X = _net("bernoulli", {}, "tanh")
    with pytest.raises(FisherVerifyError, match=r"layer must be .* 0\.\.2"):
        kfac_factors(net, X, layer)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "params", "act"), CASES)
def test_kfac_gap_is_the_cross_covariance_of_the_factors(name: str, params: dict, act: str) -> None:
    """block − Ḡ ⊗ Ā = (1/M) Σ_m (G_m − Ḡ) ⊗ (A_m − Ā) (expand the mean of G_m ⊗ A_m), with the
    block from torch.func: zero exactly when A_m or G_m is the same for every input."""
    net, X = _net(name, params, act, M=4, seed=3)
    F = fv.exact_fisher(net, X, method="autodiff")
    for layer in range(net.depth):
        sl = layer_slice(net, layer)
        parts = [kfac_factors(net, X[m], layer) for m in range(len(X))]
        Abar = np.mean([a for a, _ in parts], axis=0)
        Gbar = np.mean([g for _, g in parts], axis=0)
        cross = np.mean([np.kron(g - Gbar, a - Abar) for a, g in parts], axis=0)
        diff = F[sl, sl] - kfac_block(net, X, layer)
        scale = float(np.max(np.abs(F[sl, sl])))
        assert float(np.max(np.abs(diff - cross))) <= RTOL * scale
        assert float(np.max(np.abs(cross))) > 1e-6 * scale


def test_constant_output_fisher_makes_the_last_layer_exact() -> None:
    """Unit-variance normal output: I(h_L) = 1, so G_{L-1} = 1 for every input while A_{L-1}
    varies; K-FAC is then exact for W_{L-1} at M = 3 distinct inputs, not for the hidden layers."""
    net, X = _net("normal", {}, "tanh")
    F = fv.exact_fisher(net, X, method="autodiff")
    last = net.depth - 1
    for m in range(len(X)):
        _close(kfac_factors(net, X[m], last)[1], np.ones((1, 1)))
    sl = layer_slice(net, last)
    _close(kfac_block(net, X, last), F[sl, sl])
    for layer in range(last):
        sl = layer_slice(net, layer)
        assert _rel_gap(kfac_block(net, X, layer), F[sl, sl]) > 1e-6


@pytest.mark.parametrize(("name", "params", "act"), CASES[:2])
def test_monte_carlo_gradient_factor_variance_is_thm4_in_the_preactivations(
    name: str, params: dict, act: str
) -> None:
    """Var(Ĝ_l)_rs with n labels per input, by enumeration of (g gᵀ)_rs over labels (g by
    autograd): (1/(M² n)) Σ_m Var_y(g_r g_s), thm-4 with J = ∂h_L/∂a_l."""
    net, X = _net(name, params, act, seed=5)
    fam = net.family
    ys = _labels(fam)
    for layer in range(net.depth):
        var = 0.0
        for m in range(len(X)):
            h = net.forward(X[m])
            p = np.exp(fam.log_density(np.array(ys), np.broadcast_to(h, (len(ys), h.size))))
            gg = np.array([np.outer(g, g) for g in (
                _grad_in_preactivation(net, X[m], fam.statistic(np.array([y]))[0], layer)
                for y in ys)])
            mu = np.einsum("y,yrs->rs", p, gg)
            var = var + np.einsum("y,yrs->rs", p, (gg - mu) ** 2) / len(X) ** 2
        for n in (1, 7):
            _close(gradient_factor_variance(net, X, layer, n), np.asarray(var) / n)


def test_variance_refuses_a_bad_count() -> None:
    net, X = _net("bernoulli", {}, "tanh")
    with pytest.raises(FisherVerifyError, match="number of draws per input n"):
        gradient_factor_variance(net, X, 0, 0)
