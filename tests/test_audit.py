"""The coordinate audit (``ext-sequence``): exact ``I_ii`` at sampled coordinates from one
forward-mode pass each, against the engine's full diagonal (reverse mode, an independent route);
a claim wrong at one audited coordinate is caught and named; the Monte Carlo laws (``Î₁``, GNB)
against the gate's exact laws from dense Jacobians; the threshold pinned to its formula."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import fisher_verify as fv
from fisher_verify._src.families.sequence import IGNORE
from fisher_verify._src.models.as_network import module_network
from fisher_verify._src.models.sequence import with_padding_mask
from fisher_verify._src.models.transformer import CausalTransformer
from fisher_verify._src.testing.audit import AUDIT_ALPHA, audit_diagonal, audit_threshold
from fisher_verify.errors import FisherVerifyError, ShapeError

PAD = 0


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(before)


def _transformer(V: int = 5, T: int = 4, M: int = 6) -> tuple[Any, Any, Any]:
    torch.manual_seed(0)
    net = CausalTransformer(V, T, D=4, heads=2, blocks=1, tied=False).double()
    tokens = torch.randint(1, V, (M, T), generator=torch.Generator().manual_seed(1))
    tokens[1, 2:] = PAD
    tokens[4, 1:] = PAD
    return with_padding_mask(net, PAD), tokens, fv.family("sequence", K=V, T=T)


def _mlp(family: str) -> tuple[Any, Any, Any]:
    torch.manual_seed(2)
    fam = fv.family("categorical", K=4) if family == "categorical" else fv.family("normal")
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(),
                                torch.nn.Linear(5, fam.dim)).double()
    return model, torch.randn(7, 3, dtype=torch.float64), fam


def _flat(diag: Any, model: Any) -> np.ndarray:
    return torch.cat([diag[k].reshape(-1) for k, _ in model.named_parameters()]).numpy()


@pytest.mark.parametrize("which", ["transformer", "categorical", "normal"])
def test_audit_agrees_with_the_full_exact_diagonal(which: str) -> None:
    """At every audited coordinate the forward-mode I_ii equals the engine's reverse-mode
    diagonal; the exact diagonal as the claim passes."""
    model, data, fam = _transformer() if which == "transformer" else _mlp(which)
    full = fv.exact_fisher(model, data, fam, progress=False, diagonal=True)
    flat = _flat(full, model)
    rep = audit_diagonal(model, data, fam, full, n_coordinates=min(25, flat.size), seed=3)
    assert rep.passed, rep.message()
    np.testing.assert_allclose(rep.exact, flat[rep.coordinates], rtol=1e-10,
                               atol=1e-15 * flat.max())
    assert len(set(rep.coordinates.tolist())) == len(rep.coordinates) == min(25, flat.size)


def test_a_claim_wrong_at_one_coordinate_is_caught_when_sampled() -> None:
    """One entry off by a relative 1e-6 fails the audit when that coordinate is audited, named
    as ``name[index]``; the same claim passes when it is not audited."""
    model, data, fam = _transformer()
    flat = _flat(fv.exact_fisher(model, data, fam, progress=False, diagonal=True), model)
    bad = flat.copy()
    i = int(np.argmax(flat > 0.1 * flat.max()))  # a coordinate with a sizeable I_ii
    bad[i] *= 1 + 1e-6
    rep = audit_diagonal(model, data, fam, bad, coordinates=[i, (i + 1) % flat.size])
    assert not rep.passed and len(rep.failed) == 1
    names = [k for k, _ in model.named_parameters()]
    sizes = np.cumsum([p.numel() for _, p in model.named_parameters()])
    k = int(np.searchsorted(sizes, i, side="right"))
    assert rep.failed[0].startswith(names[k] + "[") and rep.failed[0] in rep.message()
    others = [j for j in range(flat.size) if j != i][:10]
    assert audit_diagonal(model, data, fam, bad, coordinates=others).passed
    # by (name, index): the same coordinate
    local = i - (int(sizes[k - 1]) if k else 0)
    shape = dict(model.named_parameters())[names[k]].shape
    rep2 = audit_diagonal(model, data, fam, bad,
                          coordinates=[(names[k], np.unravel_index(local, shape))])
    assert rep2.failed == rep.failed


@pytest.mark.parametrize("which", ["transformer", "categorical", "normal"])
def test_deterministic_tolerance_is_rtol_times_the_terms(which: str) -> None:
    """threshold = rtol · s_i + rtol² · max_j s_j with s_i the size of the terms of I_ii,
    computed here from dense reverse-mode Jacobians: (1/M) Σ_m Σ_t m_t Σ_k p_k (|u_k| + pᵀ|u|)²
    for token-level and categorical outputs (the centred form), |u|ᵀ|I||u| otherwise."""
    model, data, fam = _transformer() if which == "transformer" else _mlp(which)
    full = fv.exact_fisher(model, data, fam, progress=False, diagonal=True)
    rep = audit_diagonal(model, data, fam, full, coordinates=[0, 7, 20], rtol=1e-7)
    net = module_network(model, fam, data)
    X = data.numpy().reshape(data.shape[0], -1).astype(float)
    J, h = net.jacobian(X), net.forward(X)
    s = np.zeros(3)
    for m in range(X.shape[0]):
        u = J[m][:, rep.coordinates]  # (d, 3)
        if which == "normal":
            s += np.einsum("ai,ab,bi->i", np.abs(u), np.abs(fam.fisher(h[m])), np.abs(u))
            continue
        if which == "transformer":
            p, mask = fam.probabilities(h[m])
            a = np.abs(fam.positions(u, axis=0))  # (3, T, V)
        else:
            p = np.exp(h[m]) / np.exp(h[m]).sum()
            mask, a = np.ones(1), np.abs(u.T)[:, None, :]  # one "position"
        pa = (p * a).sum(-1, keepdims=True)
        s += ((p * (a + pa) ** 2).sum(-1) * mask).sum(-1)
    s /= X.shape[0]
    np.testing.assert_allclose(rep.scale, s, rtol=1e-12)
    np.testing.assert_allclose(rep.threshold, 1e-7 * s + 1e-14 * s.max(), rtol=1e-12)


def test_threshold_formula_is_pinned() -> None:
    """τ = min(σ √(S/α), (μ₄ S/α)^{1/4}): Chebyshev and Markov on the fourth power at α/S each."""
    var = np.array([1.0, 4.0, 0.0, 2.0])
    mu4 = np.array([3.0, 1e9, 0.0, 12.0])
    S, alpha = 10, 1e-6
    want = [min(math.sqrt(v * S / alpha), (m * S / alpha) ** 0.25) for v, m in zip(var, mu4)]
    np.testing.assert_allclose(audit_threshold(var, mu4, S, alpha), want, rtol=1e-15)
    assert AUDIT_ALPHA <= 1e-6


def _gnb_claim(model: Any, tokens: Any, n: int, seed: int, scale: float = 1.0,
               pad: bool = False) -> np.ndarray:
    """The mean of n Sophia GNB estimates (labels sampled, padding ignored unless ``pad``)."""
    g = torch.Generator().manual_seed(seed)
    out = 0.0
    for _ in range(n):
        logits = model.model(tokens)
        V = logits.shape[-1]
        with torch.no_grad():
            y = torch.multinomial(torch.softmax(logits, -1).reshape(-1, V), 1, generator=g)
        y = y.reshape(tokens.shape)
        if not pad:
            y = torch.where(model.mask(tokens), y, IGNORE)
        B = tokens.shape[0]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1),
                                                 ignore_index=IGNORE, reduction="sum") / B
        grads = torch.autograd.grad(loss, list(model.parameters()))
        out = out + torch.cat([B * gr.reshape(-1) ** 2 for gr in grads]).numpy()
    return scale * np.asarray(out) / n


@pytest.mark.parametrize("which", ["gnb", "I1"])
def test_monte_carlo_laws_match_the_gate(which: str) -> None:
    """The audit's exact variance and fourth central moment of a Monte Carlo claim equal the
    gate's exact laws (dense Jacobians, the family's cumulants: gnb_statistics /
    exact_statistics) at the audited coordinates."""
    from fisher_verify._src.testing.gate_exact import exact_statistics
    from fisher_verify._src.testing.gate_kinds import gnb_statistics

    model, data, fam = _transformer(V=3, T=3, M=5)
    n = 3
    full = fv.exact_fisher(model, data, fam, progress=False, diagonal=True)
    rep = audit_diagonal(model, data, fam, full, which=which, n=n, coordinates=[1, 9, 40, 77])
    net = module_network(model, fam, data)
    X = data.numpy().reshape(data.shape[0], -1).astype(float)
    V = np.zeros((0, net.num_params))
    ex = (gnb_statistics(net, X, n, V, True) if which == "gnb"
          else exact_statistics(net, X, 1, n, V, True))
    np.testing.assert_allclose(rep.variance, ex.variance[rep.coordinates], rtol=1e-9)
    np.testing.assert_allclose(rep.fourth, ex.fourth[rep.coordinates], rtol=1e-8)
    tau = audit_threshold(rep.variance, rep.fourth, 4, AUDIT_ALPHA)
    floor = rep.rtol**2 * rep.scale.max()
    np.testing.assert_allclose(rep.threshold, tau + rep.rtol * rep.scale + floor, rtol=1e-14)


def test_monte_carlo_claims_pass_and_an_offset_fails() -> None:
    """A GNB claim (mean of n = 20 estimates) passes; the same claim moved by 1.5 thresholds at
    one coordinate fails there."""
    model, data, fam = _transformer()
    claim = _gnb_claim(model, data, 20, seed=5)
    rep = audit_diagonal(model, data, fam, claim, which="gnb", n=20, n_coordinates=30, seed=1)
    assert rep.passed, rep.message()
    j = 4
    moved = claim.copy()
    moved[rep.coordinates[j]] = rep.exact[j] + 1.5 * rep.threshold[j]
    bad = audit_diagonal(model, data, fam, moved, which="gnb", n=20, n_coordinates=30, seed=1)
    assert not bad.passed and bad.failed == [rep.labels[j]]


def test_per_tensor_sampling_sees_every_tensor() -> None:
    """per_tensor=k draws k coordinates from each parameter tensor (all of a smaller one)."""
    model, data, fam = _transformer()
    full = fv.exact_fisher(model, data, fam, progress=False, diagonal=True)
    rep = audit_diagonal(model, data, fam, full, per_tensor=2, seed=4)
    assert rep.passed, rep.message()
    tensors = [lab.split("[")[0] for lab in rep.labels]
    for name, p in model.named_parameters():
        assert tensors.count(name) == min(2, p.numel())


def _gnb_replicates(model: Any, tokens: Any, R: int, seed: int, **kw: Any) -> list[np.ndarray]:
    return [_gnb_claim(model, tokens, 1, seed + r, **kw) for r in range(R)]


def test_replicated_monte_carlo_claims_have_power() -> None:
    """R = 400 independent GNB claims: Catoni's estimate within σ_i √(2L/(R − 2L)),
    L = log(2S/α) (pinned here), passes for the correct GNB and names coordinates of the
    GNB without B (1/M) and of the GNB with the padding positions counted."""
    model, data, fam = _transformer()
    S, R = 20, 400
    kw = dict(which="gnb", n=1, n_coordinates=S, seed=1, replicates=True)
    ok = audit_diagonal(model, data, fam, _gnb_replicates(model, data, R, 100), **kw)
    assert ok.passed and ok.replicates == R, ok.message()
    L = math.log(2 * S / AUDIT_ALPHA)
    radius = np.sqrt(ok.variance) * math.sqrt(2 * L / (R - 2 * L))
    floor = ok.rtol**2 * ok.scale.max()
    np.testing.assert_allclose(ok.threshold, radius + ok.rtol * ok.scale + floor, rtol=1e-14)
    no_b = audit_diagonal(model, data, fam,
                          _gnb_replicates(model, data, R, 100, scale=1 / data.shape[0]), **kw)
    assert not no_b.passed and no_b.failed, no_b.message()
    padded = audit_diagonal(model, data, fam, _gnb_replicates(model, data, R, 100, pad=True), **kw)
    assert not padded.passed, padded.message()
    with pytest.raises(FisherVerifyError, match="needs at least"):
        audit_diagonal(model, data, fam, _gnb_replicates(model, data, 5, 0), **kw)
    with pytest.raises(FisherVerifyError, match="needs a Monte Carlo which"):
        audit_diagonal(model, data, fam, [ok.claimed], replicates=True)


def test_audit_refusals() -> None:
    model, data, fam = _transformer()
    P = sum(p.numel() for p in model.parameters())
    flat = np.zeros(P)
    with pytest.raises(FisherVerifyError, match="which must be one of .*which='I1'"):
        audit_diagonal(model, data, fam, flat, which=1)  # type: ignore[arg-type]
    with pytest.raises(FisherVerifyError, match="exceeds the model's P"):
        audit_diagonal(model, data, fam, flat, n_coordinates=P + 1)
    with pytest.raises(FisherVerifyError, match="not a flat index"):
        audit_diagonal(model, data, fam, flat, coordinates=[P])
    with pytest.raises(FisherVerifyError, match="listed twice"):
        audit_diagonal(model, data, fam, flat, coordinates=[3, 3])
    with pytest.raises(FisherVerifyError, match="not a trainable parameter"):
        audit_diagonal(model, data, fam, flat, coordinates=[("nope", (0,))])
    with pytest.raises(ShapeError):
        audit_diagonal(model, data, fam, np.zeros(P - 1))
    import fisher_verify._src.testing.audit as audit_module

    with pytest.MonkeyPatch.context() as mp:  # a small limit stands for 10⁴ on a 10⁷ model
        mp.setattr(audit_module, "MAX_COORDINATES", 5)
        for kw in ({"n_coordinates": 6}, {"per_tensor": 1}, {"coordinates": list(range(6))}):
            with pytest.raises(FisherVerifyError, match="above MAX_COORDINATES = 5"):
                audit_diagonal(model, data, fam, flat, **kw)
    with pytest.raises(FisherVerifyError, match="coordinates= or per_tensor="):
        audit_diagonal(model, data, fam, flat, coordinates=[1], per_tensor=1)
    with pytest.raises(FisherVerifyError, match="which must be one of"):
        audit_diagonal(model, data, fam, flat, which=np.array([1]))  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="^claimed: could not read"):
        audit_diagonal(model, data, fam, "abc")
    nan = audit_diagonal(model, data, fam, np.full(P, np.nan), coordinates=[0, 1])
    assert not nan.passed and len(nan.failed) == 2  # a NaN claim fails where audited
    with pytest.raises(FisherVerifyError, match="alpha"):
        audit_diagonal(model, data, fam, flat, which="gnb", alpha=0.0)
