"""BackPACK 1.7 through the gate: its Monte Carlo Fisher, exact GGN and empirical Fisher are right."""

from __future__ import annotations

import pytest
from libraries import backpack_fisher
from networks import EXACT_REPLICATIONS, MC_REPLICATIONS, classifier, classifier32, regressor, same_state

import fisher_verify as fv

SWEEP = [(shape, n) for shape in ("diag", "full") for n in (1, 10, 100)]


@pytest.mark.parametrize(("shape", "n"), SWEEP)
def test_mc_fisher_sample_size_sweep(fisher_estimator_gate, snapshot, shape, n):
    case = classifier()
    before = snapshot(case.model)
    report = fisher_estimator_gate(
        lambda m, d: backpack_fisher(m, d, what="mc", shape=shape, loss=case.loss, n=n),
        case.model, case.data, family=case.family(), n=n, replications=MC_REPLICATIONS,
    )
    assert report.diagonal_only == (shape == "diag")
    assert same_state(before, snapshot(case.model))  # extend() and its hooks are undone


@pytest.mark.parametrize("case", [classifier32(), regressor()], ids=lambda c: c.name)
@pytest.mark.parametrize("shape", ["diag", "full"])
def test_mc_fisher_other_networks(fisher_estimator_gate, case, shape):
    fisher_estimator_gate(
        lambda m, d: backpack_fisher(m, d, what="mc", shape=shape, loss=case.loss, n=10),
        case.model, case.data, family=case.family(), n=10, replications=MC_REPLICATIONS,
    )


@pytest.mark.parametrize("case", [classifier(), classifier32(), regressor()], ids=lambda c: c.name)
@pytest.mark.parametrize("shape", ["diag", "full"])
def test_exact_ggn_is_the_fisher(fisher_estimator_gate, case, shape):
    fisher_estimator_gate(
        lambda m, d: backpack_fisher(m, d, what="exact", shape=shape, loss=case.loss),
        case.model, case.data, family=case.family(), n=1, replications=EXACT_REPLICATIONS,
    )


@pytest.mark.parametrize("case", [classifier(), classifier32()], ids=lambda c: c.name)
@pytest.mark.parametrize("shape", ["diag", "full"])
def test_empirical_fisher_from_batch_gradients(fisher_estimator_gate, case, shape):
    fisher_estimator_gate(
        lambda m, d: backpack_fisher(m, d, what="empirical", shape=shape, loss=case.loss),
        case.model, case.data, family=case.family(), reference="empirical",
    )


def test_empirical_fisher_of_mse_is_four_times_the_unit_gaussian_one():
    # MSELoss = (y - f)²: its gradient is twice the unit Gaussian score, the outer products 4x
    case = regressor()
    report = fv.check_estimator(
        lambda m, d: backpack_fisher(m, d, what="empirical", shape="full", loss="mse"),
        case.model, case.data, family=case.family("half"), reference="empirical",
    )
    assert not report.passed and report.deterministic
    assert report.scale == pytest.approx(4.0, rel=1e-9)
