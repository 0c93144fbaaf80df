"""fv.check_estimator on a module: the gate for a user's own torch model, data and Fisher routine (issue 10).

Independent routes: I(θ) comes from the Network (eq-6, analytic Jacobians) inside the gate, the
Monte Carlo estimators under test are written here with torch autograd from the definition
(eq-7), the empirical Fisher is checked against a per-sample autograd loop, and BackPACK's
DiagGGNMC is a third-party Monte Carlo Fisher.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import backpack
import numpy as np
import pytest
import scipy.sparse.linalg as scipy_linalg
import torch

nn = torch.nn

import fisher_verify as fv  # noqa: E402
from fisher_verify._src.testing.adapters import (  # noqa: E402
    ReferenceModel,
    empirical_fisher,
    estimate_to_array,
    inputs_and_targets,
    restored_module,
    seeded_global_rngs,
    sequential_reference,
)
from fisher_verify._src.testing.estimator_gate import EstimatorReport  # noqa: E402
from fisher_verify.errors import FisherVerifyError, ShapeError, UnsupportedError  # noqa: E402

pytest_plugins = ("pytester",)

R = 60  # enough for the 1e-6 gate (minimum 11) and fast


def _mlp(dtype=torch.float64, out=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, out)).to(dtype)


def _data(dtype=torch.float64, M=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(M, 3, generator=g, dtype=dtype), torch.randint(0, 3, (M,), generator=g)


def _snapshot(model):
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        [(p.dtype, p.device, p.requires_grad, None if p.grad is None else p.grad.clone()) for p in model.parameters()],
        [(m.training, dict(m._forward_hooks), dict(m._backward_hooks), dict(m._forward_pre_hooks), sorted(vars(m)))
         for m in model.modules()],
        [sorted(vars(p)) for p in model.parameters()],
    )


def _same(a, b):
    sd_a, pa, ma, va = a
    sd_b, pb, mb, vb = b
    assert sd_a.keys() == sd_b.keys()
    assert all(torch.equal(sd_a[k], sd_b[k]) and sd_a[k].dtype == sd_b[k].dtype for k in sd_a)
    for (d1, dev1, r1, g1), (d2, dev2, r2, g2) in zip(pa, pb):
        assert (d1, dev1, r1) == (d2, dev2, r2)
        assert (g1 is None) == (g2 is None) and (g1 is None or torch.equal(g1, g2))
    assert ma == mb and va == vb


# --- estimators written from the definition (eq-7) ----------------------------------------------


def _per_sample_grads(model, x, y):
    """(M, P) gradients of log p(y_m | x_m) in parameters() order, one backward per input."""
    rows = []
    for xi, yi in zip(x, y):
        model.zero_grad()
        (-nn.functional.cross_entropy(model(xi[None]), yi[None])).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    return torch.stack(rows)


def ewc_diag(model, loader, n=4):
    """EWC: labels from the model via the global torch RNG, {name: tensor} of squared gradients."""
    F = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    M = 0
    for x, _ in loader:
        for xi in x:
            logits = model(xi[None])
            for y in torch.multinomial(torch.softmax(logits, -1)[0], n, replacement=True):
                model.zero_grad()
                nn.functional.cross_entropy(logits, y[None]).backward(retain_graph=True)
                for k, p in model.named_parameters():
                    F[k] += p.grad**2 / n
            M += 1
    return {k: v / M for k, v in F.items()}


def mc_full(model, data, generator, n=3):
    """Full Î₁ with labels drawn from the torch.Generator the gate hands over."""
    x = data[0] if isinstance(data, tuple) else data
    with torch.no_grad():
        probs = torch.softmax(model(x), -1)
    ys = torch.multinomial(probs, n, replacement=True, generator=generator)  # (M, n)
    G = torch.cat([_per_sample_grads(model, x, ys[:, i]) for i in range(n)])
    return G.T @ G / G.shape[0]


def empirical_full(model, data):
    x, y = data
    G = _per_sample_grads(model, x, y)
    return G.T @ G / G.shape[0]


# --- the one-liner ------------------------------------------------------------------------------


def test_ewc_one_liner_passes_with_a_loader_and_the_global_rng():
    model = _mlp()
    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    before = _snapshot(model)
    report = fv.check_estimator(ewc_diag, model, loader, family="categorical", n=4, replications=R)
    assert isinstance(report, EstimatorReport)
    assert report.passed, report.message()
    assert report.diagonal_only  # inferred from the per-parameter dict
    _same(before, _snapshot(model))


def test_float32_model_passes_with_the_float32_rounding_tolerance():
    model = _mlp(torch.float32)
    x, y = _data(torch.float32)
    report = fv.assert_estimator(ewc_diag, model, [(x, y)], family="categorical", n=4, replications=R)
    assert report.passed
    assert model[0].weight.dtype == torch.float32


def test_sum_over_inputs_is_caught_with_its_factor():
    model = _mlp()
    x, y = _data(M=6)

    def summed(model, data):
        return {k: 6 * v for k, v in ewc_diag(model, [data]).items()}

    report = fv.check_estimator(summed, model, (x, y), family="categorical", n=4, replications=R)
    assert not report.passed
    assert report.scale == pytest.approx(6.0, rel=0.1)
    assert "M = 6" in report.diagnosis
    with pytest.raises(AssertionError, match="FAILED"):
        fv.assert_estimator(summed, model, (x, y), family="categorical", n=4, replications=R)


def test_reduction_sum_takes_a_summed_curvature_without_dividing_by_hand():
    """reduction='sum' (laplace-torch's la.H): BackPACK's exact GGN of a summed loss is M I(θ);
    the gate divides by M and passes it, and refuses an unknown reduction by name."""
    from backpack.extensions import DiagGGNExact

    model = _mlp()
    x, y = _data(M=6)

    def summed_ggn(model, data):
        xs, ys = data
        backpack.extend(model)
        loss = backpack.extend(nn.CrossEntropyLoss(reduction="sum"))
        with backpack.backpack(DiagGGNExact()):
            loss(model(xs), ys).backward()
        return {k: p.diag_ggn_exact for k, p in model.named_parameters()}

    report = fv.check_estimator(summed_ggn, model, (x, y), family="categorical", reduction="sum",
                                   replications=20)
    assert report.passed, report.message()
    assert not fv.check_estimator(summed_ggn, model, (x, y), family="categorical",
                                     replications=20).passed
    with pytest.raises(FisherVerifyError, match="reduction must be 'mean' .* or 'sum'"):
        fv.check_estimator(summed_ggn, model, (x, y), family="categorical", reduction="total")


def test_generator_convention_and_full_matrix():
    model = _mlp()
    x, y = _data()
    report = fv.check_estimator(
        mc_full, model, (x, y), family="categorical", n=3, randomness="generator", replications=R
    )
    assert report.passed, report.message()
    assert not report.diagonal_only


def test_seed_convention_gets_distinct_integer_seeds():
    model = _mlp()
    x, y = _data()
    seen = []

    def with_seed(model, data, seed):
        seen.append(seed)
        return mc_full(model, data, torch.Generator().manual_seed(seed))

    report = fv.check_estimator(with_seed, model, (x, y), family="categorical", n=3, randomness="seed",
                                   replications=R)
    assert report.passed, report.message()
    assert len(set(seen)) == len(seen) == R + 1  # one probe call, then R replicates


def test_a_missing_generator_argument_names_the_option():
    model = _mlp()
    x, y = _data()
    with pytest.raises(FisherVerifyError, match="randomness='generator'"):
        fv.check_estimator(mc_full, model, (x, y), family="categorical", n=3, replications=R)


def test_placeholder_labels_for_a_loss_that_needs_targets():
    model = _mlp()
    x, _ = _data()
    got = []

    def needs_targets(model, data):
        xs, ys = data  # fails without targets
        got.append(ys)
        return ewc_diag(model, [(xs, ys)])

    report = fv.check_estimator(needs_targets, model, x, family="categorical", n=4, placeholder_labels=True,
                                   replications=R)
    assert report.passed, report.message()
    assert all(torch.equal(t, torch.zeros(6, dtype=torch.long)) for t in got)


def test_pluggable_reference_model_is_used():
    model = _mlp()
    x, y = _data()
    calls = []

    def reference(model, family):
        calls.append(family.name)
        ref = sequential_reference(model, family)
        return ReferenceModel(ref.network, ref.permutation)

    report = fv.check_estimator(ewc_diag, model, [(x, y)], family="categorical", n=4, replications=R,
                                   reference_model=reference)
    assert report.passed and calls == ["categorical"]


def test_backpack_diag_ggn_mc_passes_through_the_adapter():
    from backpack.extensions import DiagGGNMC

    model = _mlp()
    x, y = _data()

    def diag_ggn_mc(model, data):
        xs, ys = data
        backpack.extend(model)
        loss = backpack.extend(nn.CrossEntropyLoss())
        with backpack.backpack(DiagGGNMC(mc_samples=2)):
            loss(model(xs), ys).backward()
        return {k: p.diag_ggn_mc for k, p in model.named_parameters()}

    before = _snapshot(model)
    report = fv.check_estimator(diag_ggn_mc, model, (x, y), family="categorical", n=2, replications=R)
    assert report.passed, report.message()
    _same(before, _snapshot(model))  # BackPACK's hooks and attributes are gone


# --- the empirical reference --------------------------------------------------------------------


def test_empirical_reference_passes_the_empirical_fisher_exactly():
    model = _mlp()
    x, y = _data()
    report = fv.check_estimator(empirical_full, model, (x, y), family="categorical", reference="empirical")
    assert isinstance(report, EstimatorReport) and report.reference == "empirical"
    assert report.passed and report.deterministic, report.message()
    assert report.max_error <= 1e-9


def test_empirical_reference_names_a_factor_and_a_random_estimator():
    model = _mlp()
    x, y = _data(M=6)
    doubled = fv.check_estimator(lambda m, d: 6 * empirical_full(m, d), model, (x, y), family="categorical",
                                    reference="empirical")
    assert not doubled.passed and doubled.scale == pytest.approx(6.0) and "M = 6" in doubled.diagnosis
    sampled = fv.check_estimator(lambda m, d: ewc_diag(m, [d]), model, (x, y), family="categorical",
                                    reference="empirical")
    assert not sampled.passed and not sampled.deterministic and "random" in sampled.diagnosis


def test_empirical_fisher_matches_an_autograd_loop_for_the_normal_family():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 1)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.randn(5, 1, dtype=torch.float64)
    rows = []
    for xi, yi in zip(x, y):
        model.zero_grad()
        (-0.5 * (model(xi[None]) - yi) ** 2).sum().backward()  # log N(y; h, 1) up to a constant
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    G = torch.stack(rows)
    expected = (G.T @ G / 5).numpy()
    got = empirical_fisher(model, x, y, fv.family("normal"))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(empirical_fisher(model, x, y, fv.family("normal"), diagonal=True),
                               np.diag(expected), rtol=1e-12, atol=1e-14)


def test_empirical_reference_needs_labels():
    model = _mlp()
    x, _ = _data()
    with pytest.raises(FisherVerifyError, match="labels"):
        fv.check_estimator(empirical_full, model, x, family="categorical", reference="empirical")


# --- the model comes back untouched -------------------------------------------------------------


def test_restored_module_undoes_everything_also_on_error():
    model = _mlp(torch.float32)
    model[0].weight.requires_grad_(False)
    model[2].bias.grad = torch.ones(3)
    model.eval()
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match="boom"), restored_module(model):
        model.train()
        model.double()
        model[0].register_forward_hook(lambda *a: None)
        model[2].register_full_backward_hook(lambda *a: None)
        model[2].extra = 1
        model[2].weight.register_hook(lambda g: 0 * g)
        model[2].weight.register_post_accumulate_grad_hook(lambda p: None)
        model[2].bias.diag_ggn = torch.zeros(3)
        with torch.no_grad():
            model[2].weight.add_(1.0)
        model[0].weight.requires_grad_(True)
        model[2].bias.grad = None
        model[0].bias = nn.Parameter(torch.zeros(4, dtype=torch.float64))
        raise RuntimeError("boom")
    _same(before, _snapshot(model))
    assert not hasattr(model[2], "extra") and not hasattr(model[2].bias, "diag_ggn")
    assert not model[2].weight._backward_hooks and not model[2].weight._post_accumulate_grad_hooks
    model[2].weight.grad = None
    model(torch.ones(1, 3)).sum().backward()
    assert torch.count_nonzero(model[2].weight.grad) > 0  # the zeroing tensor hook is gone


def test_model_restored_when_the_estimator_raises():
    model = _mlp()
    x, y = _data()
    before = _snapshot(model)

    def broken(model, data):
        model.double()
        model[0].weight.data.mul_(2)
        raise ValueError("library failure")

    with pytest.raises(ValueError, match="library failure"):
        fv.check_estimator(broken, model, (x, y), family="categorical", replications=R)
    _same(before, _snapshot(model))


def test_global_rngs_are_seeded_and_restored():
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    expected = (torch.rand(1), np.random.rand(), random.random())
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    with seeded_global_rngs(5):
        first = (torch.rand(1), np.random.rand(), random.random())
    with seeded_global_rngs(5):
        again = (torch.rand(1), np.random.rand(), random.random())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]
    after = (torch.rand(1), np.random.rand(), random.random())
    assert torch.equal(after[0], expected[0]) and after[1:] == expected[1:]


# --- output and data forms ----------------------------------------------------------------------


class _Matmul:
    def __init__(self, A):
        self.A = A

    def __matmul__(self, X):
        return self.A @ X


class _ListMatmat:
    """curvlinops' private convention: one tensor per parameter, columns last."""

    def __init__(self, A, params):
        self.A, self.shapes = A, [p.shape for p in params]

    def _matmat(self, Xs):
        X = torch.cat([x.reshape(-1, x.shape[-1]) for x in Xs])
        Y = self.A @ X
        out, start = [], 0
        for s in self.shapes:
            k = int(np.prod(s))
            out.append(Y[start:start + k].reshape(*s, Y.shape[-1]))
            start += k
        return out


def test_every_output_form_reads_the_same_estimate():
    model = _mlp()
    params = list(model.parameters())
    P = sum(p.numel() for p in params)
    B = torch.randn(P, P, dtype=torch.float64)
    A = B @ B.T
    d = torch.diagonal(A)
    chunks = torch.split(d, [p.numel() for p in params])
    per_param = {k: c.reshape(p.shape) for (k, p), c in zip(model.named_parameters(), chunks)}
    per_module = {"0": {"weight": per_param["0.weight"], "bias": per_param["0.bias"]},
                  "2": type("Diag", (), {"weight": per_param["2.weight"], "bias": per_param["2.bias"]})()}
    for form in (per_param, per_module, list(per_param.values()), d, d.numpy()):
        np.testing.assert_array_equal(estimate_to_array(form, model), d.numpy())
    scipy_op = scipy_linalg.LinearOperator((P, P), matvec=lambda v: A.numpy() @ v)
    for form in (A, _Matmul(A), _ListMatmat(A, params), scipy_op):
        np.testing.assert_allclose(estimate_to_array(form, model), A.numpy(), rtol=1e-13, atol=1e-12)


def test_bad_output_forms_name_what_would_be_valid():
    model = _mlp()
    with pytest.raises(ShapeError, match=r"expected \(31,\) \(the diagonal\) or \(31, 31\)"):
        estimate_to_array(torch.zeros(5), model)
    with pytest.raises(ShapeError, match="no entry for parameter '0.bias'"):
        estimate_to_array({"0.weight": torch.zeros(4, 3)}, model)
    with pytest.raises(ShapeError, match="only diagonal"):
        estimate_to_array({k: torch.zeros(p.numel(), p.numel()) for k, p in model.named_parameters()}, model)
    with pytest.raises(ShapeError, match="could not read"):
        estimate_to_array(object(), model)
    with pytest.raises(ShapeError, match=r"\['running_mean'\] that are neither parameters nor modules"):
        estimate_to_array({**{k: torch.zeros_like(p) for k, p in model.named_parameters()},
                           "running_mean": torch.zeros(3)}, model)


def test_a_huge_linear_operator_is_refused_at_once():
    wide = nn.Sequential(nn.Linear(100, 90), nn.Tanh(), nn.Linear(90, 3))  # P = 9363
    with pytest.raises(UnsupportedError, match="P <= 8192"):
        estimate_to_array(_Matmul(None), wide)


def test_inputs_and_targets_from_every_data_form():
    x, y = _data()
    ds = torch.utils.data.TensorDataset(x, y)
    state = torch.get_rng_state()
    for data in (ds, torch.utils.data.DataLoader(ds, batch_size=4), (x, y), [(x, y)]):
        X, Y = inputs_and_targets(data)
        assert torch.equal(X, x) and torch.equal(Y, y)
    X, Y = inputs_and_targets(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True))
    assert X.shape == x.shape and torch.equal(torch.get_rng_state(), state)
    X, Y = inputs_and_targets(x)
    assert torch.equal(X, x) and Y is None
    with pytest.raises(ShapeError, match="not supported"):
        inputs_and_targets(3)


# --- the pytest plugin --------------------------------------------------------------------------


def test_pyproject_declares_the_pytest11_entry_point():
    # text, not tomllib: the project supports Python 3.10
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    section = re.search(r"^\[project\.entry-points\.pytest11\]\n((?:[^\[\n].*\n)*)", text, re.M)
    assert section is not None
    assert 'fisher_verify = "fisher_verify.testing.pytest_plugin"' in section.group(1)


def _plugin_args():
    from importlib.metadata import entry_points

    loaded = any(ep.value == "fisher_verify.testing.pytest_plugin" for ep in entry_points(group="pytest11"))
    return () if loaded else ("-p", "fisher_verify.testing.pytest_plugin")


def test_plugin_fixture_passes_a_correct_and_fails_a_wrong_estimator(pytester):
    pytester.makepyfile(
        """
        import torch
        from torch import nn

        def fisher(model, data, n=2):
            x, _ = data
            probs = torch.softmax(model(x), -1).detach()
            F = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
            for y in torch.multinomial(probs, n, replacement=True).T:
                for xi, yi in zip(x, y):
                    model.zero_grad()
                    nn.functional.cross_entropy(model(xi[None]), yi[None]).backward()
                    for k, p in model.named_parameters():
                        F[k] += p.grad ** 2 / (n * len(x))
            return F

        def setup():
            torch.manual_seed(0)
            model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 3)).double()
            return model, (torch.randn(4, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.long))

        def test_correct(fisher_estimator_gate):
            model, data = setup()
            report = fisher_estimator_gate(fisher, model, data, family="categorical", n=2)
            assert report.replications == 40

        def test_doubled(fisher_estimator_gate):
            model, data = setup()
            fisher_estimator_gate(lambda m, d: {k: 2 * v for k, v in fisher(m, d).items()},
                                  model, data, family="categorical", n=2)

        def test_one_call_form(fisher_estimator_gate):
            # the fixture is assert_estimator and nothing else: no second way into the gate
            assert [a for a in dir(fisher_estimator_gate) if not a.startswith("_")] == ["defaults"]
        """
    )
    result = pytester.runpytest(*_plugin_args(), "--fisher-gate-replications=40", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_doubled*", "*Fisher estimator gate FAILED*", "*2x too large*"])
