"""Any torch model (fisher_verify._src.models) against independent routes.

Expected values come from the dense route: full Jacobians and Hessians of h_L by plain
``torch.autograd`` (one backward pass per input and output, one more per parameter for the
Hessian; no torch.func, no chunking, no contraction tricks), then eq-6 ``Σ_m J_mᵀ I J_m / M``
and the element-wise thm-4/thm-6 formulas of :mod:`fisher_verify._src.fisher.covariance` with the
family's dense ``K`` (the central 4th moment). Also the Eq. 3 path (models.mlp) on MLPs
and BackPACK's ``DiagGGNExact`` (for the categorical family with a summed cross-entropy the
generalized Gauss-Newton is the Fisher: ∂²CE/∂h² = diag p − ppᵀ = I(h)).
"""

from __future__ import annotations

import copy
import itertools
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn

import fisher_verify as fv
from fisher_verify._src.fisher.covariance import cov1_variance, cov2_variance
from fisher_verify._src.models.diagonals import model_diagonals
from fisher_verify._src.models.hessian import probe_sums, u_statistic
from fisher_verify._src.models.workspace import open_workspace
from fisher_verify.errors import DomainError, FisherVerifyError, ShapeError, UnsupportedError

RTOL = 1e-10

warnings.filterwarnings("ignore", message=".*performance drop.*")


# --- the dense route --------------------------------------------------------------------------


def dense_derivatives(model: nn.Module, X: torch.Tensor, hessians: bool,
                      output: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """h (M, n_L), J (M, n_L, P) and H (M, n_L, P, P) by plain autograd on a float64 copy."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    m = copy.deepcopy(model).double()
    params = [p for p in m.parameters() if p.requires_grad]
    hs, Js, Hs = [], [], []
    with sdpa_kernel([SDPBackend.MATH]):  # the fused CPU attention kernel has no double backward
        _dense_loop(m, params, X, hessians, output, hs, Js, Hs)
    return np.stack(hs), np.stack(Js), (np.stack(Hs) if hessians else None)


def _dense_loop(m: nn.Module, params: list[torch.Tensor], X: torch.Tensor, hessians: bool,
                output: Any, hs: list[Any], Js: list[Any], Hs: list[Any]) -> None:
    for x in X:
        x = x.double() if x.is_floating_point() else x
        out = m(x[None])
        h = (output(out) if output else out)[0]
        hs.append(h.detach().numpy())
        rows, hrows = [], []
        for a in range(h.shape[0]):
            g = torch.autograd.grad(h[a], params, retain_graph=True, create_graph=hessians,
                                    allow_unused=True)
            g = [torch.zeros_like(p) if gi is None else gi for gi, p in zip(g, params)]
            flat = torch.cat([gi.reshape(-1) for gi in g])
            rows.append(flat.detach().numpy())
            if hessians:
                H = np.zeros((flat.numel(), flat.numel()))
                for i in range(flat.numel()):
                    if not flat[i].requires_grad:
                        continue
                    gi = torch.autograd.grad(flat[i], params, retain_graph=True, allow_unused=True)
                    H[i] = torch.cat([(torch.zeros_like(p) if t is None else t).reshape(-1)
                                      for t, p in zip(gi, params)]).detach().numpy()
                hrows.append(H)
        Js.append(np.stack(rows))
        if hessians:
            Hs.append(np.stack(hrows))


def expected(model: nn.Module, X: torch.Tensor, fam: Any, n: int, hessians: bool = False,
             output: Any = None) -> dict[str, np.ndarray]:
    h, J, H = dense_derivatives(model, X, hessians, output)
    I, K = fam.fisher(h), fam.central_moment4(h)
    out = {"fisher": np.einsum("map,mab,mbp->p", J, I, J) / len(X),
           "v1": cov1_variance(J, K, I, n, diagonal=True)}
    if hessians:
        assert H is not None
        out["v2"] = cov2_variance(H, I, n, diagonal=True)
    return out


def flat(d: dict[str, torch.Tensor], model: nn.Module) -> np.ndarray:
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    assert list(d) == names
    for k, p in model.named_parameters():
        if p.requires_grad:
            assert d[k].shape == p.shape and d[k].dtype == torch.float64
    return torch.cat([d[k].reshape(-1) for k in names]).cpu().numpy()


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float = RTOL) -> None:
    scale = max(float(np.max(np.abs(want))), 1e-300)
    err = float(np.max(np.abs(got - want))) / scale
    assert err <= rtol, f"relative error {err:.3g} > {rtol:g}"
    assert scale > 1e-12, "the check is vacuous: the expected values are all ~0"


# --- small models of each kind ----------------------------------------------------------------


class Conv1dNet(nn.Module):
    def __init__(self, act: nn.Module, n_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 3)
        self.act = act
        self.pool = nn.AvgPool1d(2)
        self.fc = nn.Linear(3 * 2, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


class TokenAttention(nn.Module):
    """Embedding → self-attention → residual LayerNorm → mean pool → Linear."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(5, 4)
        self.att = nn.MultiheadAttention(4, 2, batch_first=True)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, n_out)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        e = self.emb(idx)
        a, _ = self.att(e, e, e, need_weights=False)
        return self.fc(self.ln(e + a).mean(1))


def _bn_net(n_out: int) -> nn.Module:
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, n_out))
    with torch.no_grad():  # non-trivial running statistics
        net[1].running_mean.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
        net[1].running_var.copy_(torch.tensor([1.5, 0.7, 2.0, 0.9]))
    return net.eval()


def model_zoo(n_out: int) -> dict[str, tuple[nn.Module, torch.Tensor, bool]]:
    """name -> (model, inputs, smooth)."""
    torch.manual_seed(1)
    return {
        "relu_mlp": (nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, n_out)),
                     torch.randn(4, 3), False),
        "tanh_mlp": (nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3), nn.Tanh(),
                                   nn.Linear(3, n_out)), torch.randn(4, 3), True),
        "conv1d_gelu": (Conv1dNet(nn.GELU(), n_out), torch.randn(3, 2, 7), True),
        "conv2d_pool": (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                      nn.Linear(2 * 2 * 2, n_out)), torch.randn(3, 1, 6, 6), False),
        "conv2d_avg_silu": (nn.Sequential(nn.Conv2d(1, 2, 2), nn.SiLU(), nn.AvgPool2d(2),
                                          nn.Flatten(), nn.Linear(2 * 2 * 2, n_out)),
                            torch.randn(3, 1, 5, 5), True),
        "batchnorm_eval": (_bn_net(n_out), torch.randn(4, 3), True),
        "layernorm_softplus": (nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Softplus(),
                                             nn.Linear(4, n_out)), torch.randn(4, 3), True),
        "attention": (TokenAttention(n_out).eval(), torch.randint(0, 5, (3, 4)), True),
    }


FAMILIES = {
    "categorical3": (lambda: fv.family("categorical", K=3), 3),
    "product_poisson_bernoulli": (lambda: fv.product(fv.family("poisson"), fv.family("bernoulli")), 2),
    "poisson": (lambda: fv.family("poisson"), 1),
}


@pytest.mark.parametrize("fam_name", list(FAMILIES))
@pytest.mark.parametrize("model_name", list(model_zoo(1)))
def test_fisher_and_variance1_match_dense_route(model_name: str, fam_name: str) -> None:
    make, n_out = FAMILIES[fam_name]
    fam = make()
    model, X, _ = model_zoo(n_out)[model_name]
    if fam_name == "poisson":  # keep h = log rate moderate
        X = 0.5 * X if X.is_floating_point() else X
    want = expected(model, X, fam, n=3)
    ws = open_workspace(model, X, fam, progress=False)
    got = model_diagonals(ws, 3, fisher=True, variance_1=True)
    assert got.num_inputs == len(X) and got.fisher is not None and got.variance_1 is not None
    assert_close(flat(got.fisher, model), want["fisher"])
    assert_close(flat(got.variance_1, model), want["v1"])


class SequenceLinear(nn.Module):
    """A Linear layer applied to every position (its weight gradient is a sum over positions)
    and one applied twice: both must go through the generic Jacobian, not the Linear shortcut."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.tok = nn.Linear(3, 4)
        self.twice = nn.Linear(4, 4)
        self.fc = nn.Linear(4, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.tanh(self.tok(x)).mean(1)
        return self.fc(self.twice(torch.tanh(self.twice(z))))


@pytest.mark.parametrize("structured", [True, False])
def test_linear_shortcut_and_generic_route_match_dense(structured: bool) -> None:
    fam = fv.family("categorical", K=3)
    torch.manual_seed(2)
    model = SequenceLinear(3)
    X = torch.randn(4, 5, 3)
    ws = open_workspace(model, X, fam, progress=False, structured=structured)
    assert [s.module for s in ws.sites] == (["fc"] if structured else [])
    want = expected(model, X, fam, n=2)
    got = model_diagonals(ws, 2)
    assert got.fisher is not None and got.variance_1 is not None
    assert_close(flat(got.fisher, model), want["fisher"])
    assert_close(flat(got.variance_1, model), want["v1"])


def test_tied_weights_match_dense_route() -> None:
    """An embedding tied to the output layer: one θ entry, derivatives through both uses."""

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(5, 4)
            self.fc = nn.Linear(4, 5, bias=False)
            self.fc.weight = self.emb.weight

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.tanh(self.emb(idx)).mean(1))

    torch.manual_seed(6)
    model, X, fam = Tied(), torch.randint(0, 5, (3, 4)), fv.family("categorical", K=5)
    ws = open_workspace(model, X, fam, progress=False)
    assert ws.sites == [] and list(ws.prep.params) == ["emb.weight"]
    want = expected(model, X, fam, n=1)
    got = model_diagonals(ws, 1)
    assert got.fisher is not None and got.variance_1 is not None
    assert_close(flat(got.fisher, model), want["fisher"])
    assert_close(flat(got.variance_1, model), want["v1"])


def test_public_functions_and_large_categorical() -> None:
    """fv.exact_fisher / fv.variance (diagonal=True); K = 12 uses the O(K) κ₄ route."""
    fam = fv.family("categorical", K=12)
    model, X, _ = model_zoo(12)["conv2d_pool"]
    want = expected(model, X, fam, n=2)
    assert_close(flat(fv.exact_fisher(model, X, fam, diagonal=True), model), want["fisher"])
    assert_close(flat(fv.variance(model, X, fam, which="I1", n=2, diagonal=True), model), want["v1"])


@pytest.mark.parametrize("model_name", ["tanh_mlp", "conv1d_gelu", "batchnorm_eval",
                                        "layernorm_softplus", "attention"])
def test_variance2_exact_matches_dense_route(model_name: str) -> None:
    fam = fv.family("categorical", K=2)
    model, X, smooth = model_zoo(2)[model_name]
    assert smooth
    X = X[:1] if model_name == "attention" else X[:2]  # P² backward passes per input and output
    want = expected(model, X, fam, n=2, hessians=True)
    got = fv.variance(model, X, fam, which="I2", n=2, method="hessian", diagonal=True)
    assert got.all_exact and set(got.methods.values()) == {"hessian"}
    assert_close(flat(got, model), want["v2"])


def test_variance2_linear_route_matches_dense_route() -> None:
    """Linear layers inside a model that is not an Eq. 3 Sequential: exact through the layer's
    output Hessian, whatever the tensor size (exact_limit=0 turns the small-tensor route off)."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(3, 5)
            self.fc2 = nn.Linear(5, 4)
            self.fc3 = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = torch.tanh(self.fc1(x))
            return self.fc3(torch.sigmoid(self.fc2(z)) * z[:, :4])

    torch.manual_seed(8)
    model, X, fam = Net(), torch.randn(3, 3), fv.family("categorical", K=3)
    ws = open_workspace(model, X, fam, progress=False)
    got = model_diagonals(ws, 2, fisher=False, variance_1=False, variance_2=True, exact_limit=0)
    assert got.variance_2 is not None and got.variance_2.all_exact
    assert set(got.variance_2.methods.values()) == {"linear"}
    assert_close(flat(got.variance_2, model), expected(model, X, fam, n=2, hessians=True)["v2"])


def test_variance2_eq3_route_on_mlp_matches_dense_route() -> None:
    fam = fv.product(fv.family("poisson"), fv.family("bernoulli"))
    model, X, _ = model_zoo(2)["tanh_mlp"]
    want = expected(model, 0.5 * X, fam, n=4, hessians=True)
    got = fv.variance(model, 0.5 * X, fam, which="I2", n=4, diagonal=True)
    assert got.all_exact and set(got.methods.values()) == {"eq3"}
    assert_close(flat(got, model), want["v2"])


def test_eq3_path_agrees_on_mlps() -> None:
    """The large-network Eq. 3 path (models.mlp) on the same MLP."""
    from fisher_verify._src.models.mlp import diagonals

    fam = fv.family("categorical", K=3)
    model, X, _ = model_zoo(3)["tanh_mlp"]
    net = fv.Network.from_torch(model, family=fam)
    d = diagonals(net, X.double().numpy(), 5)
    got = model_diagonals(open_workspace(model, X, fam, progress=False), 5, variance_2=True)
    # Network order: per layer W_l (n_out, n_in + 1), bias last column
    def as_network_order(diag: dict[str, torch.Tensor]) -> np.ndarray:
        blocks = []
        for i in (0, 2, 4):
            blocks.append(torch.cat([diag[f"{i}.weight"], diag[f"{i}.bias"][:, None]], 1).reshape(-1))
        return torch.cat(blocks).numpy()
    assert got.fisher is not None and got.variance_1 is not None and got.variance_2 is not None
    assert_close(as_network_order(got.fisher), d.fisher)
    assert_close(as_network_order(got.variance_1), d.variance_1)
    assert_close(as_network_order(got.variance_2), d.variance_2)


def test_backpack_diag_ggn_equals_fisher_diagonal() -> None:
    """BackPACK DiagGGNExact of a summed cross-entropy / M = diag I(θ) for the categorical family."""
    from backpack import backpack, extend
    from backpack.extensions import DiagGGNExact

    fam = fv.family("categorical", K=4)
    for name in ("relu_mlp", "conv2d_pool"):
        model, X, _ = model_zoo(4)[name]
        ref = extend(copy.deepcopy(model).double())
        loss_fn = extend(nn.CrossEntropyLoss(reduction="sum"))
        logits = ref(X.double())
        y = torch.zeros(len(X), dtype=torch.long)  # the GGN does not depend on the labels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with backpack(DiagGGNExact()):
                loss_fn(logits, y).backward()
        want = torch.cat([p.diag_ggn_exact.reshape(-1) for p in ref.parameters()]).numpy() / len(X)
        assert_close(flat(fv.exact_fisher(model, X, fam, diagonal=True), model), want)


# --- Var(Î₂): refusal and the estimate --------------------------------------------------------


class ReluConvTanh(nn.Module):
    """ReLU and max pooling beside a smooth layer, so that Var(Î₂) is not zero (the diagonal of
    a purely piecewise-linear model vanishes, d24-pwl)."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc1 = nn.Linear(8, 4)
        self.fc2 = nn.Linear(4, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1)
        return self.fc2(torch.tanh(self.fc1(z)))


@pytest.mark.parametrize("model_name", ["relu_mlp", "conv2d_pool", "relu_conv_tanh"])
def test_variance2_of_piecewise_models_away_from_kinks(model_name: str) -> None:
    """thm-3-ae: ReLU and max pooling at inputs away from their kinks: Var(Î₂) equals the dense
    plain-autograd route (σ'' = 0 on each piece)."""
    fam = fv.family("categorical", K=3)
    if model_name == "relu_conv_tanh":
        torch.manual_seed(3)
        model, X = ReluConvTanh(3), torch.randn(2, 1, 6, 6)
    else:
        model, X, smooth = model_zoo(3)[model_name]
        assert not smooth
        X = X[:2]
    want = expected(model, X, fam, n=2, hessians=True)
    got = fv.variance(model, X, fam, which="I2", n=2, method="hessian", diagonal=True)
    assert got.all_exact
    if model_name == "relu_conv_tanh":
        assert np.max(want["v2"]) > 1e-3  # the tanh layer makes it non-trivial
        assert_close(flat(got, model), want["v2"])
    else:  # piecewise linear, no tying across layers: ∂²_ii h_L = 0 on each piece (d24-pwl)
        assert np.max(np.abs(want["v2"])) <= 1e-14 * np.max(want["fisher"])
        assert np.max(np.abs(flat(got, model))) <= 1e-14 * np.max(want["fisher"])


def test_variance2_refused_at_a_kink_naming_input_module_and_element() -> None:
    model, X, _ = model_zoo(3)["relu_mlp"]
    X = X[:3].clone().double()
    bad = copy.deepcopy(model).double()
    with torch.no_grad():  # unit 2 of the hidden layer exactly at ReLU's kink for input 1
        bad[0].bias[2] = -(bad[0].weight[2] @ X[1])
    with pytest.raises(UnsupportedError, match=r"kink .*input 1: relu in module 1, element \[2\]"):
        fv.variance(bad, X, fv.family("categorical", K=3), which="I2", diagonal=True)
    # first-order quantities need no second derivative and are given
    assert fv.exact_fisher(bad, X, fv.family("categorical", K=3), diagonal=True) is not None


def test_max_pool_tie_refused_only_when_it_depends_on_theta() -> None:
    """A tie in a max-pooling window is a kink in θ only when the pooled values depend on θ."""
    fam = fv.family("categorical", K=2)
    X = torch.tensor([[[1.0, 1.0, 0.5, -2.0]]], dtype=torch.float64)  # window 0 ties
    on_data = nn.Sequential(nn.MaxPool1d(2), nn.Flatten(), nn.Linear(2, 2)).double()
    fv.variance(on_data, X, fam, which="I2", diagonal=True)  # pooled values are the data
    scaled = nn.Sequential(nn.Conv1d(1, 1, 1), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(2, 2)).double()
    with pytest.raises(UnsupportedError, match=r"input 0: max_pool1d in module 1, element \[0, 0\]"):
        fv.variance(scaled, X, fam, which="I2", diagonal=True)


def test_functional_relu_detected() -> None:
    class F(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)
            self.out = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.nn.functional.relu(self.fc(x)))

    torch.manual_seed(0)
    model, X = F().double(), torch.randn(3, 3, dtype=torch.float64)
    with torch.no_grad():
        model.fc.bias[1] = -(model.fc.weight[1] @ X[2])
    with pytest.raises(UnsupportedError, match="input 2: relu in module <root>, element \\[1\\]"):
        fv.variance(model, X, fv.family("categorical", K=2), which="I2", diagonal=True)
    with pytest.raises(UnsupportedError, match="smooth=False"):
        fv.variance(nn.Linear(3, 2), torch.randn(3, 3), fv.family("categorical", K=2),
                                   which="I2", smooth=False, diagonal=True)
    clamp = nn.Sequential(nn.Linear(3, 2), nn.Hardtanh(), nn.Linear(2, 2))  # kinks located too
    fv.variance(clamp, torch.randn(3, 3), fv.family("categorical", K=2), which="I2", diagonal=True)


def _probes_and_dense(model: nn.Module, X: torch.Tensor, fam: Any):  # type: ignore[no-untyped-def]
    ws = open_workspace(model, X, fam, progress=False)
    h, _, H = dense_derivatives(model, X, hessians=True)
    assert H is not None
    return ws, fam.fisher(h), H


def test_hutchinson_probe_sums_match_dense_route() -> None:
    """For given probes, TᵀIT, d̂_sᵀId̂_s and d̂_sᵀIT equal the dense-Hessian values."""
    fam = fv.family("categorical", K=3)
    model, X, _ = model_zoo(3)["conv1d_gelu"]
    X = X[:2]
    ws, I, H = _probes_and_dense(model, X, fam)
    g = torch.Generator().manual_seed(5)
    V = {k: torch.randint(0, 2, (4, len(X), *p.shape), generator=g).double() * 2 - 1
         for k, p in ws.prep.params.items()}
    got = probe_sums(ws, X.double(), V)
    # one probe over all of θ (every tensor in V): d̂ = v ⊙ (H v) with the full H
    v = torch.cat([V[k].reshape(4, len(X), -1) for k in ws.prep.params], -1).numpy()  # (S, M, P)
    D_all = np.einsum("smi,maij,smj->smai", v, H, v)
    off = 0
    mine, dense = [], []
    for k, p in ws.prep.params.items():
        D = D_all[..., off:off + p.numel()]
        off += p.numel()
        T = D.sum(0)
        tit = np.einsum("mai,mab,mbi->i", T, I, T)
        q = np.einsum("smai,mab,smbi->si", D, I, D)
        a = np.einsum("smai,mab,mbi->si", D, I, T)
        mine += [x.numpy().reshape(-1) for x in got[k]]
        dense += [tit, q.reshape(-1), a.reshape(-1)]
    assert_close(np.concatenate(mine), np.concatenate(dense))


def test_hutchinson_u_statistic_is_unbiased_by_enumeration() -> None:
    """Averaged over every pair of Rademacher probes (S = 2), U equals Σ_m dᵀ I d exactly."""
    fam = fv.family("categorical", K=2)
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 2)).double()
    torch.manual_seed(3)
    X = torch.randn(2, 2, dtype=torch.float64)
    ws, I, H = _probes_and_dense(model, X, fam)
    name = "0.bias"  # 2 entries: 4 sign vectors per input, 4⁴ probe pairs over 2 inputs
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=2)), dtype=torch.float64)
    total = torch.zeros(2, dtype=torch.float64)
    count = 0
    for i0, i1, j0, j1 in itertools.product(range(4), repeat=4):
        v = torch.stack([torch.stack([signs[i0], signs[i1]]), torch.stack([signs[j0], signs[j1]])])
        tit, q, a = probe_sums(ws, X, {name: v})[name]  # v: (S=2, M=2, 2)
        total += u_statistic(tit, q, a)[0]
        count += 1
    d = np.einsum("maii->mai", H[:, :, 4:6, 4:6])  # θ order: 0.weight (4), 0.bias (2), ...
    want = np.einsum("mai,mab,mbi->i", d, I, d)
    assert_close((total / count).numpy(), want)


def test_hutchinson_flagged_with_stderr() -> None:
    """The estimate is labelled per tensor; unbiasedness is checked exactly above."""
    fam = fv.family("categorical", K=3)
    model, X, _ = model_zoo(3)["conv1d_gelu"]
    got = fv.variance(model, X, fam, which="I2", method="hutchinson", probes=8, diagonal=True)
    assert not got.all_exact and set(got.methods.values()) == {"hutchinson"}
    assert got.stderr is not None
    assert all(float(v.min()) >= 0 for v in got.stderr.values())
    assert float(sum(v.sum() for v in got.stderr.values())) > 0
    # a 1 MiB budget splits the probes into parameter groups: same labels, finite values
    small = fv.variance(model, X, fam, which="I2", method="hutchinson", probes=8,
                                       memory=1 << 20, diagonal=True)
    assert not small.all_exact and all(bool(torch.isfinite(v).all()) for v in small.values())
    auto = fv.variance(model, X, fam, which="I2", diagonal=True)  # small tensors: exact
    assert auto.all_exact


# --- the user's model is left untouched; modes; data forms ------------------------------------


def _snapshot(model: nn.Module) -> dict[str, Any]:
    return {
        "state": {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()},
        "dtypes": {k: v.dtype for k, v in model.state_dict().items()},
        "grads": {k: p.grad for k, p in model.named_parameters()},
        "req": {k: p.requires_grad for k, p in model.named_parameters()},
        "modes": [m.training for m in model.modules()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
                  for m in model.modules()],
        "ids": {k: id(p) for k, p in model.named_parameters()},
    }


def _assert_same(model: nn.Module, snap: dict[str, Any]) -> None:
    now = _snapshot(model)
    assert now["dtypes"] == snap["dtypes"] and now["req"] == snap["req"]
    assert now["modes"] == snap["modes"] and now["hooks"] == snap["hooks"]
    assert now["ids"] == snap["ids"] and all(g is None for g in now["grads"].values())
    for k, v in snap["state"].items():
        assert torch.equal(now["state"][k], v), k


def test_model_untouched_on_success_and_failure() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Dropout(0.2),
                          nn.Linear(4, 3)).float()
    model[1].running_mean.fill_(0.1)
    model.train()
    X = torch.randn(5, 3)
    snap = _snapshot(model)
    fam = fv.family("categorical", K=3)
    with pytest.raises(UnsupportedError, match="train\\(\\) mode"):
        fv.exact_fisher(model, X, fam, diagonal=True)
    _assert_same(model, snap)
    out = fv.variance(model, X, fam, which="I2", eval_mode=True, diagonal=True)
    assert set(out) == {k for k, _ in model.named_parameters()}
    _assert_same(model, snap)
    with pytest.raises(ShapeError, match="h_L of shape \\(batch, 2\\)"):
        fv.exact_fisher(model, X, fv.family("categorical", K=2), eval_mode=True, diagonal=True)
    _assert_same(model, snap)
    with pytest.raises(DomainError):  # h outside the domain of a negative-h family
        fv.exact_fisher(model.eval(), X, fv.product(*[fv.family("exponential")] * 3), diagonal=True)
    model.train()
    _assert_same(model, snap)


def test_eval_mode_result_equals_model_in_eval() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Tanh(), nn.Linear(4, 2))
    X = torch.randn(4, 3)
    fam = fv.family("categorical", K=2)
    a = fv.exact_fisher(model, X, fam, eval_mode=True, diagonal=True)
    assert model.training
    b = fv.exact_fisher(model.eval(), X, fam, diagonal=True)
    for k in a:
        assert torch.equal(a[k], b[k])


def test_data_forms_and_memory_budget_agree() -> None:
    from torch.utils.data import DataLoader, Dataset, TensorDataset

    fam = fv.family("categorical", K=3)
    model, X, _ = model_zoo(3)["conv2d_avg_silu"]
    X = torch.cat([X, X + 0.5, X - 0.3])
    y = torch.zeros(len(X), dtype=torch.long)

    class Items(Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(X)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return X[i], 0

    ref = flat(fv.variance(model, X, fam, n=2, diagonal=True), model)
    forms = [(X, y), TensorDataset(X, y), Items(), DataLoader(TensorDataset(X, y), batch_size=4),
             DataLoader(Items(), batch_size=3)]
    for data in forms:
        assert_close(flat(fv.variance(model, data, fam, n=2, diagonal=True), model), ref, 1e-13)
    with pytest.raises(UnsupportedError, match="DistributedSampler"):
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(TensorDataset(X, y), num_replicas=2, rank=0)
        fv.exact_fisher(model, DataLoader(TensorDataset(X, y), sampler=sampler), fam, diagonal=True)
    # a 1 MiB budget forces one input per batch and one parameter tensor per group
    small = fv.variance(model, X, fam, n=2, memory=1 << 20, diagonal=True)
    assert_close(flat(small, model), ref, 1e-13)


def test_float32_model_computed_in_float64() -> None:
    fam = fv.family("categorical", K=3)
    model, X, _ = model_zoo(3)["tanh_mlp"]
    a = flat(fv.exact_fisher(model.float(), X.float(), fam, diagonal=True), model)
    b = flat(fv.exact_fisher(copy.deepcopy(model).double(), X.float().double(), fam, diagonal=True), model)
    assert_close(a, b, 1e-15)
    assert next(model.parameters()).dtype == torch.float32


#: float32 vs float64 on these small well-conditioned models: sums of 4th powers of products
#: of a few float32 factors (eps 1.2e-7), amplified by at most ~10³ (as tests/test_large.py).
FLOAT32_RTOL = 1e-4


def test_float32_on_request() -> None:
    fam = fv.family("categorical", K=3)
    model, X, _ = model_zoo(3)["conv1d_gelu"]
    lo = fv.variance(model, X, fam, n=2, dtype=torch.float32, diagonal=True)
    hi = fv.variance(model, X, fam, n=2, diagonal=True)
    assert all(v.dtype == torch.float32 for v in lo.values())
    a = torch.cat([v.reshape(-1).double() for v in lo.values()]).numpy()
    assert_close(a, flat(hi, model), FLOAT32_RTOL)
    with pytest.raises(UnsupportedError, match="dtype"):
        fv.exact_fisher(model, X, fam, dtype=torch.float16, diagonal=True)


def test_output_callable() -> None:
    """output= maps a model's (logits, extra) tuple to h_L."""

    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.fc(x), x

    fam = fv.family("categorical", K=3)
    X = torch.randn(4, 3)
    model = Two()
    got = fv.exact_fisher(model, X, fam, output=lambda o: o[0], diagonal=True)
    want = expected(model, X, fam, 1, output=lambda o: o[0])["fisher"]
    assert_close(flat(got, model), want)
    with pytest.raises(ShapeError, match="output="):
        fv.exact_fisher(model, X, fam, diagonal=True)


@pytest.mark.parametrize("kwargs, match", [
    ({"which": 3}, "which must be 'I1'"),
    ({"n": 0}, "n must be an integer"),
    ({"memory": 10}, "memory must be"),
    ({"which": "I2", "probes": 2, "method": "hutchinson"}, "probes must be"),
    ({"which": "I2", "method": "magic"}, "method must be"),
    ({"which": "I2", "method": "eq3"}, "method='eq3' needs"),
])
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    model = Conv1dNet(nn.Tanh(), 2)
    with pytest.raises(FisherVerifyError, match=match):
        fv.variance(model, torch.randn(2, 2, 7), fv.family("categorical", K=2), **kwargs, diagonal=True)


def test_bad_model_data_family() -> None:
    fam = fv.family("categorical", K=2)
    with pytest.raises(ShapeError, match="torch.nn.Module"):
        fv.exact_fisher(lambda x: x, torch.randn(2, 2), fam, diagonal=True)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="family must be"):
        fv.exact_fisher(nn.Linear(2, 2), torch.randn(2, 2), "categorical", diagonal=True)
    with pytest.raises(ShapeError, match="data must be"):
        fv.exact_fisher(nn.Linear(2, 2), {"x": 1}, fam, diagonal=True)
    with pytest.raises(ShapeError, match="forward pass failed"):
        fv.exact_fisher(nn.Linear(2, 2), torch.randn(2, 5), fam, diagonal=True)
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ShapeError, match="no trainable parameter"):
        fv.exact_fisher(frozen, torch.randn(2, 2), fam, diagonal=True)


def test_var2_scaling_by_one_over_m2n_reaches_the_standard_errors() -> None:
    """Var(Î₂)'s sums are scaled by 1/(M²N) in place: the Hutchinson values, their standard
    errors and the jackknife of their sum all halve from n = 1 to n = 2 (same probes), and an
    exact tensor's standard error is 0."""
    fam = fv.family("categorical", K=3)
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    X = torch.randn(6, 3, dtype=torch.float64)
    kw: dict[str, Any] = dict(which="I2", method="hutchinson", probes=8, seed=3, diagonal=True,
                              progress=False)
    a = fv.variance(model, X, fam, n=1, **kw)
    b = fv.variance(model, X, fam, n=2, **kw)
    assert a.stderr is not None and b.stderr is not None
    for k in a:
        # h_L is linear in the last layer's parameters: only the first layer's ∂²h are not 0
        assert k.startswith("2.") or float(a.stderr[k].abs().max()) > 0
        assert torch.allclose(2 * b[k], a[k], rtol=1e-12, atol=0)
        assert torch.allclose(2 * b.stderr[k], a.stderr[k], rtol=1e-12, atol=0)
    (va, sa, _), (vb, sb, _) = a.sum_over(list(a)), b.sum_over(list(b))
    assert math.isclose(2 * vb, va, rel_tol=1e-12) and math.isclose(2 * sb, sa, rel_tol=1e-12)
    exact = fv.variance(model, X, fam, n=2, **{**kw, "method": "hessian"})
    assert exact.stderr is not None
    assert all(float(v.abs().max()) == 0.0 for v in exact.stderr.values())
