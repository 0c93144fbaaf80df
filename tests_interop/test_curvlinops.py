"""curvlinops 3.0 through the gate: linear operators, densified; its own ``seed=`` convention."""

from __future__ import annotations

import pytest
from libraries import curvlinops_fisher
from networks import EXACT_REPLICATIONS, MC_REPLICATIONS, classifier, classifier32, regressor

import fisher_verify as fv

SWEEP = [(shape, n) for shape in ("diag", "full") for n in (1, 10, 100)]


@pytest.mark.parametrize(("shape", "n"), SWEEP)
def test_mc_fisher_sample_size_sweep(fisher_estimator_gate, shape, n):
    case = classifier()
    fisher_estimator_gate(
        lambda m, d, seed: curvlinops_fisher(m, d, what="mc", shape=shape, loss=case.loss, n=n, seed=seed),
        case.model, case.data, family=case.family(), n=n, randomness="seed", replications=MC_REPLICATIONS,
    )


@pytest.mark.parametrize("case", [classifier32(), regressor()], ids=lambda c: c.name)
def test_mc_fisher_other_networks(fisher_estimator_gate, case):
    fisher_estimator_gate(
        lambda m, d, seed: curvlinops_fisher(m, d, what="mc", loss=case.loss, n=10, seed=seed),
        case.model, case.data, family=case.family(), n=10, randomness="seed", replications=MC_REPLICATIONS,
    )


def test_a_fixed_seed_is_caught_as_a_shared_draw():
    # the operator's default seed is the same at every call: the replicates do not vary
    case = classifier()
    report = fv.check_estimator(
        lambda m, d: curvlinops_fisher(m, d, what="mc", loss=case.loss, n=1),
        case.model, case.data, family=case.family(), n=1, replications=MC_REPLICATIONS,
    )
    assert report.sd_ratio < 1e-6


@pytest.mark.parametrize("case", [classifier(), classifier32(), regressor()], ids=lambda c: c.name)
def test_exact_ggn_is_the_fisher(fisher_estimator_gate, case):
    fisher_estimator_gate(
        lambda m, d: curvlinops_fisher(m, d, what="exact", loss=case.loss),
        case.model, case.data, family=case.family(), n=1, replications=EXACT_REPLICATIONS,
    )


@pytest.mark.parametrize("case", [classifier(), classifier32()], ids=lambda c: c.name)
def test_empirical_fisher_operator(fisher_estimator_gate, case):
    fisher_estimator_gate(
        lambda m, d: curvlinops_fisher(m, d, what="empirical", loss=case.loss),
        case.model, case.data, family=case.family(), reference="empirical",
    )
