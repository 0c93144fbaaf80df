"""Build the derivation report: Markdown (GitHub math), offline HTML (MathML), figures, and a
JSON certificate.

Sections: one per statement (claim, hypotheses, method, SymPy derivation steps, evidence,
verdict); Table 1 regenerated for every univariate family of the catalog (``table-1``);
Figure 1 reproduced and extended (``fig-1``); tightness of the bounds of ``thm-7`` and
``thm-8`` over random networks.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..proofs.run import Record
from .mathml import latex_to_mathml, sympy_mathml

PAPER_FAMILIES = ("bernoulli", "normal", "poisson")


@dataclass
class Report:
    """Paths of what :func:`build_report` wrote."""

    out: Path
    markdown: Path
    html: Path
    certificate: Path
    figures: list[Path] = field(default_factory=list)


# --- Table 1 ---------------------------------------------------------------------------------


def _simplify(expr: Any, seconds: float = 5.0) -> Any:
    import sympy as sp

    from ..symbolic.safe import to_naive

    expr = to_naive(expr)
    try:
        return sp.factor(sp.simplify(expr))
    except Exception:  # noqa: BLE001 - a report row never fails on simplification
        return expr


def _textbook(expr: Any) -> Any:
    """F as the paper writes it: the stable functions replaced, nothing simplified
    (SymPy would turn -2 log(-h) into -log(h²), equal on h < 0 but not the paper's form)."""
    from ..symbolic.safe import to_naive

    return to_naive(expr)


def table_1_rows() -> list[dict[str, Any]]:
    """``table-1`` for every family of the catalog: F(h), h(mean), F'' and F⁽⁴⁾ in the mean.

    For a vector family (categorical, normal with unknown variance) h(mean) is a vector, F'' the
    matrix I in the mean parameters and F⁽⁴⁾ the diagonal κ_aaaa. Every entry is a SymPy
    expression from the family's own derivation.
    """
    import sympy as sp

    import fisher_verify as fv

    rows = []
    for name in fv.family_names():
        fam = fv.family(name)
        d = fam.definition
        row: dict[str, Any] = {"family": fam.label, "F": _textbook(d.log_partition)}
        fisher = fam.symbolic("fisher")
        kappa4 = fam.symbolic("kappa4")
        subs: dict[Any, Any] = {}
        if d.natural_of_mean is None or not d.mean_symbols:
            row["h"] = d.h[0] if fam.dim == 1 else sp.Matrix(d.h)
        else:
            subs = dict(zip(d.h, d.natural_of_mean, strict=True))
            row["h"] = d.natural_of_mean[0] if fam.dim == 1 else sp.Matrix(d.natural_of_mean)
        row["mean"] = d.mean_symbols[0] if fam.dim == 1 else sp.Matrix(d.mean_symbols)
        # categorical: the mean parameters are probabilities, so Σ p = 1
        total = sp.Add(*d.mean_symbols) if name == "categorical" else None

        def in_mean(expr: Any, subs: dict[Any, Any] = subs, total: Any = total) -> Any:
            value = _textbook(sp.sympify(expr)).subs(subs)
            if total is not None:
                value = sp.simplify(value).subs(total, 1)
            return _simplify(value)

        if fam.dim == 1:
            row["F2"] = in_mean(fisher[0, 0])
            row["F4"] = in_mean(kappa4[0, 0, 0, 0])
        else:
            dim = fam.dim
            row["F2"] = sp.Matrix([[in_mean(fisher[a, b]) for b in range(dim)] for a in range(dim)])
            row["F4"] = sp.Matrix([in_mean(kappa4[a, a, a, a]) for a in range(dim)])
        rows.append(row)
    return rows


# --- figures ---------------------------------------------------------------------------------


def _h_grid(fam: Any) -> np.ndarray:
    name = fam.name
    if name in ("exponential", "gamma", "geometric", "negative_binomial"):
        return -np.geomspace(0.3, 6.0, 300)[::-1]
    if name in ("poisson",):
        return np.linspace(-3.0, 2.5, 300)
    return np.linspace(-6.0, 6.0, 300)


def figure_1(out: Path, names: Sequence[str], filename: str, title: str) -> Path:
    """``fig-1``: K − Var²(t) and Var(t) against the mean, one panel per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import fisher_verify as fv

    fams = [fv.family(n) for n in names]
    ncols = min(3, len(fams))
    nrows = -(-len(fams) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.9 * ncols, 3.1 * nrows + 0.4),
                             squeeze=False)
    for ax in axes.ravel()[len(fams):]:
        ax.set_visible(False)
    for ax, fam in zip(axes.ravel(), fams, strict=False):
        h = _h_grid(fam)[:, None]
        mean = fam.mean(h)[:, 0]
        var = fam.fisher(h)[:, 0, 0]
        k = fam.central_moment4(h)[:, 0, 0, 0, 0]
        ax.plot(mean, k - var**2, label=r"$K - \mathrm{Var}^2(t)$", color="C3")
        ax.plot(mean, var, label=r"$\mathrm{Var}(t)$", color="C0", linestyle="--")
        excess = k - var**2
        if np.all(excess > 0) and np.all(var > 0) and np.max(excess / var) > 20:
            ax.set_yscale("log")  # otherwise Var(t) is a flat line at 0 beside K - Var²
            ax.set_ylabel("log scale", fontsize=8)
        ax.set_title(fam.label)
        ax.set_xlabel(r"mean $\eta$")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = out / filename
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tightness_figure(out: Path, seed: int, count: int) -> tuple[Path | None, dict[str, Any]]:
    """Histograms of the tightness ‖Cov(Î)‖_F / bound (``lhs/rhs`` in (0, 1], 1 = tight) of
    ``thm-7`` (Î₁) and ``thm-8`` (Î₂) over ``count`` random networks of
    :func:`fisher_verify.fisher.tightness.tightness_sweep`, on a log axis, stacked by n_L.

    For n_L = 1 both bounds are equalities (the covariance tensor is rank one), so those
    networks pile up at 1; networks where both sides vanish (thm-8 on a linear network:
    ∂²h_L = 0) have no tightness and are counted, not plotted. The second value says what was
    plotted (min / median / max per group) or why nothing was.
    """
    import matplotlib

    from ..fisher.tightness import tightness_sweep

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = tightness_sweep(count=count, rng=np.random.default_rng(seed))
    n_out = np.asarray(sweep.output_dim)
    panels = (("thm-7", "thm7", r"$\|\mathrm{Cov}(\hat I_1)\|_F$ / thm-7 bound"),
              ("thm-8", "thm8", r"$\|\mathrm{Cov}(\hat I_2)\|_F$ / thm-8 bound"))
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6), squeeze=False)
    summary: dict[str, Any] = {}
    for ax, (key, attr, title) in zip(axes[0], panels, strict=True):
        tight = np.asarray(getattr(sweep, attr), dtype=float)
        lhs, rhs = np.asarray(sweep.lhs[attr]), np.asarray(sweep.rhs[attr])
        ok = np.isfinite(tight) & (tight > 0)
        both_zero = int(np.sum((lhs == 0) & (rhs == 0)))
        lo = max(1e-4, float(np.min(tight[ok]))) if ok.any() else 1e-3
        bins = np.geomspace(10 ** np.floor(np.log10(lo)), 1.05, 36)
        groups = [(tight[ok & (n_out == 1)], "$n_L = 1$ (equality)", "C0"),
                  (tight[ok & (n_out > 1)], "$n_L > 1$", "C1")]
        ax.hist([np.clip(g, bins[0], None) for g, _, _ in groups], bins=bins, stacked=True,
                color=[c for _, _, c in groups], label=[lab for _, lab, _ in groups])
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(f"{key}: {title}", fontsize=10)
        ax.set_xlabel("tightness lhs / rhs (1 = tight, log scale)")
        ax.set_ylabel("networks")
        note = f"{int(ok.sum())} of {tight.size} networks"
        if both_zero:
            note += f"\n{both_zero} with both sides 0 (linear) not shown"
        ax.legend(fontsize=8, loc="upper left")
        ax.text(0.02, 0.78, note, transform=ax.transAxes, va="top", fontsize=8)
        summary[key] = {"networks": int(tight.size), "plotted": int(ok.sum()),
                        "both_sides_zero": both_zero,
                        "violations": int(np.sum(lhs > rhs * (1 + 1e-10)))}
        for name, (g, _, _) in zip(("n_L = 1", "n_L > 1"), groups, strict=True):
            if g.size:
                summary[key][name] = {"n": int(g.size), "min": float(g.min()),
                                      "median": float(np.median(g)), "max": float(g.max())}
    fig.tight_layout()
    path = out / "tightness.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, {"available": True, "count": count, "seed": seed, "summary": summary}


# --- rendering -------------------------------------------------------------------------------

_TIGHTNESS_TEXT = (
    "Tightness lhs/rhs = ||Cov(I_hat)||_F / bound over {count} random networks "
    "(tightness_sweep, seed {seed}: families of the catalog, tanh/sigmoid/softplus/gelu, depth "
    "1-3, weight scales 0.25-4, one input, N = 1). For n_L = 1 both bounds are equalities (the "
    "covariance tensor is rank one), hence the bar at 1; for n_L > 1 they are loose. A value "
    "above 1 is a violation: {violations}. Linear networks have Cov(I2_hat) = 0 = the thm-8 "
    "bound and no tightness."
)


def _tightness_rows(tight: dict[str, Any]) -> list[list[str]]:
    """Rows (bound, networks, n_L group, count, min, median, max) of the tightness summary."""
    rows = []
    for key, v in tight.get("summary", {}).items():
        nets = f"{v['plotted']} of {v['networks']}"
        if v.get("both_sides_zero"):
            nets += f" ({v['both_sides_zero']} with both sides 0)"
        for group in ("n_L = 1", "n_L > 1"):
            g = v.get(group)
            if g:
                rows.append([key, nets, group.replace("n_L ", ""), str(g["n"]),
                             f"{g['min']:.3g}", f"{g['median']:.3g}", f"{g['max']:.3g}"])
    return rows


def _tightness_text(tight: dict[str, Any]) -> str:
    summ = tight.get("summary", {})
    bad = ", ".join(f"{k}: {v['violations']}" for k, v in summ.items() if v.get("violations"))
    return _TIGHTNESS_TEXT.format(count=tight.get("count", "?"), seed=tight.get("seed", "?"),
                                  violations=bad or "none")


def _md_math(latex: str) -> str:
    return f"${latex.strip()}$"


def _evidence_text(rec: Record) -> list[str]:
    lines = []
    for key, value in rec.evidence.items():
        if key == "identities" and isinstance(value, dict):
            for claim, method in value.items():
                lines.append(f"{claim} — {method}")
            continue
        text = json.dumps(value, default=str)
        lines.append(f"{key}: {text if len(text) < 300 else text[:297] + '…'}")
    return lines


def markdown(records: Sequence[Record], doc: dict[str, Any], figures: dict[str, str],
             table: list[dict[str, Any]], tight: dict[str, Any]) -> str:
    """The report as GitHub Markdown with ``$…$`` math."""
    import sympy as sp

    out = ["# fisher-verify derivation report", ""]
    out.append(f"Profile **{doc['profile']}**, seed {doc['seed']}; "
               f"{sum(r.holds for r in records)}/{len(records)} statements hold. "
               f"Soen & Sun, *On the Variance of the Fisher Information for Deep Learning*.")
    out += ["", "| statement | verdict | method | seconds |", "|---|---|---|---|"]
    for r in records:
        mark = " (erratum)" if r.errata else ""
        out.append(f"| [{r.id}](#{r.id.replace('.', '')}) | **{r.verdict}**{mark} | {r.method} | "
                   f"{r.seconds:.2f} |")
    errata = [(r, e) for r in records for e in r.errata]
    if errata:
        out += ["", "## Disagreements with the paper (errata)", "",
                "Where the paper's literal statement is false, the statement checked is the "
                "paper's intent (STATEMENTS.md); the literal form's counterexample is kept here.",
                ""]
        for r, e in errata:
            out.append(f"- **[{r.id}](#{r.id.replace('.', '')})**: {e['text']}")
    out += ["", "## Table 1, regenerated for the catalog", "",
            "| family | $F(h)$ | $h$(mean) | $F''$ | $F''''$ |", "|---|---|---|---|---|"]
    for row in table:
        out.append(f"| {row['family']} | ${sp.latex(row['F'])}$ | "
                   f"${sp.latex(row['h'])}$ | ${sp.latex(row['F2'])}$ | ${sp.latex(row['F4'])}$ |")
    out += ["", "## Figure 1, reproduced and extended", ""]
    for name, rel in figures.items():
        if name.startswith("fig"):
            out.append(f"![{name}]({rel})")
    out += ["", "## Tightness of Theorems 7 and 8", ""]
    if "tightness" in figures:
        out += [_tightness_text(tight), ""]
        out.append(f"![tightness]({figures['tightness']})")
        out += ["", "| bound | networks | n_L | count | min | median | max |",
                "|---|---|---|---|---|---|---|"]
        out += ["| " + " | ".join(row) + " |" for row in _tightness_rows(tight)]
    else:
        out.append(f"Not plotted: {tight.get('reason', 'unavailable')}.")
    out += ["", "## Statements", ""]
    for r in records:
        out += [f"### {r.id}", "", f"**{r.title or r.id}.** {_md_math(r.claim) if r.claim else ''}",
                ""]
        if r.hypotheses:
            out.append("Hypotheses: " + "; ".join(_md_math(h) for h in r.hypotheses))
            out.append("")
        out.append(f"Method: {r.method}. Verdict: **{r.verdict}** ({r.seconds:.2f} s, seed "
                   f"{r.seed}). {r.summary or r.reason}")
        out.append("")
        for e in r.errata:
            out.append(f"> **Erratum (disagreement with the paper).** {e['text']}")
            if e.get("literal"):
                out.append(f"> Literal form: {_md_math(e['literal'])}")
            if e.get("counterexample"):
                out.append("> Counterexample to the literal form: "
                           f"`{json.dumps(e['counterexample'], default=str)}`")
            out.append("")
        if r.steps:
            out.append("Derivation (SymPy):")
            out.append("")
            for label, latex in r.steps[:24]:
                out.append(f"- {label}: {_md_math(latex)}")
            out.append("")
        ev = _evidence_text(r)
        if ev or r.checks:
            out.append("Evidence:")
            out.append("")
            for c in r.checks[:30]:
                mark = "✓" if c["passed"] else "✗"
                out.append(f"- {mark} {c['name']} (observed {c['observed']}, "
                           f"tolerance {c['tolerance']})")
            for line in ev:
                out.append(f"- {line}")
            out.append("")
        if r.counterexample:
            out.append(f"Counterexample: `{json.dumps(r.counterexample, default=str)}`")
            out.append("")
        if r.verdict == "error":
            out.append("```\n" + (r.error or r.summary)[-1500:] + "\n```")
            out.append("")
    return "\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
th{background:#f3f3f3}.proved,.verified{color:#176317;font-weight:bold}
.refuted,.error{color:#b00020;font-weight:bold}.na{color:#8a6d00;font-weight:bold}
.erratum{background:#fff6e0;border-left:4px solid #d98e00;padding:.4em .8em;margin:.8em 0}
.erratum-tag{color:#a05f00;font-weight:bold;font-size:85%}
section{border-top:1px solid #ddd;margin-top:1.5em}pre{background:#f7f7f7;padding:.5em;
overflow-x:auto;font-size:85%}img{max-width:100%}li{margin:.2em 0}math{font-size:110%}
"""


def _cls(verdict: str) -> str:
    return {"not applicable": "na"}.get(verdict, verdict)


def html_page(records: Sequence[Record], doc: dict[str, Any], figures: dict[str, str],
              table: list[dict[str, Any]], tight: dict[str, Any]) -> str:
    """A self-contained HTML page: math as MathML, figures inline (base64), no network."""
    import base64

    def img(rel: str) -> str:
        data = base64.b64encode((Path(doc["_out"]) / rel).read_bytes()).decode()
        return f'<img alt="{html.escape(rel)}" src="data:image/png;base64,{data}">'

    e = html.escape
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<title>fisher-verify report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>fisher-verify derivation report</h1>",
             f"<p>Profile <b>{e(doc['profile'])}</b>, seed {doc['seed']}; "
             f"{sum(r.holds for r in records)}/{len(records)} statements hold.</p>",
             "<table><tr><th>statement</th><th>verdict</th><th>method</th><th>s</th></tr>"]
    for r in records:
        tag = " <span class='erratum-tag'>+ erratum</span>" if r.errata else ""
        parts.append(f"<tr><td><a href='#{e(r.id)}'>{e(r.id)}</a></td>"
                     f"<td><span class='{_cls(r.verdict)}'>{e(r.verdict)}</span>{tag}</td>"
                     f"<td>{e(r.method)}</td><td>{r.seconds:.2f}</td></tr>")
    parts.append("</table>")
    errata = [(r, x) for r in records for x in r.errata]
    if errata:
        parts.append("<h2>Disagreements with the paper (errata)</h2><p>Where the paper's "
                     "literal statement is false, the statement checked is the paper's intent "
                     "(STATEMENTS.md); the literal form's counterexample is kept.</p><ul>")
        for r, x in errata:
            parts.append(f"<li><a href='#{e(r.id)}'><b>{e(r.id)}</b></a>: {e(x['text'])}</li>")
        parts.append("</ul>")
    parts.append("<h2>Table 1, regenerated for the catalog</h2><table><tr>"
                 "<th>family</th><th>F(h)</th><th>h(mean)</th><th>F''</th><th>F''''</th></tr>")
    for row in table:
        parts.append("<tr><td>" + e(row["family"]) + "</td>" + "".join(
            f"<td>{sympy_mathml(row[k])}</td>" for k in ("F", "h", "F2", "F4")) + "</tr>")
    parts.append("</table><h2>Figure 1, reproduced and extended</h2>")
    for name, rel in figures.items():
        if name.startswith("fig"):
            parts.append(img(rel))
    parts.append("<h2>Tightness of Theorems 7 and 8</h2>")
    if "tightness" in figures:
        parts.append(f"<p>{e(_tightness_text(tight))}</p>")
        parts.append(img(figures["tightness"]))
        parts.append("<table><tr><th>bound</th><th>networks</th><th>n_L</th><th>count</th>"
                     "<th>min</th><th>median</th><th>max</th></tr>")
        for cells in _tightness_rows(tight):
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    else:
        parts.append(f"<p>Not plotted: {e(str(tight.get('reason', 'unavailable')))}.</p>")
    parts.append("<h2>Statements</h2>")
    for r in records:
        parts.append(f"<section id='{e(r.id)}'><h3>{e(r.id)} — {e(r.title or r.id)}</h3>")
        if r.claim:
            parts.append(f"<div>{latex_to_mathml(r.claim, display=True)}</div>")
        if r.hypotheses:
            parts.append("<p>Hypotheses: " + "; ".join(latex_to_mathml(h) for h in r.hypotheses)
                         + "</p>")
        parts.append(f"<p>Method: {e(r.method)}. Verdict: <span class='{_cls(r.verdict)}'>"
                     f"{e(r.verdict)}</span> ({r.seconds:.2f} s, seed {r.seed}). "
                     f"{e(r.summary or r.reason)}</p>")
        for x in r.errata:
            parts.append(f"<div class='erratum'><b>Erratum (disagreement with the paper).</b> "
                         f"{e(x['text'])}")
            if x.get("literal"):
                parts.append(f"<br>Literal form: {latex_to_mathml(x['literal'])}")
            if x.get("counterexample"):
                parts.append("<br>Counterexample to the literal form: <code>"
                             f"{e(json.dumps(x['counterexample'], default=str))}</code>")
            parts.append("</div>")
        if r.steps:
            parts.append("<p>Derivation (SymPy):</p><ul>")
            for label, latex in r.steps[:24]:
                parts.append(f"<li>{e(label)}: {latex_to_mathml(latex)}</li>")
            parts.append("</ul>")
        if r.checks or r.evidence:
            parts.append("<p>Evidence:</p><ul>")
            for c in r.checks[:30]:
                mark = "✓" if c["passed"] else "✗"
                parts.append(f"<li>{mark} {e(c['name'])} (observed {e(str(c['observed']))}, "
                             f"tolerance {e(str(c['tolerance']))})</li>")
            for line in _evidence_text(r):
                parts.append(f"<li>{e(line)}</li>")
            parts.append("</ul>")
        if r.counterexample:
            parts.append(f"<p>Counterexample: <code>{e(json.dumps(r.counterexample, default=str))}"
                         "</code></p>")
        if r.verdict == "error":
            parts.append(f"<pre>{e((r.error or r.summary)[-1500:])}</pre>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(records: Sequence[Record], out: str | Path, profile: str, seed: int,
                 paths: Sequence[str] = (), wall: float = 0.0,
                 tightness_count: int = 200,
                 stage: Callable[[str], None] | None = None) -> Report:
    """Write report.md, report.html, the figures and certificate.json into ``out``;
    ``stage(text)`` is told what is being built (the CLI's progress line)."""
    import fisher_verify as fv

    from ..proofs.record import run_document

    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    doc = run_document(records, profile, seed, paths, wall)
    figures: dict[str, str] = {}
    paths_written: list[Path] = []
    say = stage or (lambda text: None)
    say("Figure 1")
    p = figure_1(outdir, PAPER_FAMILIES, "fig1.png", "Figure 1 (Bernoulli, Normal, Poisson)")
    figures["fig1"] = p.name
    paths_written.append(p)
    others = [n for n in fv.family_names()
              if n not in PAPER_FAMILIES and fv.family(n).dim == 1]
    if others:
        p = figure_1(outdir, others, "fig1_extended.png", "Figure 1 extended to the catalog")
        figures["fig1_extended"] = p.name
        paths_written.append(p)
    say(f"tightness sweep ({tightness_count} networks)")
    tpath, tight = tightness_figure(outdir, seed, tightness_count)
    if tpath is not None:
        figures["tightness"] = tpath.name
        paths_written.append(tpath)
    say("Table 1")
    table = table_1_rows()
    say("writing report.md, report.html, certificate.json")
    md = outdir / "report.md"
    md.write_text(markdown(records, doc, figures, table, tight), encoding="utf-8")
    page = outdir / "report.html"
    page.write_text(html_page(records, {**doc, "_out": str(outdir)}, figures, table, tight),
                    encoding="utf-8")
    cert = outdir / "certificate.json"
    certificate = {
        **doc,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "figures": figures,
        "tightness": tight,
        "statements": [
            {k: v for k, v in r.as_dict().items() if k not in ("steps", "error")}
            for r in records
        ],
    }
    cert.write_text(json.dumps(certificate, indent=2, default=str) + "\n", encoding="utf-8")
    return Report(outdir, md, page, cert, paths_written)
