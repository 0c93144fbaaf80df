"""One name per question, any model: ``exact_fisher``, ``variance``, ``covariance`` and
``covariance_norm`` give the same numbers for an Eq. 3 ``Network`` and for the ``nn.Sequential``
it came from, full or diagonal, through independent engines (the Network's analytic Jacobians,
the module engine's streamed diagonals, the dense autograd view of the module)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fisher_verify as fv
from fisher_verify._src.testing.estimator_gate import torch_parameter_permutation


def _pair(K: int = 3) -> tuple[torch.nn.Module, fv.Network, torch.Tensor, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, K)).double()
    fam = fv.family("categorical", K=K)
    net = fv.Network.from_torch(model, fam)
    X = torch.randn(5, 3, dtype=torch.float64)
    perm = torch_parameter_permutation(model)  # θ_net[k] = θ_torch[perm[k]]
    return model, net, X, X.numpy(), perm


def _flat(d: dict) -> np.ndarray:
    return torch.cat([v.reshape(-1) for v in d.values()]).detach().numpy()


def test_fisher_of_the_network_and_of_its_module_agree_full_and_diagonal() -> None:
    model, net, Xt, X, perm = _pair()
    fam = net.family
    full_net = fv.exact_fisher(net, X)
    full_mod = fv.exact_fisher(model, Xt, fam)  # dense autograd, parameters() order
    np.testing.assert_allclose(full_mod[np.ix_(perm, perm)], full_net, rtol=1e-10, atol=1e-14)
    diag_net = fv.exact_fisher(net, X, diagonal=True)  # O(M n_L² P), no P x P array
    diag_mod = _flat(fv.exact_fisher(model, Xt, fam, diagonal=True, progress=False))  # the engine
    np.testing.assert_allclose(diag_net, np.diagonal(full_net), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(diag_mod[perm], diag_net, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("which", ["I1", "I2"])
def test_variances_of_the_network_and_of_its_module_agree(which: str) -> None:
    model, net, Xt, X, perm = _pair()
    fam = net.family
    v_net = fv.variance(net, X, which=which, n=3)
    v_mod = fv.variance(model, Xt, fam, which=which, n=3)
    np.testing.assert_allclose(v_mod[np.ix_(perm, perm)], v_net, rtol=1e-9, atol=1e-16)
    d_mod = _flat(fv.variance(model, Xt, fam, which=which, n=3, diagonal=True, progress=False,
                              method="hessian"))
    np.testing.assert_allclose(d_mod[perm], np.diagonal(v_net), rtol=1e-9, atol=1e-16)
    np.testing.assert_allclose(fv.variance(net, X, which=which, n=3, diagonal=True),
                               np.diagonal(v_net), rtol=1e-12, atol=1e-18)
    # the two estimators differ here (a tanh hidden layer), so a swapped which cannot pass
    other = "I2" if which == "I1" else "I1"
    assert not np.allclose(fv.variance(net, X, which=other, n=3), v_net)


@pytest.mark.parametrize("which", ["I1", "I2"])
def test_covariance_and_its_norm_take_a_module_too(which: str) -> None:
    model, net, Xt, X, perm = _pair(K=2)
    fam = net.family
    c_net = fv.covariance(net, X, which=which, n=2)
    c_mod = fv.covariance(model, Xt, fam, which=which, n=2)
    np.testing.assert_allclose(c_mod[np.ix_(perm, perm, perm, perm)], c_net, rtol=1e-9, atol=1e-16)
    norm = float(np.sqrt(np.sum(c_net**2)))
    assert fv.covariance_norm(net, X, which=which, n=2) == pytest.approx(norm, rel=1e-9)
    assert fv.covariance_norm(model, Xt, fam, which=which, n=2) == pytest.approx(norm, rel=1e-9)


def test_wrong_inputs_are_refused_by_name() -> None:
    model, net, Xt, X, _ = _pair()
    with pytest.raises(fv.FisherVerifyError, match=r"which must be 'I1'.*which='I1'"):
        fv.variance(net, X, which=1)  # type: ignore[arg-type]
    with pytest.raises(fv.FisherVerifyError, match="family: the model, a fisher_verify.Network"):
        fv.exact_fisher(net, X, fv.family("bernoulli"))
    with pytest.raises(fv.FisherVerifyError, match="family: a Sequential needs its output family"):
        fv.exact_fisher(model, Xt)
    with pytest.raises(fv.FisherVerifyError, match="progress: the diagonal of a Network"):
        fv.exact_fisher(net, X, diagonal=True, progress=False)
    with pytest.raises(fv.FisherVerifyError, match="probes: the variance of a Network"):
        fv.variance(net, X, probes=8)
    with pytest.raises(fv.FisherVerifyError, match="Network .* or a torch.nn.Module"):
        fv.covariance_norm("net", X)  # type: ignore[arg-type]
    with pytest.raises(fv.FisherVerifyError, match="probes: not an option of analyze"):
        fv.analyze(net, X, probes=8)
    with pytest.raises(fv.FisherVerifyError, match="diagonal: applies to a fisher_verify.Network"):
        fv.analyze(model, Xt, net.family, diagonal=True)
    with pytest.raises(fv.FisherVerifyError, match="randomness: applies to a torch module"):
        fv.check_estimator(lambda g: np.zeros(net.num_params), net, X, randomness="seed")
    with pytest.raises(fv.FisherVerifyError, match="labels: applies to a fisher_verify.Network"):
        fv.check_estimator(lambda m, d: {}, model, Xt, family=net.family, labels=[0] * 5)


def test_one_analysis_type_for_both_kinds_of_model() -> None:
    """The Network route and the module route fill the same fields with the same numbers
    (per layer sums of diag I and Var(Î₁); thm-7), in one Analysis type."""
    model, net, Xt, X, perm = _pair()
    a_net = fv.analyze(net, X, n=2, diagonal=True)
    a_mod = fv.analyze(model, Xt, net.family, n=2, progress=False)
    assert type(a_net) is type(a_mod) is fv.Analysis
    for r_net, r_mod in zip(a_net.layers, a_mod.layers, strict=True):
        assert r_net.params == r_mod.params
        assert r_net.fisher == pytest.approx(r_mod.fisher, rel=1e-9)
        assert r_net.var_1 == pytest.approx(r_mod.var_1, rel=1e-9)
        assert r_net.reason == r_mod.reason
    assert a_net.total.var_2 == pytest.approx(a_mod.total.var_2, rel=1e-9)
    assert a_net.bound_1 == pytest.approx(a_mod.bound_1, rel=1e-9)
    assert a_net.covariance_norm_1 == pytest.approx(a_mod.covariance_norm_1, rel=1e-9)
    for a in (a_net, a_mod):
        doc = a.as_dict()
        assert doc["better"] == a.better and doc["total"]["var_1"] == a.total.var_1
        assert "layer" in a.table() and "thm-7" in a.summary() and a.to_json().startswith("{")
