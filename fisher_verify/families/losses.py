"""``torch.nn`` losses as the exponential family whose negative log-likelihood they are (issue 18).

One table, for heads that output the family's natural parameter ``h`` (``eq-3``: the network's
output is ``h``). Up to a term that depends on the label only, each loss below is
``-log p(y | h)``, so its gradient in ``h`` is minus the score ``t(y) - η(h)`` and the Fisher
information and both estimators' variances (``eq-6``, ``thm-4``, ``thm-6``) are the family's:

=========================================  ==================================================
loss (instance)                            family, n outputs per input
=========================================  ==================================================
``CrossEntropyLoss()``                     ``categorical``, K = n (logits)
``NLLLoss()``                              ``categorical``, K = n; only when the model ends in
                                           ``log_softmax``: log-probabilities are the logits
                                           minus their log-sum-exp, the same softmax, so they
                                           are a natural parameter. On raw outputs NLLLoss is
                                           not a log-likelihood, and this table cannot see that
``BCEWithLogitsLoss()``                    ``bernoulli`` (n = 1), else the product of n
``PoissonNLLLoss(log_input=True)``         ``poisson`` (log-rate), product of n; ``full``
                                           adds a term in the label only, either is fine
``MSELoss()``                              ``normal`` with ``sigma=√2``, product of n
=========================================  ==================================================

``MSELoss``: ``(y - f)² = -log N(y; f, 1/2) + c``. With ``h = f`` the family ``normal(σ=√2)``
(``t(y) = y``, ``η(h) = σ² h = 2h``) is the law of ``2y``: ``-log N(2y; 2f, 2) = (y - f)² + c``,
so ``-∂(y - f)²/∂f = 2y - 2f = t(2y) - η(f)``; the score, hence the Fisher information and the
variances, are those of ``normal(σ=√2)``. A loss ``½(y - f)²`` is ``normal`` with ``σ = 1``: pass
``family("normal")`` for it (a module instance cannot show the factor).

Refused, naming the option: ``label_smoothing > 0``, class ``weight``, ``pos_weight`` and an
``ignore_index`` that is a class (then the loss is not a log-likelihood of the labels), and the
non-canonical heads ``BCELoss`` (probabilities), ``PoissonNLLLoss(log_input=False)`` (rates) and
``GaussianNLLLoss`` (mean and variance): their head does not output the natural parameter,
and a link layer between the two is future work.

``reduction`` (``'mean'`` or ``'sum'``) only scales the loss; the family is the same. A Fisher
estimate built from a summed loss is a sum over inputs: the gate's ``reduction="sum"`` option
(:func:`fisher_verify.check_estimator`) reads it as such.

torch is imported only when a loss is looked at, so this room stays torch-free otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

from ..errors import ShapeError, UnsupportedError
from ..validation import check_count

__all__ = ["MAX_PRODUCT_OUTPUTS", "family_for_loss", "is_torch_loss", "resolve_family"]

#: Most outputs of a product head (bernoulli, poisson, normal per output): the product family's
#: kernels grow like n⁴ (dense κ₄), measured 2 s for Var(Î₁) of a 32-output head, minutes at 100.
MAX_PRODUCT_OUTPUTS = 32

_ACCEPTED = ("CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "PoissonNLLLoss(log_input=True)",
             "MSELoss")
_NOT_CANONICAL = {
    "BCELoss": "its input is a probability, not the bernoulli natural parameter (the logit); "
               "use BCEWithLogitsLoss on the logits",
    "GaussianNLLLoss": "its head outputs a mean and a variance, not the natural parameters "
                       "(μ/σ², -1/(2σ²)) of normal_unknown_variance",
}


def is_torch_loss(value: Any) -> bool:
    """Whether ``value`` is a ``torch.nn`` loss module (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.modules.loss._Loss)


def _refuse(name: str, why: str) -> UnsupportedError:
    return UnsupportedError(f"family: {name} is not a log-likelihood this library can use: {why}")


def _product(name: str, n: int) -> Any:
    from .product import product
    from .registry import family

    if n > MAX_PRODUCT_OUTPUTS:
        raise UnsupportedError(
            f"family: a loss over n_outputs={n} independent outputs is a product of {n} {name} "
            f"families, above MAX_PRODUCT_OUTPUTS = {MAX_PRODUCT_OUTPUTS} (its kernels grow like "
            "n⁴ and would take minutes); use at most that many outputs")
    one = family(name, sigma=2**0.5) if name == "normal" else family(name)
    return one if n == 1 else product(*([one] * n))


def _check_ignore_index(loss: Any, name: str, n: int) -> None:
    index = int(loss.ignore_index)
    if 0 <= index < n:
        raise _refuse(name, f"ignore_index={index} is one of the {n} classes, so the labels of "
                            "that class are dropped and the loss is not the log-likelihood of "
                            "the data; keep the default ignore_index=-100")


def family_for_loss(loss: Any, n_outputs: int) -> Any:
    """The exponential family whose negative log-likelihood ``loss`` is, up to a term in the
    label only, for a head with ``n_outputs`` outputs per input that are its natural parameter
    (``eq-3``; the table in the module docstring).

    Raises:
        UnsupportedError: a loss that is not such a log-likelihood (non-canonical head, class
            weights, label smoothing, ...); the message names the loss, the option and why.
        ShapeError: ``n_outputs`` not a whole number ≥ 1 (≥ 2 for a categorical loss).
        FisherVerifyError: ``loss`` not a ``torch.nn`` loss module.
    """
    from ..errors import FisherVerifyError

    if not is_torch_loss(loss):
        raise FisherVerifyError(f"loss must be a torch.nn loss module, one of {', '.join(_ACCEPTED)}; "
                                f"got {type(loss).__name__}")
    n = check_count(n_outputs, "n_outputs", error=ShapeError)
    import torch.nn as nn

    name = type(loss).__name__
    if name in _NOT_CANONICAL:
        raise _refuse(name, _NOT_CANONICAL[name] + "; link layers are future work")
    if type(loss) in (nn.CrossEntropyLoss, nn.NLLLoss):
        if n < 2:
            raise ShapeError(f"{name} needs at least 2 outputs per input (one per class), got "
                             f"n_outputs={n}")
        if loss.weight is not None:
            raise _refuse(name, "weight= (class weights) rescales each class's term, so the "
                                "loss is not a log-likelihood; drop weight")
        if float(getattr(loss, "label_smoothing", 0.0)) > 0:
            raise _refuse(name, f"label_smoothing={loss.label_smoothing} mixes the label with the "
                                "uniform distribution, so the loss is not a log-likelihood of "
                                "the label; use label_smoothing=0")
        _check_ignore_index(loss, name, n)
        return _product_categorical(n)
    if type(loss) is nn.BCEWithLogitsLoss:
        for option in ("weight", "pos_weight"):
            if getattr(loss, option) is not None:
                raise _refuse(name, f"{option}= rescales the terms, so the loss is not a "
                                    f"log-likelihood; drop {option}")
        return _product("bernoulli", n)
    if type(loss) is nn.PoissonNLLLoss:
        if not loss.log_input:
            raise _refuse(name, "log_input=False: the head outputs the rate, not the poisson "
                                "natural parameter (the log-rate); use log_input=True on the "
                                "log-rate. Link layers are future work")
        return _product("poisson", n)
    if type(loss) is nn.MSELoss:
        return _product("normal", n)
    raise _refuse(name, f"it is not in the table of losses ({', '.join(_ACCEPTED)}); pass "
                        "family=fisher_verify.family(...) for the model's output family")


def _product_categorical(n: int) -> Any:
    from .registry import family

    return family("categorical", K=n)


def resolve_family(family: Any, n_outputs: int) -> Any:
    """``family`` itself, or :func:`family_for_loss` of it when it is a ``torch.nn`` loss module:
    the one place where a loss given as ``family=`` becomes a family (the gate and the model
    analyses share it). Anything else is returned for the caller's own check."""
    return family_for_loss(family, n_outputs) if is_torch_loss(family) else family
