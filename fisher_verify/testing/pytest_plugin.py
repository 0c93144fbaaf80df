"""pytest plugin: the ``fisher_estimator_gate`` fixture, so a library gates its Fisher in its own tests.

Installed with fisher-verify (entry point ``pytest11``); a test asks for the fixture::

    def test_my_fisher_is_unbiased(fisher_estimator_gate):
        fisher_estimator_gate(my_fisher, model, loader, family="categorical", n=10)

The fixture is :func:`fisher_verify.testing.adapters.assert_torch_fisher` (``eq-6``: unbiased for
``I(θ)``, or ``reference="empirical"``) with the session's defaults; ``.check`` returns the report
without raising, ``.network`` gates an ``estimator(rng)`` on a
:class:`~fisher_verify.networks.network.Network` (:func:`assert_fisher_estimator`). The options
``--fisher-gate-replications`` and ``--fisher-gate-alpha`` set R and the false-alarm rate for a
whole run. Nothing heavy is imported until the fixture is used.
"""

from __future__ import annotations

from typing import Any

import pytest


class FisherEstimatorGate:
    """The fixture's value: call it like :func:`~fisher_verify.testing.adapters.assert_torch_fisher`."""

    def __init__(self, **defaults: Any) -> None:
        self.defaults = {k: v for k, v in defaults.items() if v is not None}

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        merged = dict(self.defaults)
        merged.update(kwargs)
        if merged.get("reference") == "empirical":
            # the exact comparison has no replications or false-alarm rate
            merged.pop("replications", None)
            merged.pop("alpha", None)
        return merged

    def __call__(self, fisher_fn: Any, model: Any, data: Any, **kwargs: Any) -> Any:
        """Assert that ``fisher_fn(model, data)`` passes the gate (``eq-6``); returns the report."""
        from .adapters import assert_torch_fisher

        return assert_torch_fisher(fisher_fn, model, data, **self._kwargs(kwargs))

    def check(self, fisher_fn: Any, model: Any, data: Any, **kwargs: Any) -> Any:
        """The report of :func:`~fisher_verify.testing.adapters.check_torch_fisher`, never raising."""
        from .adapters import check_torch_fisher

        return check_torch_fisher(fisher_fn, model, data, **self._kwargs(kwargs))

    def network(self, estimator: Any, net: Any, x: Any, **kwargs: Any) -> Any:
        """Assert an ``estimator(rng)`` in a Network's flat-θ order (:func:`assert_fisher_estimator`)."""
        from .estimator_gate import assert_fisher_estimator

        merged = {k: v for k, v in self.defaults.items() if k in ("replications", "alpha")}
        merged.update(kwargs)
        return assert_fisher_estimator(estimator, net, x, **merged)


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
    """Gate a Fisher routine: ``fisher_estimator_gate(fisher_fn, model, data, family=..., n=...)``."""
    return FisherEstimatorGate(
        replications=request.config.getoption("--fisher-gate-replications"),
        alpha=request.config.getoption("--fisher-gate-alpha"),
    )
