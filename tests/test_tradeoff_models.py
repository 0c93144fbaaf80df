"""The per-layer diagonal trade-off in ``fv.analyze`` of a module (issue 17, "For users"): the reason from
the model's structure (models.structure) and the ratio against the d24-var closed forms from
dense plain-autograd J and H (test_models.dense_derivatives), for CNNs and MLP-like modules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_models import dense_derivatives
from torch import nn

import fisher_verify as fv
from fisher_verify._src.fisher.diagonal import diagonal_variances
from fisher_verify._src.models.structure import model_structure


class Tied(nn.Module):
    """One ReLU layer applied twice in series: the weight meets itself, so not multilinear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(torch.relu(self.a(x)))


def _models():
    torch.manual_seed(1)
    smooth_cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                               nn.Linear(8, 4), nn.Softplus(), nn.Linear(4, 3))
    relu_cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(8, 3))
    mlp = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.Sigmoid(),
                        nn.Linear(4, 3))
    ln = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.LayerNorm(4), nn.Linear(4, 3))
    img = torch.randn(3, 1, 6, 6, dtype=torch.float64)
    vec = torch.randn(3, 3, dtype=torch.float64)
    return [
        ("smooth cnn", smooth_cnn, img, ["thm-4/thm-6", "d24-groups", "d24-last-layer"]),
        ("relu cnn", relu_cnn, img, ["d24-pwl", "d24-last-layer"]),
        ("mlp", mlp, vec, ["thm-4/thm-6", "d24-groups", "d24-last-layer"]),
        # layer_norm is not piecewise linear, and it is not sigma(linear) before the last
        ("relu + layer_norm", ln, vec, ["thm-4/thm-6", "thm-4/thm-6", "d24-last-layer"]),
        ("tied", Tied(), vec, ["thm-4/thm-6"]),
    ]


@pytest.mark.parametrize("case", range(5))
def test_model_reason_and_ratio(case):
    name, model, X, reasons = _models()[case]
    model = model.double()
    fam = fv.family("categorical", K=3)
    n = 2
    a = fv.analyze(model, X, fam, n=n, progress=False, norms=False)
    assert [r.reason for r in a.layers] == reasons, name
    assert a.total.reason is None and a.total.ratio is None
    h, J, H = dense_derivatives(model, X, hessians=True)
    v1, v2 = diagonal_variances(J, np.diagonal(H, axis1=-2, axis2=-1), fam.fisher(h),
                                fam.kappa4(h), n)
    start = 0
    for r in a.layers:
        e1, e2 = v1[start:start + r.params].sum(), v2[start:start + r.params].sum()
        start += r.params
        assert r.var_1 == pytest.approx(e1, rel=1e-9)
        if r.reason in ("d24-last-layer", "d24-pwl"):
            # structural zeros: the dense entries are rounding, far below 1e-12 of Var(I1)
            assert e2 <= 1e-12 * e1 and r.ratio is not None and abs(r.ratio) <= 1e-12, name
        else:
            assert r.ratio == pytest.approx(e2 / e1, rel=1e-9), name
    text = a.table()
    for reason in set(reasons):
        assert f"  {reason}: " in text
    data = json.loads(a.to_json())
    assert [r["reason"] for r in data["layers"]] == reasons


def test_structure_records():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    params = {k: v.detach() for k, v in m.named_parameters()}
    st = model_structure(m, params, {}, torch.randn(2, 3, dtype=torch.float64))
    assert st.affine == {"2.weight", "2.bias"}
    assert st.before_last == {"0.weight", "0.bias"}
    assert not st.piecewise_linear
    # two linear layers in a row: h is affine in each of them (each block's Hessian is 0)
    m2 = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).double()
    p2 = {k: v.detach() for k, v in m2.named_parameters()}
    st2 = model_structure(m2, p2, {}, torch.randn(2, 3, dtype=torch.float64))
    assert st2.affine == set(p2) and st2.piecewise_linear and not st2.before_last


def test_refused_var2_has_no_reason():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    with torch.no_grad():
        m[0].bias.zero_()
    X = torch.zeros(1, 2, dtype=torch.float64)  # every pre-activation at the kink
    a = fv.analyze(m, X, fv.family("categorical", K=2), progress=False, norms=False)
    assert a.var_2_refused and all(r.reason is None and r.ratio is None for r in a.layers)


def test_untraced_parameters_are_never_called_piecewise_linear():
    """A weight read through a parametrization (weight_norm) reaches h_L through functions the
    trace cannot vouch for: not d24-pwl, though the model's activation is ReLU."""
    from torch.nn.utils.parametrizations import weight_norm

    torch.manual_seed(0)
    m = nn.Sequential(weight_norm(nn.Linear(3, 4)), nn.ReLU(), nn.Linear(4, 2)).double()
    params = {k: v.detach() for k, v in m.named_parameters()}
    st = model_structure(m, params, {}, torch.randn(2, 3, dtype=torch.float64))
    assert not st.piecewise_linear
    assert st.affine == {"2.weight", "2.bias"}


def test_piecewise_linear_needs_every_parameter_traced():
    """d24-pwl is claimed only when every parameter was followed to h_L: a parameter the trace
    never saw (here one the forward pass does not use) leaves the claim unproved."""

    class Extra(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 2)
            self.unused = nn.Parameter(torch.zeros(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.a(x)))

    torch.manual_seed(0)
    m = Extra().double()
    params = {k: v.detach() for k, v in m.named_parameters()}
    x = torch.randn(2, 3, dtype=torch.float64)
    assert not model_structure(m, params, {}, x).piecewise_linear
    del params["unused"]
    assert model_structure(m, params, {}, x).piecewise_linear
