"""``fisher-verify check``: the correctness gate over the statements of ``proofs/``.

Exit 0 when every statement holds (proved, verified or not applicable), 1 when any is
refuted or errors, 2 on usage errors (a missing path, an unknown id in ``--only``, an output
that cannot or must not be written). Each statement runs in a worker process with a time limit
(:mod:`fisher_verify._src.proofs.isolate`): a proof that exits, hangs or crashes is an ``error``
naming why, never a silent exit 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import FisherVerifyError
from .common import add_worker_arguments, check_jobs, check_timeout, run_statements, select_statements, workers_for
from .outputs import FORCE_HELP, open_outputs
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
    p.add_argument("--json", metavar="FILE",
                   help="write the run as JSON (- for standard output; the table then goes to "
                   "standard error)")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (- for standard output)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    add_worker_arguments(p, "more than the CPUs is capped to their number",
                         "; a statement that passes it is stopped and fails with an error naming "
                         "the limit")
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
    from ..proofs.record import junit_xml, run_document, table

    check_jobs(args.jobs)
    timeout = check_timeout(args.timeout, args.profile)
    paths = args.paths or default_paths()
    outputs = open_outputs([("--json", args.json, "json"), ("--junit", args.junit, "junit")],
                           args.force, paths)
    try:
        entries = select_statements(paths, args.only, timeout)
        jobs = workers_for(args.jobs, len(entries))
        start = time.perf_counter()
        if args.quiet:
            records = run_statements(args, entries, jobs, timeout)
        else:
            with ProgressDisplay(sys.stderr, len(entries)) as shown:
                records = run_statements(args, entries, jobs, timeout, shown)
        wall = time.perf_counter() - start
        text = table(records)
        if args.quiet:
            text = text.splitlines()[-1]
        # standard output belongs to a `-` output; the table then goes to standard error
        shown_on = sys.stderr if any(o.stdout for o in outputs.values()) else sys.stdout
        _to_reader(lambda: print(text, file=shown_on))
        _to_reader(lambda: print(f"wall time {wall:.1f} s (profile {args.profile}, seed "
                                 f"{args.seed})", file=shown_on))
        if "--json" in outputs:
            document = run_document(records, args.profile, args.seed, paths, wall)
            _to_reader(lambda: outputs["--json"].commit(json_text(document)))
        if "--junit" in outputs:
            _to_reader(lambda: outputs["--junit"].commit(junit_xml(records) + "\n"))
    finally:
        for out in outputs.values():
            out.discard()
    return 0 if records and all(r.holds for r in records) else 1


def _to_reader(write: Callable[[], None]) -> None:
    """``write()``; a reader that closed the pipe (``| head``) does not change the verdict's
    exit code (the gate must not exit 0 because nobody read its table)."""
    try:
        write()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # later flushes of stdout go nowhere, quietly
        os.close(devnull)


def json_text(document: dict[str, Any]) -> str:
    """The run document as strict, indented JSON (what ``--json`` writes)."""
    from .. import jsontext

    return jsontext.dumps(document, indent=2, default=str) + "\n"
