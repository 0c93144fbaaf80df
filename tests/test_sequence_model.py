"""A small causal transformer on padded token sequences (``ext-sequence``): its exact Fisher
diagonal and Var(Î₁) through the engine against an independent route (autograd Jacobians of the
raw logits, the per-position categorical Fisher summed over the real positions; every label
sequence enumerated), and Sophia's GNB estimator on it gated with ``kind="gnb"``: the correct one
passes, the public faults are rejected and named."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import fisher_verify as fv
from fisher_verify import check_estimator
from fisher_verify._src.families.sequence import IGNORE
from fisher_verify._src.models.sequence import with_padding_mask
from fisher_verify._src.models.transformer import CausalTransformer
from fisher_verify.errors import ShapeError

PAD = 0


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(before)


def _setup(V: int = 4, T: int = 4, M: int = 6, tied: bool = True, blocks: int = 1,
           D: int = 4) -> tuple[Any, Any, Any, Any]:
    torch.manual_seed(0)
    net = CausalTransformer(V, T, D=D, heads=2, blocks=blocks, tied=tied).double()
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, V, (M, T), generator=g)
    tokens[1, 2:] = PAD  # right padding of various lengths
    tokens[3, 3:] = PAD
    tokens[4, 1:] = PAD
    targets = torch.randint(1, V, (M, T), generator=g)
    targets[tokens == PAD] = IGNORE
    return net, tokens, targets, fv.family("sequence", K=V, T=T)


def _reference(net: Any, tokens: Any) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Per input: the Jacobian of the raw logits (T, V, P), the probabilities (T, V); the mask."""
    params = list(net.parameters())
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    theta = torch.cat([p.detach().reshape(-1) for p in params])

    def logits_of(flat: Any, x: Any) -> Any:
        chunks = torch.split(flat, sizes)
        named = {k: c.reshape(s) for (k, _), c, s in zip(net.named_parameters(), chunks, shapes)}
        return torch.func.functional_call(net, named, (x[None],))[0]

    Js, ps = [], []
    for x in tokens:
        J = torch.autograd.functional.jacobian(lambda f, x=x: logits_of(f, x), theta)
        Js.append(J.numpy())
        ps.append(torch.softmax(logits_of(theta, x), -1).detach().numpy())
    return Js, ps, (tokens != PAD).numpy()


def _reference_diagonal(net: Any, tokens: Any) -> np.ndarray:
    Js, ps, mask = _reference(net, tokens)
    total = 0.0
    for J, p, m in zip(Js, ps, mask):
        for t in np.flatnonzero(m):
            Ip = np.diag(p[t]) - np.outer(p[t], p[t])
            total = total + np.einsum("kp,kl,lp->p", J[t], Ip, J[t])
    return np.asarray(total) / len(Js)


@pytest.mark.parametrize(("tied", "blocks"), [(True, 1), (False, 2)])
def test_engine_diagonal_of_a_padded_transformer(tied: bool, blocks: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """fv.exact_fisher(diagonal=True) on the wrapped transformer equals Σ over the real positions of
    J_tᵀ(diag p_t − p_t p_tᵀ)J_t (autograd of the raw logits), per parameter tensor; padding
    positions count for nothing. The engine contracts in O(T·V): the dense d×d Fisher is never
    formed (it raises here)."""
    from fisher_verify._src.families.sequence import SequenceFamily

    net, tokens, _, fam = _setup(tied=tied, blocks=blocks)
    wm = with_padding_mask(net, PAD)

    def dense(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the dense Fisher of the sequence family was formed")

    with monkeypatch.context() as mp:
        mp.setattr(SequenceFamily, "fisher", dense)
        got = fv.exact_fisher(wm, tokens, fam, progress=False, diagonal=True)
    flat = torch.cat([got[f"model.{k}"].reshape(-1) for k, _ in net.named_parameters()]).numpy()
    ref = _reference_diagonal(net, tokens)
    np.testing.assert_allclose(flat, ref, rtol=1e-9, atol=1e-13 * ref.max())
    # the padded positions do change the diagonal when counted
    allreal = with_padding_mask(net, mask=lambda x: torch.ones_like(x, dtype=torch.bool))
    counted = fv.exact_fisher(allreal, tokens, fam, progress=False, diagonal=True)
    flat2 = torch.cat([v.reshape(-1) for v in counted.values()]).numpy()
    assert np.max(np.abs(flat2 - flat)) > 1e-3 * ref.max()


def test_engine_variance_of_i1_against_enumeration() -> None:
    """Var(Î₁)_ii (thm-4) through the engine equals (1/M²) Σ_m Var_y[(u_mᵀ(t − η_m))²] with
    every label sequence of the real positions enumerated."""
    net, tokens, _, fam = _setup(V=3, T=3, M=5)
    wm = with_padding_mask(net, PAD)
    got = fv.variance(wm, tokens, fam, which="I1", n=1, progress=False, diagonal=True)
    flat = torch.cat([got[f"model.{k}"].reshape(-1) for k, _ in net.named_parameters()]).numpy()
    Js, ps, mask = _reference(net, tokens)
    total = 0.0
    for J, p, m in zip(Js, ps, mask):
        real = np.flatnonzero(m)
        centre = sum(p[t] @ J[t] for t in real)
        e1 = e2 = 0.0
        for labels in itertools.product(range(3), repeat=len(real)):
            w = np.prod([p[t, y] for t, y in zip(real, labels)])
            s = sum(J[t][y] for t, y in zip(real, labels)) - centre
            e1, e2 = e1 + w * s**2, e2 + w * s**4
        total = total + (e2 - e1**2)
    ref = np.asarray(total) / len(Js) ** 2
    np.testing.assert_allclose(flat, ref, rtol=1e-9, atol=1e-13 * ref.max())


def _gnb(model: Any, data: Any, generator: Any, *, scale: float = 1.0, labels: str = "sample",
         pad: bool = False) -> list[Any]:
    """Sophia's GNB step on a padded batch: labels sampled per position, the padding positions
    ignored, the batch-mean of the per-sequence losses, B·ĝ⊙ĝ (Liu et al. 2023)."""
    tokens = data[0] if isinstance(data, tuple | list) else data
    logits = model.model(tokens)
    V = logits.shape[-1]
    with torch.no_grad():
        y = torch.multinomial(torch.softmax(logits, -1).reshape(-1, V), 1,
                              generator=generator).reshape(tokens.shape)
    if labels == "data":
        y = data[1].clone()
    if not pad:
        y = torch.where(model.mask(tokens), y, torch.full_like(y, IGNORE))
    B = tokens.shape[0]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1),
                                             ignore_index=IGNORE, reduction="sum") / B
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return [scale * B * g**2 for g in grads]


def test_gnb_on_a_padded_transformer_passes_and_its_faults_are_named() -> None:
    """The correct Sophia GNB passes the gate (kind="gnb", the exact reference of any module);
    the missing B, the data's labels and counted padding positions are rejected and named."""
    net, tokens, targets, fam = _setup()
    wm = with_padding_mask(net, PAD)

    def gate(**faults: Any) -> Any:
        return check_estimator(lambda m, d, generator: _gnb(m, d, generator, **faults), wm,
                                  (tokens, targets), family=fam, which="gnb",
                                  randomness="generator", rng=0)

    ok = gate()
    assert ok.passed and ok.which == "gnb", ok.message()
    missing_b = gate(scale=1.0 / tokens.shape[0])
    assert not missing_b.passed and missing_b.factor == "1/M" and "batch size B" in missing_b.diagnosis
    data = gate(labels="data")
    assert not data.passed and data.cause == "data_labels", data.message()
    padded = gate(pad=True)
    assert not padded.passed and padded.cause == "padding", padded.message()
    assert "padding positions" in padded.diagnosis


def test_i1_per_sequence_passes_with_kind_1() -> None:
    """Î₁ (per-sequence score outer products, labels sampled at the real positions) passes the
    gate with kind=1 (thm-4 with the sequence family's cumulants); its batch-mean gradient
    squared (GNB) declared as Î₁ is noisier (the cross-input terms)."""
    net, tokens, targets, fam = _setup()
    wm = with_padding_mask(net, PAD)

    def i1(model: Any, data: Any, generator: Any) -> list[Any]:
        tokens = data[0]
        out = None
        for m in range(tokens.shape[0]):
            g = _gnb(model, (tokens[m : m + 1], data[1][m : m + 1]), generator)
            out = g if out is None else [a + b for a, b in zip(out, g)]
        assert out is not None
        return [a / tokens.shape[0] for a in out]

    rep = check_estimator(i1, wm, (tokens, targets), family=fam, which="I1",
                             randomness="generator", rng=0)
    assert rep.passed, rep.message()
    noisy = check_estimator(lambda m, d, generator: _gnb(m, d, generator), wm,
                               (tokens, targets), family=fam, which="I1", randomness="generator",
                               rng=0)
    assert not noisy.passed and noisy.cause == "noisier", noisy.message()


def test_padding_counted_is_not_named_without_padding() -> None:
    """With no padded position the padding diagnosis has nothing to say: an estimator scaled by
    1/M is named by its factor."""
    net, tokens, targets, fam = _setup()
    tokens = tokens.clone()
    tokens[tokens == PAD] = 1
    targets = torch.where(targets == IGNORE, torch.ones_like(targets), targets)
    wm = with_padding_mask(net, PAD)
    rep = check_estimator(lambda m, d, generator: _gnb(m, d, generator, scale=0.5), wm,
                             (tokens, targets), family=fam, which="gnb", randomness="generator",
                             rng=0)
    assert not rep.passed and rep.cause == "scale", rep.message()


def test_with_padding_mask_refusals() -> None:
    net, tokens, _, fam = _setup()
    with pytest.raises(ShapeError, match="exactly one of pad_token"):
        with_padding_mask(net)
    with pytest.raises(ShapeError, match="exactly one of pad_token"):
        with_padding_mask(net, 0, mask=lambda x: x != 0)
    with pytest.raises(ShapeError, match="pad_token must be an integer"):
        with_padding_mask(net, 0.5)  # type: ignore[arg-type]
    flat = torch.nn.Sequential(torch.nn.Embedding(4, 3), torch.nn.Flatten())
    with pytest.raises(ShapeError, match=r"logits of shape \(batch, T, V\)"):
        with_padding_mask(flat, 0)(tokens)
    # the family's width must match the wrapped output: refused by the engine, naming both
    with pytest.raises(ShapeError, match="sequence"):
        fv.exact_fisher(with_padding_mask(net, PAD), tokens,
                                 fv.family("sequence", K=4, T=3), progress=False, diagonal=True)


class _Flat(torch.nn.Module):
    """The transformer's logits flattened to (B, T·V): h_L of a product of T categoricals."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.model = net

    def forward(self, tokens: Any) -> Any:
        out = self.model(tokens)
        return out.reshape(out.shape[0], -1)


def test_without_padding_the_engine_agrees_with_the_product_of_categoricals() -> None:
    """With every position real, diag I(θ), Var(Î₁) and Var(Î₂) (thm-6, output Hessians)
    through the sequence family equal those through fv.product of T categoricals (the
    product's own contractions, an independent route)."""
    V, T = 4, 4
    net, tokens, _, _ = _setup(V=V, T=T)
    tokens = torch.where(tokens == PAD, torch.ones_like(tokens), tokens)
    seq = with_padding_mask(net, PAD)
    fam = fv.family("sequence", K=V, T=T)
    prod = fv.product(*[fv.family("categorical", K=V) for _ in range(T)])
    flat = _Flat(net)

    def both(fn: Any, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
        a = fn(seq, tokens, fam, progress=False, **kw)
        b = fn(flat, tokens, prod, progress=False, **kw)
        return (torch.cat([v.reshape(-1) for v in a.values()]).numpy(),
                torch.cat([v.reshape(-1) for v in b.values()]).numpy())

    for got, want in (both(fv.exact_fisher, diagonal=True),
                      both(fv.variance, which="I1", n=2, diagonal=True),
                      both(fv.variance, which="I2", n=2, diagonal=True)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
