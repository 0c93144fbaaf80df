"""``fisher-verify check``: the correctness gate over the statements of ``proofs/``.

Exit 0 when every statement holds (proved, verified or not applicable), 1 when any is
refuted or errors, 2 on usage errors (a missing path, an unknown id in ``--only``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import FisherVerifyError
from .common import check_jobs, check_output_file
from .progress import ProgressDisplay


def register(subparsers: Any) -> None:
    """Add the ``check`` subcommand."""
    p = subparsers.add_parser(
        "check",
        help="run the statements' proofs (the CI gate)",
        description="Run every proof under PATHS (default: ./proofs) and print a table of "
        "verdicts. Exit 0 when all hold, 1 when any is refuted or errors, 2 on usage errors.",
    )
    p.add_argument("paths", nargs="*", metavar="PATHS",
                   help="proof files or folders (default: ./proofs)")
    p.add_argument("--only", nargs="+", action="extend", default=[], metavar="ID",
                   help="run only these statement ids")
    p.add_argument("--profile", choices=("quick", "thorough"), default="quick",
                   help="quick: the CI gate (default); thorough: every family, more networks")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--json", metavar="FILE", help="write the run as JSON")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="worker processes (default 1; 0 = one per CPU)")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the summary line")
    p.set_defaults(func=handle)


def default_paths() -> list[str]:
    """``./proofs`` when it exists.

    Raises:
        FisherVerifyError: there is no ``proofs`` folder in the current directory.
    """
    if Path("proofs").is_dir():
        return ["proofs"]
    raise FisherVerifyError(
        "no PATHS given and no 'proofs' folder in the current directory; "
        "run from the repository root or pass proof files/folders"
    )


def handle(args: argparse.Namespace) -> int:
    """Run the gate; returns the exit code."""
    from ..proofs import discover, run_all, select
    from ..proofs.record import run_document, table, write_json, write_junit

    check_jobs(args.jobs)
    paths = args.paths or default_paths()
    check_output_file(args.json, "--json")
    check_output_file(args.junit, "--junit")
    entries = select(discover(paths), args.only)
    if not entries:
        raise FisherVerifyError(f"no statements found under {', '.join(map(str, paths))}")
    start = time.perf_counter()
    if args.quiet:
        records = run_all(entries, profile=args.profile, seed=args.seed, jobs=args.jobs)
    else:
        with ProgressDisplay(sys.stderr, len(entries)) as shown:
            records = run_all(entries, profile=args.profile, seed=args.seed, jobs=args.jobs,
                              progress=shown.finished, started=shown.started)
    wall = time.perf_counter() - start
    text = table(records)
    if args.quiet:
        text = text.splitlines()[-1]
    print(text)
    print(f"wall time {wall:.1f} s (profile {args.profile}, seed {args.seed})")
    if args.json:
        write_json(args.json, run_document(records, args.profile, args.seed, paths, wall))
    if args.junit:
        write_junit(args.junit, records)
    return 0 if all(r.holds for r in records) else 1
