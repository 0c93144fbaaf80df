"""``torch.nn`` losses as the exponential family and head whose negative log-likelihood they are (issue 18).

One table. Up to a term that depends on the label only, each loss below is ``-log p(y | h)``
with ``h = g(f)`` the natural parameter reached from the head's output ``f`` by the link ``g``
(:mod:`.links`; none for a canonical head, whose output is ``h`` itself, ``eq-3``). So the Fisher
information and both estimators' variances (``eq-6``, ``thm-4``, ``thm-6``) are those of the
network ``θ ↦ g(f(θ))`` (``ext-links``):

=========================================  ==================================================
loss (instance); ``--loss`` name           family, n outputs per input, head / link
=========================================  ==================================================
``CrossEntropyLoss()``; ``cross-entropy``  ``categorical``, K = n (logits)
``NLLLoss()``; ``nll``                     ``categorical``, K = n; only when the model ends in
                                           ``log_softmax``: log-probabilities are the logits
                                           minus their log-sum-exp, the same softmax, so they
                                           are a natural parameter. On raw outputs NLLLoss is
                                           not a log-likelihood, and this table cannot see that
``BCEWithLogitsLoss()``; ``bce-with-logits``  ``bernoulli`` (n = 1), else the product of n
``BCELoss()``; ``bce``                     ``bernoulli`` (product of n); the head outputs
                                           probabilities ``p``, link ``logit`` (``h = log p −
                                           log(1 − p)``); torch clamps ``log p`` at −100, so
                                           ``p ≤ e^-100`` is refused (the loss is not the
                                           log-likelihood there)
``PoissonNLLLoss(log_input=True)``;        ``poisson`` (log-rate), product of n; ``full``
``poisson-log``                            adds a term in the label only, either is fine
``PoissonNLLLoss(log_input=False)``;       ``poisson``, the head outputs the rate ``λ``: the
``poisson``                                loss is ``λ − y log(λ + eps)``, the NLL at rate
                                           ``λ + eps`` up to the constant ``eps``: link
                                           ``rate`` with ``h = log(λ + eps)``, ``λ + eps > 0``
``GaussianNLLLoss()``; ``gaussian-nll``    ``normal_unknown_variance`` per mean, product of
                                           n/2: the model outputs ``(μ, σ²)`` as
                                           ``mean, var = out.chunk(2, -1)`` (``var`` of the
                                           shape of ``input``); link ``mean-var``. ``full``
                                           adds ``½ log 2π``; ``eps`` clamps the variance,
                                           so ``σ² ≤ eps`` is refused (the loss is not the
                                           log-likelihood of the head's variance there)
``shared_variance_gaussian_nll_loss()``,   ``isotropic_normal(D = n − 1)``: one variance
any n ≥ 2; ``gaussian-nll-shared``         shared by the D means, ``var`` of shape
                                           ``(..., 1)``: the model outputs ``(μ₀, …, μ_{D−1},
                                           σ²)``, ``mean, var = out[..., :-1], out[..., -1:]``;
                                           link ``mean-shared-var``. Torch broadcasts ``var``
                                           over the D outputs, so the loss per input is
                                           ``½(D log σ² + ‖y − μ‖²/σ²)``, the isotropic
                                           normal's NLL up to ``(D/2) log 2π`` (``full``).
                                           A plain ``GaussianNLLLoss`` is read as pairs; at an
                                           odd n it is refused naming this marker (the width
                                           alone does not say how the outputs split)
``MSELoss()``; ``mse``                     ``normal`` with ``sigma=√2``, product of n
``half_mse_loss()``; ``half-mse``         ``normal`` with ``sigma=1``, product of n
=========================================  ==================================================

``MSELoss``: ``(y - f)² = -log N(y; f, 1/2) + c``. With ``h = f`` the family ``normal(σ=√2)``
(``t(y) = y``, ``η(h) = σ² h = 2h``) is the law of ``2y``: ``-log N(2y; 2f, 2) = (y - f)² + c``,
so ``-∂(y - f)²/∂f = 2y - 2f = t(2y) - η(f)``; the score, hence the Fisher information and the
variances, are those of ``normal(σ=√2)``. A loss ``½(y - f)²`` is ``normal`` with ``σ = 1``: pass
``family("normal")`` or :func:`half_mse_loss` (``nn.MSELoss`` times ½) for it, or ``--loss
half-mse`` (an ``nn.MSELoss`` instance cannot show a factor applied outside it).

Refused, naming the option: ``label_smoothing > 0``, class ``weight``, ``pos_weight`` and an
``ignore_index`` that is a class (then the loss is not a log-likelihood of the labels), a
``GaussianNLLLoss`` head of one output (no mean beside its variance).

``reduction`` (``'mean'`` or ``'sum'``) only scales the loss; the family is the same. A Fisher
estimate built from a summed loss is a sum over inputs: the gate's ``reduction="sum"`` option
(:func:`fisher_verify.check_estimator`) reads it as such.

torch is imported only when a loss is looked at, so this room stays torch-free otherwise.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

from ..errors import FisherVerifyError, ShapeError, UnsupportedError
from ..validation import check_count

__all__ = [
    "LOSS_NAMES",
    "family_for_loss",
    "half_mse_loss",
    "head_for_loss",
    "is_torch_loss",
    "loss_module",
    "resolve_head",
    "shared_variance_gaussian_nll_loss",
]

#: Most outputs of a product head (bernoulli, poisson, normal per output): the product family's
#: kernels grow like n⁴ (dense κ₄), measured 2 s for Var(Î₁) of a 32-output head, minutes at 100.
MAX_PRODUCT_OUTPUTS = 32

#: ``torch.clamp(log p, min=-100)`` in ``BCELoss``: below ``e^-100`` it is not the log-likelihood
BCE_LOG_CLAMP = -100.0

_ACCEPTED = ("CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "BCELoss", "PoissonNLLLoss",
             "GaussianNLLLoss", "MSELoss")

#: the CLI's ``--loss`` names (the table of the module docstring)
LOSS_NAMES = ("cross-entropy", "nll", "bce-with-logits", "bce", "poisson-log", "poisson",
              "gaussian-nll", "gaussian-nll-shared", "mse", "half-mse")


@dataclass(frozen=True)
class Head:
    """What a loss says about a model's head (the module's table).

    Attributes:
        family: the output family (a product for several outputs).
        link: the :class:`~fisher_verify._src.families.links.Link` from the head's output to the
            family's natural parameter, or ``None`` for a canonical head (output = ``h``).
        loss: the loss's name, e.g. ``"BCELoss"``.
    """

    family: Any
    link: Any
    loss: str

    @property
    def canonical(self) -> bool:
        """Whether the head outputs the natural parameter itself."""
        return self.link is None


def is_torch_loss(value: Any) -> bool:
    """Whether ``value`` is a ``torch.nn`` loss module (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.modules.loss._Loss)


def _refuse(name: str, why: str) -> UnsupportedError:
    return UnsupportedError(f"family: {name} is not a log-likelihood this library can use: {why}")


def _check_products(name: str, n: int) -> None:
    if n > MAX_PRODUCT_OUTPUTS:
        raise UnsupportedError(
            f"family: a loss over n_outputs={n} independent outputs is a product of {n} {name} "
            f"families, above MAX_PRODUCT_OUTPUTS = {MAX_PRODUCT_OUTPUTS} (its kernels grow like "
            "n⁴ and would take minutes); use at most that many outputs")


def _product(name: str, n: int, sigma: float = 2**0.5) -> Any:
    from .product import product
    from .registry import family

    _check_products(name, n)
    one = family(name, sigma=sigma) if name == "normal" else family(name)
    return one if n == 1 else product(*([one] * n))


def _check_ignore_index(loss: Any, name: str, n: int) -> None:
    index = int(loss.ignore_index)
    if 0 <= index < n:
        raise _refuse(name, f"ignore_index={index} is one of the {n} classes, so the labels of "
                            "that class are dropped and the loss is not the log-likelihood of "
                            "the data; keep the default ignore_index=-100")


def head_for_loss(loss: Any, n_outputs: int) -> Head:
    """The family, and the link from the head's output to its natural parameter, whose negative
    log-likelihood ``loss`` is up to a term in the label only, for a head with ``n_outputs``
    outputs per input (``eq-3``, ``ext-links``; the table in the module docstring).

    Raises:
        UnsupportedError: a loss that is not such a log-likelihood (class weights, label
            smoothing, ...); the message names the loss, the option and why.
        ShapeError: ``n_outputs`` not a whole number ≥ 1 (≥ 2 for a categorical loss, even for
            ``GaussianNLLLoss``).
        FisherVerifyError: ``loss`` not a ``torch.nn`` loss module.
    """
    from .links import link

    if not is_torch_loss(loss):
        raise FisherVerifyError(f"loss must be a torch.nn loss module, one of {', '.join(_ACCEPTED)}; "
                                f"got {type(loss).__name__}")
    n = check_count(n_outputs, "n_outputs", error=ShapeError)
    import torch.nn as nn

    name = type(loss).__name__
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
        return Head(_product_categorical(n), None, name)
    if type(loss) in (nn.BCEWithLogitsLoss, nn.BCELoss):
        for option in ("weight", "pos_weight"):
            if getattr(loss, option, None) is not None:
                raise _refuse(name, f"{option}= rescales the terms, so the loss is not a "
                                    f"log-likelihood; drop {option}")
        if type(loss) is nn.BCEWithLogitsLoss:
            return Head(_product("bernoulli", n), None, name)
        _check_products("bernoulli", n)
        L = link("logit", n, lower=math.exp(BCE_LOG_CLAMP))
        return Head(L.family, L, name)
    if type(loss) is nn.PoissonNLLLoss:
        if loss.log_input:
            return Head(_product("poisson", n), None, name)
        _check_products("poisson", n)
        L = link("rate", n, eps=float(loss.eps))
        return Head(L.family, L, name)
    if type(loss) in (nn.GaussianNLLLoss, _shared_variance_class()):
        if n < 2:
            raise ShapeError(
                f"{name} needs at least 2 outputs per input, a mean and a variance, got "
                f"n_outputs={n}")
        shared = type(loss) is _shared_variance_class()
        if n % 2 and not shared:
            # the width alone does not say how the outputs split: refuse rather than guess
            raise ShapeError(
                f"{name} on n_outputs={n}: an odd width cannot be (mean, var) pairs "
                "(mean, var = out.chunk(2, -1)); if the model outputs D means and one variance "
                "shared by them (var of shape (..., 1), mean, var = out[..., :-1], out[..., -1:]), "
                "pass fisher_verify.shared_variance_gaussian_nll_loss() (CLI: --loss "
                "gaussian-nll-shared) instead")
        if shared:
            # D means and one variance shared by them (var of shape (..., 1))
            from .normal_covariance import MAX_ISOTROPIC_DIM

            if n - 1 > MAX_ISOTROPIC_DIM:
                raise UnsupportedError(
                    f"family: {name} with one variance shared by n_outputs - 1 = {n - 1} means "
                    f"is isotropic_normal(D={n - 1}), above its limit D <= {MAX_ISOTROPIC_DIM} "
                    "(the dense κ₄ of D + 1 components); use at most that many means")
            L = link("mean-shared-var", 1, lower=float(loss.eps), D=n - 1)
            return Head(L.family, L, name)
        _check_products("normal_unknown_variance", n // 2)
        L = link("mean-var", n // 2, lower=float(loss.eps))
        return Head(L.family, L, name)
    if type(loss) is nn.MSELoss:
        return Head(_product("normal", n), None, name)
    if type(loss) is _half_mse_class():
        return Head(_product("normal", n, sigma=1), None, "½ MSE")
    raise _refuse(name, f"it is not in the table of losses ({', '.join(_ACCEPTED)}); pass "
                        "family=fisher_verify.family(...) for the model's output family")


_HALF_MSE: list[type] = []
_SHARED_VARIANCE: list[type] = []


def _shared_variance_class() -> type:
    import torch.nn as nn

    if not _SHARED_VARIANCE:
        class SharedVarianceGaussianNLLLoss(nn.GaussianNLLLoss):
            """``nn.GaussianNLLLoss`` called with ``var`` of shape ``(..., 1)``: one variance
            shared by every mean, the family ``isotropic_normal`` (the forward is torch's)."""

        _SHARED_VARIANCE.append(SharedVarianceGaussianNLLLoss)
    return _SHARED_VARIANCE[0]


def shared_variance_gaussian_nll_loss(*, full: bool = False, eps: float = 1e-6,
                                      reduction: str = "mean") -> Any:
    """``nn.GaussianNLLLoss(full, eps, reduction)`` marked as called with one variance shared by
    every mean (``var`` of shape ``(..., 1)``; the model outputs ``(μ₀, …, μ_{D−1}, σ²)``):
    the family ``isotropic_normal(D)`` through the link ``mean-shared-var`` (``ext-links``) at
    any output width, where a plain ``GaussianNLLLoss`` of an even width is read as pairs."""
    from ..validation import check_flag

    full = bool(check_flag(full, "full"))
    if reduction not in ("mean", "sum", "none"):
        raise FisherVerifyError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if (isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps)
            or eps < 0):
        raise FisherVerifyError(f"eps must be a finite number >= 0 (the smallest variance), "
                                f"got {eps!r}")
    return _shared_variance_class()(full=full, eps=float(eps), reduction=reduction)


def _half_mse_class() -> type:
    import torch.nn as nn

    if not _HALF_MSE:
        class HalfMSELoss(nn.MSELoss):
            """``½ (y − f)²`` (``nn.MSELoss`` times ½): the normal family with ``σ = 1``."""

            def forward(self, input: Any, target: Any) -> Any:  # noqa: A002 - torch's names
                return 0.5 * super().forward(input, target)

        _HALF_MSE.append(HalfMSELoss)
    return _HALF_MSE[0]


def half_mse_loss(reduction: str = "mean") -> Any:
    """A ``torch.nn`` loss module computing ``½ (y − f)²`` (``reduction`` as ``nn.MSELoss``'s):
    the squared error with the factor ½ that ``nn.MSELoss`` lacks, whose family is ``normal``
    with ``σ = 1`` (``nn.MSELoss``'s is ``σ = √2``; the module docstring)."""
    if reduction not in ("mean", "sum", "none"):
        raise FisherVerifyError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return _half_mse_class()(reduction=reduction)


def family_for_loss(loss: Any, n_outputs: int) -> Any:
    """The exponential family whose negative log-likelihood ``loss`` is, up to a term in the
    label only, for a head whose ``n_outputs`` outputs are its natural parameter (``eq-3``).

    Raises:
        UnsupportedError: a loss whose head is not canonical (``BCELoss``,
            ``PoissonNLLLoss(log_input=False)``, ``GaussianNLLLoss``): the family alone would
            read the head's probabilities, rates or variances as natural parameters; use
            :func:`head_for_loss` (family and link), or pass the loss itself as ``family=``.
            Also what :func:`head_for_loss` refuses.
        ShapeError, FisherVerifyError: as :func:`head_for_loss`.
    """
    head = head_for_loss(loss, n_outputs)
    if head.link is not None:
        raise _refuse(head.loss, f"its head outputs {head.link.unit.description}, not the natural "
                                 f"parameter of {head.family.label}: use "
                                 "fisher_verify.head_for_loss(loss, n_outputs) for the family and "
                                 f"its link ({head.link.name}), or pass the loss itself as "
                                 "family= (the link is applied)")
    return head.family


def _product_categorical(n: int) -> Any:
    from .registry import family

    return family("categorical", K=n)


def loss_by_name(name: str, n_outputs: int) -> Head:
    """The head of the CLI's ``--loss`` name (:data:`LOSS_NAMES`; the module's table).

    Raises:
        FisherVerifyError: an unknown name (the message lists the names).
    """
    return head_for_loss(loss_module(name), n_outputs)


def loss_module(name: str) -> Any:
    """The ``torch.nn`` loss module of the CLI's ``--loss`` name (:data:`LOSS_NAMES`).

    Raises:
        FisherVerifyError: an unknown name (the message lists the names).
    """
    if not isinstance(name, str) or name not in LOSS_NAMES:
        raise FisherVerifyError(f"unknown loss {name!r}; the losses: {', '.join(LOSS_NAMES)}")
    if name == "half-mse":
        return half_mse_loss()
    import torch.nn as nn

    makers: dict[str, Any] = {
        "cross-entropy": nn.CrossEntropyLoss, "nll": nn.NLLLoss,
        "bce-with-logits": nn.BCEWithLogitsLoss, "bce": nn.BCELoss,
        "poisson-log": lambda: nn.PoissonNLLLoss(log_input=True),
        "poisson": lambda: nn.PoissonNLLLoss(log_input=False),
        "gaussian-nll": nn.GaussianNLLLoss,
        "gaussian-nll-shared": shared_variance_gaussian_nll_loss, "mse": nn.MSELoss,
    }
    return makers[name]()


def resolve_head(family: Any, n_outputs: int) -> tuple[Any, Any]:
    """``(family, None)``, or ``(family, link)`` of :func:`head_for_loss` when ``family`` is a
    ``torch.nn`` loss module: the one place where a loss given as ``family=`` becomes a family
    and a link (the gate and the model analyses share it)."""
    if is_torch_loss(family):
        head = head_for_loss(family, n_outputs)
        return head.family, head.link
    return family, None


def resolve_family(family: Any, n_outputs: int) -> Any:
    """``family`` itself, or :func:`family_for_loss` of it when it is a ``torch.nn`` loss module
    (a canonical head only; see :func:`resolve_head` for the others)."""
    return family_for_loss(family, n_outputs) if is_torch_loss(family) else family
