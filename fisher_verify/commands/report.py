"""``fisher-verify report``: run the proofs and write the derivation report."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..errors import FisherVerifyError
from .common import check_jobs, prepare_output_dir
from .progress import ProgressDisplay


def register(subparsers: Any) -> None:
    """Add the ``report`` subcommand."""
    p = subparsers.add_parser(
        "report",
        help="write the derivation report (Markdown, offline HTML, figures, certificate)",
        description="Run the proofs under PATHS (default ./proofs) and write report.md, "
        "report.html (MathML, no network), PNG figures and certificate.json into --out.",
    )
    p.add_argument("paths", nargs="*", metavar="PATHS", help="proof files or folders")
    p.add_argument("--out", default="report", help="output folder (default: ./report)")
    p.add_argument("--only", nargs="+", action="extend", default=[], metavar="ID")
    p.add_argument("--profile", choices=("quick", "thorough"), default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", "-j", type=int, default=1)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the report; exit 0 when every statement holds, 1 otherwise."""
    from ..proofs import discover, run_all, select
    from ..report.build import build_report
    from .check import default_paths

    check_jobs(args.jobs)
    paths = args.paths or default_paths()
    entries = select(discover(paths), args.only)
    if not entries:
        raise FisherVerifyError(f"no statements found under {', '.join(map(str, paths))}")
    prepare_output_dir(args.out)
    start = time.perf_counter()
    with ProgressDisplay(sys.stderr, len(entries)) as shown:
        records = run_all(entries, profile=args.profile, seed=args.seed, jobs=args.jobs,
                          progress=shown.finished, started=shown.started)
        wall = time.perf_counter() - start
        report = build_report(records, args.out, args.profile, args.seed, paths, wall,
                              stage=shown.stage)
    print(f"wrote {report.markdown}, {report.html}, {report.certificate}"
          + "".join(f", {p}" for p in report.figures))
    return 0 if all(r.holds for r in records) else 1
