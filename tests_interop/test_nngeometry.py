"""nngeometry 0.4 through the gate: FIM_MonteCarlo is right; FIM (exact) needs torch's default
dtype to match a float64 model."""

from __future__ import annotations

import contextlib

import pytest
import torch
from libraries import nngeometry_fisher
from networks import EXACT_REPLICATIONS, MC_REPLICATIONS, classifier, classifier32, regressor

import fisher_verify as fv

SWEEP = [(shape, n) for shape in ("diag", "full") for n in (1, 10, 100)]


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize(("shape", "n"), SWEEP)
def test_mc_fisher_sample_size_sweep(fisher_estimator_gate, shape, n):
    case = classifier()
    fisher_estimator_gate(
        lambda m, d: nngeometry_fisher(m, d, what="mc", shape=shape, loss=case.loss, n=n),
        case.model, case.data, family=case.family(), n=n, replications=MC_REPLICATIONS,
    )


@pytest.mark.parametrize("shape", ["diag", "full"])
def test_mc_fisher_float32_network(fisher_estimator_gate, shape):
    case = classifier32()
    fisher_estimator_gate(
        lambda m, d: nngeometry_fisher(m, d, what="mc", shape=shape, loss=case.loss, n=10),
        case.model, case.data, family=case.family(), n=10, replications=MC_REPLICATIONS,
    )


@pytest.mark.parametrize("shape", ["diag", "full"])
def test_exact_fim_fails_on_a_float64_model_under_the_float32_default(shape):
    # the finding of the survey: FIM's classif_logits path builds a triangular matrix in torch's
    # default dtype and multiplies it with the float64 logits
    case = classifier()
    assert torch.get_default_dtype() == torch.float32
    with pytest.raises(RuntimeError, match="same dtype"):
        fv.check_estimator(
            lambda m, d: nngeometry_fisher(m, d, what="exact", shape=shape, loss=case.loss),
            case.model, case.data, family=case.family(), n=1, replications=EXACT_REPLICATIONS,
        )


@pytest.mark.parametrize("shape", ["diag", "full"])
def test_exact_fim_is_the_fisher_with_a_float64_default(fisher_estimator_gate, shape):
    case = classifier()
    with default_dtype(torch.float64):
        fisher_estimator_gate(
            lambda m, d: nngeometry_fisher(m, d, what="exact", shape=shape, loss=case.loss),
            case.model, case.data, family=case.family(), n=1, replications=EXACT_REPLICATIONS,
        )


@pytest.mark.parametrize("case", [classifier32(), regressor()], ids=lambda c: c.name)
def test_exact_fim_other_networks(fisher_estimator_gate, case):
    # float32 model under the float32 default; the regression variant has no triangular matrix
    fisher_estimator_gate(
        lambda m, d: nngeometry_fisher(m, d, what="exact", shape="full", loss=case.loss),
        case.model, case.data, family=case.family("half"), n=1, replications=EXACT_REPLICATIONS,
    )


@pytest.mark.parametrize("case", [classifier(), classifier32()], ids=lambda c: c.name)
@pytest.mark.parametrize("shape", ["diag", "full"])
def test_empirical_fisher_from_the_jacobian_backend(fisher_estimator_gate, case, shape):
    fisher_estimator_gate(
        lambda m, d: nngeometry_fisher(m, d, what="empirical", shape=shape, loss=case.loss),
        case.model, case.data, family=case.family(), reference="empirical",
    )
