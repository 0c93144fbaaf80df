"""The four libraries on models that are not Eq. 3 MLPs (issue 19): a CNN with max pooling, a
ReLU MLP with Dropout left in train() mode, and a LayerNorm model, gated exactly as the MLP.

The reference is the any-module route (:mod:`fisher_verify._src.models.as_network`). Where a library
supports the model, its Monte Carlo Fisher and exact GGN pass and ASDL's ``fisher_mc`` fails with
its factor 1/n, as on the MLP (test_asdl.py). BackPACK has no LayerNorm extension, so it runs
on the CNN and the Dropout model; curvlinops, ASDL and nngeometry on all three.
"""

from __future__ import annotations

import pytest
from libraries import asdl_fisher, backpack_fisher, curvlinops_fisher, nngeometry_fisher
from networks import EXACT_REPLICATIONS, MC_REPLICATIONS, cnn, dropout_mlp, evaluated, layernorm, same_state

import fisher_verify as fv

ALL = [cnn, dropout_mlp, layernorm]
IDS = ["cnn", "dropout", "layernorm"]


def _gate(fisher, case, n, replications, **kwargs):
    return fv.check_estimator(evaluated(fisher), case.model, case.data, family=case.family(), n=n,
                                 replications=replications, **kwargs)


@pytest.mark.parametrize("make", [cnn, dropout_mlp], ids=IDS[:2])
@pytest.mark.parametrize("shape", ["diag", "full"])
def test_backpack(snapshot, make, shape):
    case = make()
    before = snapshot(case.model)
    mc = _gate(lambda m, d: backpack_fisher(m, d, what="mc", shape=shape, loss="ce", n=10), case, 10,
               MC_REPLICATIONS)
    assert mc.passed, mc.message()
    exact = _gate(lambda m, d: backpack_fisher(m, d, what="exact", shape=shape, loss="ce"), case, 1,
                  EXACT_REPLICATIONS)
    assert exact.passed and exact.cause == "exact", exact.message()
    assert same_state(before, snapshot(case.model))
    assert ("eval mode" in mc.reference_note) == (make is dropout_mlp)


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_curvlinops(make):
    case = make()
    mc = _gate(lambda m, d, seed: curvlinops_fisher(m, d, what="mc", loss="ce", n=10, seed=seed), case,
               10, MC_REPLICATIONS, randomness="seed")
    assert mc.passed, mc.message()
    exact = _gate(lambda m, d: curvlinops_fisher(m, d, what="exact", loss="ce"), case, 1,
                  EXACT_REPLICATIONS)
    assert exact.passed and exact.cause == "exact", exact.message()


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_asdl(make):
    case = make()
    one = _gate(lambda m, d: asdl_fisher(m, d, what="mc", shape="diag", loss="ce", n=1), case, 1,
                MC_REPLICATIONS)
    assert one.passed, one.message()
    ten = _gate(lambda m, d: asdl_fisher(m, d, what="mc", shape="diag", loss="ce", n=10), case, 10,
                MC_REPLICATIONS)
    assert not ten.passed and ten.factor == "1/n", ten.message()
    exact = _gate(lambda m, d: asdl_fisher(m, d, what="exact", shape="full", loss="ce"), case, 1,
                  EXACT_REPLICATIONS)
    assert exact.passed and exact.cause == "exact", exact.message()


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_nngeometry(make):
    case = make()
    mc = _gate(lambda m, d: nngeometry_fisher(m, d, what="mc", shape="diag", loss="ce", n=10), case,
               10, MC_REPLICATIONS)
    assert mc.passed, mc.message()
