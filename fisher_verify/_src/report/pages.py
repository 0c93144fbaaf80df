"""The report's two pages: GitHub Markdown (``$…$`` math) and self-contained HTML (MathML,
figures inline, no network). Both render the same content: the summary table, errata, Table 1
(``table-1``), Figure 1 (``fig-1``), the tightness of ``thm-7``/``thm-8`` and one section per
statement with its claim, derivation steps and evidence as typeset text, never raw LaTeX or
JSON."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import jsontext
from ..proofs.run import Record
from .groups import BEYOND, grouped
from .mathml import latex_to_mathml, sympy_mathml
from .pretty import check_text, evidence_html, evidence_markdown, html_math, md_math, mixed, pairs, prose

_TIGHTNESS_TEXT = (
    r"Tightness $\lVert\mathrm{Cov}(\hat I)\rVert_F / \text{bound}$ (lhs/rhs; 1 = tight) over "
    "{count} random networks (tightness_sweep, seed {seed}: families of the catalog, "
    r"tanh/sigmoid/softplus/gelu, depth 1 to 3, weight scales 0.25 to 4, one input, $N = 1$). "
    r"For $n_L = 1$ both bounds are equalities (the covariance tensor is rank one), hence the "
    r"bar at 1; for $n_L > 1$ they are loose. A value above 1 would be a violation: "
    r"{violations}. Linear networks have $\mathrm{Cov}(\hat I_2) = 0$, equal to the thm-8 "
    "bound, and no tightness."
)

_TIGHTNESS_HEAD = ("bound", "networks", "n_L", "count", "min", "median", "max",
                   "median bound/true")

_TRADEOFF_TEXT = (
    "Per layer, the diagonal variances of both estimators for one random categorical network "
    "per activation (d24-var; N = 1): under each layer the statement that explains it, chosen "
    "from the network's structure. The last layer's Var(Î₂) is 0 for every activation "
    "(d24-last-layer) and a ReLU network's in every layer (d24-pwl); for the layer before the "
    "last the ratio is set by σ''²/σ'⁴ and the family's moments (d24-groups). fisher-verify "
    "analyze prints the same per-layer ratio and reason for a user's model."
)
_BEYOND_TEXT = (
    "Statements beyond the 2021 paper: the library's own promises (ext-), the diagonal-"
    "estimator results of Soen & Sun, NeurIPS 2024, arXiv 2402.05379 (d24-), and the "
    "categorical core's spectrum of Sun, ICLR 2026, arXiv 2505.13614 (sun26-). Their forms are "
    "derived in paper/STATEMENTS.md from the statements above; each is checked as the paper's "
    "are."
)

# Table 1's column heads (LaTeX)
_TABLE_1_HEAD = ("F(h)", r"h(\eta)", "F''", "F^{(4)}")


def tightness_rows(tight: dict[str, Any]) -> list[list[str]]:
    """Rows (bound, networks, n_L group, count, min, median, max, median rhs/lhs) of the
    tightness summary (``thm-7``, ``thm-8``)."""
    rows = []
    for key, v in tight.get("summary", {}).items():
        nets = f"{v['plotted']} of {v['networks']}"
        if v.get("both_sides_zero"):
            nets += f" ({v['both_sides_zero']} with both sides 0)"
        for group in ("n_L = 1", "n_L > 1"):
            g = v.get(group)
            if g:
                rows.append([key, nets, group.replace("n_L ", ""), str(g["n"]),
                             f"{g['min']:.3g}", f"{g['median']:.3g}", f"{g['max']:.3g}",
                             f"{g['median_bound_over_true']:.2f}"])
    return rows


def tightness_text(tight: dict[str, Any]) -> str:
    """The paragraph under the tightness figure, with ``$…$`` math."""
    summ = tight.get("summary", {})
    bad = ", ".join(f"{k}: {v['violations']}" for k, v in summ.items() if v.get("violations"))
    # not str.format: the LaTeX has braces of its own
    return (_TIGHTNESS_TEXT.replace("{count}", str(tight.get("count", "?")))
            .replace("{seed}", str(tight.get("seed", "?")))
            .replace("{violations}", bad or "none"))


def _anchor(sid: str) -> str:
    return sid.replace(".", "")


def _method(r: Record, check: dict[str, Any]) -> str:
    """How an identity checked as ``check`` was proved ("symbolic; …", "mpmath at …")."""
    identities = r.evidence.get("identities")
    return str(identities.get(check["name"], "")) if isinstance(identities, dict) else ""


def _counterexample(data: Any) -> str:
    return pairs(data) if isinstance(data, dict) else prose(jsontext.dumps(data, default=str))


# --- Markdown --------------------------------------------------------------------------------


def _erratum_lines(erratum: dict[str, Any], math: Callable[[str], str],
                   bold: Callable[[str], str]) -> list[str]:
    """An erratum's text, then its literal form and the counterexample to that form where it
    has them, one line each: the Markdown and the HTML page set the same lines in their markup."""
    lines = [f"{bold('Erratum (disagreement with the paper).')} {prose(erratum['text'])}"]
    if erratum.get("literal"):
        lines.append(f"Literal form: {math(erratum['literal'])}")
    if erratum.get("counterexample"):
        lines.append(f"Counterexample to the literal form: {_counterexample(erratum['counterexample'])}")
    return lines


def markdown(records: Sequence[Record], doc: dict[str, Any], figures: dict[str, str],
             table: list[dict[str, Any]], tight: dict[str, Any]) -> str:
    """The report as GitHub Markdown with ``$…$`` math."""
    import sympy as sp

    out = ["# fisher-verify derivation report", ""]
    out.append(f"Profile **{doc['profile']}**, seed {doc['seed']}; "
               f"{sum(r.holds for r in records)}/{len(records)} statements hold. "
               f"Soen & Sun, *On the Variance of the Fisher Information for Deep Learning*.")
    groups = grouped(records)
    records = [r for _, rs in groups for r in rs]  # the paper's statements first
    out += ["", "| statement | verdict | method | seconds |", "|---|---|---|---|"]
    for r in records:
        mark = " (erratum)" if r.errata else ""
        out.append(f"| [{r.id}](#{_anchor(r.id)}) | **{r.verdict}**{mark} | {r.method} | "
                   f"{r.seconds:.2f} |")
    errata = [(r, e) for r in records for e in r.errata]
    if errata:
        out += ["", "## Disagreements with the paper (errata)", "",
                "Where the paper's literal statement is false, the statement checked is the "
                "paper's intent (STATEMENTS.md); the literal form's counterexample is kept here.",
                ""]
        for r, e in errata:
            out.append(f"- **[{r.id}](#{_anchor(r.id)})**: {prose(e['text'])}")
    head = " | ".join(f"${h}$" for h in _TABLE_1_HEAD)
    out += ["", "## Table 1, regenerated for the catalog", "",
            f"| family | {head} |", "|---|---|---|---|---|"]
    for row in table:
        cells = " | ".join(f"${sp.latex(row[k])}$" for k in ("F", "h", "F2", "F4"))
        out.append(f"| {prose(row['family'])} | {cells} |")
    out += ["", "## Figure 1, reproduced and extended", ""]
    for name, rel in figures.items():
        if name.startswith("fig"):
            out.append(f"![{name}]({rel})")
    out += ["", "## Tightness of Theorems 7 and 8", ""]
    if "tightness" in figures:
        out += [mixed(tightness_text(tight), md_math), ""]
        out.append(f"![tightness]({figures['tightness']})")
        out += ["", "| " + " | ".join(_TIGHTNESS_HEAD) + " |",
                "|" + "---|" * len(_TIGHTNESS_HEAD)]
        out += ["| " + " | ".join(row) + " |" for row in tightness_rows(tight)]
    else:
        out.append(f"Not plotted: {tight.get('reason', 'unavailable')}.")
    for name, rs in groups:
        out += ["", f"## {'Statements' if name != BEYOND else BEYOND + ' (follow-ups)'}", ""]
        if name == BEYOND:
            out += [prose(_BEYOND_TEXT), ""]
            if "d24_tradeoff" in figures:
                out += [prose(_TRADEOFF_TEXT), "", f"![d24 trade-off]({figures['d24_tradeoff']})",
                        ""]
        for r in rs:
            out += _markdown_statement(r)
    return "\n".join(out) + "\n"


def _markdown_statement(r: Record) -> list[str]:
    out = [f"### {r.id}", "", f"**{r.title or r.id}.** {md_math(r.claim) if r.claim else ''}",
           ""]
    if r.hypotheses:
        out += ["Hypotheses: " + "; ".join(md_math(h) for h in r.hypotheses), ""]
    out += [f"Method: {r.method}. Verdict: **{r.verdict}** ({r.seconds:.2f} s, seed "
            f"{r.seed}). {prose(r.summary or r.reason)}", ""]
    for e in r.errata:
        out += [f"> {line}" for line in _erratum_lines(e, md_math, lambda s: f"**{s}**")] + [""]
    if r.steps:
        out += ["Derivation (SymPy):", ""]
        out += [f"- {prose(label)}: {md_math(latex)}" for label, latex in r.steps[:24]]
        out.append("")
    ev = evidence_markdown(r.evidence, md_math, frozenset(c['name'] for c in r.checks))
    if ev or r.checks:
        out += ["Evidence:", ""]
        out += [f"- {check_text(c, md_math, _method(r, c))}" for c in r.checks[:30]]
        out += ev
        out.append("")
    if r.counterexample:
        out += [f"Counterexample: {_counterexample(r.counterexample)}", ""]
    if r.verdict == "error":
        out += ["```\n" + (r.error or r.summary)[-1500:] + "\n```", ""]
    return out


# --- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
th{background:#f3f3f3}.proved,.verified{color:#176317;font-weight:bold}
.refuted,.error{color:#b00020;font-weight:bold}.na{color:#8a6d00;font-weight:bold}
.erratum{background:#fff6e0;border-left:4px solid #d98e00;padding:.4em .8em;margin:.8em 0}
.erratum-tag{color:#a05f00;font-weight:bold;font-size:85%}
section{border-top:1px solid #ddd;margin-top:1.5em}pre{background:#f7f7f7;padding:.5em;
overflow-x:auto;font-size:85%}img{max-width:100%}li{margin:.2em 0}math{font-size:110%}
.scroll{max-width:100%;overflow-x:auto;overflow-y:hidden;padding:.15em 0}
table.t1 td{max-width:34em;overflow-x:auto;vertical-align:middle}
table.ev{font-size:90%;margin:.3em 0}
mtable.matrix{border-left:1.5px solid;border-right:1.5px solid;padding:0 .25em;
background:linear-gradient(currentColor,currentColor) top left/.3em 1.5px no-repeat,
linear-gradient(currentColor,currentColor) bottom left/.3em 1.5px no-repeat,
linear-gradient(currentColor,currentColor) top right/.3em 1.5px no-repeat,
linear-gradient(currentColor,currentColor) bottom right/.3em 1.5px no-repeat}
"""


def _cls(verdict: str) -> str:
    return {"not applicable": "na"}.get(verdict, verdict)


def html_page(records: Sequence[Record], doc: dict[str, Any], figures: dict[str, str],
              table: list[dict[str, Any]], tight: dict[str, Any]) -> str:
    """A self-contained HTML page: math as MathML, figures inline (base64), no network; wide
    tables scroll inside their box instead of running off a 1280 px window."""
    def img(rel: str) -> str:
        data = base64.b64encode((Path(doc["_out"]) / rel).read_bytes()).decode()
        return f'<img alt="{html.escape(rel)}" src="data:image/png;base64,{data}">'

    e = html.escape
    groups = grouped(records)
    records = [r for _, rs in groups for r in rs]  # the paper's statements first
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             "<title>fisher-verify report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>fisher-verify derivation report</h1>",
             f"<p>Profile <b>{e(doc['profile'])}</b>, seed {doc['seed']}; "
             f"{sum(r.holds for r in records)}/{len(records)} statements hold.</p>",
             "<div class='scroll'><table><tr><th>statement</th><th>verdict</th><th>method</th>"
             "<th>s</th></tr>"]
    for r in records:
        tag = " <span class='erratum-tag'>+ erratum</span>" if r.errata else ""
        parts.append(f"<tr><td><a href='#{e(r.id)}'>{e(r.id)}</a></td>"
                     f"<td><span class='{_cls(r.verdict)}'>{e(r.verdict)}</span>{tag}</td>"
                     f"<td>{e(r.method)}</td><td>{r.seconds:.2f}</td></tr>")
    parts.append("</table></div>")
    errata = [(r, x) for r in records for x in r.errata]
    if errata:
        parts.append("<h2>Disagreements with the paper (errata)</h2><p>Where the paper's "
                     "literal statement is false, the statement checked is the paper's intent "
                     "(STATEMENTS.md); the literal form's counterexample is kept.</p><ul>")
        for r, x in errata:
            parts.append(f"<li><a href='#{e(r.id)}'><b>{e(r.id)}</b></a>: {prose(x['text'])}"
                         "</li>")
        parts.append("</ul>")
    head = "".join(f"<th>{latex_to_mathml(h)}</th>" for h in _TABLE_1_HEAD)
    parts.append("<h2>Table 1, regenerated for the catalog</h2><div class='scroll'>"
                 f"<table class='t1'><tr><th>family</th>{head}</tr>")
    for row in table:
        parts.append("<tr><td>" + prose(row["family"]) + "</td>" + "".join(
            f"<td>{sympy_mathml(row[k])}</td>" for k in ("F", "h", "F2", "F4")) + "</tr>")
    parts.append("</table></div><h2>Figure 1, reproduced and extended</h2>")
    for name, rel in figures.items():
        if name.startswith("fig"):
            parts.append(img(rel))
    parts.append("<h2>Tightness of Theorems 7 and 8</h2>")
    if "tightness" in figures:
        parts.append(f"<p>{mixed(tightness_text(tight), html_math)}</p>")
        parts.append(img(figures["tightness"]))
        parts.append("<div class='scroll'><table><tr>"
                     + "".join(f"<th>{prose(h)}</th>" for h in _TIGHTNESS_HEAD) + "</tr>")
        for cells in tightness_rows(tight):
            parts.append("<tr>" + "".join(f"<td>{prose(c)}</td>" for c in cells) + "</tr>")
        parts.append("</table></div>")
    else:
        parts.append(f"<p>Not plotted: {e(str(tight.get('reason', 'unavailable')))}.</p>")
    for name, rs in groups:
        parts.append(f"<h2>{'Statements' if name != BEYOND else BEYOND + ' (follow-ups)'}</h2>")
        if name == BEYOND:
            parts.append(f"<p>{prose(_BEYOND_TEXT)}</p>")
            if "d24_tradeoff" in figures:
                parts.append(f"<p>{prose(_TRADEOFF_TEXT)}</p>")
                parts.append(img(figures["d24_tradeoff"]))
        for r in rs:
            parts += _html_statement(r, html_math)
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_statement(r: Record, math: Callable[[str], str]) -> list[str]:
    e = html.escape
    parts = [f"<section id='{e(r.id)}'><h3>{e(r.id)} — {e(r.title or r.id)}</h3>"]
    if r.claim:
        parts.append(f"<div class='scroll'>{latex_to_mathml(r.claim, display=True)}</div>")
    if r.hypotheses:
        parts.append("<p>Hypotheses: " + "; ".join(math(h) for h in r.hypotheses) + "</p>")
    parts.append(f"<p>Method: {e(r.method)}. Verdict: <span class='{_cls(r.verdict)}'>"
                 f"{e(r.verdict)}</span> ({r.seconds:.2f} s, seed {r.seed}). "
                 f"{prose(r.summary or r.reason)}</p>")
    for x in r.errata:
        first, *rest = _erratum_lines(x, math, lambda s: f"<b>{s}</b>")
        parts += [f"<div class='erratum'>{first}", *(f"<br>{line}" for line in rest), "</div>"]
    if r.steps:
        parts.append("<p>Derivation (SymPy):</p><ul>")
        parts += [f"<li>{prose(label)}: {math(latex)}</li>" for label, latex in r.steps[:24]]
        parts.append("</ul>")
    if r.checks or r.evidence:
        parts.append("<p>Evidence:</p><ul>")
        parts += [f"<li>{check_text(c, math, _method(r, c))}</li>" for c in r.checks[:30]]
        parts += evidence_html(r.evidence, math, frozenset(c['name'] for c in r.checks))
        parts.append("</ul>")
    if r.counterexample:
        parts.append(f"<p>Counterexample: {_counterexample(r.counterexample)}</p>")
    if r.verdict == "error":
        parts.append(f"<pre>{e((r.error or r.summary)[-1500:])}</pre>")
    parts.append("</section>")
    return parts
