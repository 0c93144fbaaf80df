"""Report generation: files, offline HTML, certificate (issue 5)."""

from __future__ import annotations

import json
import re
import textwrap

from fisher_verify._src.report.mathml import latex_to_mathml
from fisher_verify.cli import main


def test_mathml_converter_handles_claims():
    m = latex_to_mathml(r"\frac{1}{N}\sum_a \lVert J\rVert_F^4 \text{ for } \hat I_2 \succeq 0")
    assert m.startswith("<math") and "<mfrac>" in m and "<msubsup>" in m and "⪰" in m
    assert "<mtext>\u00a0for\u00a0</mtext>" in m  # end spaces survive MathML's trimming
    assert "<mfrac><mn>1</mn><mn>2</mn></mfrac>" in latex_to_mathml(r"p = \tfrac12")
    assert latex_to_mathml(r"\unknowncmd{x}").startswith("<math")  # never raises


def test_report_writes_offline_files(tmp_path):
    proofs = tmp_path / "proofs"
    proofs.mkdir()
    (proofs / "p.py").write_text(textwrap.dedent("""
        from fisher_verify.proofs import statement

        @statement("demo", claim=r"K = F'''' + 3 (F'')^2", method="symbolic identity",
                   hypotheses=[r"\\dim t = 1"])
        def check(ctx):
            ctx.step("F", r"\\log(1 + e^h)")
            ctx.close("x", 1.0, 1.0)
            return ctx.conclude(symbolic=True)
    """))
    out = tmp_path / "out"
    assert main(["report", str(proofs), "--out", str(out)]) == 0
    for name in ("report.md", "report.html", "certificate.json", "fig1.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    page = (out / "report.html").read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=['\"]?https?:", page)
    assert "<math" in page and "<mfrac>" in page  # claims and Table 1 rendered as MathML
    md = (out / "report.md").read_text()
    assert "## Table 1" in md and "$" in md and "bernoulli" in md
    cert = json.loads((out / "certificate.json").read_text())
    assert cert["all_hold"] is True and cert["statements"][0]["verdict"] == "proved"
    assert cert["environment"]["packages"]["sympy"]
    # report --out checks these names before the run (commands/outputs.py): it must know them all
    from fisher_verify._src.commands.outputs import REPORT_FILES

    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    # the "Beyond the paper" figure (d24 trade-off) is written and its data certified
    assert cert["figures"]["d24_tradeoff"] == "d24_tradeoff.png"
    assert set(cert["d24_tradeoff"]["activations"]) >= {"tanh", "relu"}


def test_report_shows_errata(tmp_path):
    """A statement with an erratum: listed in a section of its own, marked in the summary
    table, boxed in its section (with the literal form and its counterexample), and kept in
    the certificate."""
    proofs = tmp_path / "proofs"
    proofs.mkdir()
    (proofs / "p.py").write_text(textwrap.dedent("""
        from fisher_verify.proofs import statement

        @statement("fixed", claim=r"\\\\lVert I_2\\\\rVert_F = \\\\sqrt 2", method="exact expectation")
        def check(ctx):
            ctx.close("intended", 2 ** 0.5, 2 ** 0.5)
            ctx.erratum("the paper writes 1", literal=r"\\\\lVert I_2\\\\rVert_F \\\\le 1", rhs=1.0)
            return ctx.conclude()
    """))
    out = tmp_path / "out"
    (out / "fig1.png").parent.mkdir()
    (out / "fig1.png").write_text("an earlier report")
    (out / "certificate.json").write_text('{"tool": "fisher-verify check"}')
    # an earlier report's files are replaced without --force (its certificate carries the mark)
    assert main(["report", str(proofs), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "## Disagreements with the paper (errata)" in md and "(erratum)" in md
    assert "> **Erratum (disagreement with the paper).** the paper writes 1" in md
    page = (out / "report.html").read_text()
    assert "class='erratum'" in page and "the paper writes 1" in page and "+ erratum" in page
    cert = json.loads((out / "certificate.json").read_text())
    assert cert["errata"] == {"fixed": ["the paper writes 1"]}
    assert cert["statements"][0]["errata"][0]["counterexample"] == {"rhs": 1.0}


def test_text_mode_spacing_is_not_a_comma():
    r"""``\,`` (and ``\;``, ``\ ``, ``\quad``) inside ``\text{}`` is space, escaped characters are
    themselves; a real comma stays a comma."""
    m = latex_to_mathml(r"\text{a\,b\;c\ d\quad e \{x\} 50\%}")
    assert "<mtext>a\u2009b\u2005c d\u2003e {x} 50%</mtext>" in m
    assert "<mtext>, so</mtext>" in latex_to_mathml(r"\text{, so}")


# --- issue 8: math as math, tables that fit, figures, README numbers ------------------------

EVIDENCE_PROOF = r'''
from fisher_verify.proofs import statement

@statement("shown", claim=r"\lVert K - I\otimes I\rVert_F \le \frac{1}{2}", method="exact expectation")
def check(ctx):
    claim = r"\text{Bernoulli: } K - I^2 \le I \text{ for every } h"
    ctx.true("bernoulli: " + claim, True)
    ctx.close("net 0: exact_fisher = E[score score^T]", 1.0, 1.0)
    ctx.leq("largest ||K - I(x)I||_F / bound", 1.0, 2.0)
    ctx.evidence["identities"] = {"bernoulli: " + claim: "symbolic; I - (K - I**2) = 4*p**2",
                                  r"poisson: \operatorname{Cov}(t) = \partial^2 F": "mpmath"}
    ctx.evidence["paper_rows"] = {"bernoulli": [r"\log\frac{p}{1-p}", "p(1-p)"]}
    ctx.evidence["frequency vs bound"] = [{"N": 8, "bound": 0.5, "frequency": 1.0},
                                          {"N": 16, "bound": 0.75, "frequency": 0.999}]
    ctx.evidence["lambda_min(I(theta)) at sigma = 1"] = 0.1453090518078638
    ctx.evidence["net 0 coverage"] = {"I1": 0.995, "I2": 0.975}
    ctx.erratum("At l = L-1, dh_L/dW_{L-1} = I_{n_L} (x) hbar_{L-1} has norm sqrt(n_L)||hbar||",
                literal=r"\lVert h\rVert \le 1", rhs=1.0)
    return ctx.conclude()
'''

# what must not be left in the text a reader sees (outside <math>): LaTeX commands, $, JSON,
# ASCII norms, powers, braces of sub/superscripts, the (x) of a Kronecker product
RAW = [r"\\[A-Za-z]+", r"\$", r"\{\"", r"\[\{", r"\|\|", r"\*\*", r"_\{", r"\^\{", r"\^T",
       r"\(x\)", r"\bsqrt\b", r"\blambda\b", r"\bI1\b", r"<=", r"&lt;="]


def _visible_text(page: str) -> str:
    """The text of an HTML page outside <math>, <style> and <pre>, tags removed."""
    import html as html_lib

    text = re.sub(r"<(math|style|pre)\b.*?</\1>", " ", page, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", text))


def test_report_html_renders_math_not_raw_latex_or_json(tmp_path):
    """Evidence, check names, errata and the tightness text are typeset: LaTeX becomes MathML,
    ASCII pseudo-math Unicode with sub/superscripts, numbers ×10ⁿ, dicts ``key = value`` and
    lists of records a table; Table 1 sits in a scroll box with bounded cells (1280 px)."""
    proofs = tmp_path / "proofs"
    proofs.mkdir()
    (proofs / "p.py").write_text(EVIDENCE_PROOF)
    out = tmp_path / "out"
    assert main(["report", str(proofs), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    text = _visible_text(page)
    for pattern in RAW:
        found = re.search(pattern, text)
        assert found is None, (pattern, text[max(0, found.start() - 80):found.end() + 80])
    # LaTeX claims in check names and identities → MathML (prefix kept as text)
    assert "bernoulli: <math" in page and "<mtext>Bernoulli:\u00a0</mtext>" in page
    assert "mpmath" in page and "<mi mathvariant=\"normal\">Cov</mi>" in page
    # ASCII pseudo-math → symbols; numbers; records → table
    assert "‖K − I⊗I‖<sub>F</sub>" in page and "λ<sub>min</sub>(I(θ)) at σ = 1" in page
    assert "score score<sup>⊤</sup>" in page and "Î₁ = 0.995" in page
    assert "∂h<sub>L</sub>/∂W<sub>L−1</sub> = I<sub>n<sub>L</sub></sub>⊗h̄<sub>L−1</sub>" in page
    assert "0.1453" in page and "0.1453090518078638" not in page
    assert "<table class='ev'><tr><th>N</th><th>bound</th><th>frequency</th></tr>" in page
    assert "<mfrac>" in page.split("paper rows")[1].split("</li>")[0]  # \frac in evidence
    # Table 1: in a horizontal scroll box, cells with a bounded width, σ² not σ₂
    t1 = page.split("<h2>Table 1")[1].split("</table>")[0]
    assert "<div class='scroll'><table class='t1'>" in t1
    assert re.search(r"\.scroll\{[^}]*overflow-x:auto", page)
    assert re.search(r"table\.t1 td\{[^}]*max-width:\d", page)
    import html as html_lib

    row = html_lib.unescape(t1.split("normal_unknown_variance")[1].split("</tr>")[0])
    assert "<msup><mi>σ</mi><mn>2</mn></msup>" in row
    assert "<msub><mi>σ</mi><mn>2</mn></msub>" not in row
    assert "<mo>-</mo>" not in t1  # minus signs, not hyphens
    md = (out / "report.md").read_text()
    assert "{\"" not in md and "||" not in md and "**2" not in md
    assert "- ✓ bernoulli: $\\text{Bernoulli: } K - I^2" in md
    assert "| normal(σ=1) |" in md and "| normal(sigma=1) |" not in md  # labels typeset, as in HTML


def test_prose_turns_ascii_pseudo_math_into_symbols():
    from fisher_verify._src.report.pretty import label, md_math, number, prose

    cases = {
        "||Cov(I2)||_F <= 1": "‖Cov(Î₂)‖<sub>F</sub> ≤ 1",
        "-lambda_min(I2)": "−λ<sub>min</sub>(Î₂)",
        "4*p**2*(p - 1)**2": "4p<sup>2</sup>(p − 1)<sup>2</sup>",
        "errors shrink as N^-1/2": "errors shrink as N<sup>−1/2</sup>",
        "Cov((t-eta)(t-eta)^T)": "Cov((t−η)(t−η)<sup>⊤</sup>)",
        "net 0 layer 0: dl/dW_l": "net 0 layer 0: ∂ℓ/∂W<sub>l</sub>",
        "thm-7 and gamma(shape=2), exact_fisher": "thm-7 and gamma(shape=2), exact_fisher",
        "a < b & c": "a &lt; b &amp; c",
    }
    for ascii_text, typeset in cases.items():
        assert prose(ascii_text) == typeset
    assert number(8.321595028368262e-16) == "8.32×10<sup>−16</sup>"
    assert number(1e-9) == "10<sup>−9</sup>" and number(0.8181818) == "0.8182"
    assert number(7) == "7" and number(float("inf")) == "∞"
    assert number(9999.0) == "9999" and number(12345.0) == "1.23×10<sup>4</sup>"
    assert number(-2.5e-7) == "−2.5×10<sup>−7</sup>"
    # a family prefix stays text, the LaTeX claim after it becomes math
    assert (label(r"product(bernoulli, poisson): \operatorname{Cov}(t)", md_math)
            == r"product(bernoulli, poisson): $\operatorname{Cov}(t)$")


def test_table_1_shows_variance_as_a_square_and_categorical_per_coordinate():
    """σ² (the variance, SymPy symbol ``sigma2``) is a square in Table 1; a categorical entry
    that depends on p_a alone is written in p_a (the Bernoulli formula, by Σ p = 1)."""
    import sympy as sp

    from fisher_verify._src.report.table1 import table_1_rows

    rows = {r["family"]: r for r in table_1_rows()}
    nuv = rows["normal_unknown_variance"]
    syms = {s.name: s for k in ("h", "F2", "F4") for s in nuv[k].free_symbols}
    assert set(syms) == {"mu", "sigma"}
    mu, sigma = syms["mu"], syms["sigma"]
    # Var(y) = σ², Cov(y, y²) = 2μσ² for y ~ N(μ, σ²) (textbook moments)
    assert sp.simplify(nuv["F2"][0, 0] - sigma**2) == 0
    assert sp.simplify(nuv["F2"][0, 1] - 2 * mu * sigma**2) == 0
    cat = rows["categorical(K=3)"]
    (p0,) = cat["F2"][0, 0].free_symbols
    assert p0.name == "p0"
    assert sp.expand(cat["F2"][0, 0] - p0 * (1 - p0)) == 0
    # κ₄ of a one-hot coordinate is the Bernoulli(p_a) one: p(1-p)(1-6p+6p²)
    assert sp.expand(cat["F4"][0] - p0 * (1 - p0) * (1 - 6 * p0 + 6 * p0**2)) == 0
    # the paper's own rows, as it prints them (Table 1 of Soen & Sun)
    assert sp.latex(rows["bernoulli"]["F2"]) == r"p \left(1 - p\right)"
    assert sp.latex(rows["bernoulli"]["F4"]) == (
        r"p \left(1 - p\right) \left(6 p^{2} - 6 p + 1\right)")


def test_figure_1_panels_are_labelled_distinct_and_cover_vector_families():
    """Every panel names its curves as the paper does (K − I², I; norms for a vector family)
    and its y quantity; no panel repeats another family (binomial n=1 is Bernoulli, negative
    binomial r=1 geometric); categorical and normal_unknown_variance are drawn."""
    import matplotlib.pyplot as plt

    import fisher_verify as fv
    from fisher_verify._src.report.figures import EXTENDED_PANELS, PAPER_PANELS, draw_figure_1

    panels = PAPER_PANELS + EXTENDED_PANELS
    assert {n for n, _ in panels} == set(fv.family_names())
    labels = [fv.family(n, **p).label for n, p in panels]
    assert "binomial(n=1)" not in labels and "negative_binomial(r=1)" not in labels
    fig = draw_figure_1(panels, "test")
    try:
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert len(axes) == len(panels)
        for ax, (name, _) in zip(axes, panels, strict=True):
            legend = [t.get_text() for t in ax.get_legend().get_texts()]
            vector = fv.family(name).dim > 1
            expected = ([r"$\|K - I\otimes I\|_F$", r"$\|I\|_F$"] if vector
                        else [r"$K - I^2$", r"$I$"])
            assert legend == expected, (name, legend)
            assert ax.get_ylabel().startswith(f"{expected[0]} and {expected[1]}")
            assert ax.get_xlabel()
    finally:
        plt.close(fig)


def test_vector_panels_against_enumeration():
    """The categorical path (p₀, (1 − p₀)/2, (1 − p₀)/2) and the normal path (μ, σ² = 1):
    ‖I‖_F and ‖K − I⊗I‖_F against an independent route (enumeration of the one-hot outcomes;
    the Gaussian moments E[y^k] in closed form)."""
    import numpy as np

    from fisher_verify._src.report.figures import panel

    cat = panel("categorical", {"K": 3})
    for i in (0, 100, 299):
        p = np.array([cat.x[i], (1 - cat.x[i]) / 2, (1 - cat.x[i]) / 2])
        outcomes = np.eye(3) - p  # t − η for each one-hot outcome
        fisher = np.einsum("k,ka,kb->ab", p, outcomes, outcomes)
        k4 = np.einsum("k,ka,kb,kc,kd->abcd", p, outcomes, outcomes, outcomes, outcomes)
        excess = k4 - np.einsum("ab,cd->abcd", fisher, fisher)
        np.testing.assert_allclose(cat.fisher[i], np.linalg.norm(fisher), rtol=1e-10)
        np.testing.assert_allclose(cat.excess[i], np.linalg.norm(excess), rtol=1e-10)
    nuv = panel("normal_unknown_variance", {})
    for i in (0, 150, 299):
        mu = nuv.x[i]
        # raw moments of y ~ N(μ, 1) up to order 8, t = (y, y²), by Gauss–Hermite quadrature
        nodes, weights = np.polynomial.hermite_e.hermegauss(12)
        y = mu + nodes
        w = weights / weights.sum()
        t = np.stack([y, y**2], axis=1)
        c = t - w @ t
        fisher = np.einsum("k,ka,kb->ab", w, c, c)
        k4 = np.einsum("k,ka,kb,kc,kd->abcd", w, c, c, c, c)
        excess = k4 - np.einsum("ab,cd->abcd", fisher, fisher)
        np.testing.assert_allclose(nuv.fisher[i], np.linalg.norm(fisher), rtol=1e-9)
        np.testing.assert_allclose(nuv.excess[i], np.linalg.norm(excess), rtol=1e-9)


def test_readme_tightness_numbers_are_what_report_computes():
    """The README's tightness medians come from the command it names (``fisher-verify report``
    writes them to ``tightness.json``), at the seed and size it states, so they cannot drift."""
    import inspect
    from pathlib import Path

    from fisher_verify._src.cli import build_parser
    from fisher_verify._src.report.build import build_report
    from fisher_verify._src.report.figures import report_sweep, tightness_summary

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    m = re.search(r"\*\*Tightness\*\* \((\d+) random networks, seed (\d+): `fisher-verify report "
                  r"--out report/` writes these\s+numbers to `report/tightness\.json`\).*?median "
                  r"bound/true ratio is ([\d.]+) for `thm-7` and ([\d.]+) for `thm-8`", readme,
                  re.S)
    assert m, "the README's tightness line no longer names its command"
    count, seed = int(m.group(1)), int(m.group(2))
    # the command's defaults are the README's seed and size
    assert inspect.signature(build_report).parameters["tightness_count"].default == count
    assert build_parser().parse_args(["report"]).seed == seed
    summary = tightness_summary(report_sweep(seed, count), seed, count)["summary"]
    for key, quoted in (("thm-7", m.group(3)), ("thm-8", m.group(4))):
        digits = len(quoted.split(".")[1]) if "." in quoted else 0
        value = summary[key]["n_L > 1"]["median_bound_over_true"]
        assert f"{value:.{digits}f}" == quoted, (key, value, quoted)


def test_table_1_simplifies_only_what_simplify_can_finish() -> None:
    """SymPy's simplify has no time limit, so Table 1 simplifies an entry only when it is small,
    in few symbols and of exp/log alone (report/table1.py); the sphere's sinh entries and the full
    covariance's five-symbol rational entries are shown as derived. Each guard can fail."""
    import sympy as sp

    from fisher_verify._src.report.table1 import (
        SIMPLIFY_MAX_OPS,
        SIMPLIFY_MAX_SYMBOLS,
        _simplifiable,
    )

    p, q, r, s = sp.symbols("p q r s", positive=True)
    assert _simplifiable(p * (1 - p) * sp.log(p) + sp.exp(q))
    assert not _simplifiable(sp.sinh(p) / p)
    assert not _simplifiable(p + q + r + s)
    assert SIMPLIFY_MAX_SYMBOLS == 3
    wide = sp.Add(*(p**k for k in range(1, SIMPLIFY_MAX_OPS // 2 + 3)))
    edge = sp.Add(*(p**k for k in range(1, SIMPLIFY_MAX_OPS // 2 + 2)))
    assert sp.count_ops(edge) == SIMPLIFY_MAX_OPS and _simplifiable(edge)
    assert sp.count_ops(wide) > SIMPLIFY_MAX_OPS and not _simplifiable(wide)
