"""``fisher-verify`` command line: families | derive | check | report | analyze.

Each command lives in its own module under :mod:`fisher_verify.commands` and exposes
``register(subparsers)``; its handler returns the exit code. A user error
(:class:`~fisher_verify.errors.FisherVerifyError`, a missing file, a bad argument) prints
one line to stderr and exits 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .errors import FisherVerifyError

COMMAND_MODULES = ("families", "derive", "check", "report", "analyze", "analyze_model")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command module that is installed."""
    parser = _Parser(
        prog="fisher-verify",
        description="Verify Fisher information estimators (Soen & Sun, NeurIPS 2021).",
    )
    parser.add_argument("--version", action="version", version=f"fisher-verify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"fisher_verify.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"fisher_verify.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fisher-verify`` script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FisherVerifyError as exc:
        print(f"fisher-verify {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader (e.g. `| head`) closed the pipe: not an error of ours
        sys.stderr.close()
        return 0
    except OSError as exc:
        # a file the user named cannot be read or written (missing, a folder, no permission)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"fisher-verify {args.command}: error: {exc.strerror or exc}{where}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
