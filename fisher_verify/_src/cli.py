"""``fisher-verify`` command line: families | derive | check | report | analyze (analyze-model).

Each command lives in its own module under :mod:`fisher_verify._src.commands` and exposes
``register(subparsers)``; its handler returns the exit code. A user error
(:class:`~fisher_verify.errors.FisherVerifyError`, a missing file, a bad argument) prints
one line to stderr and exits 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from .errors import FisherVerifyError

COMMAND_MODULES = ("families", "derive", "check", "report", "analyze")


class _StoreOnce(argparse._StoreAction):
    """``store`` that refuses an option given twice (argparse keeps the last one silently)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        given: set[str] = namespace.__dict__.setdefault("_options_given", set())
        if self.dest in given:
            parser.error(
                f"argument {'/'.join(self.option_strings)}: given twice "
                f"({getattr(namespace, self.dest)!r} and {values!r}); give it once"
            )
        given.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


#: What argparse must read as a value, not an option, when it starts with '-': a negative
#: number in any float syntax ("-1e+16", "-inf"), or a comma list starting with one ("-1,2").
_NEGATIVE_VALUE = re.compile(
    r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?(,.*)?$|^-(inf|infinity|nan)(,.*)?$", re.IGNORECASE
)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)
        # argparse's own pattern knows only "-3" and "-0.5": `--at -1e+16` or `--at -1,2`
        # was "expected one argument"
        self._negative_number_matcher = _NEGATIVE_VALUE

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
            module = importlib.import_module(f"fisher_verify._src.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"fisher_verify._src.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def _command_names(parser: argparse.ArgumentParser) -> list[str]:
    """The subcommands as typed (aliases included), in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fisher-verify`` script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        names = ", ".join(_command_names(parser))
        print(f"{parser.prog}: error: a COMMAND is required, one of {names}", file=sys.stderr)
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
