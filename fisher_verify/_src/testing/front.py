"""``check_estimator`` / ``assert_estimator``: the one way into the estimator gate, for any model.

The user's function is the ``estimator``; the model is an Eq. 3
:class:`~fisher_verify._src.networks.network.Network` or any ``torch.nn.Module``:

* a ``Network``: ``estimator(rng) -> (P, P)`` or ``(P,)`` in the Network's flat θ, every label
  drawn with the given ``numpy`` Generator (:func:`.estimator_gate.gate_network`);
* a module: ``estimator(model, data) -> estimate`` in any form the gate reads (a
  ``{name: tensor}`` dict, a list, a flat vector, a ``P×P`` matrix or a linear operator),
  with ``generator=`` or ``seed=`` as well when ``randomness`` says so
  (:func:`.adapters.gate_module`).

``which`` names the estimator whose exact variance calibrates the test (``"I1"``: thm-4,
``"I2"``: thm-6, ``"gnb"``: ext-gnb, ``"hutchinson-rademacher"``/``"hutchinson-gaussian"``:
ext-hutchinson, or a :class:`~.gate_kinds.Subsampled`: ext-subsampled). Both routes return the
one :class:`~.estimator_gate.EstimatorReport`.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any, Literal

from ..errors import FisherVerifyError
from ..models.quantities import require_model
from .calibrated import DEFAULT_ALPHA
from .estimator_gate import EstimatorReport, gate_network
from .gate_kinds import kind_of

__all__ = ["assert_estimator", "check_estimator"]

#: options that only one kind of model takes, with why
_MODULE_ONLY = ("reference", "randomness", "placeholder_labels", "reference_model", "reduction")
_NETWORK_ONLY = ("labels",)


def _is_module(model: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def check_estimator(
    estimator: Callable[..., Any],
    model: Any,
    data: Any,
    *,
    family: Any = None,
    n: int = 1,
    which: Any = "I1",
    replications: int = 200,
    rng: Any = 0,
    alpha: float = DEFAULT_ALPHA,
    diagonal_only: bool | None = None,
    directions: int = 8,
    rtol: float | None = None,
    variance: Literal["at_most", "exact"] = "at_most",
    side: Literal["two-sided", "upper", "lower"] = "two-sided",
    labels: Any = None,
    reference: Literal["fisher", "empirical"] = "fisher",
    randomness: Literal["global", "generator", "seed"] = "global",
    placeholder_labels: bool = False,
    reference_model: Callable[[Any, Any], Any] | None = None,
    reduction: Literal["mean", "sum"] = "mean",
) -> EstimatorReport:
    """Test a user's Monte Carlo Fisher estimator for unbiasedness for ``I(θ)`` (``eq-6``) with at
    most the spread of the estimator ``which`` (``thm-4``/``thm-6``); never raises on a wrong
    estimator, returns the :class:`~.estimator_gate.EstimatorReport` (``.passed``, ``.message()``).

    Args:
        estimator: the user's function: ``estimator(rng)`` for a Network, ``estimator(model,
            data)`` for a module (module docstring).
        model: a :class:`fisher_verify.Network` or any ``torch.nn.Module`` (used as is, any
            dtype or device, and restored after every call).
        data: the inputs, ``(n_0,)`` or ``(M, n_0)``, for a Network; for a module what
            ``estimator`` expects: a ``DataLoader``, a ``Dataset``, ``(x, y)`` or ``x``.
        family: a module's output family (``"categorical"``, a ``fisher_verify.family(...)``
            or the ``torch.nn`` loss it is trained with); None for a Network.
        n: label draws per input the estimator uses.
        which: the estimator whose exact variance calibrates the test (module docstring).
        replications: R independent calls of ``estimator``.
        rng: seed or ``numpy`` Generator of the gate.
        alpha: false-alarm rate of the whole gate (Bonferroni over all tests).
        diagonal_only: the estimate is ``diag Î`` only; None infers it from the first estimate.
        directions: random quadratic forms ``vᵀÎv`` tested besides the diagonal.
        rtol: rounding tolerance; default 1e-9 (a Network, a float64 module), 1e-4 (float32).
        variance: ``"at_most"``: any unbiased estimator with at most the variance of ``which``
            passes; ``"exact"``: the estimator is declared to be ``which`` with ``n`` draws.
        side: ``"two-sided"`` (unbiased for I(θ)), or ``"upper"`` / ``"lower"`` for an
            estimator of a bound of I(θ) (:func:`.estimator_gate.gate_network`).
        labels: (Network) the data's labels, so the diagnosis can name the empirical Fisher; a
            module's labels come with its data.
        reference: (module) ``"fisher"`` (the calibrated gate) or ``"empirical"`` (the exact
            comparison with the empirical Fisher of the data's labels).
        randomness: (module) ``"global"`` (the global RNGs are seeded per call), ``"generator"``
            (``estimator`` also gets ``generator=<torch.Generator>``) or ``"seed"``
            (``seed=<int>``).
        placeholder_labels: (module) hand ``estimator`` zero targets when ``data`` has none.
        reference_model: (module) ``(model, family) -> ReferenceModel``, the exact model behind
            ``I(θ)`` (:mod:`.adapters`).
        reduction: (module) ``"sum"`` when the estimate sums over the inputs (divided by M).

    Raises:
        ShapeError: an estimate or data in a form that is not understood.
        FisherVerifyError: bad options; too few replications for ``alpha``.
        UnsupportedError: ``which="I2"`` on a non-C² model (thm-3).
            An option of the other kind of model (e.g. ``randomness`` for a Network) is
            refused naming it.
    """
    kind = kind_of(which)
    given = {"reference": reference != "fisher", "randomness": randomness != "global",
             "placeholder_labels": placeholder_labels is not False,
             "reference_model": reference_model is not None, "reduction": reduction != "mean",
             "labels": labels is not None}
    if _is_module(model):
        if family is None:
            raise FisherVerifyError(
                "family: a torch module needs its output family, e.g. family='categorical', "
                "fisher_verify.family('normal') or the torch.nn loss it is trained with")
        wrong = [k for k in _NETWORK_ONLY if given[k]]
        if wrong:
            raise FisherVerifyError(
                f"{wrong[0]}: applies to a fisher_verify.Network model only; for a module "
                f"(here a {type(model).__name__}) the labels come with its data, (x, y)")
        from .adapters import gate_module

        return gate_module(
            estimator, model, data, family=family, n=n, reference=reference, kind=kind,
            randomness=randomness, placeholder_labels=placeholder_labels,
            diagonal_only=diagonal_only, replications=replications, rng=rng, alpha=alpha,
            directions=directions, rtol=rtol, reference_model=reference_model,
            reduction=reduction, variance=variance, side=side, which=which)
    wrong = [k for k in _MODULE_ONLY if given[k]]
    if wrong:
        raise FisherVerifyError(
            f"{wrong[0]}: applies to a torch module model only; a fisher_verify.Network's "
            "estimator is called as estimator(rng) and compared with its exact I(θ)")
    require_model(model)
    if family is not None and family is not getattr(model, "family", None):
        raise FisherVerifyError(
            f"family: the model, a fisher_verify.Network, carries its own family; leave family=None, got "
            f"{family!r}")
    return gate_network(
        estimator, model, data, n=n, kind=kind, replications=replications, rng=rng,
        alpha=alpha, diagonal_only=diagonal_only, directions=directions,
        rtol=1e-9 if rtol is None else rtol, variance=variance, side=side, labels=labels,
        which=which)


def assert_estimator(estimator: Callable[..., Any], model: Any, data: Any,
                     **options: Any) -> EstimatorReport:
    """:func:`check_estimator`, raising ``AssertionError`` with the report's message when the
    estimator fails (``eq-6``); returns the report when it passes. Same options."""
    unknown = sorted(set(options) - _KEYWORDS)
    if unknown:
        raise TypeError(f"assert_estimator() got an unexpected keyword argument {unknown[0]!r}; "
                        f"valid: {', '.join(sorted(_KEYWORDS))}")
    report = check_estimator(estimator, model, data, **options)
    if not report.passed:
        raise AssertionError(report.message())
    return report


_KEYWORDS = frozenset(name for name, p in inspect.signature(check_estimator).parameters.items()
                      if p.kind is inspect.Parameter.KEYWORD_ONLY)
