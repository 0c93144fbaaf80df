"""``torch.nn`` losses as families (fisher_verify._src.families.losses) against torch itself.

The independent route: torch's autograd of the loss module with ``reduction='sum'`` at random
``h`` and labels. ``-∂loss/∂h`` must be the family's score ``t(y) - η(h)`` (``η`` from the
family's own symbolic derivation), and the loss must be ``-log p(y | h)`` up to a term in ``y``
only: differences between two ``h`` at one label are the family's log-likelihood differences
(``t(y)ᵀh - F(h)``; the base measure cancels). Where the base measure is constant
(categorical, bernoulli), differences between two labels at one ``h`` agree too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import fisher_verify as fv
from fisher_verify.errors import DomainError, FisherVerifyError, ShapeError, UnsupportedError

B = 7


def _grad(loss: nn.Module, h: np.ndarray, target: torch.Tensor) -> tuple[float, np.ndarray]:
    """The loss and its gradient in ``h``; for NLLLoss ``h`` are logits z and the loss is taken
    at log_softmax(z), the model's output: the gradient in θ runs through z."""
    ht = torch.tensor(h, dtype=torch.float64, requires_grad=True)
    value = loss(torch.log_softmax(ht, -1) if isinstance(loss, nn.NLLLoss) else ht, target)
    (g,) = torch.autograd.grad(value, ht)
    return float(value.detach()), g.numpy()


def _cases(rng: np.random.Generator) -> list[tuple[nn.Module, int, np.ndarray, torch.Tensor,
                                                   np.ndarray]]:
    """(loss, n outputs, h, the loss's target, the family's label y) for every table row."""
    out = []
    for n in (1, 3):
        y = rng.integers(0, 2, size=(B, n)).astype(float)
        out.append((nn.BCEWithLogitsLoss(reduction="sum"), n, rng.normal(size=(B, n)),
                    torch.tensor(y), y))
        y = rng.poisson(2.0, size=(B, n)).astype(float)
        for full in (False, True):
            out.append((nn.PoissonNLLLoss(log_input=True, full=full, reduction="sum"), n,
                        rng.normal(size=(B, n)), torch.tensor(y), y))
        y = rng.normal(size=(B, n))
        # (y - f)² is -log N(2y; 2f, 2) + c: the family's label is 2y (module docstring)
        out.append((nn.MSELoss(reduction="sum"), n, rng.normal(size=(B, n)), torch.tensor(y),
                    2 * y))
    for K in (2, 5):
        y = rng.integers(0, K, size=B)
        out.append((nn.CrossEntropyLoss(reduction="sum"), K, 2 * rng.normal(size=(B, K)),
                    torch.tensor(y), y))
        out.append((nn.NLLLoss(reduction="sum"), K, 2 * rng.normal(size=(B, K)),
                    torch.tensor(y), y))
    return out


def _unnormalized_loglik(fam: fv.Family, y: np.ndarray, h: np.ndarray) -> np.ndarray:
    return np.sum(fam.statistic(y).reshape(h.shape) * h, axis=-1) - fam.log_partition(h)


@pytest.mark.parametrize("index", range(12))
def test_gradient_is_the_score_and_the_loss_the_negative_loglik(index: int) -> None:
    rng = np.random.default_rng(index)
    loss, n, h, target, y = _cases(rng)[index]
    fam = fv.family_for_loss(loss, n)
    assert fam.dim == n
    value, grad = _grad(loss, h, target)
    # NLLLoss: the family sits at the model's output, the log-probabilities log_softmax(z)
    at = (lambda z: torch.log_softmax(torch.tensor(z), -1).numpy()) if isinstance(
        loss, nn.NLLLoss) else (lambda z: z)
    score = fam.statistic(y).reshape(B, n) - fam.mean(at(h))
    np.testing.assert_allclose(-grad, score, rtol=1e-12, atol=1e-12)
    # a second h at the same labels: the loss changes by minus the log-likelihood's change
    h2 = h + rng.normal(size=h.shape)
    value2, _ = _grad(loss, h2, target)
    dl = float(np.sum(_unnormalized_loglik(fam, y, at(h2)) - _unnormalized_loglik(fam, y, at(h))))
    assert abs((value2 - value) + dl) <= 1e-10 * (1 + abs(value) + abs(value2))


@pytest.mark.parametrize("make", [lambda: nn.CrossEntropyLoss(reduction="sum"),
                                  lambda: nn.BCEWithLogitsLoss(reduction="sum")])
def test_constant_base_measure_the_loss_is_the_negative_loglik(make) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    loss = make()
    if isinstance(loss, nn.CrossEntropyLoss):
        K = 4
        h, y = rng.normal(size=(B, K)), rng.integers(0, K, size=B)
        fam, target = fv.family("categorical", K=K), torch.tensor(y)
    else:
        K = 1
        h, y = rng.normal(size=(B, 1)), rng.integers(0, 2, size=(B, 1)).astype(float)
        fam, target = fv.family("bernoulli"), torch.tensor(y)
    assert fv.family_for_loss(loss, K).label == fam.label
    for m in range(B):  # per input: log p(y|h) for every label, so label differences agree
        value = float(loss(torch.tensor(h[m:m + 1]), target[m:m + 1]))
        loglik = float(np.sum(fam.log_density(y[m:m + 1].reshape(-1), h[m:m + 1])))
        assert abs(value + loglik) <= 1e-12 * (1 + abs(value))


def test_mse_is_normal_sigma_sqrt2_and_products() -> None:
    assert fv.family_for_loss(nn.MSELoss(), 1).params == fv.family("normal", sigma=2**0.5).params
    fam = fv.family_for_loss(nn.BCEWithLogitsLoss(), 3)
    assert fam.label == "product(bernoulli, bernoulli, bernoulli)"
    assert fv.family_for_loss(nn.CrossEntropyLoss(reduction="mean"), 6).label == "categorical(K=6)"


@pytest.mark.parametrize(("loss", "words"), [
    # non-canonical heads: the family alone is refused, pointing to the family with its link
    (nn.BCELoss(), ["BCELoss", "probability", "head_for_loss", "logit"]),
    (nn.PoissonNLLLoss(log_input=False), ["PoissonNLLLoss", "rate λ", "head_for_loss"]),
    (nn.CrossEntropyLoss(label_smoothing=0.1), ["CrossEntropyLoss", "label_smoothing=0.1"]),
    (nn.CrossEntropyLoss(weight=torch.ones(3)), ["CrossEntropyLoss", "weight="]),
    (nn.NLLLoss(weight=torch.ones(3)), ["NLLLoss", "weight="]),
    (nn.CrossEntropyLoss(ignore_index=0), ["ignore_index=0"]),
    (nn.NLLLoss(ignore_index=2), ["NLLLoss", "ignore_index=2"]),
    (nn.BCEWithLogitsLoss(pos_weight=torch.ones(3)), ["BCEWithLogitsLoss", "pos_weight="]),
    (nn.BCEWithLogitsLoss(weight=torch.ones(3)), ["BCEWithLogitsLoss", "weight="]),
    (nn.L1Loss(), ["L1Loss", "not in the table", "CrossEntropyLoss"]),
])
def test_refusals_name_the_loss_and_option(loss: nn.Module, words: list[str]) -> None:
    with pytest.raises(UnsupportedError) as info:
        fv.family_for_loss(loss, 3)
    for w in words:
        assert w in str(info.value)


def test_bad_arguments() -> None:
    with pytest.raises(FisherVerifyError, match="loss must be a torch.nn loss"):
        fv.family_for_loss(nn.Linear(2, 2), 2)
    with pytest.raises(ShapeError, match="n_outputs"):
        fv.family_for_loss(nn.MSELoss(), 0)
    with pytest.raises(ShapeError, match="at least 2 outputs"):
        fv.family_for_loss(nn.CrossEntropyLoss(), 1)
    from fisher_verify._src.families.losses import MAX_PRODUCT_OUTPUTS

    assert MAX_PRODUCT_OUTPUTS == 32
    assert fv.family_for_loss(nn.MSELoss(), 32).dim == 32
    with pytest.raises(UnsupportedError, match="n_outputs=33 .* MAX_PRODUCT_OUTPUTS = 32"):
        fv.family_for_loss(nn.BCEWithLogitsLoss(), 33)
    for wrong in ("3", 2.5, True, None, -1):
        with pytest.raises(ShapeError, match="n_outputs"):
            fv.family_for_loss(nn.MSELoss(), wrong)
    # the default ignore_index (-100) is no class: accepted
    assert fv.family_for_loss(nn.CrossEntropyLoss(ignore_index=-100), 3).dim == 3
    assert fv.family_for_loss(nn.CrossEntropyLoss(ignore_index=3), 3).dim == 3  # no class 3


def _model(n_out: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, n_out)).double()


def test_model_functions_accept_a_loss() -> None:
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    model = _model(4)
    got = fv.exact_fisher(model, x, nn.CrossEntropyLoss(), progress=False, diagonal=True)
    want = fv.exact_fisher(model, x, fv.family("categorical", K=4), progress=False, diagonal=True)
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    got_v = fv.variance(_model(2), x, nn.BCEWithLogitsLoss(), progress=False, diagonal=True)
    want_v = fv.variance(_model(2), x, fv.product(fv.family("bernoulli"),
                                                                 fv.family("bernoulli")),
                                        progress=False, diagonal=True)
    for k in want_v:
        torch.testing.assert_close(got_v[k], want_v[k], rtol=0, atol=0)
    # BCELoss reads the outputs as probabilities (ext-links); a linear head's are not
    with pytest.raises(DomainError, match="head of BCELoss.*outside the domain of the link logit"):
        fv.exact_fisher(model, x, nn.BCELoss(), progress=False, diagonal=True)
    with pytest.raises(ShapeError, match="at least 2 outputs"):
        fv.exact_fisher(_model(1), x, nn.CrossEntropyLoss(), progress=False, diagonal=True)


def test_the_gate_accepts_a_loss() -> None:
    """check_torch_fisher(family=nn.CrossEntropyLoss()) is the categorical gate: the empirical
    Fisher of the data's labels (per-sample gradients by plain autograd) passes with both."""
    model = _model(3)
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2, 2, 1, 0])

    def empirical(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        xs, ys = data
        out = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
        for m in range(xs.shape[0]):
            model.zero_grad()
            nn.functional.cross_entropy(model(xs[m:m + 1]), ys[m:m + 1]).backward()
            for k, p in model.named_parameters():
                assert p.grad is not None
                out[k] += p.grad**2 / xs.shape[0]
        return out

    by_loss = fv.check_estimator(empirical, model, (x, y), family=nn.CrossEntropyLoss(),
                                    reference="empirical")
    by_name = fv.check_estimator(empirical, model, (x, y), family="categorical",
                                    reference="empirical")
    assert by_loss.passed and by_name.passed
    assert by_loss.max_error == by_name.max_error
    with pytest.raises(UnsupportedError, match="label_smoothing=0.2"):
        fv.check_estimator(empirical, model, (x, y), family=nn.CrossEntropyLoss(label_smoothing=0.2),
                              reference="empirical")
