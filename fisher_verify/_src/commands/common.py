"""Argument checks shared by the commands (family parameters, natural-parameter points,
output paths, worker counts): each refuses bad input with a one-line message."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FisherVerifyError
from .progress import ProgressDisplay


def parse_value(text: str) -> Any:
    """'5' -> 5, '0.5' -> 0.5, anything else stays text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_params(items: list[str] | None, option: str = "--param") -> dict[str, Any]:
    """``["n=5", "sigma=2"]`` -> ``{"n": 5, "sigma": 2}``; refuses items without '=' and a
    parameter given twice (which value was meant is not ours to guess)."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FisherVerifyError(
                f"{option} {item!r} must look like NAME=VALUE (e.g. {option} n=5)"
            )
        if key.strip() in params:
            raise FisherVerifyError(
                f"{option} {key.strip()} is given twice; give each parameter once"
            )
        params[key.strip()] = parse_value(value.strip())
    return params


def parse_point(text: str | None) -> list[float] | None:
    """``"0.5,-1"`` -> [0.5, -1.0]; a clear error for anything that is not finite numbers."""
    if text is None:
        return None
    try:
        point = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        point = []
    if not point or not all(math.isfinite(v) for v in point):
        raise FisherVerifyError(
            f"--at {text!r} must be comma-separated finite numbers, one per natural parameter "
            "(e.g. --at 0.5 or --at 1,-0.5)"
        )
    return point


def natural_point(fam: Any, text: str | None) -> list[float] | None:
    """``--at`` parsed and checked against the family's dimension and natural-parameter domain;
    the refusal names the option and the value given."""
    point = parse_point(text)
    if point is not None:
        try:
            fam.check_natural(np.asarray(point, dtype=float))
        except FisherVerifyError as exc:
            raise FisherVerifyError(f"--at {text!r}: {exc}") from None
    return point


def add_family_arguments(parser: argparse.ArgumentParser) -> None:
    """``--param k=v`` (repeatable)."""
    parser.add_argument(
        "--param",
        action="append",
        metavar="K=V",
        help="a fixed parameter of the family, e.g. --param n=5 (repeatable)",
    )


def select_statements(paths: Sequence[str], only: Sequence[str],
                      timeout: float | None = None) -> list[Any]:
    """The statements under ``paths`` whose id is in ``only`` (all when empty); refused when
    ``paths`` hold none at all (before ``--only`` is judged against an empty list). Each proof
    file gets ``timeout`` seconds to import (default: the statements' default time limit)."""
    from ..proofs import discover, select
    from ..proofs.state import DEFAULT_TIMEOUT

    found = discover(list(paths), DEFAULT_TIMEOUT if timeout is None else timeout)
    if not found:
        raise FisherVerifyError(f"no statements found under {', '.join(map(str, paths))}")
    return select(found, only)


def check_jobs(jobs: int) -> int:
    """``--jobs``: 0 (one worker per CPU) or more."""
    if jobs < 0:
        raise FisherVerifyError(f"--jobs must be >= 0 (0 = one per CPU), got {jobs}")
    return jobs


def check_timeout(seconds: float | None, profile: str = "quick") -> float:
    """``--timeout``: a finite number of seconds > 0; None is the profile's default."""
    if seconds is None:
        from ..proofs.state import DEFAULT_TIMEOUTS

        return DEFAULT_TIMEOUTS[profile]
    if not (math.isfinite(seconds) and seconds > 0):
        raise FisherVerifyError(
            f"--timeout must be a finite number of seconds > 0, got {seconds:g}")
    return seconds


def add_worker_arguments(parser: argparse.ArgumentParser, jobs_cap: str,
                         timeout_more: str = "") -> None:
    """``--jobs`` and ``--timeout`` of the commands that run statements (``check``, ``report``),
    as :func:`check_jobs`, :func:`workers_for` and :func:`check_timeout` read them; ``jobs_cap``
    and ``timeout_more`` end each command's own wording of their help."""
    from ..proofs.state import DEFAULT_TIMEOUTS

    parser.add_argument("--jobs", "-j", type=int, default=1,
                        help="statements run at once, each in its own worker process (default 1; "
                        f"0 = one per CPU; {jobs_cap})")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="time limit per statement and per proof file's import (default "
                        f"{DEFAULT_TIMEOUTS['quick']:g} with --profile quick, "
                        f"{DEFAULT_TIMEOUTS['thorough']:g} with thorough){timeout_more}")


def run_statements(args: argparse.Namespace, entries: list[Any], jobs: int, timeout: float,
                   shown: ProgressDisplay | None = None) -> list[Any]:
    """The records of ``entries`` run at ``--profile`` and ``--seed``, ``jobs`` at a time, each
    within ``timeout`` seconds; ``shown`` (when given) hears each statement start and finish."""
    from ..proofs import run_all

    if shown is None:
        return run_all(entries, profile=args.profile, seed=args.seed, jobs=jobs, timeout=timeout)
    return run_all(entries, profile=args.profile, seed=args.seed, jobs=jobs,
                   progress=shown.finished, started=shown.started, timeout=timeout)


def workers_for(jobs: int, statements: int) -> int:
    """``--jobs`` as run: 0 is one per CPU; more than the CPUs this process may use is capped to
    their number, with a note on stderr naming the limit (33 workers on 2 cores took 6.4 GiB
    and ran 4x slower than one); never more than the statements."""
    from ..proofs.isolate import cpu_count

    cpus = cpu_count()
    if jobs > cpus:
        print(f"note: --jobs {jobs} is more than the {cpus} CPU(s) available; running {cpus} "
              "at a time", file=sys.stderr)
    return max(1, min(jobs or cpus, cpus, statements))


def prepare_output_dir(path: str) -> Path:
    """Create the output folder ``path`` (and its parents) now, or say why it cannot be."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise FisherVerifyError(f"--out {path!r} is a file; give a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FisherVerifyError(
            f"cannot create output folder {path!r}: {exc.strerror or exc}"
        ) from None
    return target
