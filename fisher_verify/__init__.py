"""fisher-verify: machine-checked variance of Fisher information estimators.

Implements and verifies Soen & Sun (NeurIPS 2021), "On the Variance of the Fisher
Information for Deep Learning". Heavy parts load on first use, so importing is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily)
_EXPORTS: dict[str, str] = {
    "family": "fisher_verify.families.registry",
    "family_names": "fisher_verify.families.registry",
    "product": "fisher_verify.families.product",
    "Family": "fisher_verify.families.family",
    "family_for_loss": "fisher_verify.families.losses",
    "FisherVerifyError": "fisher_verify.errors",
    "Network": "fisher_verify.networks.network",
    "exact_fisher": "fisher_verify.fisher.exact",
    "sample_estimators": "fisher_verify.fisher.estimators",
    "covariance": "fisher_verify.fisher.covariance",
    "variance": "fisher_verify.fisher.covariance",
    "covariance_norm": "fisher_verify.fisher.covariance",
    "bounds": "fisher_verify.fisher.bounds",
    "analyze": "fisher_verify.analysis",
    "check_fisher_estimator": "fisher_verify.testing.estimator_gate",
    "assert_fisher_estimator": "fisher_verify.testing.estimator_gate",
    "check_torch_fisher": "fisher_verify.testing.adapters",
    "assert_torch_fisher": "fisher_verify.testing.adapters",
    "model_fisher_diagonal": "fisher_verify.models.diagonals",
    "model_variance_diagonal": "fisher_verify.models.diagonals",
    "analyze_model": "fisher_verify.models.report",
    "with_padding_mask": "fisher_verify.models.sequence",
    "audit_diagonal": "fisher_verify.testing.audit",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fisher_verify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
