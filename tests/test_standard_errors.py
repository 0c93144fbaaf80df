"""Standard errors of the sampled / Hutchinson estimates (order-2 U-statistics with a delete-one
jackknife, ``fisher/ustat.py``; sums over tensors, ``Diagonals.sum_over``) pinned to their exact
sampling variance by enumerating every S-tuple of draws from a finite distribution.

Independent route: the Hoeffding decomposition ``f(x, y) = θ + g(x) + g(y) + ψ(x, y)`` with
``ζ₁ = Var g`` and ``σ_ψ² = Var ψ`` gives ``Var(U) = 4ζ₁/S + 2σ_ψ²/(S(S−1))`` and, for the
delete-one jackknife, ``E[se²] = 4ζ₁/S + 4σ_ψ²/(S(S−2))``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from fisher_verify._src.fisher.ustat import jackknife_stderr, u_statistic_deleted
from fisher_verify._src.models.workspace import Diagonals
from fisher_verify._src.proofs import discover, run_all, select


def _hoeffding(f, w, S):
    """θ, Var(U), E[se²] for draws with probabilities w and kernel f (V, V, ...)."""
    theta = np.einsum("v,w,vw...->...", w, w, f)
    g = np.einsum("w,vw...->v...", w, f) - theta
    zeta1 = np.einsum("v,v...->...", w, g**2)
    psi = f - theta - g[:, None] - g[None, :]
    s_psi = np.einsum("v,w,vw...->...", w, w, psi**2)
    return theta, 4 * zeta1 / S + 2 * s_psi / (S * (S - 1)), 4 * zeta1 / S + 4 * s_psi / (S * (S - 2))


def _enumerate(f, w, S, split=None):
    """E[U], Var(U), E[se²] (and E[se_sum²] over two tensors split at ``split``) by enumeration."""
    V = f.shape[0]
    moments = np.zeros((4,) + f.shape[2:])
    e_sum = 0.0
    ft = torch.as_tensor(f)
    for tup in itertools.product(range(V), repeat=S):
        p = float(np.prod(w[list(tup)]))
        idx = torch.as_tensor(tup)
        F = ft[idx][:, idx]
        U, U_del = u_statistic_deleted(F.sum((0, 1)), torch.diagonal(F, dim1=0, dim2=1).movedim(-1, 0),
                                       F.sum(1))
        se = jackknife_stderr(U_del)
        moments += p * np.stack([U.numpy(), U.numpy() ** 2, se.numpy() ** 2, 0 * se.numpy()])
        if split is not None:
            d = Diagonals({"a": U[:split], "b": U[split:]}, {"a": False, "b": False})
            d.jackknife = {"a": U_del[:, :split].sum(-1), "b": U_del[:, split:].sum(-1)}
            e_sum += p * d.sum_over(["a", "b"])[1] ** 2
    mean, second, e_se2 = moments[0], moments[1], moments[2]
    return mean, second - mean**2, e_se2, e_sum


@pytest.mark.parametrize("S", [3, 4, 5])
def test_jackknife_se_is_pinned_to_the_exact_sampling_variance(S) -> None:
    """Non-uniform 3-point distribution, a vector kernel (two entries, elementwise): E[U] = θ,
    Var(U) and E[se²] exactly as derived; an se √S too large gives E[se²] S times too large."""
    rng = np.random.default_rng(S)
    w = np.array([0.5, 0.3, 0.2])
    x = rng.normal(size=(3, 2))
    f = np.einsum("vi,wi->vwi", x, x) + np.einsum("vi,wi->vwi", x**2, x**2)  # symmetric
    theta, var_u, e_se2 = _hoeffding(f, w, S)
    mean, var, se2, _ = _enumerate(f, w, S)
    np.testing.assert_allclose(mean, theta, rtol=1e-10)
    np.testing.assert_allclose(var, var_u, rtol=1e-9)
    np.testing.assert_allclose(se2, e_se2, rtol=1e-9)
    assert np.all(var_u <= se2 * (1 + 1e-12)) and np.all(se2 <= var_u * (2 * S - 2) / (S - 2))


def test_stderr_of_a_sum_over_tensors_is_that_of_the_summed_estimate() -> None:
    """Two tensors whose estimates are strongly negatively correlated: the se of their sum
    (Diagonals.sum_over) has the exact E[se²] of the summed kernel, far below what the sum of
    per-tensor se's would give."""
    rng = np.random.default_rng(3)
    w = np.full(4, 0.25)
    x = rng.normal(size=4)
    base = np.outer(x, x)
    f = np.stack([base, -base + 0.1 * np.outer(x**2, x**2)], axis=-1)
    S = 4
    _, var_sum, e_sum = _hoeffding(f.sum(-1), w, S)
    _, var, se2, e_se_sum = _enumerate(f, w, S, split=1)
    assert e_se_sum == pytest.approx(e_sum, rel=1e-9)
    assert e_se_sum < 0.1 * se2.sum()  # the sum of per-tensor errors is far larger


def test_ext_standard_errors_statement_verifies() -> None:
    """The gate's statement (repository proof) holds on correct code."""
    root = Path(__file__).resolve().parents[1]
    rec = run_all(select(discover([root / "proofs"]), ["ext-standard-errors"]))[0]
    assert rec.verdict == "verified", rec.summary


def test_model_hutchinson_stderr_is_pinned_by_enumerating_the_probes(monkeypatch) -> None:
    """fv.variance(diagonal=True, method="hutchinson"): with the Rademacher probes of a 2-entry
    tensor enumerated (every S-tuple, by substituting torch.randint), the mean of its values
    is the exact Var(Î₂) diagonal, their variance and the mean stderr² are the U-statistic's
    Var(U) and E[se²] from the Hoeffding decomposition of the probe kernel, computed from the
    dense Hessian of the model (torch.func): the whole Hutchinson path, not only ustat."""
    from torch.func import functional_call, hessian

    import fisher_verify as fv

    torch.manual_seed(0)
    # one hidden unit: the first weight row (two entries) has a full 2 x 2 Hessian block
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Tanh(), torch.nn.Linear(1, 2)).double()
    fam = fv.product(fv.family("bernoulli"), fv.family("poisson"))
    x = torch.tensor([[0.3, -0.8]], dtype=torch.float64)
    params = dict(model.named_parameters())
    for name, p in params.items():  # one trainable tensor: its probes alone drive the estimate
        p.requires_grad_(name == "0.weight")

    def out(w0):
        return functional_call(model, {**params, "0.weight": w0.reshape(1, 2)}, (x,))[0]

    w0 = params["0.weight"].detach().reshape(2)
    Hb = hessian(out)(w0).detach().numpy()  # (n_L, 2, 2)
    assert np.all(np.abs(Hb[:, 0, 1]) > 1e-3)  # off-diagonal: the probes matter
    I = np.asarray(fam.fisher(out(w0).detach().numpy()))
    vals = np.array(list(itertools.product((-1.0, 1.0), repeat=2)))  # (4, 2)
    d = vals[:, None, :] * np.einsum("apq,vq->vap", Hb, vals)  # (V, n_L, p)
    f = np.einsum("vai,ab,wbi->vwi", d, I, d)  # kernel per entry
    S = 3
    theta, var_u, e_se2 = _hoeffding(f, np.full(4, 0.25), S)
    diag = np.einsum("app->ap", Hb)
    np.testing.assert_allclose(theta, np.einsum("ap,ab,bp->p", diag, I, diag), rtol=1e-10)
    assert np.all(var_u > 1e-3 * theta)  # the estimate is random

    real_randint = torch.randint
    values, ses = [], []
    for tup in itertools.product(range(4), repeat=S):
        probes = torch.as_tensor((vals[list(tup)] + 1) / 2, dtype=torch.int64)  # (S, 2): 0 or 1

        def fake(low, high, size, generator=None, _p=probes):
            if tuple(size[2:]) == (1, 2):
                return _p.reshape(size)
            return real_randint(low, high, size, generator=generator)

        monkeypatch.setattr(torch, "randint", fake)
        res = fv.variance(model, x, fam, which="I2", n=1, method="hutchinson",
                                         probes=S, progress=False, diagonal=True)
        monkeypatch.setattr(torch, "randint", real_randint)
        assert res.methods["0.weight"] == "hutchinson"
        values.append(res["0.weight"].detach().numpy().reshape(2))
        ses.append(res.stderr["0.weight"].detach().numpy().reshape(2))
    values, ses = np.array(values), np.array(ses)
    np.testing.assert_allclose(values.mean(0), theta, rtol=1e-9)
    np.testing.assert_allclose(values.var(0), var_u, rtol=1e-9)
    np.testing.assert_allclose((ses**2).mean(0), e_se2, rtol=1e-9)


def test_thm8_hutchinson_stderrs_are_pinned_by_enumerating_the_probes(monkeypatch) -> None:
    """thm8_large's Hutchinson route (models/mlp.py): the per-probe trace samples of all 2^P
    Rademacher probes (P = 4) are obtained once by substituting torch.randint, then every
    S-tuple of them goes through the library's combination (_thm8_parts): the squared norm's
    mean and its stderr² have the exact E[U], Var(U) and E[se²] of the probe kernel
    f(v, v') = I² ‖Hv‖² ‖Hv'‖² (dense Hessian by torch.func), and the rhs's stderr² has mean
    Var(r)/S."""
    import fisher_verify as fv
    from fisher_verify._src.models import mlp, mlp_bounds
    from fisher_verify._src.proofs.support import dense_derivatives

    rng = np.random.default_rng(5)
    net = fv.Network.random([1, 1, 1], "tanh", fv.family("poisson"), 1.0, rng)
    x = rng.normal(size=(1, 1))
    P = net.num_params
    vals = np.array(list(itertools.product((-1.0, 1.0), repeat=P)))
    bits = torch.as_tensor((vals + 1) / 2, dtype=torch.int64)
    real = torch.randint
    served = [0]

    def fake(low, high, size, generator=None, device=None):
        k = int(size[0])
        out = bits[served[0]:served[0] + k]
        served[0] += k
        return out

    monkeypatch.setattr(torch, "randint", fake)
    tr = mlp_bounds.hessian_traces(net, x, method="hutchinson", probes=len(vals))
    monkeypatch.setattr(torch, "randint", real)
    samples = tr.samples  # (2^P, 1, 1): ‖H v‖² per probe value
    _, H = dense_derivatives(net, x)
    I = float(np.asarray(net.family.fisher(net.forward(x))).reshape(-1)[0])
    hv2 = np.einsum("pq,vq->vp", H[0, 0], vals) ** 2
    np.testing.assert_allclose(samples.numpy().reshape(-1), hv2.sum(1), rtol=1e-10)
    f = I * I * np.outer(hv2.sum(1), hv2.sum(1))
    S = 3
    w = np.full(len(vals), 1.0 / len(vals))
    theta, var_u, e_se2 = _hoeffding(f, w, S)
    assert theta == pytest.approx(I * I * np.sum(H[0, 0] ** 2) ** 2, rel=1e-10)
    s = mlp._setup(net, x, None, None)
    acc = np.zeros(5)
    r_all = I * hv2.sum(1)
    for tup in itertools.product(range(len(vals)), repeat=S):
        smp = samples[list(tup)]
        lhs, rhs = mlp_bounds._thm8_parts(s, mlp_bounds.HessianTraces(smp.mean(0), smp, False, "hutchinson",
                                                            S), 1.0)
        sq, sq_se = lhs.details["squared_norm"], lhs.details["squared_norm_stderr"]
        acc += np.array([sq, sq * sq, sq_se**2, rhs.stderr**2, rhs.value]) / len(vals) ** S
    assert acc[0] == pytest.approx(theta, rel=1e-9)
    assert acc[1] - acc[0] ** 2 == pytest.approx(var_u, rel=1e-8)
    assert acc[2] == pytest.approx(e_se2, rel=1e-9)
    assert acc[4] == pytest.approx(r_all.mean(), rel=1e-10)
    assert acc[3] == pytest.approx(r_all.var() / S, rel=1e-9)
