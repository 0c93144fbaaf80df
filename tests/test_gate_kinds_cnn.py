"""Every estimator kind of the gate on an MLP and on a small CNN, through ``check_torch_fisher``
(the CNN's exact reference is the any-model ``ModuleNetwork``): the correct estimator passes,
and each listed fault is rejected and named (issue 16).

The estimators are written here in plain PyTorch from their definitions, as a user's code would
be (labels sampled with the given generator, gradients by autograd, K-FAC's gradient factor by
a backward hook on the layer's output); the faults are the bugs of public ports. Fixed seeds;
the gate's false-alarm rate is its default 1e-6.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

from fisher_verify import check_estimator
from fisher_verify._src.testing.gate_kinds import KFAC, OneBackward, Subsampled

nn = torch.nn
M = 6
K = 3


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(before)


def _mlp() -> tuple[nn.Module, torch.Tensor, str]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, K), nn.Tanh(), nn.Linear(K, K)).double()  # K units each
    with torch.no_grad():
        model[2].weight.mul_(3.0)  # logits of order 2: the faults' biases are well above noise
    x = torch.as_tensor(np.random.default_rng(2).normal(size=(M, 3)))
    return model, x, "2"


def _cnn() -> tuple[nn.Module, torch.Tensor, str]:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, K, 3), nn.Tanh(), nn.Flatten(), nn.Linear(9 * K, K)).double()
    with torch.no_grad():
        model[3].weight.mul_(3.0)
    x = torch.as_tensor(np.random.default_rng(3).normal(size=(M, 1, 5, 5)))
    return model, x, "3"


MODELS = {"mlp": _mlp, "cnn": _cnn}


def _flat(grads: Any) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def _sample(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.multinomial(torch.softmax(logits.detach(), -1), 1, generator=generator)[:, 0]


def _gnb(scale: float = 1.0, data: bool = False, clip: float | None = None) -> Callable[..., Any]:
    def fn(model: nn.Module, x: Any, generator: torch.Generator) -> torch.Tensor:
        xt, y = x if isinstance(x, tuple) else (x, None)
        logits = model(xt)
        labels = y if data else _sample(logits, generator)
        loss = nn.functional.cross_entropy(logits, labels)
        g = _flat(torch.autograd.grad(loss, list(model.parameters())))
        if clip is not None:
            g = g * torch.clamp(clip / g.norm(), max=1.0)
        return scale * xt.shape[0] * g**2

    return fn


def _exact_per_input(model: nn.Module, xt: torch.Tensor) -> list[torch.Tensor]:
    """Each input's exact Fisher (Jᵀ (diag p − ppᵀ) J) by autograd, (P, P)."""
    out = []
    for m in range(xt.shape[0]):
        logits = model(xt[m : m + 1])[0]
        p = torch.softmax(logits, -1).detach()
        J = torch.stack([_flat(torch.autograd.grad(logits[a], list(model.parameters()),
                                                   retain_graph=True)) for a in range(K)])
        out.append(J.T @ (torch.diag(p) - torch.outer(p, p)) @ J)
    return out


def _hutchinson(probe: str, unit: bool = False) -> Callable[..., Any]:
    def fn(model: nn.Module, xt: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        F = sum(_exact_per_input(model, xt)) / xt.shape[0]
        P = F.shape[0]
        if probe == "rademacher":
            v = torch.randint(0, 2, (P,), generator=generator, dtype=torch.float64) * 2 - 1
        else:
            v = torch.randn(P, generator=generator, dtype=torch.float64)
        if unit:
            v = v / v.norm()
        return v * (F @ v)

    return fn


def _kfac(layer: str, sharing: str = "expand", scale: float = 1.0, data: bool = False,
          batch_mean: bool = False, wrong: str | None = None) -> Callable[..., Any]:
    """Ĝ of ``layer`` from a backward hook: the loss is the sum of the sampled NLLs (so
    ``g = ∂ℓ_m/∂z`` per input), ``Ĝ = (1/M) Σ_m Σ_t g gᵀ`` (expand) or ``(Σ_t g)(Σ_t g)ᵀ``."""

    def fn(model: nn.Module, x: Any, generator: torch.Generator) -> torch.Tensor:
        xt, y = x if isinstance(x, tuple) else (x, None)
        mods = dict(model.named_modules())
        seen: dict[str, torch.Tensor] = {}
        handle = mods[wrong or layer].register_forward_hook(
            lambda _m, _i, out: seen.__setitem__("z", out))
        try:
            logits = model(xt)
        finally:
            handle.remove()
        labels = y if data else _sample(logits, generator)
        loss = nn.functional.cross_entropy(logits, labels, reduction="mean" if batch_mean else "sum")
        (g,) = torch.autograd.grad(loss, seen["z"])
        Mb = g.shape[0]
        g = g.reshape(Mb, g.shape[1], -1) if g.ndim > 2 else g[:, :, None]  # (M, q, T)
        if sharing == "reduce":
            g = g.sum(-1, keepdim=True)
        return scale * torch.einsum("mqt,mrt->qr", g, g) / Mb

    return fn


def _one_backward(probe: str = "rademacher", detach: bool = True, center: bool = True,
                  root: bool = True) -> Callable[..., Any]:
    def fn(model: nn.Module, xt: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        total = 0.0
        for m in range(xt.shape[0]):
            h = model(xt[m : m + 1])[0]
            p = torch.softmax(h, -1)
            p = p.detach() if detach else p
            if probe == "rademacher":
                xi = torch.randint(0, 2, (K,), generator=generator, dtype=torch.float64) * 2 - 1
            else:
                xi = torch.randn(K, generator=generator, dtype=torch.float64)
            s = (xi * (p.sqrt() if root else 1.0) * (h - (p * h).sum() if center else h)).sum()
            total = total + _flat(torch.autograd.grad(s, list(model.parameters()))) ** 2
        return total / xt.shape[0]

    return fn


def _subsampled(m: int, norm: int | None = None, redraw: bool = True) -> Callable[..., Any]:
    def fn(model: nn.Module, xt: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        S = torch.randperm(xt.shape[0], generator=generator)[:m] if redraw else torch.arange(m)
        per = _exact_per_input(model, xt[S])
        return torch.diagonal(sum(per)) / (norm or m)

    return fn


def _gate(fn: Callable[..., Any], model: nn.Module, data: Any, kind: Any, **kw: Any) -> Any:
    kw.setdefault("replications", 200)
    return check_estimator(fn, model, data, family="categorical", n=1, which=kind,
                              randomness="generator", rng=0, **kw)


@pytest.mark.parametrize("which", list(MODELS))
def test_gnb(which: str) -> None:
    model, x, _ = MODELS[which]()
    assert _gate(_gnb(), model, x, "gnb").passed
    missing = _gate(_gnb(1 / M), model, x, "gnb")
    assert not missing.passed and missing.factor == "1/M" and "batch size B" in missing.diagnosis
    accum = _gate(_gnb(1 / 4), model, x, "gnb")  # loss divided by 2 accumulation steps
    assert not accum.passed and accum.factor == "1/4" and "accumulation" in accum.diagnosis
    per_rank = _gate(_gnb(1 / 2), model, x, "gnb")  # mean over 2 ranks, each scaled by B/2
    assert not per_rank.passed and per_rank.factor == "1/2" and "data-parallel" in per_rank.diagnosis
    y = torch.as_tensor(np.random.default_rng(4).integers(0, K, size=M))
    data = _gate(_gnb(data=True), model, (x, y), "gnb")
    assert not data.passed and data.cause == "data_labels", data.message()
    clipped = _gate(_gnb(clip=0.05), model, x, "gnb")
    assert not clipped.passed and clipped.cause == "clipped", clipped.message()


@pytest.mark.parametrize("which", list(MODELS))
@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson(which: str, probe: str) -> None:
    model, x, _ = MODELS[which]()
    assert _gate(_hutchinson(probe), model, x, f"hutchinson-{probe}").passed
    unit = _gate(_hutchinson(probe, unit=True), model, x, f"hutchinson-{probe}")
    assert not unit.passed and unit.cause == "scale" and "probes need" in unit.diagnosis
    # Gaussian probes declared Rademacher add 2 F_ii² to each variance, small here against
    # Σ_(j≠i) F_ij² (tests/test_gate_kinds.py names it on a network where it is not)


@pytest.mark.parametrize("which", list(MODELS))
def test_kfac_gradient_factor(which: str) -> None:
    model, x, last = MODELS[which]()
    first = "0"
    kinds = [(last, "expand")] + ([(first, "expand"), (first, "reduce")] if which == "cnn" else [(first, "expand")])
    for layer, sharing in kinds:
        kind = KFAC(layer, sharing=sharing)  # type: ignore[arg-type]
        ok = _gate(_kfac(layer, sharing), model, x, kind)
        assert ok.passed and "K-FAC" in ok.message(), ok.message()
    kind = KFAC(last)
    summed = _gate(_kfac(last, scale=M), model, x, kind)  # missing 1/M
    assert not summed.passed and summed.factor == "M"
    hooked = _gate(_kfac(last, batch_mean=True), model, x, kind)  # hook on a mean-reduced loss
    assert not hooked.passed and hooked.factor == "1/M²" and "batch-mean" in hooked.diagnosis
    y = torch.as_tensor(np.random.default_rng(4).integers(0, K, size=M))
    data = _gate(_kfac(last, data=True), model, (x, y), kind)
    assert not data.passed and data.cause == "data_labels", data.message()
    # the first layer's output hooked for the last layer's factor (both have K units)
    wrong = _gate(_kfac(last, wrong=first), model, x, kind)
    assert not wrong.passed and wrong.cause == "known_fault" and f"module {first!r}" in wrong.diagnosis, (
        wrong.message())
    if which == "cnn":  # the other flavour of a shared layer
        other = _gate(_kfac(first, "expand"), model, x, KFAC(first, sharing="reduce"))
        assert not other.passed


@pytest.mark.parametrize("which", list(MODELS))
def test_one_backward(which: str) -> None:
    model, x, _ = MODELS[which]()
    for probe in ("rademacher", "gaussian"):
        rep = _gate(_one_backward(probe), model, x, OneBackward(probe))  # type: ignore[arg-type]
        assert rep.passed, rep.message()
    faults = {"centring": _one_backward(center=False), "√p_k is missing": _one_backward(root=False),
              "not detached": _one_backward(detach=False)}
    for text, fn in faults.items():
        rep = _gate(fn, model, x, OneBackward())
        assert not rep.passed and rep.cause == "known_fault" and text in rep.diagnosis, rep.message()
    # the uncentred form estimates Jᵀdiag(p)J ⪰ I(θ): an upper bound, and not a lower one
    unc = OneBackward(centered=False)
    assert _gate(_one_backward(center=False), model, x, unc, side="upper").passed
    low = _gate(_one_backward(center=False), model, x, unc, side="lower")
    assert not low.passed and low.cause == "above_bound"


@pytest.mark.parametrize("which", list(MODELS))
def test_subsampled(which: str) -> None:
    model, x, _ = MODELS[which]()
    kind = Subsampled(3, "exact")
    assert _gate(_subsampled(3), model, x, kind).passed
    wrong = _gate(_subsampled(3, norm=M), model, x, kind)  # divided by M, not the m inputs used
    assert not wrong.passed and wrong.factor == "1/2"
    assert not _gate(_subsampled(3, redraw=False), model, x, kind).passed  # one subset always
