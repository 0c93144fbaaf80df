"""analyze names the estimator with the smaller summed variance as the better one (the
ext-analyze-choice statement, and the two cases where the answer is known without computing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import fisher_verify as fv
from fisher_verify._src.proofs import discover, run_all, select


def test_bernoulli_at_one_half_prefers_i1() -> None:
    """One Bernoulli output with h_L = 0 at the only input: K − I² = 0 (fig-1), so Var(Î₁) = 0
    while Var(Î₂) > 0 for a tanh hidden layer: I1 is better, overall and in layer 0."""
    rng = np.random.default_rng(1)
    net = fv.Network.random([2, 3, 1], "tanh", fv.family("bernoulli"), 1.0, rng)
    x = rng.normal(size=2)
    w = [W.copy() for W in net.weights]
    w[-1][0, -1] -= float(net.forward(x)[0])
    net = fv.Network.from_weights(w, "tanh", net.family)
    res = fv.analyze(net, x, n=2)
    assert res.better == "I1"
    assert res.layers[0].better == "I1"


def test_poisson_at_a_large_rate_prefers_i2() -> None:
    """Poisson output at rate e^6: Var(Î₁) ∝ λ² (K − I² = λ + 2λ²) and Var(Î₂) ∝ λ (thm-6):
    I2 is better overall; its last layer has Var(Î₂) = 0 (h_L linear in W_{L-1})."""
    rng = np.random.default_rng(2)
    net = fv.Network.random([2, 3, 1], "tanh", fv.family("poisson"), 1.0, rng)
    x = rng.normal(size=2)
    w = [W.copy() for W in net.weights]
    w[-1][0, -1] += 6.0 - float(net.forward(x)[0])
    net = fv.Network.from_weights(w, "tanh", net.family)
    res = fv.analyze(net, x, n=2)
    assert res.better == "I2"
    assert res.layers[-1].better == "I2"


def test_ext_analyze_choice_statement_verifies() -> None:
    root = Path(__file__).resolve().parents[1]
    rec = run_all(select(discover([root / "proofs"]), ["ext-analyze-choice"]))[0]
    assert rec.verdict == "verified", rec.summary
