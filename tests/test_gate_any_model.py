"""The estimator gate for any nn.Module the engine accepts (issue 19: "the gate for any model").

A small CNN (Conv2d + ReLU + MaxPool2d + Linear), a ReLU MLP with Dropout (in train() mode, as a
user leaves it) and a LayerNorm model are gated exactly as the Eq. 3 MLP is: the exact reference
comes from :class:`fisher_verify._src.models.as_network.ModuleNetwork` (dense autograd Jacobians of a
float64 eval-mode copy). Independent routes: the Monte Carlo estimators under test are written
here from the definition (eq-7: labels sampled from the model, per-sample gradients by torch
autograd), BackPACK's DiagGGNMC / DiagGGNExact are a third party's, the adapter's J is checked
against torch.func.jacrev on the user's own module and its diag I(θ) against
fv.exact_fisher(diagonal=True) (the engine's vmap route), its output Hessians against central
differences of J.
"""

from __future__ import annotations

import backpack
import numpy as np
import pytest
import torch

import fisher_verify as fv
from fisher_verify._src.models import as_network
from fisher_verify._src.testing import gate_exact
from fisher_verify._src.testing.adapters import module_reference
from fisher_verify.errors import UnsupportedError

nn = torch.nn
R = 60  # the 1e-6 gate's spread tests need about 40; 60 keeps these tests fast
M = 6


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8, 3)).double()


def _dropout_mlp():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Dropout(0.3), nn.Linear(5, 3)).double()
    return model.train()  # as a user leaves it after training


class _LayerNormNet(nn.Module):
    """A user's own class: Linear, LayerNorm, tanh, Linear."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.norm(self.inp(x))))


def _layernorm():
    torch.manual_seed(2)
    return _LayerNormNet().double()


def _inputs(kind, seed=3):
    g = torch.Generator().manual_seed(seed)
    shape = (M, 1, 6, 6) if kind == "cnn" else (M, 3)
    return torch.randn(*shape, generator=g, dtype=torch.float64), torch.randint(0, 3, (M,), generator=g)


MODELS = {"cnn": _cnn, "dropout": _dropout_mlp, "layernorm": _layernorm}


def _snapshot(model):
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        [(p.dtype, p.requires_grad, None if p.grad is None else p.grad.clone()) for p in model.parameters()],
        [(m.training, dict(m._forward_hooks), dict(m._forward_pre_hooks), sorted(vars(m)))
         for m in model.modules()],
    )


def _same(a, b):
    assert a[0].keys() == b[0].keys()
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert len(a[1]) == len(b[1])
    for (d1, r1, g1), (d2, r2, g2) in zip(a[1], b[1]):
        assert (d1, r1) == (d2, r2) and (g1 is None) == (g2 is None)
    assert a[2] == b[2]


# --- estimators from the definition (eq-7) -------------------------------------------------------


def _scores(model, x, y):
    """(B, P) gradients of log p(y_b | x_b), parameters() order, one backward per input."""
    rows = []
    for xi, yi in zip(x, y):
        model.zero_grad()
        (-nn.functional.cross_entropy(model(xi[None]), yi[None])).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    return torch.stack(rows)


def _sampled(model, x, n, generator=None):
    with torch.no_grad():
        probs = torch.softmax(model(x), -1)
    return torch.multinomial(probs, n, replacement=True, generator=generator)  # (M, n)


def mc_diag(model, data, n=4, per_draw=1.0, per_input=1.0, labels="model"):
    """EWC's diagonal: model.eval() (as EWC code does), labels from the global torch RNG;
    ``per_draw`` / ``per_input`` plant a missing 1/n or 1/M, ``labels="data"`` the empirical
    Fisher."""
    model.eval()
    x, y = data
    ys = y[:, None].expand(-1, n) if labels == "data" else _sampled(model, x, n)
    G = torch.cat([_scores(model, x, ys[:, i]) for i in range(n)])
    return (G * G).sum(0) / (n * x.shape[0]) * per_draw * per_input


def mc_full(model, data, generator, n=3):
    """Full Î₁ with labels drawn from the gate's torch.Generator."""
    model.eval()
    x = data[0]
    ys = _sampled(model, x, n, generator)
    G = torch.cat([_scores(model, x, ys[:, i]) for i in range(n)])
    return G.T @ G / G.shape[0]


# --- (a) correct estimators pass, the user's model comes back untouched -------------------------


@pytest.mark.parametrize("which", sorted(MODELS))
def test_correct_monte_carlo_fisher_passes_diagonal(which):
    model = MODELS[which]()
    x, y = _inputs(which)
    before = _snapshot(model)
    report = fv.check_estimator(mc_diag, model, (x, y), family="categorical", n=4,
                                   replications=R)
    assert report.passed, report.message()
    assert report.cause == "ok"
    _same(before, _snapshot(model))


@pytest.mark.parametrize("which", sorted(MODELS))
def test_correct_monte_carlo_fisher_passes_full(which):
    model = MODELS[which]()
    x, y = _inputs(which)
    report = fv.check_estimator(mc_full, model, (x, y), family="categorical", n=3,
                                   replications=R, randomness="generator")
    assert report.passed, report.message()
    assert not report.diagonal_only


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_false_alarm_over_seeds(seed):
    for which in sorted(MODELS):
        model = MODELS[which]()
        x, y = _inputs(which, seed=10 + seed)
        report = fv.check_estimator(mc_diag, model, (x, y), family="categorical", n=2,
                                       replications=R, rng=seed)
        assert report.passed, (which, report.message())


def test_dropout_reference_is_the_eval_model_and_the_report_says_so():
    model = _dropout_mlp()
    x, y = _inputs("dropout")
    report = fv.check_estimator(mc_diag, model, (x, y), family="categorical", n=4, replications=R)
    assert "eval mode" in report.reference_note and "Dropout" in report.reference_note
    assert "reference: the reference is the model in eval mode" in report.message()
    # the same model already in eval mode needs no remark
    report = fv.check_estimator(mc_diag, model.eval(), (x, y), family="categorical", n=4,
                                   replications=R)
    assert report.passed and report.reference_note == ""


def test_a_routine_that_keeps_dropout_on_is_rejected():
    model = _dropout_mlp()
    x, y = _inputs("dropout")

    def train_mode(model, data, n=4):
        x, _ = data
        model.train()  # dropout on while sampling and differentiating: another function
        ys = _sampled(model, x, n)
        G = torch.cat([_scores(model, x, ys[:, i]) for i in range(n)])
        return (G * G).sum(0) / (n * x.shape[0])

    report = fv.check_estimator(train_mode, model, (x, y), family="categorical", n=4,
                                   replications=R)
    assert not report.passed


# --- (b) BackPACK where it supports the model ----------------------------------------------------


@pytest.mark.parametrize("which", ["cnn", "dropout"])
def test_backpack_diag_ggn_mc_and_exact_pass(which):
    from backpack.extensions import DiagGGNExact, DiagGGNMC

    model = MODELS[which]()
    x, y = _inputs(which)

    def diag_ggn(ext, attr):
        def fn(model, data):
            xs, ys = data
            model.eval()
            backpack.extend(model)
            loss = backpack.extend(nn.CrossEntropyLoss())
            with backpack.backpack(ext):
                loss(model(xs), ys).backward()
            return {k: getattr(p, attr) for k, p in model.named_parameters()}
        return fn

    before = _snapshot(model)
    report = fv.check_estimator(diag_ggn(DiagGGNMC(mc_samples=2), "diag_ggn_mc"), model, (x, y),
                                   family="categorical", n=2, replications=R)
    assert report.passed, report.message()
    exact = fv.check_estimator(diag_ggn(DiagGGNExact(), "diag_ggn_exact"), model, (x, y),
                                  family="categorical", n=1, replications=R)
    assert exact.passed and exact.cause == "exact", exact.message()
    _same(before, _snapshot(model))


# --- (c) planted faults are rejected and named, as on the MLP ----------------------------------


@pytest.mark.parametrize("which", sorted(MODELS))
def test_planted_faults_are_named(which):
    model = MODELS[which]()
    x, y = _inputs(which)
    run = lambda fn: fv.check_estimator(fn, model, (x, y), family="categorical", n=4,  # noqa: E731
                                           replications=R)
    missing_n = run(lambda m, d: mc_diag(m, d, per_draw=4.0))
    assert not missing_n.passed and missing_n.cause == "scale" and missing_n.factor == "n", missing_n.message()
    summed = run(lambda m, d: mc_diag(m, d, per_input=float(M)))
    assert not summed.passed and summed.factor == "M", summed.message()
    assert f"M = {M}" in summed.diagnosis
    empirical = run(lambda m, d: mc_diag(m, d, n=1, labels="data"))
    assert not empirical.passed and empirical.cause == "data_labels", empirical.message()
    # the statistics are named by the parameter tensor and element, not an Eq. 3 layer
    first = next(iter(model.named_parameters()))
    zeros = ",".join("0" * first[1].dim())
    assert missing_n.statistics[0].label == f"Î[0,0] ({first[0]}[{zeros}])"


def test_a_transposed_weight_is_named_as_a_permutation():
    model = _layernorm()
    x, y = _inputs("layernorm")
    perm = module_reference(model, fv.family("categorical", K=3), x).network.layer_permutations()[0][1]

    def transposed(model, data):
        return torch.as_tensor(mc_diag(model, data).numpy()[perm])

    report = fv.check_estimator(transposed, model, (x, y), family="categorical", n=4, replications=R)
    assert not report.passed and report.cause == "permutation", report.message()


# --- (d) the reference values, by independent routes -------------------------------------------


def _jacrev(model, x):
    """J (M, n_L, P) by torch.func.jacrev on the user's own module (eval mode, on a copy)."""
    import copy

    from torch.func import functional_call, jacrev

    work = copy.deepcopy(model).eval()
    params = dict(work.named_parameters())
    jac = jacrev(lambda p: functional_call(work, p, (x,)))({k: v.detach() for k, v in params.items()})
    return torch.cat([jac[k].reshape(x.shape[0], 3, -1) for k in params], dim=2).numpy()


@pytest.mark.parametrize("which", sorted(MODELS))
def test_jacobian_and_fisher_diagonal_match_independent_routes(which):
    model = MODELS[which]()
    x, _ = _inputs(which)
    fam = fv.family("categorical", K=3)
    net = module_reference(model, fam, x).network
    X = x.reshape(M, -1).numpy()
    J = net.jacobian(X)
    np.testing.assert_allclose(J, _jacrev(model, x), rtol=1e-10, atol=1e-12)
    h = net.forward(X)
    with torch.no_grad():
        np.testing.assert_allclose(h, model.eval()(x).numpy() if which != "dropout" else
                                   _dropout_eval(model)(x).numpy(), rtol=1e-12)
    diag = np.einsum("map,mab,mbp->p", J, fam.fisher(h), J) / M
    engine = fv.exact_fisher(model, x, fam, eval_mode=True, progress=False, diagonal=True)
    flat = torch.cat([engine[k].reshape(-1) for k, _ in model.named_parameters()]).numpy()
    np.testing.assert_allclose(diag, flat, rtol=1e-9, atol=1e-14)
    # the gate's diag Var(Î₁) route for P > LARGE_DIAGONAL_P agrees with the dense thm-4 route
    dense = fv.variance(net, X, which="I1", n=3, diagonal=True)
    np.testing.assert_allclose(net.variance_diagonal(X, 1, 3), dense, rtol=1e-9, atol=1e-16)


def _dropout_eval(model):
    import copy

    return copy.deepcopy(model).eval()


def test_output_hessians_match_central_differences_of_the_jacobian():
    model = _layernorm()
    x, _ = _inputs("layernorm")
    fam = fv.family("categorical", K=3)
    net = module_reference(model, fam, x[:2]).network
    X = x[:2].numpy()
    H = net.output_hessians(X)
    eps = 1e-5
    P = net.num_params
    fd = np.empty_like(H)
    for i in range(P):
        shifted = []
        for s in (eps, -eps):
            m = _LayerNormNet().double()
            theta = torch.as_tensor(net.theta)
            theta[i] += s
            torch.nn.utils.vector_to_parameters(theta, m.parameters())
            shifted.append(module_reference(m, fam, x[:2]).network.jacobian(X))
        fd[:, :, i, :] = (shifted[0] - shifted[1]) / (2 * eps)
    np.testing.assert_allclose(H, fd, atol=1e-7 * np.abs(H).max())
    assert np.abs(H).max() > 0.1  # LayerNorm and tanh: far from zero


def test_hessian_estimator_kind2_passes_on_the_layernorm_model():
    """Î₂ from the definition: −∇² log p(y|x) per sampled label, by double backward."""
    model = _layernorm()
    x, y = _inputs("layernorm")
    x = x[:3]
    y = y[:3]

    def neg_hessians(model, data, n=2):
        xs, _ = data
        params = list(model.parameters())
        ys = _sampled(model, xs, n)
        total = 0
        for m in range(xs.shape[0]):
            for i in range(n):
                loss = nn.functional.cross_entropy(model(xs[m : m + 1]), ys[m, i : i + 1])
                g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params, create_graph=True)])
                rows = [torch.cat([t.reshape(-1) for t in torch.autograd.grad(g[j], params, retain_graph=True)])
                        for j in range(g.shape[0])]
                total = total + torch.stack(rows)
        return total / (n * xs.shape[0])

    report = fv.check_estimator(neg_hessians, model, (x, y), family="categorical", n=2, which="I2",
                                   replications=40, directions=2)
    assert report.passed, report.message()


# --- limits, refusals ----------------------------------------------------------------------------


def test_hessian_limit_is_the_gates_dense_limit():
    assert as_network.HESSIAN_LIMIT == gate_exact.DENSE_HESSIAN_LIMIT


def test_dense_jacobian_over_budget_is_refused_at_once(monkeypatch):
    model = _cnn()
    x, _ = _inputs("cnn")
    P = sum(p.numel() for p in model.parameters())
    monkeypatch.setattr(as_network, "JACOBIAN_BUDGET", 8 * M * 3 * P - 8)
    with pytest.raises(UnsupportedError, match=r"budget of .* MiB"):
        module_reference(model, fv.family("categorical", K=3), x)
    monkeypatch.setattr(as_network, "JACOBIAN_BUDGET", 8 * M * 3 * P)
    module_reference(model, fv.family("categorical", K=3), x)  # exactly at the budget: accepted


def test_kind2_above_the_hessian_limit_is_refused_naming_it(monkeypatch):
    model = _layernorm()
    x, y = _inputs("layernorm")
    P = sum(p.numel() for p in model.parameters())
    monkeypatch.setattr(as_network, "HESSIAN_LIMIT", M * 3 * P * P - 1)
    with pytest.raises(UnsupportedError, match="above the limit"):
        fv.check_estimator(mc_full, model, (x, y), family="categorical", n=3, which="I2",
                              replications=R, randomness="generator")


def test_kind2_at_a_relu_kink_is_refused_naming_the_module():
    model = _dropout_mlp().eval()
    x, y = _inputs("dropout")
    with torch.no_grad():  # put input 0 exactly on the kink of hidden unit 0
        model[0].bias[0] = -(model[0].weight[0] @ x[0])
    with pytest.raises(UnsupportedError, match="kink"):
        fv.check_estimator(mc_full, model, (x, y), family="categorical", n=3, which="I2",
                              replications=R, randomness="generator")


def test_an_eq3_mlp_keeps_the_analytic_reference():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x, y = _inputs("mlp")
    report = fv.check_estimator(mc_diag, model, (x, y), family="categorical", n=4, replications=R)
    assert report.passed and report.reference_note == ""
    assert report.statistics[0].label == "Î[0,0] (W0[0,0])"  # the Eq. 3 Network's names


# --- more of what the engine accepts: BatchNorm in train() mode, embeddings, attention ---------


class _EmbedAttend(nn.Module):
    """Token embeddings, one self-attention layer, mean pooling, a linear head: long inputs."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, tokens):
        e = self.embed(tokens)
        a, _ = self.attn(e, e, e, need_weights=False)
        return self.head(torch.tanh(a).mean(dim=1))


def _batchnorm():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).double()
    with torch.no_grad():  # running statistics other than the defaults
        model[1].running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        model[1].running_var.copy_(torch.tensor([0.5, 1.5, 2.0, 0.8]))
    return model.train()


def test_batchnorm_in_train_mode_is_gated_with_running_statistics_and_said_so():
    model = _batchnorm()
    x, y = _inputs("batchnorm")
    before = _snapshot(model)
    report = fv.check_estimator(mc_diag, model, (x, y), family="categorical", n=4, replications=R)
    assert report.passed, report.message()
    assert "BatchNorm1d" in report.reference_note and "eval mode" in report.reference_note
    _same(before, _snapshot(model))
    net = module_reference(model, fv.family("categorical", K=3), x).network
    np.testing.assert_allclose(net.jacobian(x.numpy()), _jacrev(model, x), rtol=1e-10, atol=1e-12)


def test_embedding_and_attention_model_with_integer_inputs():
    torch.manual_seed(6)
    model = _EmbedAttend().double().eval()
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, 5, (M, 3), generator=g)
    y = torch.randint(0, 3, (M,), generator=g)
    net = module_reference(model, fv.family("categorical", K=3), tokens).network
    J = net.jacobian(tokens.double().numpy())
    np.testing.assert_allclose(J, _jacrev(model, tokens), rtol=1e-9, atol=1e-12)
    assert "embed.weight[0,0]" in net.parameter_labels()
    report = fv.check_estimator(mc_diag, model, (tokens, y), family="categorical", n=4,
                                   replications=R)
    assert report.passed, report.message()
    doubled = fv.check_estimator(lambda m, d: mc_diag(m, d, per_draw=2.0), model, (tokens, y),
                                    family="categorical", n=4, replications=R)
    assert not doubled.passed and doubled.cause == "scale", doubled.message()


def test_rounding_floor_of_a_diagonal_element_is_rtol_squared_times_the_largest():
    """The attention key bias's score vanishes by symmetry and is computed as cancelling terms:
    Î_ii is zero up to rtol² max_k I_kk, and each diagonal slack is rtol · max(I_ii, rtol max_k I_kk)."""
    torch.manual_seed(6)
    model = _EmbedAttend().double().eval()
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, 5, (M, 3), generator=g)
    y = torch.randint(0, 3, (M,), generator=g)
    report = fv.check_estimator(mc_diag, model, (tokens, y), family="categorical", n=4,
                                   replications=R)
    P = sum(p.numel() for p in model.parameters())
    diag = np.array([s.expected for s in report.statistics[:P]])
    want = 1e-9 * np.maximum(np.abs(diag), 1e-9 * np.max(np.abs(diag)))
    np.testing.assert_allclose([s.slack for s in report.statistics[:P]], want, rtol=1e-12)
    key_bias = [s for s in report.statistics if "attn.in_proj_bias[4]" in s.label][0]
    assert key_bias.expected < 1e-20 * np.max(diag) and key_bias.slack > 1e3 * key_bias.expected


def test_large_cnn_uses_the_dense_jacobian_variance_route_and_passes():
    """P > LARGE_DIAGONAL_P: diag Var(Î₁) comes from ModuleNetwork.variance_diagonal, not the
    Eq. 3 large path (which cannot read a CNN)."""
    torch.manual_seed(8)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 3)).double()
    g = torch.Generator().manual_seed(9)
    x = torch.randn(4, 1, 16, 16, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (4,), generator=g)
    assert sum(p.numel() for p in model.parameters()) > gate_exact.LARGE_DIAGONAL_P
    report = fv.check_estimator(lambda m, d: mc_diag(m, d, n=2), model, (x, y),
                                   family="categorical", n=2, replications=R)
    assert report.passed, report.message()


@pytest.mark.parametrize("family", [fv.family("normal"), fv.family("poisson")], ids=["normal", "poisson"])
def test_variance_diagonal_matches_thm4_dense_route_for_other_families(family):
    torch.manual_seed(10)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 1)).double()
    x = 0.3 * torch.randn(5, 1, 6, 6, dtype=torch.float64)
    net = module_reference(model, family, x).network
    X = x.reshape(5, -1).numpy()
    np.testing.assert_allclose(net.variance_diagonal(X, 1, 2), fv.variance(net, X, which="I1", n=2, diagonal=True),
                               rtol=1e-9, atol=1e-300)
