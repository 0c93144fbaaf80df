"""Argument parsing shared by the commands (family parameters, natural-parameter points)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import FisherVerifyError


def parse_value(text: str) -> Any:
    """'5' -> 5, '0.5' -> 0.5, anything else stays text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["n=5", "sigma=2"]`` -> ``{"n": 5, "sigma": 2}``; refuses items without '='."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FisherVerifyError(
                f"--param {item!r} must look like NAME=VALUE (e.g. --param n=5)"
            )
        params[key.strip()] = parse_value(value.strip())
    return params


def parse_point(text: str | None) -> list[float] | None:
    """``"0.5,-1"`` -> [0.5, -1.0]; a clear error for anything that is not numbers."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise FisherVerifyError(
            f"--at {text!r} must be comma-separated numbers, one per natural parameter (e.g. --at 0.5 or --at 1,-0.5)"
        ) from None


def add_family_arguments(parser: argparse.ArgumentParser) -> None:
    """``--param k=v`` (repeatable)."""
    parser.add_argument(
        "--param",
        action="append",
        metavar="K=V",
        help="a fixed parameter of the family, e.g. --param n=5 (repeatable)",
    )
