"""Diagnoses of compound causes and messages that never mislead (issue 15 §2): a deterministic
estimate that is also rescaled is named with both parts, a constant factor only when one fits
within its standard error, hints computed for the entry point used, data and estimates in the
forms real code uses accepted or refused naming the form."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import fisher_verify as fv
from fisher_verify import check_estimator
from fisher_verify._src.fisher.estimators import estimators_from_draws
from fisher_verify._src.testing.adapters import estimate_to_array, inputs_and_targets
from fisher_verify.errors import ShapeError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_estimator_gate import _Fast  # noqa: E402

R = 200


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(before)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return np.asarray(e / e.sum(-1, keepdims=True))


# --- compound causes ----------------------------------------------------------------------------


def test_empirical_fisher_divided_by_m_minus_1_is_named_with_both_parts() -> None:
    """An EWC routine with the data's labels, divided by M − 1 (M = 16): "the empirical Fisher
    × 16/15", not "not the argmax labels"."""
    f = _Fast("categorical", n=16, M=16, K=3)
    teacher = fv.Network.random(f.net.widths, "tanh", f.fam, rng=7)
    y = f.fam.sample(teacher.forward(f.X), 1, np.random.default_rng(99))[0]
    emp = estimators_from_draws(f.net, f.x, y[None]).i1
    rep = check_estimator(lambda g: 16 / 15 * emp, f.net, f.x, n=16, replications=R, rng=0,
                                 labels=y)
    assert not rep.passed and rep.cause == "data_labels" and rep.factor == "M/(M-1)"
    assert "the empirical Fisher × 16/15 (divided by M − 1 instead of M)" in rep.diagnosis


def test_exact_fisher_summed_over_inputs_is_named_with_both_parts() -> None:
    """laplace-torch's H: a sum over the inputs of the exact per-input Fisher: "deterministic
    and equal to I(θ) × M (a sum over the inputs, not a mean)", not "relative error 7"."""
    f = _Fast("categorical", n=16, M=8, K=3)
    rep = check_estimator(lambda g: 8 * f.I, f.net, f.x, n=16, replications=R, rng=0)
    assert not rep.passed and rep.cause == "exact_scaled" and rep.factor == "M"
    assert "deterministic and equal to I(θ) × 8 (a sum over the inputs, not a mean)" in rep.diagnosis


def test_argmax_labels_rescaled_are_named_with_both_parts() -> None:
    f = _Fast("categorical", n=16, K=3)
    top = np.eye(3)[np.argmax(f.eta, axis=-1)][None]
    rep = check_estimator(lambda g: 2.0 * f.i1_from(top), f.net, f.x, n=16,
                                 replications=R, rng=0)
    assert rep.cause == "argmax_labels" and rep.factor == "2" and "× 2" in rep.diagnosis


def test_an_unnamed_exact_factor_is_given_as_a_number() -> None:
    f = _Fast("poisson", n=16)
    rep = check_estimator(lambda g: 1.2345 * f.I, f.net, f.x, n=16, replications=R, rng=0)
    assert rep.cause == "exact_scaled" and rep.factor == "" and "× 1.2345" in rep.diagnosis


# --- a constant factor only when one fits within its standard error -----------------------------


def test_softmax_fed_to_cross_entropy_is_not_a_rescaling() -> None:
    """Probabilities fed to cross_entropy as logits: the score is J ᵀ(Diag q − qqᵀ)(t − softmax q).
    Its per-entry ratio to I(θ) ranges over a factor 5 (0.026 to 0.14 on this network): no
    constant factor is named (formerly "a rescaling by 0.112")."""
    f = _Fast("categorical", n=16, K=3)
    q = np.asarray(f.eta)
    p2 = _softmax(q)
    D = np.einsum("mk,kl->mkl", q, np.eye(3)) - np.einsum("mk,ml->mkl", q, q)

    def est(g: np.random.Generator) -> np.ndarray:
        t = f.fam.sample_statistic(f.h, 16, g)
        r = np.einsum("mkl,nml->nmk", D, t - p2[None])
        S = np.einsum("nma,nmb->mab", r, r) / 16
        return np.asarray(np.einsum("map,mab,mbq->pq", f.J, S, f.J) / f.M)

    rep = check_estimator(est, f.net, f.x, n=16, replications=R, rng=0)
    assert not rep.passed and rep.cause == "distribution" and rep.factor == ""
    assert not rep.scale_explains and "not by a constant factor" in rep.diagnosis


def test_a_factor_fits_only_within_the_residuals_standard_error() -> None:
    """Ratios 0.03 and 0.14 to I(θ) with a radius calibrated for Î_kind far above both: the
    radius alone would call 0.085 a fitting factor; the residuals' own standard errors
    (estimator spread 0.001, ĉ's 0.001) do not."""
    from fisher_verify._src.testing.diagnose import _fits, _fits_within_se

    R_, z = 200, 6.8
    e = np.array([1.0, 1.0])
    means = np.array([0.03, 0.14])
    radius = np.array([1.0, 1.0])
    variance = (radius * np.sqrt(R_) / z) ** 2  # the radius is z exact standard errors
    slack = np.zeros(2)
    c = 0.085
    assert _fits(c * e, means, radius, slack, c)
    assert not _fits_within_se(means, c, 0.001, e, variance, np.full(2, 0.001), radius, slack, R_)
    # a true factor: residuals within z standard errors of (spread, ĉ)
    near = c + np.array([0.004, -0.004])
    assert _fits_within_se(near, c, 0.001, e, variance, np.full(2, 0.001), radius, slack, R_)


def test_label_smoothing_gets_no_spurious_simple_fraction() -> None:
    """Smoothed targets (1 − ε)t + ε/K, ε = 0.1: E = (1 − ε)² I + ε² (u − p)(u − p)ᵀ per input;
    the fitted factor 0.826 is near 5/6 only within the estimator's own (14x larger) spread,
    not within the standard error of a rescaled Î₁: no "5/6"."""
    f = _Fast("categorical", n=16, K=3)
    q = np.asarray(f.eta)

    def est(g: np.random.Generator) -> np.ndarray:
        t = f.fam.sample_statistic(f.h, 16, g)
        r = 0.9 * t + 0.1 / 3 - q[None]
        S = np.einsum("nma,nmb->mab", r, r) / 16
        return np.asarray(np.einsum("map,mab,mbq->pq", f.J, S, f.J) / f.M)

    rep = check_estimator(est, f.net, f.x, n=16, replications=R, rng=0)
    assert not rep.passed and rep.factor == "" and "5/6" not in rep.diagnosis
    assert "not a rescaled Î1" in rep.diagnosis


@pytest.mark.parametrize(("factor", "name"), [(5 / 6, "5/6"), (16 / 15, "N/(N-1)"), (1 / 16, "1/n")])
def test_a_true_factor_is_still_named(factor: float, name: str) -> None:
    f = _Fast("categorical", n=16, K=3)
    rep = check_estimator(lambda g: factor * f.i1(g), f.net, f.x, n=16, replications=R, rng=1)
    assert not rep.passed and rep.factor == name, rep.diagnosis


# --- hints computed for the entry point ---------------------------------------------------------


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).to(torch.float64)


def _empirical_diag(model: nn.Module, data: object) -> dict:
    x, y = data  # type: ignore[misc]
    F = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for xi, yi in zip(x, y):
        model.zero_grad()
        nn.functional.cross_entropy(model(xi[None]), yi[None]).backward()
        for k, p in model.named_parameters():
            F[k] += p.grad**2 / x.shape[0]
    return F


def test_check_torch_fisher_names_the_empirical_fisher_itself() -> None:
    """check_torch_fisher has the data's labels: it names the empirical Fisher itself and never
    tells the user to "pass labels=" (it has no such argument)."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g)
    rep = fv.check_estimator(_empirical_diag, _mlp(), (x, y), family="categorical", n=4,
                                replications=R)
    assert not rep.passed and rep.cause == "data_labels" and "empirical Fisher" in rep.diagnosis
    assert "labels=" not in rep.diagnosis

    def ignores_rng(model: nn.Module, data: object) -> dict:  # the labels are fixed, not given
        return _empirical_diag(model, (data, y))

    rep = fv.check_estimator(ignores_rng, _mlp(), x, family="categorical", n=4, replications=R)
    assert not rep.passed and rep.cause == "deterministic"
    assert "labels=" not in rep.diagnosis and "give data with targets" in rep.diagnosis


def test_check_fisher_estimator_hint_names_its_own_argument() -> None:
    f = _Fast("poisson", n=16)
    teacher = fv.Network.random(f.net.widths, "tanh", f.fam, rng=7)
    y = f.fam.sample(teacher.forward(f.X), 1, np.random.default_rng(99))[0]
    emp = estimators_from_draws(f.net, f.x, y[None]).i1
    rep = check_estimator(lambda g: emp, f.net, f.x, n=16, replications=R, rng=0)
    assert "pass labels= to check_estimator" in rep.diagnosis


# --- data and estimates in the forms real code uses ---------------------------------------------


def test_per_example_lists_and_dict_batches_are_accepted() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 3, generator=g), torch.randint(0, 3, (5,), generator=g)
    for data in ([xi for xi in x], list(zip(x, y)), {"x": x, "y": y},
                 [{"inputs": x[:2], "labels": y[:2]}, {"inputs": x[2:], "labels": y[2:]}],
                 [x[0], x[1]]):
        X, Y = inputs_and_targets(data)
        n = 2 if isinstance(data, list) and len(data) == 2 and not isinstance(data[0], dict) else 5
        assert torch.equal(X, x[:n])
        if isinstance(data, dict) or (isinstance(data, list) and isinstance(data[0], dict | tuple)):
            assert Y is not None and torch.equal(Y, y[:n])
        else:
            assert Y is None
    with pytest.raises(ShapeError, match=r"dict batch with keys \['img', 'lbl'\].*'x', 'input'"):
        inputs_and_targets({"img": x, "lbl": y})
    with pytest.raises(ShapeError, match="per-example inputs of different shapes"):
        inputs_and_targets([x[0], x[1, :2], x[2]])


class _KronLike:
    """A structured curvature object: has .detach, is not a tensor, no matrix product."""

    def __init__(self) -> None:
        self.factors = [torch.eye(2), torch.eye(3)]

    def detach(self) -> _KronLike:
        return self


def test_a_structured_curvature_object_is_refused_naming_the_forms() -> None:
    model = _mlp()
    with pytest.raises(ShapeError, match=r"_KronLike.*not a torch.Tensor.*accepted: a \(P, P\)"):
        estimate_to_array({k: _KronLike() for k, _ in model.named_parameters()}, model)
    with pytest.raises(ShapeError, match=r"could not read the estimate of type _KronLike.*accepted"):
        estimate_to_array(_KronLike(), model)
    f = _Fast("bernoulli", n=4)
    with pytest.raises(ShapeError, match=r"_KronLike, which has .detach but is not a torch.Tensor"):
        check_estimator(lambda g: _KronLike(), f.net, f.x, n=4, replications=R)


# --- float32 rounding is named as such ----------------------------------------------------------


def test_a_float32_exact_fisher_is_reported_as_rounding() -> None:
    f = _Fast("categorical", n=16, K=3)
    f32 = f.I.astype(np.float32).astype(np.float64)
    rep = check_estimator(lambda g: f32, f.net, f.x, n=16, replications=R, rng=0)
    assert not rep.passed and rep.cause == "rounding" and "float32 rounding" in rep.diagnosis
    assert "labels" not in rep.diagnosis
    ok = check_estimator(lambda g: f32, f.net, f.x, n=16, replications=R, rng=0, rtol=1e-4)
    assert ok.passed and ok.cause == "exact"


def test_a_float32_empirical_operator_is_reported_as_rounding() -> None:
    """reference='empirical' with a float32 computation on a float64 model: rounding at the
    observed size, not "labels other than the data's"."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g)

    def emp32(model: nn.Module, data: object) -> dict:
        return {k: v.float().double() for k, v in _empirical_diag(model, data).items()}

    rep = fv.check_estimator(emp32, _mlp(), (x, y), family="categorical", reference="empirical")
    assert not rep.passed and "float32 rounding" in rep.diagnosis
    assert "labels other than" not in rep.diagnosis


def test_check_torch_fisher_reads_dict_batches_and_per_example_lists() -> None:
    """The gate reads the inputs (and targets) of a dict batch or of a list of per-example
    tensors, and hands fisher_fn the data in the user's own form."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    seen: list[type] = []

    def mc_diag(model: nn.Module, data: object) -> dict:
        seen.append(type(data))
        xs = data["inputs"] if isinstance(data, dict) else torch.stack(list(data))  # type: ignore[call-overload]
        F = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
        for xi in xs:
            logits = model(xi[None])
            yi = torch.multinomial(torch.softmax(logits, -1)[0], 1)
            model.zero_grad()
            nn.functional.cross_entropy(logits, yi).backward()
            for k, p in model.named_parameters():
                F[k] += p.grad**2 / xs.shape[0]
        return F

    for data in ({"inputs": x}, [xi for xi in x]):
        seen.clear()
        rep = fv.check_estimator(mc_diag, _mlp(), data, family="categorical", n=1,
                                    replications=60)
        assert rep.passed, rep.message()
        assert set(seen) == {type(data)}
    seen.clear()
    with_targets = fv.check_estimator(mc_diag, _mlp(), {"inputs": x}, family="categorical",
                                         n=1, replications=60, placeholder_labels=True)
    assert with_targets.passed and set(seen) == {dict}


def test_check_torch_fisher_names_a_summed_exact_fisher() -> None:
    """la.H-style: the exact Fisher diagonal summed over the inputs (every class weighted by its
    probability), given data with targets: "I(θ) × M (a sum over the inputs, not a mean)", not
    the empirical Fisher and not "relative error M − 1"."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g)

    def summed_exact(model: nn.Module, data: object) -> dict:
        xs, _ = data  # type: ignore[misc]
        F = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
        for xi in xs:
            probs = torch.softmax(model(xi[None]), -1)[0].detach()
            for k_cls in range(3):
                model.zero_grad()
                nn.functional.cross_entropy(model(xi[None]), torch.tensor([k_cls])).backward()
                for k, p in model.named_parameters():
                    F[k] += probs[k_cls] * p.grad**2
        return F

    rep = fv.check_estimator(summed_exact, _mlp(), (x, y), family="categorical", n=1,
                                replications=60)
    assert not rep.passed and rep.cause == "exact_scaled" and rep.factor == "M", rep.diagnosis
    assert "I(θ) × 6 (a sum over the inputs, not a mean)" in rep.diagnosis
    ok = fv.check_estimator(summed_exact, _mlp(), (x, y), family="categorical", n=1,
                               replications=60, reduction="sum")
    assert ok.passed and ok.cause == "exact", ok.diagnosis


def test_digits_lost_in_float64_are_not_called_float32() -> None:
    """An error of 1e-8 relative (curvlinops' dense EF operator) is rounding, but not float32's."""
    f = _Fast("categorical", n=16, K=3)
    off = f.I * (1 + 1e-8 * np.sign(np.random.default_rng(0).normal(size=f.I.shape)))
    off = (off + off.T) / 2
    rep = check_estimator(lambda g: off, f.net, f.x, n=16, replications=R, rng=0)
    assert rep.cause == "rounding" and "digits lost in a float64 computation" in rep.diagnosis
    assert "float32 computation" not in rep.diagnosis
