"""One name per question over any model: ``exact_fisher``, ``variance``, ``covariance``, ``covariance_norm``.

Each takes an Eq. 3 :class:`~fisher_verify._src.networks.network.Network` (its family is part of it)
or any ``torch.nn.Module`` with the output ``family`` named, and the data as the other functions
take them (an array of inputs for a ``Network``; inputs, ``(inputs, targets)``, a ``Dataset`` or
a ``DataLoader`` for a module). They route to the existing engines: the dense NumPy formulas of
:mod:`fisher_verify._src.fisher` for a ``Network`` and for the full matrices of a module (through
:class:`~.as_network.ModuleNetwork`, dense autograd), and the streamed per-parameter engine of
:mod:`.diagonals` for a module's diagonals.

Results are in the layout of the model's parameters: a ``Network``'s flat θ (``(P, P)`` or the
``(P,)`` diagonal as NumPy arrays); a module's ``parameters()`` order for the full matrices, and
``{name: tensor shaped like the parameter}`` (:class:`~.diagonals.Diagonals`) for its diagonals.

``which`` names the estimator whose variance is asked for: ``"I1"`` (score outer products,
``eq-7``, ``thm-4``) or ``"I2"`` (negative Hessians, ``eq-8``, ``thm-6``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FisherVerifyError, ShapeError, UnsupportedError
from ..validation import Which, check_flag, check_which

__all__ = ["covariance", "covariance_norm", "exact_fisher", "require_model", "variance"]


def _is_module(model: Any) -> bool:
    torch = __import__("sys").modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _network(model: Any, family: Any) -> Any:
    """``model`` as a Network-interface object for the dense formulas, or refused."""
    from ..networks.network import require_network

    net = require_model(model)
    net = require_network(net, "model")
    if family is not None and family is not net.family:
        raise FisherVerifyError(
            f"family: the model, a fisher_verify.Network, carries its own family ({net.family.label}); "
            f"leave family=None, got {family!r}")
    return net


def _module_network(model: Any, data: Any, family: Any) -> tuple[Any, np.ndarray]:
    """A module as a dense :class:`~.as_network.ModuleNetwork` on all its inputs, and those inputs."""
    import torch

    from .as_network import module_network
    from .data import InputStream

    dev = next(model.parameters()).device
    stream = InputStream(data, device=dev, dtype=torch.float64)
    X = torch.cat(list(stream.batches(4096)))
    try:
        net = module_network(model, family, X)
    except UnsupportedError as exc:  # the dense P x P route is the one that does not fit
        raise UnsupportedError(f"{exc}; diagonal=True gives the diagonal without the dense "
                               "Jacobians, streamed over the data") from None
    return net, X.detach().cpu().numpy()


def _dense_network(model: Any, data: Any, family: Any) -> tuple[Any, Any]:
    """The dense Network-interface object for ``model`` (a module after its family is checked)
    and the inputs as that object takes them: what the covariance routes share."""
    if _is_module(model):
        _require_family(model, family)
        return _module_network(model, data, family)
    return _network(model, family), data


def require_model(model: Any) -> Any:
    """``model`` when it is a ``Network`` (or offers its interface); anything that is neither
    that nor a ``torch.nn.Module`` is refused naming both.

    Raises:
        ShapeError: ``model`` is neither.
    """
    eq3 = hasattr(model, "weights") or getattr(model, "gate_interface", False) is True
    if not eq3:
        raise ShapeError(
            f"model must be a fisher_verify.Network (it carries its family) or a torch.nn.Module "
            f"(with family=...), got {type(model).__name__}")
    return model


def _require_family(model: Any, family: Any) -> None:
    if family is None:
        raise FisherVerifyError(
            f"family: a {type(model).__name__} needs its output family, e.g. "
            "family=fisher_verify.family('categorical', K=10) or the torch.nn loss it is trained "
            "with")


def exact_fisher(model: Any, data: Any, family: Any = None, *, diagonal: bool = False,
           **engine: Any) -> Any:
    """The exact Fisher information ``I(θ) = (1/M) Σ_m J_mᵀ I(h_L(x_m)) J_m`` (``eq-6``), or its diagonal.

    Args:
        model: a :class:`~fisher_verify._src.networks.network.Network` or any ``torch.nn.Module``.
        data: the inputs (``(n_0,)`` or ``(M, n_0)`` for a Network; for a module
            ``(M, ...)``, ``(inputs, targets)``, a Dataset or a DataLoader); p(x) is their
            empirical distribution.
        family: the output family for a module (a ``fisher_verify.family(...)`` or the
            ``torch.nn`` loss trained with); ``None`` for a Network (it carries its own).
        diagonal: only ``diag I(θ)``, never a ``P×P`` array.
        engine: for a module's diagonal, the engine's options (``output``, ``dtype``,
            ``device``, ``eval_mode``, ``memory``, ``distributed``, ``progress``); for a
            Network, ``method`` (the Jacobian route) and ``per_input``.

    Returns:
        A Network: ``(P, P)`` (``(M, P, P)`` with ``per_input``) or ``(P,)`` NumPy arrays in its
        flat θ. A module: ``{name: tensor}`` (:class:`~.diagonals.Diagonals`) when
        ``diagonal``, else the ``(P, P)`` array in ``parameters()`` order (dense autograd,
        bounded by :data:`~.as_network.JACOBIAN_BUDGET`).
    """
    diagonal = bool(check_flag(diagonal, "diagonal"))
    if _is_module(model):
        _require_family(model, family)
        if diagonal:
            from .diagonals import model_fisher_diagonal

            return model_fisher_diagonal(model, data, family, **engine)
        _no_options(engine, "the full (P, P) Fisher of a module")
        net, X = _module_network(model, data, family)
        from ..fisher.exact import gauss_newton, output_quantities

        _, _, I = output_quantities(net, X)
        return gauss_newton(net.jacobian(X), I)
    net = _network(model, family)
    from ..fisher.exact import network_fisher, output_quantities

    if not diagonal:
        return network_fisher(net, data, **engine)
    _no_options(engine, "the diagonal of a Network's Fisher")
    X, _ = net.inputs(data)
    _, _, I = output_quantities(net, X)
    J = np.asarray(net.jacobian(X))
    # diag (1/M) Σ_m J_mᵀ I_m J_m without a P×P array: O(M n_L² P)
    return np.einsum("map,mab,mbp->p", J, np.asarray(I), J) / X.shape[0]


def _no_options(engine: dict[str, Any], what: str) -> None:
    if engine:
        raise FisherVerifyError(
            f"{sorted(engine)[0]}: {what} takes no engine options (they belong to a torch "
            f"module's diagonal); got {', '.join(sorted(engine))}")


def variance(model: Any, data: Any, family: Any = None, *, which: Which = "I1", n: int = 1,
             diagonal: bool = False, **engine: Any) -> Any:
    """The element-wise variance ``Var(Î)_ij`` of an estimator with ``n`` draws per input (``thm-4``, ``thm-6``).

    ``which="I1"``: the score outer products ``Î₁`` (eq-7, thm-4, exact, first derivatives
    only); ``"I2"``: the negative Hessians ``Î₂`` (eq-8, thm-6; needs a C² model, refused
    otherwise with the reason). Arguments and result layout as :func:`exact_fisher`. For a module's
    diagonal with ``which="I2"`` the engine is exact where it can be and otherwise gives an
    unbiased Hutchinson estimate flagged in ``.exact`` with ``.stderr`` (engine options
    ``method``, ``probes``, ``seed``, ``rel_precision``, ``smooth``; see
    :func:`~.diagonals.model_variance_diagonal`).
    """
    k = check_which(which)
    diagonal = bool(check_flag(diagonal, "diagonal"))
    if _is_module(model):
        _require_family(model, family)
        if diagonal:
            from .diagonals import model_variance_diagonal

            return model_variance_diagonal(model, data, family, k, n, **engine)
        _no_options(engine, "the full (P, P) variance of a module")
        net, X = _module_network(model, data, family)
        from ..fisher.covariance import network_variance

        return network_variance(net, X, k, n)
    net = _network(model, family)
    _no_options(engine, "the variance of a Network")
    from ..fisher.covariance import network_variance

    return network_variance(net, data, k, n, diagonal=diagonal)


def covariance(model: Any, data: Any, family: Any = None, *, which: Which = "I1",
               n: int = 1) -> np.ndarray:
    """The full covariance tensor ``Cov(Î)^{ijkl}`` (``thm-4``/``thm-6``), ``(P, P, P, P)``.

    Arguments as :func:`variance`; refused above ``MAX_FULL_P`` parameters
    (:mod:`fisher_verify._src.fisher.covariance`).
    """
    k = check_which(which)
    from ..fisher.covariance import network_covariance

    return network_covariance(*_dense_network(model, data, family), k, n)


def covariance_norm(model: Any, data: Any, family: Any = None, *, which: Which = "I1",
                    n: int = 1) -> float:
    """``‖Cov(Î)‖_F`` without a ``P⁴`` tensor (``thm-4``/``thm-6``; the lhs of ``thm-7``/``thm-8``).

    Arguments as :func:`variance`.
    """
    k = check_which(which)
    from ..fisher.covariance import network_covariance_norm

    return network_covariance_norm(*_dense_network(model, data, family), k, n)
