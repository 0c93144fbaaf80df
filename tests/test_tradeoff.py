"""The per-layer diagonal trade-off in ``analyze`` (issue 17, "For users"): which estimator has the
lower variance, the ratio against the dense thm-4/thm-6 diagonals (autodiff J and H), and the
statement that explains it, chosen from the network's structure; sun26-spectrum's pulled-back
envelopes against the exact I(θ)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify._src.fisher.covariance import cov1_variance, cov2_variance
from fisher_verify._src.fisher.tradeoff import REASONS, reason_for, tradeoff
from fisher_verify.cli import main

# expected reasons per layer, from the structure only (no number is looked at)
CASES = [
    ([3, 4, 5, 3], "tanh", ["thm-4/thm-6", "d24-groups", "d24-last-layer"]),
    ([3, 4, 5, 3], "relu", ["d24-pwl", "d24-pwl", "d24-last-layer"]),
    ([3, 4, 3], "sigmoid", ["d24-groups", "d24-last-layer"]),
    ([3, 4, 3], "identity", ["d24-pwl", "d24-last-layer"]),
    ([3, 3], "tanh", ["d24-last-layer"]),
]
FAMILIES = [lambda: fv.family("categorical", K=3),
            lambda: fv.product(*[fv.family("normal")] * 3)]


def _dense_layer_sums(net, X, n):
    """Σ_i Var(Î_e)_ii per layer from the dense thm-4/thm-6 diagonals with autodiff J, H."""
    fam = net.family
    h = net.forward(X)
    I, K = fam.fisher(h), fam.central_moment4(h)
    d1 = cov1_variance(net.jacobian(X, method="autodiff"), K, I, n, diagonal=True)
    d2 = cov2_variance(net.output_hessians(X, method="autodiff"), I, n, diagonal=True)
    off = net.offsets
    return [(float(d1[off[k]:off[k + 1]].sum()), float(d2[off[k]:off[k + 1]].sum()))
            for k in range(len(net.shapes))]


@pytest.mark.parametrize("widths, act, reasons", CASES)
@pytest.mark.parametrize("make", FAMILIES)
def test_layer_reason_and_ratio(widths, act, reasons, make):
    rng = np.random.default_rng(17)
    fam = make()
    net = fv.Network.random(widths, act, fam, 1.0, rng)
    X = rng.normal(size=(2, widths[0]))
    n = 3
    a = fv.analyze(net, X, n=n)
    assert [g.reason for g in a.layers] == reasons
    for g, (e1, e2) in zip(a.layers, _dense_layer_sums(net, X, n)):
        assert g.why == REASONS[g.reason]
        assert g.diag_var_1 == pytest.approx(e1, rel=1e-9)
        if g.reason in ("d24-last-layer", "d24-pwl"):
            # Var(I2) = 0 on the diagonal: the dense route's entries are rounding of the
            # cancelling products (|J|^2 scale), so far below 1e-12 of Var(I1)
            assert e2 <= 1e-12 * e1 and g.ratio is not None and abs(g.ratio) <= 1e-12
            assert g.lower == "I2"
        else:
            assert g.ratio == pytest.approx(e2 / e1, rel=1e-9)
            assert g.lower == ("I2" if e2 < e1 else "I1")


def test_groups_ratio_is_the_closed_form_at_one_input():
    """d24-groups: with one input and one hidden unit the layer's ratio is the closed form
    σ''(z)² wᵀIw / (σ'(z)⁴ C[w,w,w,w]), here with tanh's derivatives and C by enumeration."""
    rng = np.random.default_rng(3)
    fam = fv.family("categorical", K=3)
    net = fv.Network.random([2, 1, 3], "tanh", fam, 1.0, rng)
    x = rng.normal(size=2)
    a = fv.analyze(net, x, n=1)
    z = float((net.weights[0] @ np.append(x, 1.0))[0])
    s1, s2 = 1 - np.tanh(z) ** 2, -2 * np.tanh(z) * (1 - np.tanh(z) ** 2)
    w = net.weights[1][:, 0]
    h = net.forward(x[None])[0]
    p = np.exp(h - h.max()) / np.exp(h - h.max()).sum()
    I = np.diag(p) - np.outer(p, p)
    r = np.eye(3) - p  # t(y) - E t over the three labels, rows y
    wr = r @ w
    c4 = float(p @ wr**4) - float(w @ I @ w) ** 2
    assert a.layers[0].reason == "d24-groups"
    assert a.layers[0].ratio == pytest.approx(s2**2 * float(w @ I @ w) / (s1**4 * c4), rel=1e-9)


def test_reason_priority_and_tradeoff_edges():
    assert reason_for(last=True, piecewise_linear=True, before_last_smooth=False) == \
        "d24-last-layer"
    assert reason_for(last=False, piecewise_linear=True, before_last_smooth=True) == "d24-pwl"
    assert reason_for(last=False, piecewise_linear=False, before_last_smooth=True) == \
        "d24-groups"
    assert reason_for(last=False, piecewise_linear=False, before_last_smooth=False) == \
        "thm-4/thm-6"
    t = tradeoff(2.0, 1.0, "d24-groups")
    assert (t.lower, t.ratio) == ("I2", 0.5)
    assert tradeoff(1.0, 2.0, "thm-4/thm-6").lower == "I1"
    assert (tradeoff(0.0, 0.0, "d24-pwl").lower, tradeoff(0.0, 0.0, "d24-pwl").ratio) == \
        ("undefined", None)
    assert tradeoff(0.0, 1.0, "thm-4/thm-6").ratio is None
    over = tradeoff(float("inf"), 1.0, "d24-groups")
    assert (over.lower, over.ratio) == ("undetermined", None)
    with pytest.raises(ValueError, match="reason must be one of"):
        tradeoff(1.0, 1.0, "thm-99")


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_categorical_envelopes_against_exact_fisher(act):
    """sun26-spectrum in analyze: diag J'LJ <= diag I(θ) <= diag J'UJ and the traces, with I(θ)
    from autodiff J and I(h) = diag(p) - pp' (not analyze's own), and the envelope diagonals
    recomputed from L = p_min P, U = λ̄ P with λ̄ ≥ λ_max(I(h)) by eigh."""
    rng = np.random.default_rng(5)
    K = 4
    fam = fv.family("categorical", K=K)
    net = fv.Network.random([3, 5, K], act, fam, 1.5, rng)
    X = rng.normal(size=(3, 3))
    a = fv.analyze(net, X, n=1)
    e = a.envelopes
    J = net.jacobian(X, method="autodiff")
    h = net.forward(X)
    p = np.exp(h - h.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    Ih = np.einsum("mk,kl->mkl", p, np.eye(K)) - np.einsum("mk,ml->mkl", p, p)
    F = np.einsum("mai,mab,mbj->ij", J, Ih, J) / len(X)
    Pk = np.eye(K) - 1.0 / K
    low = np.diagonal(sum(p[m].min() * J[m].T @ Pk @ J[m] for m in range(3)) / 3)
    lam = np.linalg.eigvalsh(Ih)[:, -1]
    tight_up = np.diagonal(sum(lam[m] * J[m].T @ Pk @ J[m] for m in range(3)) / 3)
    scale = float(np.max(e["diag_upper"]))
    np.testing.assert_allclose(e["diag_lower"], low, rtol=1e-10, atol=1e-14 * scale)
    f = np.diagonal(F)
    assert np.all(e["diag_lower"] <= f + 1e-12 * scale)
    assert np.all(f <= tight_up + 1e-12 * scale)
    assert np.all(tight_up <= e["diag_upper"] + 1e-12 * scale)
    assert e["trace_lower"] <= f.sum() <= e["trace_upper"]
    assert e["trace_fisher"] == pytest.approx(f.sum(), rel=1e-10)
    assert "sun26-spectrum: tr J'LJ" in a.summary()


def test_no_envelopes_for_other_families():
    rng = np.random.default_rng(1)
    net = fv.Network.random([2, 3, 1], "tanh", fv.family("bernoulli"), 1.0, rng)
    assert fv.analyze(net, rng.normal(size=2)).envelopes is None


def test_cli_shows_reason_and_ratio(tmp_path, capsys):
    rng = np.random.default_rng(0)
    net = fv.Network.random([3, 4, 2], "tanh", fv.family("categorical", K=2), 1.0, rng)
    w = tmp_path / "w.npz"
    np.savez(w, **{f"W{i}": W for i, W in enumerate(net.weights)})
    x = tmp_path / "x.npy"
    np.save(x, rng.normal(size=3))
    base = ["analyze", "--weights", str(w), "--x", str(x), "--family", "categorical",
            "--param", "K=2"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "  d24-groups: " in out and "  d24-last-layer: " in out and "sun26-spectrum" in out
    assert main([*base, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [g["reason"] for g in data["layers"]] == ["d24-groups", "d24-last-layer"]
    assert data["layers"][1]["ratio"] == 0.0 or abs(data["layers"][1]["ratio"]) <= 1e-12
    assert data["envelopes"]["trace_lower"] <= data["envelopes"]["trace_upper"]


def test_report_tradeoff_figure(tmp_path):
    """The "Beyond the paper" figure: a PNG, and per activation and layer the reason from the
    structure and the sums equal to the dense thm-4/thm-6 diagonals of the same network."""
    from fisher_verify._src.report.tradeoff_figure import ACTIVATIONS, INPUTS, WIDTHS, tradeoff_figure

    path, data = tradeoff_figure(tmp_path, seed=4)
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(data["activations"]) == list(ACTIVATIONS)
    fam = fv.family("categorical", K=WIDTHS[-1])
    for act, rows in data["activations"].items():
        rng = np.random.default_rng(4)
        net = fv.Network.random(list(WIDTHS), act, fam, 1.0, rng)
        X = rng.normal(size=(INPUTS, WIDTHS[0]))
        want = (["d24-pwl", "d24-pwl"] if act == "relu" else ["thm-4/thm-6", "d24-groups"])
        assert [r["reason"] for r in rows] == [*want, "d24-last-layer"]
        for r, (e1, e2) in zip(rows, _dense_layer_sums(net, X, 1)):
            assert r["var_1"] == pytest.approx(e1, rel=1e-9)
            assert r["var_2"] == pytest.approx(e2, rel=1e-9, abs=1e-12 * e1)


def test_diagonal_only_mode_keeps_reasons_and_says_why_no_envelopes():
    """The large-P path (diagonals only) gives the same per-layer ratio and reason as the full
    path; the envelopes are left out with the reason."""
    rng = np.random.default_rng(8)
    net = fv.Network.random([3, 4, 5, 3], "tanh", fv.family("categorical", K=3), 1.0, rng)
    X = rng.normal(size=(2, 3))
    full = fv.analyze(net, X, n=2)
    diag = fv.analyze(net, X, n=2, diagonal=True)
    assert [g.reason for g in diag.layers] == [g.reason for g in full.layers]
    for a, b in zip(diag.layers, full.layers):
        assert a.ratio == pytest.approx(b.ratio, rel=1e-9, abs=1e-12)
    assert diag.envelopes is None and "not computed for P >" in diag.envelopes_note
    assert "sun26-spectrum envelopes: not computed" in diag.summary()


def test_envelopes_are_summed_in_chunks_within_the_memory_budget():
    """A memory budget that holds two inputs' Jacobians at a time gives the same envelopes as
    one pass over every input (the diagonals are sums over inputs)."""
    import importlib

    an = importlib.import_module("fisher_verify._src.analysis")

    rng = np.random.default_rng(9)
    net = fv.Network.random([3, 4, 3], "tanh", fv.family("categorical", K=3), 1.0, rng)
    X = rng.normal(size=(5, 3))
    fisher = np.asarray(fv.exact_fisher(net, X))
    one, _ = an._envelopes(net, X, fisher, False, 1 << 30)
    # two inputs per chunk: 2, 2, 1 (an uneven last chunk is weighted by its size)
    small, _ = an._envelopes(net, X, fisher, False, 2 * 4 * 8 * 3 * net.num_params)
    for key in ("diag_lower", "diag_upper"):
        np.testing.assert_allclose(small[key], one[key], rtol=1e-12)
