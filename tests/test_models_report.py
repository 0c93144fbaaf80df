"""fv.analyze of a module: per tensor / per layer sums, thm-7 and the labels, against the dense route."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from test_models import Conv1dNet, assert_close, dense_derivatives, expected, model_zoo

import fisher_verify as fv
from fisher_verify._src.fisher.bounds import thm7_sides
from fisher_verify._src.models import report as report_mod


@pytest.mark.parametrize("fam_name", ["categorical", "product"])
def test_analyze_model_matches_dense_route(fam_name: str) -> None:
    fam = (fv.family("categorical", K=3) if fam_name == "categorical"
           else fv.product(fv.family("poisson"), fv.family("bernoulli"), fv.family("normal")))
    torch.manual_seed(4)
    model = Conv1dNet(nn.Tanh(), 3)
    X = 0.5 * torch.randn(3, 2, 7)
    rep = fv.analyze(model, X, fam, n=4, progress=False)
    want = expected(model, X, fam, n=4, hessians=True)
    h, J, _ = dense_derivatives(model, X, hessians=False)
    lhs, rhs, spec = thm7_sides(J, fam.central_moment4(h), fam.fisher(h), 4)
    assert rep.covariance_norm_1 is not None and rep.bound_1 is not None
    assert_close(np.array([rep.covariance_norm_1, rep.bound_1, rep.bound_1_spectral]),
                 np.array([lhs, rhs, spec]))
    sizes = [p.numel() for p in model.parameters()]
    off = np.cumsum([0, *sizes])
    for i, row in enumerate(rep.tensors):
        sl = slice(off[i], off[i + 1])
        got = np.array([row.fisher, row.var_1, row.var_2])
        assert_close(got, np.array([want["fisher"][sl].sum(), want["v1"][sl].sum(), want["v2"][sl].sum()]))
        assert row.var_2_exact and row.var_2_stderr == 0.0
    assert [r.name for r in rep.layers] == ["conv", "fc"]
    assert_close(np.array([rep.total.var_1]), np.array([want["v1"].sum()]))
    # the estimator named better has the smaller summed variance (dense route, not analyze's)
    assert rep.total.better == ("I1" if want["v1"].sum() < want["v2"].sum() else "I2")
    data = json.loads(rep.to_json())
    assert data["var_2_all_exact"] is True and data["num_inputs"] == 3
    assert "refused" not in rep.summary()


def test_analyze_model_relu_refuses_var2_only_at_a_kink(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """thm-3-ae: a ReLU CNN with max pooling gets Var(Î₂) away from its kinks (zero on the
    diagonal, d24-pwl); at an input on a kink Var(Î₂) is refused, naming input, module, element."""
    import copy

    model, X, _ = model_zoo(3)["conv2d_pool"]
    fam = fv.family("categorical", K=3)
    rep = fv.analyze(model, X, fam, n=2, progress=False)
    assert rep.var_2_refused is None and rep.total.var_2 is not None
    assert abs(rep.total.var_2) <= 1e-14 * rep.total.var_1
    bad = copy.deepcopy(model).double()
    Xd = X.double()
    with torch.no_grad():  # conv output channel 0 at position (0, 0) of input 1 onto the kink
        bad[0].bias[0] = -(bad[0].weight[0] * Xd[1, :, 0:3, 0:3]).sum()
    rep = fv.analyze(bad, Xd, fam, n=2, progress=False)
    assert rep.var_2_refused and "input 1: relu in module 1, element [0, 0, 0]" in rep.var_2_refused
    assert rep.total.var_2 is None and rep.samples_needed_2 is None
    assert rep.total.better == "I1 (I2 refused)"
    assert "Var(I2) refused" in rep.summary() and json.loads(rep.to_json())["var_2_refused"]
    rep.plot(str(tmp_path / "v.png"))
    assert (tmp_path / "v.png").stat().st_size > 1000


def test_analyze_model_estimate_is_labelled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = Conv1dNet(nn.Tanh(), 2)
    rep = fv.analyze(model, torch.randn(3, 2, 7), fv.family("categorical", K=2), n=1,
                           method="hutchinson", probes=6, progress=False)
    assert not rep.total.var_2_exact and rep.total.var_2_method == "hutchinson"
    assert rep.total.var_2_stderr > 0
    # an estimate decides only when its interval excludes 0 and Var(I1) (test_cost_limits);
    # here the standard error is larger than both differences, so no z of any useful level can
    t = rep.total
    assert t.var_2_stderr > max(t.var_2, abs(t.var_2 - t.var_1))
    assert t.better == "undecided"
    assert "ESTIMATE" in rep.summary() and "*" in rep.table()
    assert json.loads(rep.to_json())["var_2_all_exact"] is False
    rep.plot(str(tmp_path / "e.png"))


def test_gram_limit_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_mod, "GRAM_LIMIT", 10)
    rep = fv.analyze(nn.Linear(2, 2), torch.randn(4, 2), fv.family("categorical", K=2),
                           progress=False)
    assert rep.covariance_norm_1 is None and "GRAM_LIMIT" in rep.bound_1_note
    assert "GRAM_LIMIT" in rep.summary()


def test_bad_target() -> None:
    with pytest.raises(fv.FisherVerifyError, match="target"):
        fv.analyze(nn.Linear(2, 2), torch.randn(2, 2), fv.family("categorical", K=2), target=2)


def test_fv_analyze_stays_the_function() -> None:
    """analyze_model must not rebind fisher_verify.analyze (the function) to its module, and
    importing the module that defines it (in a fresh process) must not either."""
    import subprocess
    import sys

    fv.analyze(nn.Linear(2, 2), torch.randn(2, 2), fv.family("categorical", K=2), progress=False)
    assert callable(fv.analyze)
    code = ("import fisher_verify._src.analysis, fisher_verify as fv; from fisher_verify._src.analysis import "
            "Analysis; assert callable(fv.analyze), fv.analyze")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tiny_target_is_refused_not_a_zero_division() -> None:
    """lemma-12's N = Σ Var / (ε rel² ‖I‖²): rel² underflowed to 0 and divided by zero."""
    with pytest.raises(fv.FisherVerifyError, match="exceed 1e308"):
        fv.analyze(nn.Linear(2, 2), torch.randn(2, 2), fv.family("categorical", K=2),
                         target=1e-300, progress=False)


def _thm8_dense(H: np.ndarray, I: np.ndarray, n: int) -> tuple[float, float]:
    """thm-8 from the full P⁴ covariance tensor of thm-6 and the bound written out."""
    from fisher_verify._src.fisher.covariance import cov2_tensor

    M = H.shape[0]
    lhs = float(np.linalg.norm(cov2_tensor(H, I, n)))
    rhs = sum(np.linalg.norm(H[m]) ** 2 * np.linalg.norm(I[m]) for m in range(M)) / (M * M * n)
    return lhs, float(rhs)


@pytest.mark.parametrize("fam_name", ["categorical", "product"])
def test_thm8_of_a_conv_model_matches_the_dense_route(fam_name: str) -> None:
    """Not an Eq. 3 MLP, P = 35: torch.func Hessians; expected from autograd Hessians and the
    full covariance tensor (thm-6)."""
    fam = (fv.family("categorical", K=2) if fam_name == "categorical"
           else fv.product(fv.family("poisson"), fv.family("normal")))
    torch.manual_seed(5)
    model = Conv1dNet(nn.Tanh(), 2)
    X = 0.5 * torch.randn(3, 2, 7)
    rep = fv.analyze(model, X, fam, n=3, progress=False)
    h, _, H = dense_derivatives(model, X, hessians=True)
    assert H is not None
    lhs, rhs = _thm8_dense(H, fam.fisher(h), 3)
    assert rep.covariance_norm_2 is not None and rep.bound_2 is not None
    assert_close(np.array([rep.covariance_norm_2, rep.bound_2]), np.array([lhs, rhs]))
    assert "dense torch.func" in rep.bound_2_note and "thm-8 bound" in rep.summary()
    data = json.loads(rep.to_json())
    assert data["covariance_norm_2"] == rep.covariance_norm_2 and data["bound_2"] == rep.bound_2


def test_thm8_of_an_mlp_matches_the_network_bounds() -> None:
    """An Eq. 3 MLP goes through models.mlp's closed form; expected: fv.bounds on the
    equivalent Network (dense Hessians)."""
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3, bias=True))
    fam = fv.family("categorical", K=3)
    X = torch.randn(4, 3)
    rep = fv.analyze(model, X, fam, n=5, progress=False)
    b = fv.bounds(fv.Network.from_torch(model, family=fam), X.double().numpy(), n=5)
    assert rep.covariance_norm_2 is not None and rep.bound_2 is not None
    assert_close(np.array([rep.covariance_norm_2, rep.bound_2]),
                 np.array([float(b.thm8.lhs), float(b.thm8.rhs)]))
    assert "Eq. 3 closed form" in rep.bound_2_note


def test_thm8_not_available_above_the_dense_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_mod, "DENSE_HESSIAN_P", 10)
    torch.manual_seed(0)
    rep = fv.analyze(Conv1dNet(nn.Tanh(), 2), torch.randn(2, 2, 7),
                           fv.family("categorical", K=2), progress=False)
    assert rep.covariance_norm_2 is None and "DENSE_HESSIAN_P = 10" in rep.bound_2_note
    assert "P = 35" in rep.bound_2_note and "thm-8: n/a" in rep.summary()
    rep = fv.analyze(Conv1dNet(nn.Tanh(), 2), torch.randn(2, 2, 7),
                           fv.family("categorical", K=2), norms=False, progress=False)
    assert rep.bound_2_note == "not requested"


@pytest.mark.parametrize("model_name", ["conv1d_gelu", "conv2d_avg_silu", "batchnorm_eval",
                                        "layernorm_softplus", "attention", "tanh_mlp",
                                        "relu_mlp", "conv2d_pool"])
def test_thm8_of_each_kind_matches_autograd_hessians(model_name: str) -> None:
    """Every model of the zoo (convolutions, pooling, BatchNorm in eval mode, LayerNorm, an
    embedding + attention block, an Eq. 3 MLP, and ReLU/max-pooling models away from their
    kinks, thm-3-ae): thm-8's sides from plain-autograd Hessians."""
    from fisher_verify._src.fisher.bounds import thm8_sides

    fam = fv.product(fv.family("poisson"), fv.family("bernoulli"))
    model, X, _ = model_zoo(2)[model_name]
    X = 0.5 * X if X.is_floating_point() else X
    rep = fv.analyze(model, X, fam, n=2, progress=False)
    h, _, H = dense_derivatives(model, X, hessians=True)
    assert H is not None and rep.covariance_norm_2 is not None and rep.bound_2 is not None
    assert_close(np.array([rep.covariance_norm_2, rep.bound_2]),
                 np.array(thm8_sides(H, fam.fisher(h), 2)))
    assert rep.bound_2_note.startswith("exact")


def test_thm8_does_not_trust_an_asymmetric_torch_func_hessian(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.func's second derivatives through layer_norm are asymmetric (wrong) in torch 2.x:
    such a model goes through plain autograd, or is n/a with the reason above its limit."""
    model, X, _ = model_zoo(2)["layernorm_softplus"]
    fam = fv.family("categorical", K=2)
    ws = report_mod.open_workspace(model, X, fam, progress=False)
    H = report_mod._dense_output_hessians(ws, report_mod._all_inputs(ws))
    h, _, H_autograd = dense_derivatives(model, X, hessians=True)
    assert H_autograd is not None
    if report_mod._symmetric(H):  # a torch without the defect: the route must still be right
        assert_close(H.numpy().ravel(), H_autograd.ravel())
        return
    rep = fv.analyze(model, X, fam, n=2, progress=False)
    assert "autograd" in rep.bound_2_note and "not symmetric" in rep.bound_2_note
    monkeypatch.setattr(report_mod, "AUTOGRAD_HESSIAN_PASSES", 10)
    rep = fv.analyze(model, X, fam, n=2, progress=False)
    assert rep.covariance_norm_2 is None and "AUTOGRAD_HESSIAN_PASSES = 10" in rep.bound_2_note
