"""The models path's family contractions are the direct forms of families.onehot: at saturated
logits (±400) diag I(θ) (eq-6) and Var(Î₁) (thm-4) keep their relative accuracy, against the
definition on the support evaluated in mpmath at 60 digits with an mpmath Jacobian."""

from __future__ import annotations

from typing import Any

import mpmath
import torch

import fisher_verify as fv


def _model() -> Any:
    torch.manual_seed(3)
    model: Any = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh(), torch.nn.Linear(2, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.3, -0.8], [1.1, 0.4]]))
        model[0].bias.copy_(torch.tensor([0.1, -0.2]))
        model[2].weight.copy_(torch.tensor([[0.7, -1.3], [-0.4, 0.9], [2.1, 0.5]]))
        model[2].bias.copy_(torch.tensor([400.0, -400.0, 3.0]))  # p ≈ (1, e^-800, e^-397)
    return model.double()


def _reference(model: Any, x: list[float]) -> tuple[list[Any], list[Any]]:
    """(uᵀIu, C[u⁴]) per first-layer weight (row-major), u = ∂h/∂W0[r, c] in mpmath."""
    mpmath.mp.dps = 60
    mp = mpmath.mpf
    W0 = [[mp(v) for v in row] for row in model[0].weight.tolist()]
    b0 = [mp(v) for v in model[0].bias.tolist()]
    W2 = [[mp(v) for v in row] for row in model[2].weight.tolist()]
    b2 = [mp(v) for v in model[2].bias.tolist()]
    X = [mp(v) for v in x]
    a = [mpmath.fsum(W0[r][c] * X[c] for c in range(2)) + b0[r] for r in range(2)]
    hid = [mpmath.tanh(v) for v in a]
    h = [mpmath.fsum(W2[k][r] * hid[r] for r in range(2)) + b2[k] for k in range(3)]
    z = mpmath.fsum(mpmath.exp(v) for v in h)
    p = [mpmath.exp(v) / z for v in h]
    quads, excess = [], []
    for r in range(2):
        for c in range(2):
            u = [W2[k][r] * (1 - hid[r] ** 2) * X[c] for k in range(3)]
            mean = mpmath.fsum(pk * uk for pk, uk in zip(p, u))
            d = [uk - mean for uk in u]
            m2 = mpmath.fsum(pk * dk**2 for pk, dk in zip(p, d))
            m4 = mpmath.fsum(pk * dk**4 for pk, dk in zip(p, d))
            quads.append(m2)
            excess.append(m4 - m2**2)
    return quads, excess


def test_model_diagonals_keep_relative_accuracy_at_saturated_logits() -> None:
    model = _model()
    x = [0.6, -1.7]
    fam = fv.family("categorical", K=3)
    X = torch.tensor([x], dtype=torch.float64)
    fisher = fv.exact_fisher(model, X, fam, progress=False, diagonal=True)["0.weight"].reshape(-1)
    var1 = fv.variance(model, X, fam, n=1, progress=False, diagonal=True)["0.weight"].reshape(-1)
    quads, excess = _reference(model, x)
    for i in range(4):  # values of order e^-397, where raw moments (E[(uᵀt)⁴] − …) lose all digits
        assert float(quads[i]) < 1e-150
        assert abs(float(fisher[i]) / float(quads[i]) - 1) <= 1e-10, i
        assert abs(float(var1[i]) / float(excess[i]) - 1) <= 1e-10, i
