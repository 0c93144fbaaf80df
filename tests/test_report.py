"""Report generation: files, offline HTML, certificate (issue 5)."""

from __future__ import annotations

import json
import re
import textwrap

from fisher_verify.cli import main
from fisher_verify.report.mathml import latex_to_mathml


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
