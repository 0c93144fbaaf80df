"""The diagonal-estimator results beyond the paper (fisher.diagonal; d24-*, sun26-spectrum).

Every expected value comes from an independent route: the dense thm-4/thm-6 code of
fisher.covariance (K from the 4th central moment, not κ₄), exact expectations over the labels
(enumeration, the family's nodes), brute-force enumeration of input draws, eigvalsh.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify._src.fisher import diagonal as dg
from fisher_verify._src.fisher.covariance import cov1_variance, cov2_variance, moment_excess
from fisher_verify._src.proofs.api import Context
from fisher_verify._src.proofs.discover import discover
from fisher_verify._src.proofs.support import output_family
from fisher_verify._src.report.groups import BEYOND, PAPER, grouped, is_beyond_paper
from fisher_verify.errors import FisherVerifyError, ShapeError

ROOT = Path(__file__).resolve().parents[1]


def _net(name: str, widths: list[int], act: str = "tanh", seed: int = 0, inputs: int = 2):
    rng = np.random.default_rng(seed)
    fam = output_family(name, widths[-1])
    X = rng.normal(size=(inputs, widths[0]))
    net = fv.Network.random(widths, act, fam, 1.0, rng).into_domain(X)
    return net, X


def _parts(net, X):
    fam = net.family
    h = net.forward(X)
    I, K, k4 = fam.fisher(h), fam.central_moment4(h), fam.kappa4(h)
    J, H = net.jacobian(X), net.output_hessians(X)
    return I, K, k4, J, H, np.diagonal(H, axis1=-2, axis2=-1)


@pytest.mark.parametrize("name", ["categorical", "normal_unknown_variance", "poisson"])
def test_diagonal_variances_equal_thm4_thm6_diagonals(name):
    """d24-var: κ₄[u⁴] + 2(uᵀIu)² is thm-4's diagonal computed with K − I⊗I; dropping the
    2(uᵀIu)² term (the mutation) would differ by far more than rounding."""
    net, X = _net(name, [2, 3, 3, 3 if name == "categorical" else 2])
    I, K, k4, J, H, Hd = _parts(net, X)
    v1, v2 = dg.diagonal_variances(J, Hd, I, k4, n=3)
    r1 = cov1_variance(J, K, I, 3, diagonal=True)
    np.testing.assert_allclose(v1, r1, rtol=1e-10, atol=1e-12 * np.max(r1))
    np.testing.assert_allclose(v2, cov2_variance(H, I, 3, diagonal=True), rtol=1e-10,
                               atol=1e-12 * np.max(v2))
    dropped = np.einsum("mabcd,mai,mbi,mci,mdi->i", k4, J, J, J, J) / (4 * 3)
    assert np.max(np.abs(dropped - r1)) > 1e-3 * np.max(r1)


def test_one_draw_variance_by_label_enumeration():
    """d24-var per input against Var over the K labels of a categorical output, enumerated."""
    net, X = _net("categorical", [2, 3, 3], inputs=1)
    I, _, k4, J, _, _ = _parts(net, X)
    p = net.family.mean(net.forward(X))[0]
    score2 = np.array([((np.eye(3)[y] - p) @ J[0]) ** 2 for y in range(3)])  # (K, P)
    var = p @ score2**2 - (p @ score2) ** 2
    np.testing.assert_allclose(dg.score_variance_per_input(J, I, k4)[0], var, rtol=1e-9,
                               atol=1e-9 * np.max(p @ score2**2))


def test_bounds_hold_and_are_equalities_for_the_unit_variance_normal():
    """d24-bounds: both sides for a categorical output (I(h)1 = 0 projected away, the Î₁ lower
    bound trivial: rank of Cov(vec rrᵀ) is K − 1 < K(K−1)/2), and equality for the
    unit-variance normal (λ = 2 on symmetric matrices, I = Id)."""
    net, X = _net("categorical", [2, 3, 3])
    I, K, _, J, H, Hd = _parts(net, X)
    b = dg.variance_bounds(J, Hd, I, moment_excess(K, I), n=2)
    v1, v2 = cov1_variance(J, K, I, 2, diagonal=True), cov2_variance(H, I, 2, diagonal=True)
    assert np.all(b.pieces.null_dim == 1) and np.all(b.trivial1) and not np.any(b.trivial2)
    assert np.all(b.lower1 == 0.0)  # trivial: said as an exact 0, not a rounding residue
    for lo, v, hi in ((b.lower1, v1, b.upper1), (b.lower2, v2, b.upper2),
                      (b.plain_lower2, v2, b.plain_upper2)):
        assert np.all(lo <= v * (1 + 1e-10)) and np.all(v <= hi * (1 + 1e-10))
    curved = np.max(np.abs(Hd), axis=(0, 1)) > 0  # not the last layer (w = 0 there)
    # projecting off 1 makes the Î₂ lower bound useful: the plain λ_min(I) is 0
    assert np.all(b.lower2[curved] > 1e6 * b.plain_lower2[curved])
    net, X = _net("normal", [2, 3, 2])
    I, K, _, J, H, Hd = _parts(net, X)
    b = dg.variance_bounds(J, Hd, I, moment_excess(K, I), n=2)
    v1, v2 = cov1_variance(J, K, I, 2, diagonal=True), cov2_variance(H, I, 2, diagonal=True)
    for side in (b.lower1, b.upper1):
        np.testing.assert_allclose(side, v1, rtol=1e-12)
    for side in (b.lower2, b.upper2):
        np.testing.assert_allclose(side, v2, rtol=1e-12)
    np.testing.assert_allclose(b.pieces.lam_M_sym, 2.0, rtol=1e-12)


def test_swapped_eigenvalue_breaks_a_bound():
    """The mutation λ_max for λ_min: the 'lower' bound then exceeds the exact variance."""
    net, X = _net("poisson", [2, 3, 2])
    I, K, _, J, _, _ = _parts(net, X)
    sp = dg.spectral_pieces(I, moment_excess(K, I))
    v1 = cov1_variance(J, K, I, 1, diagonal=True)
    wrong = np.einsum("mi,m->i", np.sum(J**2, axis=1) ** 2, sp.lam_M_sym[1]) / 4
    assert np.any(wrong > v1 * (1 + 1e-6))


def test_last_layer_zero_and_closed_form():
    """d24-last-layer: Var(Î₂) of W_{L−1} is 0 for ReLU too, where thm-6's diagonal from the
    output Hessians is compared at the scale of the layer's uᵀIu; Var(Î₁) = h̄_b⁴ C_aaaa."""
    for act in ("relu", "tanh"):
        net, X = _net("normal_unknown_variance", [2, 3, 2], act=act)
        I, K, _, J, H, _ = _parts(net, X)
        L = net.depth
        v1, v2 = dg.last_layer_variances(net.lemma13(X).hbar[L - 1], moment_excess(K, I), n=2)
        lo, hi = net.offsets[L - 1], net.offsets[L]
        np.testing.assert_allclose(v1.ravel(), cov1_variance(J, K, I, 2, diagonal=True)[lo:hi],
                                   rtol=1e-10)
        scale = np.max(np.einsum("mai,mab,mbi->i", J, I, J)[lo:hi])
        assert np.max(np.abs(v2.ravel() - cov2_variance(H, I, 2, diagonal=True)[lo:hi])) \
            <= 1e-12 * scale
        assert np.max(v1) > 1e-3 * scale  # the general formula's nonzero would be seen


def test_pwl_hessian_estimate_is_deterministic():
    """d24-pwl: for a ReLU network −∂²_iiℓ (torch.func Hessian of ℓ at every label of a
    categorical output) is diag I(θ|x), the library's value, whatever the label."""
    import torch
    from torch.func import hessian

    net, X = _net("categorical", [2, 4, 3, 3], act="relu", inputs=1)
    I, _, _, J, _, _ = _parts(net, X)
    want = dg.pwl_hessian_estimate_diagonal(J, I)
    logz = net.family.kernel("log_partition", "torch")
    x = torch.as_tensor(X[0])
    for y in range(3):
        t = torch.nn.functional.one_hot(torch.tensor(y), 3).double()

        def ll(th, t=t):
            h = net.torch_forward(th, x)
            return (t * h).sum() - logz(h[None, :]).reshape(-1)[0]

        g = -np.diag(hessian(ll)(torch.as_tensor(net.theta)).numpy())
        np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-12 * np.max(want))


def test_group_ratio_does_not_depend_on_the_layer_input():
    """d24-groups against thm-4/thm-6 diagonals of W_{L−2}."""
    net, X = _net("categorical", [3, 4, 3], act="softplus", inputs=1)
    I, K, _, J, H, _ = _parts(net, X)
    lm = net.lemma13(X)
    z = lm.pre[0]
    g = dg.group_variances(net.weights[1], z, lm.hbar[0], net.act.np_d1(z), net.act.np_d2(z), I,
                           moment_excess(K, I), n=1)
    d1 = cov1_variance(J, K, I, 1, diagonal=True)[: net.offsets[1]].reshape(net.shapes[0])
    d2 = cov2_variance(H, I, 1, diagonal=True)[: net.offsets[1]].reshape(net.shapes[0])
    np.testing.assert_allclose(g.var1, d1, rtol=1e-10)
    np.testing.assert_allclose(g.var2, d2, rtol=1e-10)
    np.testing.assert_allclose(d2 / d1, np.broadcast_to(g.ratio[0][:, None], d1.shape),
                               rtol=1e-9)


def test_sampling_variance_by_brute_force():
    """d24-xy: label term + input term against enumerating every draw of m of M values (labels
    drawn from a two-point law per input), with and without replacement."""
    rng = np.random.default_rng(3)
    M, m, n = 4, 2, 2
    a, b, p = rng.normal(size=M), rng.normal(size=M), rng.uniform(0.2, 0.8, size=M)
    mean, var = p * a + (1 - p) * b, p * (1 - p) * (a - b) ** 2
    for replace in (True, False):
        draws = (itertools.product(range(M), repeat=m) if replace
                 else itertools.permutations(range(M), m))
        tuples = list(draws)
        e1 = e2 = 0.0
        for S in tuples:
            xs = [x for x in S for _ in range(n)]
            for labels in itertools.product((0, 1), repeat=len(xs)):
                pr = np.prod([p[x] if y == 0 else 1 - p[x] for x, y in zip(xs, labels)])
                val = np.mean([a[x] if y == 0 else b[x] for x, y in zip(xs, labels)])
                e1 += pr * val / len(tuples)
                e2 += pr * val**2 / len(tuples)
        sv = dg.sampling_variance(var, mean, m, n, replace=replace)
        assert sv.factor == (1.0 if replace else (M - m) / (M - 1))
        np.testing.assert_allclose(sv.total, e2 - e1**2, rtol=1e-12, atol=1e-14 * e2)


def test_sampling_variance_refuses_more_inputs_than_the_data_set():
    with pytest.raises(ShapeError, match=r"m = 5 .* M = 3"):
        dg.sampling_variance(np.ones(3), np.ones(3), 5, 1, replace=False)
    with pytest.raises(FisherVerifyError, match="m"):
        dg.sampling_variance(np.ones(3), np.ones(3), 0, 1, replace=True)
    sv = dg.sampling_variance(np.ones(1), np.ones(1), 1, 1, replace=False)
    assert sv.input == 0.0 and sv.factor == 0.0  # M = 1: nothing left to vary


def test_empirical_bias_vanishes_under_model_labels():
    """d24-emp: the exact expectation over a categorical output's K labels is 0, at the scale
    of JᵀIJ, while at one data label it is not."""
    net, X = _net("categorical", [2, 3, 3], inputs=1)
    I, _, _, J, _, _ = _parts(net, X)
    p = net.family.mean(net.forward(X))[0]
    bias = [dg.empirical_bias(J, (np.eye(3)[y] - p)[None], I) for y in range(3)]
    expected = sum(p[y] * bias[y] for y in range(3))
    scale = np.max(np.abs(J[0].T @ I[0] @ J[0]))
    assert np.max(np.abs(expected)) <= 1e-12 * scale
    assert np.max(np.abs(bias[0])) > 1e-3 * scale


@pytest.mark.parametrize("K", [2, 3, 6])
def test_categorical_spectrum_brackets_the_largest_eigenvalue(K):
    """sun26-spectrum against eigvalsh of diag(p) − ppᵀ, including p₁ near 1 (no cancellation),
    and the K = 2 case where the two-largest forms are exact."""
    rng = np.random.default_rng(K)
    for conc in (0.05, 1.0, 20.0):
        for _ in range(50):
            p = rng.dirichlet(np.full(K, conc))
            # diag(p) − ppᵀ with its diagonal p_k Σ_{j≠k} p_j: without the cancellation of
            # p_k − p_k² at p_k near 1, so eigvalsh is accurate to about eps·λ_max
            A = -np.outer(p, p)
            A[np.diag_indices(K)] = [p[k] * np.sum(np.delete(p, k)) for k in range(K)]
            lam = np.linalg.eigvalsh(A)
            s = dg.categorical_spectrum(p)
            tol = 1e-9 * lam[-1]
            assert s.lower - tol <= lam[-1] <= s.upper + tol
            assert s.lower_simple <= s.lower + tol and s.upper <= s.upper_simple + tol
            assert s.floor <= lam[1] + 1e-12 * lam[-1]
            if K == 2:
                np.testing.assert_allclose([s.lower_two, s.upper_two], lam[-1], rtol=1e-9)
    with pytest.raises(ShapeError, match="K >= 2"):
        dg.categorical_spectrum([1.0])


def test_pulled_back_envelopes_sandwich_the_fisher():
    rng = np.random.default_rng(4)
    fam = fv.family("categorical", K=4)
    net = fv.Network.random([2, 3, 4], "tanh", fam, 2.0, rng)
    X = rng.normal(size=(3, 2))
    low, up = dg.pulled_back_envelopes(net.jacobian(X), fam.mean(net.forward(X)))
    F = np.asarray(fv.exact_fisher(net, X))
    size = np.linalg.eigvalsh(up)[-1]
    assert np.linalg.eigvalsh(F - low)[0] >= -1e-12 * size
    assert np.linalg.eigvalsh(up - F)[0] >= -1e-12 * size


def test_report_groups_beyond_the_paper():
    class R:
        def __init__(self, id):
            self.id = id

    recs = [R("d24-var"), R("thm-4"), R("ext-large-path"), R("sun26-spectrum"), R("thm-3-ae"),
            R("lemma-2")]
    groups = grouped(recs)
    assert [g for g, _ in groups] == [PAPER, BEYOND]
    assert [r.id for r in groups[0][1]] == ["thm-4", "lemma-2"]
    assert [r.id for r in groups[1][1]] == ["d24-var", "ext-large-path", "sun26-spectrum",
                                            "thm-3-ae"]
    assert not is_beyond_paper("thm-3") and not is_beyond_paper("delta-i")


def test_report_renders_beyond_the_paper_section(tmp_path):
    from fisher_verify.cli import main

    proofs = tmp_path / "proofs"
    proofs.mkdir()
    (proofs / "p.py").write_text(textwrap.dedent("""
        from fisher_verify.proofs import statement

        @statement("d24-demo", claim=r"x = x", method="exact expectation")
        def check(ctx):
            ctx.close("x", 1.0, 1.0)
            return ctx.conclude()

        @statement("paper-demo", claim=r"y = y", method="exact expectation")
        def check2(ctx):
            ctx.close("y", 1.0, 1.0)
            return ctx.conclude()
    """))
    out = tmp_path / "out"
    assert main(["report", str(proofs), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert md.index("### paper-demo") < md.index("## Beyond the paper") < md.index("### d24-demo")
    assert md.index("[paper-demo]") < md.index("[d24-demo]")  # summary table: paper first
    page = (out / "report.html").read_text()
    assert page.index("id='paper-demo'") < page.index("<h2>Beyond the paper")
    assert page.index("<h2>Beyond the paper") < page.index("id='d24-demo'")
    # the trade-off figure sits in the Beyond the paper section, before its statements
    beyond = md.index("## Beyond the paper")
    assert beyond < md.index("![d24 trade-off](d24_tradeoff.png)") < md.index("### d24-demo")
    assert page.index("<h2>Beyond the paper") < page.index("d24_tradeoff.png")


def _run(sid: str):
    entry = next(e for e in discover([ROOT / "proofs"]) if e.id == sid)
    return entry(Context(sid))


def test_gate_catches_a_swapped_eigenvalue(monkeypatch):
    """d24-bounds refutes the library when λ_max stands in for λ_min in the Î₂ bounds."""
    real = dg.spectral_pieces

    def swapped(I, C):
        sp = real(I, C)
        return dg.SpectralPieces(sp.lam_I, sp.lam_M, (sp.lam_I_range[1], sp.lam_I_range[1]),
                                 sp.lam_M_sym, sp.projector, sp.null_dim)

    monkeypatch.setattr(dg, "spectral_pieces", swapped)
    res = _run("d24-bounds")
    assert not res.holds
    assert any("lower <= Var(I2)" in c.name and not c.passed for c in res.checks)


def test_gate_catches_a_wrong_envelope(monkeypatch):
    """sun26-spectrum refutes an upper bound 10% too tight (λ̄ scaled by 0.9)."""
    real = dg.categorical_spectrum

    def tight(p):
        s = real(p)
        return dg.CategoricalSpectrum(s.lower_simple, s.upper_simple, s.lower_two,
                                      0.9 * s.upper_two, s.lower, 0.9 * s.upper, s.floor)

    monkeypatch.setattr(dg, "categorical_spectrum", tight)
    assert not _run("sun26-spectrum").holds


def test_readme_categorical_gap_is_what_the_proof_measures():
    """The README's median gap of the two-largest upper bound above λ_max is the number the
    sun26-spectrum proof records (quick profile, seed 0)."""
    import re

    res = _run("sun26-spectrum")
    assert res.holds
    gap = 100 * res.evidence["upper_gap_median"]
    readme = (ROOT / "README.md").read_text()
    stated = float(re.search(r"a median ([0-9.]+) % above `λ_max`", readme).group(1))
    assert round(gap, 2) == stated


def test_structural_zero_threshold_is_rank_rtol_times_lambda_max():
    """An eigenvalue of I(h_L) at most RANK_RTOL·λ_max (1e-12) is a structural zero (projected
    away), one just above is kept: the threshold of d24-bounds' refined lower bound."""
    assert dg.RANK_RTOL == 1e-12
    C = np.zeros((2, 2, 2, 2))
    kept = dg.spectral_pieces(np.diag([2.0, 2.0e-12 * 1.5]), C)
    dropped = dg.spectral_pieces(np.diag([2.0, 2.0e-12 * 0.5]), C)
    assert kept.null_dim[0] == 0 and dropped.null_dim[0] == 1
    np.testing.assert_allclose(dropped.projector[0], np.diag([1.0, 0.0]))


def test_gate_catches_a_dropped_term(monkeypatch):
    """d24-var refutes the Î₁ closed form without its 2(uᵀIu)² term."""

    def dropped(J, I, kappa4):
        Jb, kb = np.asarray(J), np.asarray(kappa4)
        return np.einsum("mabcd,mai,mbi,mci,mdi->mi", kb, Jb, Jb, Jb, Jb)

    monkeypatch.setattr(dg, "score_variance_per_input", dropped)
    res = _run("d24-var")
    assert not res.holds
    assert any("Var(I1_ii)" in c.name and not c.passed for c in res.checks)


def test_gate_catches_the_last_layer_zero_replaced(monkeypatch):
    """d24-last-layer refutes a nonzero Var(Î₂) of the last layer (here the Var(Î₁) form)."""
    real = dg.last_layer_variances

    def general(hbar, C, n=1):
        v1, _ = real(hbar, C, n)
        return v1, v1

    monkeypatch.setattr(dg, "last_layer_variances", general)
    res = _run("d24-last-layer")
    assert not res.holds
    assert any("Var(I2) of W_L-1 = 0" in c.name and not c.passed for c in res.checks)
