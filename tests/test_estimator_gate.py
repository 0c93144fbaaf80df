"""The estimator gate (fisher_verify.testing.estimator_gate): correct estimators pass, the classic
bugs fail with a fixed seed, and the calibration rests on exact variances (thm-4, thm-6)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify.fisher.covariance import covariance
from fisher_verify.fisher.estimators import estimators_from_draws
from fisher_verify.testing import estimator_gate as gate_mod
from fisher_verify.testing.calibrated import (
    assert_frequency_at_least,
    median_of_means_plan,
    median_of_means_radius,
)
from fisher_verify.testing.estimator_gate import (
    assert_fisher_estimator,
    check_fisher_estimator,
    from_torch_estimator,
    minimum_replications,
    torch_parameter_permutation,
)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids spin-wait contention on a busy 2-core box."""
    try:
        import torch
    except ImportError:
        yield None
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(before)


N = 50  # draws per input
R = 200  # replicates


def _setup(name: str, **params: object) -> tuple[fv.Network, np.ndarray]:
    fam = fv.family(name, **params)
    net = fv.Network.random((3, 4, fam.dim), "tanh", fam, rng=1)
    x = np.random.default_rng(2).normal(size=(4, 3))
    return net, x


FAMILIES = [("categorical", {"K": 3}), ("bernoulli", {}), ("poisson", {}), ("normal", {})]


# --- correct estimators pass ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), FAMILIES)
@pytest.mark.parametrize("kind", [1, 2])
def test_package_estimators_pass(name: str, params: dict, kind: int) -> None:
    net, x = _setup(name, **params)
    rep = assert_fisher_estimator(
        lambda g: getattr(fv.sample_estimators(net, x, N, g), f"i{kind}"),
        net, x, n=N, kind=kind, replications=R, rng=0,
    )
    assert rep.passed and abs(rep.scale - 1.0) < 0.1
    assert 0.7 < rep.sd_ratio < 1.3  # the exact variance is the real spread
    assert "consistent with an unbiased" in rep.diagnosis


def test_diagonal_estimator_passes() -> None:
    net, x = _setup("categorical", K=3)
    assert_fisher_estimator(
        lambda g: np.diagonal(fv.sample_estimators(net, x, N, g).i1),
        net, x, n=N, replications=R, rng=0, diagonal_only=True,
    )
    assert_fisher_estimator(
        lambda g: np.diagonal(fv.sample_estimators(net, x, N, g).i2),
        net, x, n=N, kind=2, replications=R, rng=0, diagonal_only=True,
    )


# --- deliberately wrong estimators fail ------------------------------------------------------


def test_scaled_estimator_fails_and_reports_the_factor() -> None:
    net, x = _setup("categorical", K=3)
    rep = check_fisher_estimator(
        lambda g: 1.5 * fv.sample_estimators(net, x, N, g).i1, net, x, n=N, replications=R, rng=0
    )
    assert not rep.passed
    assert rep.scale == pytest.approx(1.5, rel=0.05) and rep.scale_explains
    assert "1.5x too large" in rep.diagnosis or "1.48x too large" in rep.diagnosis
    with pytest.raises(AssertionError, match="too large"):
        assert_fisher_estimator(
            lambda g: 1.5 * fv.sample_estimators(net, x, N, g).i1, net, x, n=N, replications=R,
            rng=0,
        )


def test_empirical_fisher_fails() -> None:
    """Labels from "data" (a teacher network, drawn once), not from the model: deterministic."""
    net, x = _setup("categorical", K=3)
    teacher = fv.Network.random((3, 4, 3), "tanh", net.family, rng=7)
    y_data = net.family.sample(teacher.forward(x), N, np.random.default_rng(99))
    rep = check_fisher_estimator(
        lambda g: estimators_from_draws(net, x, y_data).i1, net, x, n=N, replications=R, rng=0
    )
    assert not rep.passed and rep.sd_ratio < 1e-6
    assert "empirical Fisher" in rep.diagnosis


def test_labels_from_perturbed_theta_fail() -> None:
    net, x = _setup("categorical", K=3)
    stale = net.with_theta(net.theta + 0.5 * np.random.default_rng(5).normal(size=net.num_params))

    def estimator(g: np.random.Generator) -> np.ndarray:
        y = net.family.sample(stale.forward(x), N, g)
        return estimators_from_draws(net, x, y).i1

    rep = check_fisher_estimator(estimator, net, x, n=N, replications=R, rng=0)
    assert not rep.passed and not rep.scale_explains
    assert "not by a constant factor" in rep.diagnosis
    assert abs(rep.worst.z) > rep.worst.threshold_z


def test_diagonal_missing_one_over_n_fails() -> None:
    net, x = _setup("bernoulli")
    rep = check_fisher_estimator(
        lambda g: N * np.diagonal(fv.sample_estimators(net, x, N, g).i1),
        net, x, n=N, replications=R, rng=0, diagonal_only=True,
    )
    assert not rep.passed and rep.scale == pytest.approx(N, rel=0.05)
    assert "missing 1/N" in rep.diagnosis


def test_shape_and_replication_errors() -> None:
    net, x = _setup("bernoulli")
    with pytest.raises(fv.FisherVerifyError, match="diagonal_only"):
        check_fisher_estimator(
            lambda g: np.diagonal(fv.sample_estimators(net, x, 2, g).i1), net, x, n=2,
            replications=R,
        )
    need = minimum_replications(1e-6, net.num_params + 8)
    with pytest.raises(fv.FisherVerifyError, match=f"at least {need}"):
        check_fisher_estimator(
            lambda g: fv.sample_estimators(net, x, 2, g).i1, net, x, n=2, replications=need - 2
        )


# --- the calibration is honest ---------------------------------------------------------------


@pytest.mark.parametrize("kind", [1, 2])
@pytest.mark.parametrize("diagonal_only", [False, True])
def test_exact_variances_match_the_covariance_tensor(kind: int, diagonal_only: bool) -> None:
    """Var⟨W, Î⟩ = Σ W_ij W_kl Cov(Î)^{ijkl} with the thm-4 / thm-6 tensor (P ≤ 40)."""
    net, x = _setup("categorical", K=3)
    X, _ = net.inputs(x)
    V = np.random.default_rng(4).normal(size=(5, net.num_params))
    exp, var, _ = gate_mod._exact_statistics(net, X, kind, 7, V, diagonal_only)
    cov = covariance(net, X, kind, 7)  # type: ignore[arg-type]
    P = net.num_params
    Ws = [np.diag(np.eye(P)[i]) for i in range(P)]
    Ws += [np.diag(v * v) if diagonal_only else np.outer(v, v) for v in V]
    want = np.array([np.einsum("ij,ijkl,kl->", W, cov, W) for W in Ws])
    np.testing.assert_allclose(var, want, rtol=1e-9, atol=1e-14)
    I = fv.exact_fisher(net, X)
    np.testing.assert_allclose(exp, [np.sum(W * I) for W in Ws], rtol=1e-12, atol=1e-15)


def test_large_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401 - torch is a test dependency: a missing torch must fail, not skip
    net, x = _setup("categorical", K=3)
    X, _ = net.inputs(x)
    V = np.random.default_rng(4).normal(size=(3, net.num_params))
    for diag in (False, True):
        dense = gate_mod._exact_statistics(net, X, 2, 5, V, diag)
        monkeypatch.setattr(gate_mod, "DENSE_HESSIAN_LIMIT", 0)
        large = gate_mod._exact_statistics(net, X, 2, 5, V, diag)
        monkeypatch.undo()
        for a, b in zip(dense, large):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)
    dense = gate_mod._exact_statistics(net, X, 1, 5, V, False)
    monkeypatch.setattr(gate_mod, "LARGE_DIAGONAL_P", 0)
    large = gate_mod._exact_statistics(net, X, 1, 5, V, False)
    for a, b in zip(dense, large):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)


def test_threshold_is_the_bonferroni_median_of_means_radius() -> None:
    """No tuning: alpha/S per statistic, the calibrated.py radius from the exact sd."""
    net, x = _setup("poisson")
    rep = check_fisher_estimator(
        lambda g: fv.sample_estimators(net, x, N, g).i1, net, x, n=N, replications=R, rng=0
    )
    S = len(rep.statistics)
    assert S == net.num_params + 8
    assert rep.alpha == 1e-6 and rep.alpha_per_check * S <= 1e-6 * (1 + 1e-12)
    assert (rep.groups, rep.chebyshev_c) == median_of_means_plan(rep.alpha_per_check, R)
    for s in rep.statistics:
        assert s.radius == pytest.approx(median_of_means_radius(s.sd, R, rep.alpha_per_check))
        assert s.slack < 1e-6 * s.radius  # the rounding tolerance is negligible


def test_false_alarm_rate_at_a_measurable_alpha() -> None:
    """At alpha = 0.2 for the whole gate, 40 gates on the true Î₁ alarm no more often than
    Bin(40, 0.2) allows at level 1e-6 (the gate is conservative: Chebyshev + Bonferroni)."""
    net, x = _setup("bernoulli")
    X, _ = net.inputs(x)
    J = net.jacobian(X)
    eta = np.asarray(net.family.mean(net.forward(X)))
    h = net.forward(X)

    def fast_i1(g: np.random.Generator, n: int = 5) -> np.ndarray:
        r = net.family.sample_statistic(h, n, g) - eta[None]  # (n, M, 1)
        S = np.einsum("nma,nmb->mab", r, r) / n
        return np.einsum("map,mab,mbq->pq", J, S, J) / X.shape[0]

    rng = np.random.default_rng(123)
    alarms = sum(
        not check_fisher_estimator(
            fast_i1, net, x, n=5, replications=30, rng=rng, alpha=0.2, directions=2
        ).passed
        for _ in range(40)
    )
    assert_frequency_at_least(40 - alarms, 40, 0.8, alpha=1e-6, what="1 - false alarms")


# --- torch ------------------------------------------------------------------------------------


def _torch_model() -> object:
    import torch
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)
    )


def _torch_score_outer(n: int, fixed_labels: object = None):  # type: ignore[no-untyped-def]
    """A hand-written PyTorch loop: mean over inputs and n model-sampled labels of g gᵀ."""
    import torch

    def fn(model, x, generator):  # type: ignore[no-untyped-def]
        params = list(model.parameters())
        P = sum(p.numel() for p in params)
        total = torch.zeros(P, P, dtype=x.dtype)
        with torch.no_grad():
            probs = torch.softmax(model(x), dim=-1)
        for m in range(x.shape[0]):
            if fixed_labels is None:
                ys = torch.multinomial(probs[m], n, replacement=True, generator=generator)
            else:
                ys = fixed_labels[m]  # type: ignore[index]
            for y in ys:
                logp = torch.log_softmax(model(x[m]), dim=-1)[y]
                grads = torch.autograd.grad(logp, params)
                g = torch.cat([gr.reshape(-1) for gr in grads])
                total += torch.outer(g, g)
        return total / (x.shape[0] * n)

    return fn


def test_torch_loop_passes_and_empirical_torch_fails() -> None:
    import torch
    model = _torch_model()
    fam = fv.family("categorical", K=3)
    net = fv.Network.from_torch(model, fam)
    x = np.random.default_rng(2).normal(size=(3, 3))
    n = 8
    est = from_torch_estimator(_torch_score_outer(n), model, x)
    rep = assert_fisher_estimator(est, net, x, n=n, replications=61, rng=0, directions=4)
    assert rep.passed
    labels = torch.zeros(3, n, dtype=torch.long)  # every "data" label is class 0
    bad = from_torch_estimator(_torch_score_outer(n, labels), model, x)
    with pytest.raises(AssertionError, match="empirical Fisher"):
        assert_fisher_estimator(bad, net, x, n=n, replications=61, rng=0, directions=4)


def test_torch_parameter_permutation() -> None:
    import torch
    model = _torch_model()
    net = fv.Network.from_torch(model, fv.family("categorical", K=3))
    flat = torch.nn.utils.parameters_to_vector(model.parameters()).detach().double().numpy()
    perm = torch_parameter_permutation(model)
    np.testing.assert_array_equal(flat[perm], net.theta)
    no_bias = torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False))
    with pytest.raises(fv.FisherVerifyError, match="no bias"):
        torch_parameter_permutation(no_bias)


def test_report_message_mentions_the_numbers() -> None:
    net, x = _setup("bernoulli")
    rep = check_fisher_estimator(
        lambda g: 2.0 * fv.sample_estimators(net, x, N, g).i1, net, x, n=N, replications=R, rng=0
    )
    text = str(rep)
    assert "FAILED" in text and "alpha = 1.0e-06" in text and "exact standard errors" in text
    assert rep.scale == pytest.approx(2.0, rel=0.05) and "x too large" in rep.diagnosis
    assert math.isfinite(rep.worst.z)


def test_docs_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest example of docs/estimator-gate.md, with a stub ``my_project``."""
    import re
    import sys
    import types
    from pathlib import Path

    import torch
    from torch.func import functional_call, grad, vmap

    def fisher_matrix(model, x, generator, n):  # type: ignore[no-untyped-def]
        params = {k: v.detach() for k, v in model.named_parameters()}
        with torch.no_grad():
            probs = torch.softmax(model(x), dim=-1)
        y = torch.multinomial(probs, n, replacement=True, generator=generator).reshape(-1)
        y = torch.nn.functional.one_hot(y, probs.shape[-1]).to(x.dtype)
        xs = x.repeat_interleave(n, dim=0)

        def logp(p, xi, yi):  # type: ignore[no-untyped-def]
            logits = functional_call(model, p, (xi,))
            return (torch.log_softmax(logits, dim=-1) * yi).sum()

        G = vmap(grad(logp), in_dims=(None, 0, 0))(params, xs, y)
        flat = torch.cat([G[k].reshape(xs.shape[0], -1) for k in params], dim=1)
        return flat.T @ flat / xs.shape[0]

    stub = types.ModuleType("my_project")
    stub.mlp = _torch_model()  # type: ignore[attr-defined]
    stub.fisher_matrix = fisher_matrix  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_project", stub)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "estimator-gate.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S)
    assert code is not None and len(code.group(1).strip().splitlines()) <= 10
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "docs/estimator-gate.md", "exec"), namespace)
    namespace["test_fisher_matrix_is_unbiased"]()  # type: ignore[operator]
    # the same gate catches a scaled version of it
    stub.fisher_matrix = lambda *a, **k: 2.0 * fisher_matrix(*a, **k)  # type: ignore[attr-defined]
    namespace = {}
    exec(compile(code.group(1), "docs/estimator-gate.md", "exec"), namespace)
    with pytest.raises(AssertionError, match="too large"):
        namespace["test_fisher_matrix_is_unbiased"]()  # type: ignore[operator]
