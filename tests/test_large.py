"""The large-network path (fisher_verify._src.models.mlp) against the dense small-P route.

Every quantity equals the dense route (exact_fisher, variance, covariance_norm, thm7_sides,
thm8_sides, bounds) to 1e-10 relative (max-abs over the array) in float64 on Hypothesis-drawn
C² networks of every family; float32 agrees with float64 to FLOAT32_RTOL; the categorical
K = 50 route never forms a K⁴ tensor; bad input raises one-line errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given

import fisher_verify as fv
from fisher_verify._src.families import onehot
from fisher_verify._src.fisher.bounds import _moments, thm7_sides, thm8_sides
from fisher_verify._src.models import mlp, mlp_bounds, mlp_norms
from fisher_verify._src.models.device import default_device
from fisher_verify._src.testing.strategies import C2_ACTIVATIONS, small_networks
from fisher_verify.errors import DomainError, ShapeError, UnsupportedError

RTOL = 1e-10
#: float32 vs float64: relative (to the array's max |value|) error allowed. float32 has
#: eps = 1.2e-7; these quantities are sums of 4th powers of products of a few factors, which
#: amplifies relative rounding by ≲ 10²–10³ on the small well-conditioned networks used.
FLOAT32_RTOL = 1e-4

c2_networks = small_networks(activations=C2_ACTIVATIONS)


def _rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-300)
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


def _close(a: Any, b: Any, rtol: float = RTOL) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b), initial=0.0) <= rtol * max(np.max(np.abs(b), initial=0.0), 1e-280)


@given(c2_networks)
def test_diagonals_equal_dense_route(case: tuple[fv.Network, np.ndarray]) -> None:
    net, x = case
    n = 3
    d = mlp.diagonals(net, x, n, device="cpu")
    _close(d.fisher, np.diag(fv.exact_fisher(net, x)))
    _close(d.variance_1, fv.variance(net, x, which="I1", n=n, diagonal=True))
    _close(d.variance_2, fv.variance(net, x, which="I2", n=n, diagonal=True))
    H = net.output_hessians(np.atleast_2d(x))
    _close(mlp.output_hessian_diagonals(net, x, device="cpu"),
           np.diagonal(H, axis1=-2, axis2=-1))
    V = fv.variance(net, x, which="I1", n=n)
    off = net.offsets
    layer = net.depth - 1
    blk = V[off[layer] : off[layer + 1], off[layer] : off[layer + 1]]
    _close(mlp.variance1_block(net, x, layer, n, device="cpu"), blk)


@given(c2_networks)
def test_norms_and_bounds_equal_dense_route(case: tuple[fv.Network, np.ndarray]) -> None:
    net, x = case
    n = 2
    q1 = _moments(net, x, 1)
    lhs7, rhs7, spec7 = thm7_sides(q1["J"], q1["K"], q1["I"], n)
    b7 = mlp_bounds.thm7_large(net, x, n, device="cpu")
    _close(b7.lhs, lhs7)
    _close(b7.rhs, rhs7)
    _close(b7.details["spectral_variant"], spec7, 1e-8)  # eigvalsh vs np.linalg.norm(·, 2)
    _close(mlp_bounds.covariance1_norm(net, x, n, device="cpu"), fv.covariance_norm(net, x, which="I1", n=n))
    q2 = _moments(net, x, 2)
    lhs8, rhs8 = thm8_sides(q2["H"], q2["I"], n)
    b8 = mlp_bounds.thm8_large(net, x, n, device="cpu")
    assert b8.details["exact"] and b8.details["method"] == "exact"
    _close(b8.lhs, lhs8)
    _close(b8.rhs, rhs8)
    est = mlp_bounds.covariance2_norm(net, x, n, device="cpu")
    assert est.exact and est.stderr == 0.0
    _close(est.value, fv.covariance_norm(net, x, which="I2", n=n))


@given(c2_networks)
def test_closed_form_traces_equal_dense_hessians(case: tuple[fv.Network, np.ndarray]) -> None:
    """tr(H^α_m H^β_m') in closed form (no P×P) = the dense output_hessians route, 1e-10."""
    net, x = case
    X = np.atleast_2d(x)
    H = net.output_hessians(X).reshape(-1, net.num_params, net.num_params)
    ref = np.einsum("ipq,jqp->ij", H, H)
    tr = mlp_bounds.hessian_traces(net, x, method="exact", device="cpu")
    assert tr.exact and tr.method == "exact" and tr.samples is None
    _close(tr.mean.numpy(), ref)
    auto = mlp_bounds.hessian_traces(net, x, device="cpu", exact_limit=0)  # closed form at any P
    assert auto.method == "exact"
    _close(auto.mean.numpy(), ref)


def test_closed_form_matches_hvp_basis_deep() -> None:
    """Five layers (full Γ_l, three-step B_{kl}), several inputs and outputs: closed form = HVPs."""
    net = fv.Network.random([3, 4, 3, 5, 4, 3], "softplus", fv.family("categorical", K=3), rng=13)
    X = np.random.default_rng(14).normal(size=(3, 3))
    ex = mlp_bounds.hessian_traces(net, X, method="exact", device="cpu")
    hv = mlp_bounds.hessian_traces(net, X, method="hvp", device="cpu")
    assert hv.method == "hvp" and hv.exact and hv.probes == net.num_params
    _close(ex.mean.numpy(), hv.mean.numpy())
    # auto falls back to HVPs when the closed form is refused memory and P is small
    fb = mlp_bounds.hessian_traces(net, X, device="cpu", structured_limit=0)
    assert fb.method == "hvp"
    b = mlp_bounds.thm8_large(net, X, 2, device="cpu", structured_limit=0, exact_limit=0, probes=4)
    assert b.details["method"] == "hutchinson" and not b.details["exact"]
    assert mlp_bounds.structured_elements(net, 3) >= (3 * 3) ** 2


def test_bounds_object_agrees() -> None:
    net = fv.Network.random([3, 4, 3, 2], "tanh", fv.family("categorical", K=2), rng=3)
    X = np.random.default_rng(4).normal(size=(3, 3))
    b = fv.bounds(net, X, n=5)
    b7 = mlp_bounds.thm7_large(net, X, 5, device="cpu")
    b8 = mlp_bounds.thm8_large(net, X, 5, device="cpu")
    for mine, ref in ((b7, b.thm7), (b8, b.thm8)):
        assert mine.id == ref.id and mine.holds and ref.holds
        _close(mine.lhs, ref.lhs)
        _close(mine.rhs, ref.rhs)


def test_deep_network_full_hessian_recursion() -> None:
    """Four hidden layers: the full Γ_l matrices of the recursion are exercised."""
    net = fv.Network.random([3, 4, 3, 5, 4, 2], "gelu", fv.family("categorical", K=2), rng=11)
    X = np.random.default_rng(12).normal(size=(2, 3))
    H = net.output_hessians(X)
    _close(mlp.output_hessian_diagonals(net, X, device="cpu"),
           np.diagonal(H, axis1=-2, axis2=-1))
    _close(mlp.variance2_diagonal(net, X, 4, device="cpu", batch_size=1),
           fv.variance(net, X, which="I2", n=4, diagonal=True))


def test_float32_against_float64() -> None:
    net = fv.Network.random([5, 8, 6, 3], "tanh", fv.family("categorical", K=3), rng=5)
    X = np.random.default_rng(6).normal(size=(4, 5))
    d64 = mlp.diagonals(net, X, 2, device="cpu", dtype=torch.float64)
    d32 = mlp.diagonals(net, X, 2, device="cpu", dtype=torch.float32)
    assert d32.fisher is not None and d32.fisher.dtype == np.float32
    for key in ("fisher", "variance_1", "variance_2"):
        assert _rel(getattr(d32, key), getattr(d64, key)) <= FLOAT32_RTOL, key
    for fn in (mlp_bounds.thm7_large, mlp_bounds.thm8_large):
        b64, b32 = fn(net, X, 2, device="cpu"), fn(net, X, 2, device="cpu", dtype=torch.float32)
        assert _rel(b32.lhs, b64.lhs) <= FLOAT32_RTOL
        assert _rel(b32.rhs, b64.rhs) <= FLOAT32_RTOL


def _categorical50() -> tuple[fv.Network, np.ndarray]:
    net = fv.Network.random([4, 6, 50], "tanh", fv.family("categorical", K=50), rng=21)
    return net, np.random.default_rng(22).normal(size=(2, 4))


def test_categorical_k50_uses_the_ok_contraction(monkeypatch: pytest.MonkeyPatch) -> None:
    net, X = _categorical50()
    fam = net.family
    assert not fam.uses_symbolic_kernels
    n = 3
    # definition route on the finite support: t − η = e_k − p with probability p_k
    J = net.jacobian(X)
    P = torch.softmax(torch.as_tensor(net.forward(X)), -1).numpy()
    var_ref = np.zeros(net.num_params)
    S_all = []
    for m in range(X.shape[0]):
        S = np.eye(50) - P[m][None, :]
        g = S @ J[m]  # (K, P): scores at each support point
        S_all.append((P[m], g))
        var_ref += P[m] @ g**4 - (P[m] @ g**2) ** 2
    var_ref /= X.shape[0] ** 2 * n
    # ‖Cov(Î₁)‖_F² = (1/(M²N))² Σ_{m,m'} Σ_{k,k'} p_k p'_k' ⟨g gᵀ − F, g' g'ᵀ − F'⟩²
    sq = 0.0
    for p1, g1 in S_all:
        F1 = g1.T @ (p1[:, None] * g1)
        for p2, g2 in S_all:
            F2 = g2.T @ (p2[:, None] * g2)
            inner = ((g1 @ g2.T) ** 2 - np.einsum("kp,pq,kq->k", g2, F1, g2)[None, :]
                     - np.einsum("kp,pq,kq->k", g1, F2, g1)[:, None] + np.sum(F1 * F2))
            sq += float(p1 @ inner**2 @ p2)
    norm_ref = np.sqrt(sq) / (X.shape[0] ** 2 * n)
    calls = {"direct": 0}
    original = onehot.onehot_excess4_diagonal

    def spy(*args: Any) -> Any:
        calls["direct"] += 1
        return original(*args)

    def refuse(*_: object, **__: object) -> object:
        raise AssertionError("a dense K^4 tensor or the set-partition route was requested")

    monkeypatch.setattr(onehot, "onehot_excess4_diagonal", spy)
    monkeypatch.setattr(fam, "kappa4_contract", refuse)
    monkeypatch.setattr(fam, "kappa4", refuse)
    monkeypatch.setattr(fam, "central_moment4", refuse)
    d = mlp.diagonals(net, X, n, device="cpu")
    assert calls["direct"] >= net.depth
    _close(d.variance_1, var_ref)
    _close(d.fisher, np.diag(fv.exact_fisher(net, X)))
    _close(d.variance_2, fv.variance(net, X, which="I2", n=n, diagonal=True))
    _close(mlp_bounds.covariance1_norm(net, X, n, device="cpu"), norm_ref)


def test_hutchinson_is_a_labelled_estimate_near_exact() -> None:
    net = fv.Network.random([3, 5, 4, 2], "tanh", fv.family("categorical", K=2), rng=31)
    X = np.random.default_rng(32).normal(size=(2, 3))
    exact = mlp_bounds.thm8_large(net, X, 2, device="cpu", method="exact")
    est = mlp_bounds.thm8_large(net, X, 2, device="cpu", method="hutchinson", probes=200, seed=1)
    assert est.details["exact"] is False and "ESTIMATE" in est.description
    lhs, rhs = est.details["lhs_estimate"], est.details["rhs_estimate"]
    assert not lhs.exact and lhs.stderr > 0 and "ESTIMATE" in str(lhs)
    # deterministic seed; 5 standard errors
    assert abs(lhs.value - exact.lhs) <= 5 * lhs.stderr
    assert abs(rhs.value - exact.rhs) <= 5 * rhs.stderr
    auto = mlp_bounds.covariance2_norm(net, X, 2, device="cpu", exact_limit=10, structured_limit=0,
                                  probes=8)
    assert auto.method == "hutchinson" and not auto.exact


def test_bad_input_errors() -> None:
    net = fv.Network.random([3, 4, 2, 1], "relu", fv.family("bernoulli"), rng=6)
    x = np.ones(3)
    # ReLU away from its kinks (thm-3-ae): the large path equals the dense thm-6 quantities;
    # the diagonal of Var(Î₂) vanishes (d24-pwl), the norm does not (cross-layer blocks)
    assert net.kinks(x) == []
    dense = fv.variance(net, x, which="I2")
    assert np.max(np.abs(np.diag(dense))) <= 1e-14 * np.max(dense) and np.max(dense) > 0.1
    assert np.max(np.abs(mlp.variance2_diagonal(net, x, device="cpu"))) <= 1e-14 * np.max(dense)
    _close(mlp_bounds.thm8_large(net, x, device="cpu").lhs, fv.covariance_norm(net, x, which="I2", n=1))
    weights = [W.copy() for W in net.weights]
    weights[0][2, -1] = -float(weights[0][2, :-1] @ x)
    kinked = fv.Network(weights, "relu", net.family)
    with pytest.raises(UnsupportedError, match="input 0: pre-activation 2 of layer 1"):
        mlp.variance2_diagonal(kinked, x, device="cpu")
    with pytest.raises(UnsupportedError, match="input 0: pre-activation 2 of layer 1"):
        mlp_bounds.thm8_large(kinked, x, device="cpu")
    assert mlp.fisher_diagonal(net, x, device="cpu").shape == (net.num_params,)  # ReLU ok here
    with pytest.raises(ShapeError, match="input x must have shape"):
        mlp.fisher_diagonal(net, np.ones(4), device="cpu")
    with pytest.raises(ShapeError, match="n must be an integer >= 1"):
        mlp.variance1_diagonal(net, x, 0, device="cpu")
    with pytest.raises(UnsupportedError, match="dtype"):
        mlp.fisher_diagonal(net, x, device="cpu", dtype=torch.float16)
    with pytest.raises(ShapeError, match="layer must be"):
        mlp.variance1_block(net, x, 5, device="cpu")
    with pytest.raises(ShapeError, match="net must be"):
        mlp.fisher_diagonal("not a network", x, device="cpu")
    tnet = fv.Network.random([3, 4, 1], "tanh", fv.family("bernoulli"), rng=1)
    with pytest.raises(ShapeError, match="method"):
        mlp_bounds.hessian_traces(tnet, x, method="nope", device="cpu")  # type: ignore[arg-type]
    with pytest.raises(UnsupportedError, match="kink of relu"):
        mlp_bounds.hessian_traces(kinked, x, method="exact", device="cpu")
    pnet = fv.Network.from_weights([np.array([[1.0, 1.0, 1.0, 5.0]])], family=fv.family("exponential"))
    with pytest.raises(DomainError):
        mlp.fisher_diagonal(pnet, x, device="cpu")


def test_default_device() -> None:
    assert default_device() == ("cuda" if torch.cuda.is_available() else "cpu")


def test_into_domain_helper_networks_run_on_default_device() -> None:
    net = fv.Network.random([2, 3, 1], "tanh", fv.family("poisson"), rng=2).into_domain(np.ones((1, 2)))
    d = mlp.diagonals(net, np.ones((1, 2)))
    assert d.device.startswith(default_device())


# --- failure paths ------------------------------------------------------------------------------


def test_torch_module_is_refused_with_the_way_in() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(fv.FisherVerifyError, match="family: a Sequential needs its output family"):
        fv.analyze(model, np.ones(3))  # the one analyze takes any module, with its family
    for call in (lambda: mlp.diagonals(model, np.ones(3), device="cpu"),
                 lambda: mlp_bounds.thm7_large(model, np.ones(3), device="cpu")):
        with pytest.raises(ShapeError, match="Network.from_torch"):
            call()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_unavailable_device_is_refused_naming_the_available_ones() -> None:
    net = fv.Network.random([3, 4, 1], "tanh", family=fv.family("bernoulli"), rng=1)
    bad = ["nope"] + ([] if torch.cuda.is_available() else ["cuda", "cuda:0"])
    bad.append(f"cuda:{torch.cuda.device_count()}")
    for device in bad:
        with pytest.raises(UnsupportedError, match="available: cpu"):
            mlp.fisher_diagonal(net, np.ones(3), device=device)


# --- κ₄ in direct form ----------------------------------------------------------------------------


def _kappa4_set_partition(fam: Any, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """κ₄[u⁴] by the reference routes: the one-hot set-partition formula for categorical
    components, the family's dense symbolic κ₄ kernel otherwise (blocks assembled by Family)."""
    if isinstance(fam, fv._src.families.family.CategoricalFamily):
        p = torch.softmax(h, -1)[:, None, :]
        return onehot.onehot_cumulant_contract(p, [u, u, u, u])
    k4 = torch.as_tensor(fam.kappa4(h.numpy()))
    return torch.einsum("mabcd,mra,mrb,mrc,mrd->mr", k4, u, u, u, u)


@pytest.mark.parametrize("fam", [
    fv.family("categorical", K=2), fv.family("categorical", K=7), fv.family("categorical", K=50),
    fv.family("bernoulli"), fv.family("poisson"), fv.family("normal_unknown_variance"),
    fv.family("product", components=[fv.family("categorical", K=3), fv.family("bernoulli")]),
])
def test_kappa4_direct_form_equals_set_partition_route(fam: Any) -> None:
    rng = np.random.default_rng(fam.dim)
    h = torch.as_tensor(rng.normal(size=(6, fam.dim)) * 3.0)
    if fam.label == "normal_unknown_variance":
        h[:, 1] = -h[:, 1].abs() - 0.5
    u = torch.as_tensor(rng.normal(size=(6, 5, fam.dim)))
    mine = mlp.kappa4_diagonal(fam, h, u)
    if getattr(fam, "components", None):  # the product's own dense kernel: assembled blocks
        ref = _kappa4_set_partition(fam.components[0], h[:, :3], u[..., :3]) \
            + _kappa4_set_partition(fam.components[1], h[:, 3:], u[..., 3:])
        _close(mine, _kappa4_set_partition(fam, h, u), 1e-12)
    else:
        ref = _kappa4_set_partition(fam, h, u)
    _close(mine, ref, 1e-12)
    if isinstance(fam, fv._src.families.family.CategoricalFamily):
        p = torch.softmax(h, -1)[:, None, :]
        c4, quad = onehot.onehot_excess4_diagonal(p, u)
        I = onehot.onehot_cumulant_contract(p, [u, u])
        _close(quad, I, 1e-12)
        _close(c4, ref + 2 * I * I, 1e-12)
        v = torch.as_tensor(rng.normal(size=(6, 5, fam.dim)))
        mixed = onehot.onehot_cumulant_contract(p, [u, v, u, v]) \
            + onehot.onehot_cumulant_contract(p, [u, u]) * onehot.onehot_cumulant_contract(p, [v, v]) \
            + onehot.onehot_cumulant_contract(p, [u, v]) ** 2
        _close(onehot.onehot_excess4_mixed(p, u, v), mixed, 1e-12)


# --- depth: diag Γ without full Hessians --------------------------------------------------------


def _dense_output_hessian_diagonals(net: fv.Network, X: np.ndarray) -> np.ndarray:
    """∂²h^α/∂θ_i² by torch.func (jacfwd of jacrev of the flat-θ forward): (M, n_L, P)."""
    from torch.func import hessian

    s = mlp._setup(net, X, "cpu", None)
    theta = torch.cat([W.reshape(-1) for W in s.weights])
    H = hessian(lambda t: mlp_bounds._batched_forward(s, t))(theta)  # (M, n_L, P, P)
    return torch.diagonal(H, dim1=-2, dim2=-1).numpy()


@given(small_networks(activations=C2_ACTIVATIONS, max_depth=6, max_width=4, max_inputs=2))
def test_gamma_diagonals_without_full_hessians(case: tuple[fv.Network, np.ndarray]) -> None:
    """Jacobian route = full-matrix recursion = dense torch.func Hessians, 1e-12, 1–5 hidden layers."""
    net, x = case
    X = np.atleast_2d(x)
    s = mlp._setup(net, X, "cpu", None)
    q = mlp._forward_backward(s, s.X)
    jac = mlp._gamma_diagonals_jacobian(s, q)
    rec = mlp._gamma_diagonals_recursive(s, q)
    for a, b in zip(jac, rec):
        _close(a.numpy(), b.numpy(), 1e-12)
    _close(mlp.output_hessian_diagonals(net, X, device="cpu"),
           _dense_output_hessian_diagonals(net, X), 1e-12)


def test_gamma_route_costs_pick_the_jacobians_at_depth() -> None:
    jac, rec = mlp._gamma_costs([784, 300, 300, 300, 10])
    assert jac * 10 <= rec  # at least n_L = 10 times cheaper on the deep row of the issue
    assert mlp._gamma_costs([784, 128, 10]) == (0, 0)
    jac, rec = mlp._gamma_costs([784, 1000, 1000, 10])  # no full Γ on either route
    assert jac == rec == 10 * 1000 * 1000
    jac, rec = mlp._gamma_costs([4] + [3] * 30 + [1])  # very deep, one output: recursion
    assert rec < jac


def test_batches_follow_the_memory_budget() -> None:
    net = fv.Network.random([785, 12, 3], "tanh", fv.family("categorical", K=3), rng=2)
    X = np.random.default_rng(3).normal(size=(40, 785))
    s = mlp._setup(net, X, "cpu", None)
    per = mlp._diagonal_elements(s, True, True, True)
    assert per < 3 * 785 * 785  # no input-width-squared Hessian is formed, none is counted
    sizes = [len(c) for c in mlp._chunks(s, per, None, 1 << 20)]
    assert sum(sizes) == 40 and max(sizes) == max(1, (1 << 20) // (8 * per))
    ref = mlp.diagonals(net, X, 2, device="cpu", batch_size=40)
    small = mlp.diagonals(net, X, 2, device="cpu", memory_budget=1 << 20)
    for key in ("fisher", "variance_1", "variance_2"):
        _close(getattr(small, key), getattr(ref, key), 1e-12)
    with pytest.raises(ShapeError, match="memory_budget"):
        mlp.diagonals(net, X, device="cpu", memory_budget=10)
    with pytest.raises(ShapeError, match="batch_size"):
        mlp.diagonals(net, X, device="cpu", batch_size=0)


# --- the norms at data-set scale: streamed, costed, sampled ---------------------------------------


@given(small_networks(activations=C2_ACTIVATIONS, max_depth=4, max_width=4, max_inputs=3))
def test_streamed_norms_over_small_blocks_equal_dense_route(
        case: tuple[fv.Network, np.ndarray]) -> None:
    """Block pairs of 1 and 2 inputs (a < b doubled, a = b once) = the dense thm-4/thm-6 norms."""
    net, x = case
    X = np.atleast_2d(x)
    X = np.concatenate([X, X[::-1] * 0.5 + 0.1])  # at least two inputs, blocks really split
    net = net.into_domain(X)
    s = mlp._setup(net, X, "cpu", None)
    dense = {"thm-7": fv.covariance_norm(net, X, which="I1", n=1), "thm-8": fv.covariance_norm(net, X, which="I2", n=1)}
    for statement, ref in dense.items():
        if statement == "thm-8" and net.kinks(X):
            continue
        q = mlp_norms._all_factors(s, statement, 2)
        for block in (1, 2):
            total, F = mlp_norms.pair_sum(s, statement, q, block, keep=True)
            _close(np.sqrt(max(total, 0.0)) / s.M**2, ref)
            assert F is not None
            _close(F.numpy(), F.numpy().T, 1e-12)
            _close(mlp_norms.self_values(s, statement, q, block).numpy(),
                   np.diag(F.numpy()), 1e-12)


def test_sampled_pairs_are_unbiased_over_every_subset() -> None:
    """The mean of the U-statistic over all C(6, 3) subsets is the mean over distinct pairs."""
    import itertools

    net = fv.Network.random([3, 4, 3, 3], "tanh", fv.family("categorical", K=3), rng=5)
    X = np.random.default_rng(6).normal(size=(6, 3))
    s = mlp._setup(net, X, "cpu", None)
    for statement in ("thm-7", "thm-8"):
        q = mlp_norms._all_factors(s, statement, 6)
        _, F = mlp_norms.pair_sum(s, statement, q, 6, keep=True)
        assert F is not None
        subsets = list(itertools.combinations(range(6), 3))
        us = [mlp_norms.u_statistic(F[list(c)][:, list(c)])[0] for c in subsets]
        off = float(F.sum() - F.diagonal().sum()) / 30
        _close(np.mean(us), off, 1e-12)


def test_sampled_norm_is_a_labelled_estimate_with_a_standard_error() -> None:
    net = fv.Network.random([4, 6, 3], "tanh", fv.family("categorical", K=3), rng=7)
    X = np.random.default_rng(8).normal(size=(300, 4))
    # the threshold: 4.9 standard errors, a two-sided normal false-alarm rate below 1e-6
    for fn in (mlp_bounds.thm7_large, mlp_bounds.thm8_large):
        exact = fn(net, X, 2, device="cpu", method="exact")
        est = fn(net, X, 2, device="cpu", method="sampled", sample_inputs=40, seed=3)
        lhs = est.details["lhs_estimate"]
        assert est.details["exact"] is False and "ESTIMATE" in est.description
        assert not lhs.exact and lhs.stderr > 0 and lhs.probes == 40
        assert abs(lhs.value - exact.lhs) <= 4.9 * lhs.stderr
        _close(est.rhs, exact.rhs, 1e-12)  # the rhs is per-input: always exact
    # auto picks the estimate when the exact call is over the time budget
    auto = mlp_bounds.thm7_large(net, X, 2, device="cpu", time_budget=1e-9, sample_inputs=20)
    assert auto.details["method"] == "sampled"


def test_norm_cost_says_in_advance_and_exact_refuses_above_budget() -> None:
    net = fv.Network.random([784, 128, 10], "tanh", fv.family("categorical", K=10), rng=0)
    X = np.zeros((10_000, 784))
    for statement in ("thm-7", "thm-8"):
        cost = mlp_norms.norm_cost(net, X, statement, device="cpu")
        assert cost.inputs == 10_000 and cost.held_bytes + cost.block_bytes <= 2**30
        assert cost.gemm_flops >= 10_000**2 / 2 * 100 * 138  # the Gram products of all pairs
        assert "MiB" in str(cost) and "s (" in str(cost)
    with pytest.raises(UnsupportedError, match="above the budget"):
        mlp_bounds.thm8_large(net, X, device="cpu", method="exact", time_budget=1.0)
    with pytest.raises(UnsupportedError, match="above the budget"):
        mlp_bounds.thm7_large(net, X, device="cpu", method="exact", memory_budget=2**20)


def test_hutchinson_refuses_above_the_memory_budget() -> None:
    net = fv.Network.random([784, 128, 10], "tanh", fv.family("categorical", K=10), rng=0)
    X = np.zeros((1000, 784))
    with pytest.raises(UnsupportedError, match="memory_budget"):
        mlp_bounds.thm8_large(net, X, device="cpu", method="hutchinson")
    with pytest.raises(UnsupportedError, match="memory_budget"):
        mlp_bounds.hessian_traces(net, X, device="cpu", method="hvp")


def test_direct_form_keeps_relative_accuracy_at_saturated_logits() -> None:
    """Logits ±400: C[g⁴] and gᵀIg are O(e^-400); the mpmath definition route on the support."""
    import mpmath

    mpmath.mp.dps = 60
    h = [400.0, -400.0, 3.0]
    g = [0.7, -1.3, 2.1]
    z = mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in h)
    p = [mpmath.exp(mpmath.mpf(v)) / z for v in h]
    mean = mpmath.fsum(pk * gk for pk, gk in zip(p, g))
    d = [mpmath.mpf(gk) - mean for gk in g]
    m2 = mpmath.fsum(pk * dk**2 for pk, dk in zip(p, d))
    m4 = mpmath.fsum(pk * dk**4 for pk, dk in zip(p, d))
    pt = torch.softmax(torch.tensor([h], dtype=torch.float64), -1)
    c4, quad = onehot.onehot_excess4_diagonal(pt, torch.tensor([g], dtype=torch.float64))
    assert abs(float(quad[0]) / float(m2) - 1) <= 1e-12
    assert abs(float(c4[0]) / float(m4 - m2**2) - 1) <= 1e-12
