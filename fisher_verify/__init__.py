"""fisher-verify: machine-checked variance of Fisher information estimators.

Implements and verifies Soen & Sun (NeurIPS 2021), "On the Variance of the Fisher
Information for Deep Learning". Heavy parts load on first use, so importing is cheap.

The public face is this module (one name per question, docs/api.md), plus
``fisher_verify.errors`` (the exception classes), ``fisher_verify.proofs`` for the ``@statement``
API of user proof files, and the pytest plugin ``fisher_verify.testing.pytest_plugin``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily)
_EXPORTS: dict[str, str] = {
    # families and models
    "family": "fisher_verify._src.families.registry",
    "family_names": "fisher_verify._src.families.registry",
    "product": "fisher_verify._src.families.product",
    "Family": "fisher_verify._src.families.family",
    "family_for_loss": "fisher_verify._src.families.losses",
    "head_for_loss": "fisher_verify._src.families.losses",
    "half_mse_loss": "fisher_verify._src.families.losses",
    "shared_variance_gaussian_nll_loss": "fisher_verify._src.families.losses",
    "link": "fisher_verify._src.families.links",
    "LinkedNetwork": "fisher_verify._src.networks.linked",
    "Network": "fisher_verify._src.networks.network",
    # the paper's quantities, for a Network or any nn.Module
    "exact_fisher": "fisher_verify._src.models.quantities",
    "variance": "fisher_verify._src.models.quantities",
    "covariance": "fisher_verify._src.models.quantities",
    "covariance_norm": "fisher_verify._src.models.quantities",
    "sample_estimators": "fisher_verify._src.fisher.estimators",
    "bounds": "fisher_verify._src.fisher.bounds",
    "analyze": "fisher_verify._src.analysis",
    "register_layer": "fisher_verify._src.models.rules",
    "unregister_layer": "fisher_verify._src.models.rules",
    "Analysis": "fisher_verify._src.models.result",
    # the estimator gate
    "check_estimator": "fisher_verify._src.testing.front",
    "assert_estimator": "fisher_verify._src.testing.front",
    "EstimatorReport": "fisher_verify._src.testing.estimator_gate",
    "Subsampled": "fisher_verify._src.testing.gate_kinds",
    "KFAC": "fisher_verify._src.testing.gate_kfac",
    "OneBackward": "fisher_verify._src.testing.gate_onebackward",
    "with_padding_mask": "fisher_verify._src.models.sequence",
    "audit_diagonal": "fisher_verify._src.testing.audit",
    # errors
    "FisherVerifyError": "fisher_verify._src.errors",
}

__all__ = ["__version__", *_EXPORTS]


# public submodules reachable as attributes (``fv.errors.ParameterError``) without importing them
# at package import, as ``numpy.linalg`` is; Python sets the attribute itself once imported
_SUBMODULES = frozenset({"errors", "proofs", "testing", "cli"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"fisher_verify.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fisher_verify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
