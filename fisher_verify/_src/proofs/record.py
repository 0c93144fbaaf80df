"""Record a run: the text table, the JSON document and the JUnit XML of the gate."""

from __future__ import annotations

import platform
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from .. import jsontext
from .run import Record

_PACKAGES = ("fisher-verify", "numpy", "sympy", "mpmath", "scipy", "torch", "matplotlib")


def environment() -> dict[str, Any]:
    """Python, platform and the versions of the packages a verdict depends on."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    if versions.get("fisher-verify") is None:
        from ... import __version__

        versions["fisher-verify"] = __version__
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
    }


def summary_counts(records: Sequence[Record]) -> dict[str, int]:
    """How many statements got each verdict."""
    return dict(Counter(r.verdict for r in records))


def table(records: Sequence[Record], width: int = 100) -> str:
    """The gate's plain-text table: id, verdict, method, seconds, summary."""
    id_w = max([len("statement"), *(len(r.id) for r in records)])
    ver_w = max(len("not applicable"), len("verdict"))
    meth_w = 29
    head = (f"{'statement':<{id_w}}  {'verdict':<{ver_w}}  {'method':<{meth_w}}  "
            f"{'secs':>6}  summary")
    lines = [head, "-" * min(width, len(head) + 20)]
    for r in records:
        room = max(10, width - id_w - ver_w - meth_w - 16)
        summary = (r.summary or r.reason).replace("\n", " ")
        if len(summary) > room:
            summary = summary[: room - 1] + "…"
        lines.append(
            f"{r.id:<{id_w}}  {r.verdict:<{ver_w}}  {r.method[:meth_w]:<{meth_w}}  "
            f"{r.seconds:6.2f}  {summary}"
        )
        if r.verdict == "error" and len(summary) < len((r.summary or "").replace("\n", " ")):
            # the exception's type and message in full: it is what the reader must fix
            lines.extend(_wrap(f"ERROR: {' '.join(r.summary.split())}", indent=id_w + 2,
                               width=width))
        for e in r.errata:
            lines.extend(_wrap(f"ERRATUM (paper's literal statement): {e['text']}",
                               indent=id_w + 2, width=width))
    counts = summary_counts(records)
    total = sum(r.seconds for r in records)
    held = sum(r.holds for r in records)
    lines.append("-" * min(width, len(head) + 20))
    lines.append(
        f"{held}/{len(records)} hold ("
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        + f"); {total:.1f} s of proof time"
        + (f"; {n_err} with an erratum to the paper" if (n_err := sum(bool(r.errata)
                                                            for r in records)) else "")
    )
    return "\n".join(lines)


def _wrap(text: str, indent: int, width: int) -> list[str]:
    """``text`` wrapped to ``width`` columns, every line indented by ``indent`` spaces."""
    import textwrap

    pad = " " * indent
    return textwrap.wrap(text, width=max(40, width), initial_indent=pad, subsequent_indent=pad + "  ")


def erratum_text(record: Record) -> str:
    """The errata of a record as plain text (one paragraph each; empty when none)."""
    parts = []
    for e in record.errata:
        text = f"erratum: {e['text']}"
        if e.get("literal"):
            text += f"\nliteral form: {e['literal']}"
        if e.get("counterexample"):
            text += "\ncounterexample to the literal form: " + jsontext.dumps(
                e["counterexample"], default=str)
        parts.append(text)
    return "\n".join(parts)


def run_document(
    records: Sequence[Record], profile: str, seed: int, paths: Sequence[str], seconds: float
) -> dict[str, Any]:
    """The JSON document of a run (also the core of the report's certificate)."""
    return {
        "tool": "fisher-verify check",
        "profile": profile,
        "seed": seed,
        "paths": [str(p) for p in paths],
        "wall_seconds": round(seconds, 3),
        "all_hold": all(r.holds for r in records),
        "counts": summary_counts(records),
        "errata": {r.id: [e["text"] for e in r.errata] for r in records if r.errata},
        "environment": environment(),
        "statements": [r.as_dict() for r in records],
    }


def junit_xml(records: Sequence[Record], name: str = "fisher-verify") -> str:
    """JUnit XML: one testcase per statement; refuted is a failure, error an error,
    not applicable a skip (with the reason)."""
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(records)),
        failures=str(sum(r.verdict == "refuted" for r in records)),
        errors=str(sum(r.verdict == "error" for r in records)),
        skipped=str(sum(r.verdict == "not applicable" for r in records)),
        time=f"{sum(r.seconds for r in records):.3f}",
    )
    for r in records:
        case = ET.SubElement(
            suite, "testcase", classname=f"proofs.{r.method or 'unknown'}", name=r.id,
            time=f"{r.seconds:.3f}",
        )
        if r.errata:  # first child, as pytest writes record_property
            props = ET.SubElement(case, "properties")
            for k, e in enumerate(r.errata):
                ET.SubElement(props, "property", name="erratum" if k == 0 else f"erratum-{k + 1}",
                              value=e["text"])
        if r.verdict == "refuted":
            failure = ET.SubElement(case, "failure", message=r.summary[:500] or "refuted")
            failure.text = jsontext.dumps(r.counterexample, default=str) if r.counterexample else ""
        elif r.verdict == "error":
            error = ET.SubElement(case, "error", message=r.summary[:500] or "error")
            error.text = r.error
        elif r.verdict == "not applicable":
            ET.SubElement(case, "skipped", message=r.reason or r.summary)
        out = ET.SubElement(case, "system-out")
        out.text = f"verdict: {r.verdict}\nseed: {r.seed}\n{r.summary}"
        if r.errata:
            out.text += "\n" + erratum_text(r)
    suites = ET.Element("testsuites")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode")

