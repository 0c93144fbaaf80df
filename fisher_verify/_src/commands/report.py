"""``fisher-verify report``: run the proofs and write the derivation report."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..errors import FisherVerifyError
from .common import add_worker_arguments, check_jobs, check_timeout, run_statements, select_statements, workers_for
from .outputs import FORCE_HELP, prepare_report_dir
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
    p.add_argument("--out", default="report", help="output folder (default: ./report); files "
                   "in it that an earlier report did not write are refused unless --force")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--only", nargs="+", action="extend", default=[], metavar="ID")
    p.add_argument("--profile", choices=("quick", "thorough"), default="quick")
    p.add_argument("--seed", type=int, default=0)
    add_worker_arguments(p, "capped to the CPUs")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the report; exit 0 when every statement holds, 1 otherwise (2 when the report
    cannot be written)."""
    from ..report.build import build_report
    from .check import default_paths

    check_jobs(args.jobs)
    timeout = check_timeout(args.timeout, args.profile)
    paths = args.paths or default_paths()
    out = prepare_report_dir(args.out, args.force)  # absolute: a proof's chdir cannot move it
    entries = select_statements(paths, args.only, timeout)
    jobs = workers_for(args.jobs, len(entries))
    start = time.perf_counter()
    with ProgressDisplay(sys.stderr, len(entries)) as shown:
        records = run_statements(args, entries, jobs, timeout, shown)
        wall = time.perf_counter() - start
        try:
            report = build_report(records, out, args.profile, args.seed, paths, wall,
                                  stage=shown.stage)
        except OSError as exc:
            name = exc.filename or out
            raise FisherVerifyError(
                f"cannot write the report into --out {args.out!r}: {exc.strerror or exc}: "
                f"{name}") from None
    print(f"wrote {report.markdown}, {report.html}, {report.certificate}"
          + "".join(f", {p}" for p in report.figures))
    return 0 if records and all(r.holds for r in records) else 1
