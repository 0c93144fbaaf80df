"""pytest plugin: the ``fisher_estimator_gate`` fixture, so a library gates its Fisher in its own tests.

Installed with fisher-verify (entry point ``pytest11``); a test asks for the fixture::

    def test_my_fisher_is_unbiased(fisher_estimator_gate):
        fisher_estimator_gate(my_fisher, model, loader, family="categorical", n=10)

Calling the fixture is :func:`fisher_verify.assert_estimator` (``eq-6``: unbiased for ``I(θ)``,
or ``reference="empirical"``) with the session's defaults: any model (a ``Network`` or any
``nn.Module``), the same options, the report returned when the estimator passes. The options
``--fisher-gate-replications`` and ``--fisher-gate-alpha`` set R and the false-alarm rate for a
whole run. Nothing heavy is imported until the fixture is used.
"""

from __future__ import annotations

from typing import Any

import pytest


class FisherEstimatorGate:
    """The fixture's value: call it like :func:`fisher_verify.assert_estimator`."""

    def __init__(self, **defaults: Any) -> None:
        self.defaults = {k: v for k, v in defaults.items() if v is not None}

    def __call__(self, estimator: Any, model: Any, data: Any, **options: Any) -> Any:
        """Assert that ``estimator`` passes the gate on ``model`` and ``data`` (``eq-6``);
        returns the report."""
        from .._src.testing.front import assert_estimator

        merged = dict(self.defaults)
        if options.get("reference") == "empirical":
            # the exact comparison has no replications or false-alarm rate
            merged.clear()
        merged.update(options)
        return assert_estimator(estimator, model, data, **merged)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--fisher-gate-replications`` and ``--fisher-gate-alpha`` for every gate in the run."""
    group = parser.getgroup("fisher-verify", "Fisher estimator gate (fisher-verify)")
    group.addoption(
        "--fisher-gate-replications", type=int, default=None,
        help="replications R of every fisher_estimator_gate (default 200)",
    )
    group.addoption(
        "--fisher-gate-alpha", type=float, default=None,
        help="false-alarm rate of each whole gate (default 1e-6)",
    )


@pytest.fixture
def fisher_estimator_gate(request: pytest.FixtureRequest) -> FisherEstimatorGate:
    """Gate a Fisher routine: ``fisher_estimator_gate(estimator, model, data, family=..., n=...)``."""
    return FisherEstimatorGate(
        replications=request.config.getoption("--fisher-gate-replications"),
        alpha=request.config.getoption("--fisher-gate-alpha"),
    )
