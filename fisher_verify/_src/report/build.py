"""Build the derivation report: Markdown (GitHub math), offline HTML (MathML), figures, and a
JSON certificate.

Sections: one per statement (claim, hypotheses, method, SymPy derivation steps, evidence,
verdict); Table 1 regenerated for every family of the catalog (``table-1``);
Figure 1 reproduced and extended (``fig-1``); tightness of the bounds of ``thm-7`` and
``thm-8`` over random networks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import jsontext
from ..proofs.run import Record
from .figures import EXTENDED_PANELS, PAPER_PANELS, figure_1, tightness_figure
from .pages import html_page, markdown
from .table1 import table_1_rows
from .tradeoff_figure import tradeoff_figure


@dataclass
class Report:
    """Paths of what :func:`build_report` wrote."""

    out: Path
    markdown: Path
    html: Path
    certificate: Path
    figures: list[Path] = field(default_factory=list)


def build_report(records: Sequence[Record], out: str | Path, profile: str, seed: int,
                 paths: Sequence[str] = (), wall: float = 0.0,
                 tightness_count: int = 200,
                 stage: Callable[[str], None] | None = None) -> Report:
    """Write report.md, report.html, the figures and certificate.json into ``out``;
    ``stage(text)`` is told what is being built (the CLI's progress line)."""
    from ..families.registry import family_names
    from ..proofs.record import run_document

    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    doc = run_document(records, profile, seed, paths, wall)
    figures: dict[str, str] = {}
    paths_written: list[Path] = []
    say = stage or (lambda text: None)
    say("Figure 1")
    p = figure_1(outdir, PAPER_PANELS, "fig1.png", "Figure 1 (Bernoulli, Normal, Poisson)")
    figures["fig1"] = p.name
    paths_written.append(p)
    shown = {n for n, _ in PAPER_PANELS + EXTENDED_PANELS}
    # a family added to the catalog later is drawn too, at its default parameters
    others = list(EXTENDED_PANELS) + [(n, {}) for n in family_names() if n not in shown]
    p = figure_1(outdir, others, "fig1_extended.png",
                 "Figure 1 extended to the catalog (vector families: Frobenius norms along "
                 "the path named under each panel)")
    figures["fig1_extended"] = p.name
    paths_written.append(p)
    say(f"tightness sweep ({tightness_count} networks)")
    tpath, tight = tightness_figure(outdir, seed, tightness_count)
    if tpath is not None:
        figures["tightness"] = tpath.name
        paths_written.append(tpath)
    # the README quotes these numbers and names this file (tests/test_report.py keeps them equal)
    tjson = outdir / "tightness.json"
    tjson.write_text(jsontext.dumps(tight, indent=2) + "\n", encoding="utf-8")
    paths_written.append(tjson)
    say("diagonal trade-off figure (d24)")
    dpath, dtrade = tradeoff_figure(outdir, seed)
    figures["d24_tradeoff"] = dpath.name
    paths_written.append(dpath)
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
        "d24_tradeoff": dtrade,
        "statements": [
            {k: v for k, v in r.as_dict().items() if k not in ("steps", "error")}
            for r in records
        ],
    }
    cert.write_text(jsontext.dumps(certificate, indent=2, default=str) + "\n", encoding="utf-8")
    return Report(outdir, md, page, cert, paths_written)
