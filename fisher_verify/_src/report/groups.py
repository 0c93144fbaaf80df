"""The report's two groups of statements: the paper's own, and those beyond it (paper/
STATEMENTS.md, "Beyond the paper (follow-ups)", and the ``ext-`` promises of the README).

A statement is beyond the paper when its id starts with one of :data:`BEYOND_PREFIXES` or is one
of :data:`BEYOND_IDS`; every other id is the paper's. The order within a group is the proofs'
order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

#: id prefixes of the statements beyond the paper: the README's extensions (``ext-``), the
#: diagonal-estimator results of Soen & Sun, NeurIPS 2024 (``d24-``), and the categorical
#: spectrum of Sun, ICLR 2026 (``sun26-``).
BEYOND_PREFIXES: tuple[str, ...] = ("ext-", "d24-", "sun26-")

#: ids beyond the paper that carry no such prefix (thm-3 at inputs away from ReLU's kinks).
BEYOND_IDS: frozenset[str] = frozenset({"thm-3-ae"})

#: the group headings, in the report's order
PAPER = "Statements of the paper"
BEYOND = "Beyond the paper"

R = TypeVar("R")


def is_beyond_paper(statement_id: str) -> bool:
    """True for a statement beyond the paper (see the module docstring)."""
    return statement_id in BEYOND_IDS or statement_id.startswith(BEYOND_PREFIXES)


def grouped(records: Sequence[R]) -> list[tuple[str, list[R]]]:
    """``[(PAPER, …), (BEYOND, …)]`` with each record (anything with an ``id``) in its group,
    in the given order; an empty group is left out."""
    paper = [r for r in records if not is_beyond_paper(r.id)]  # type: ignore[attr-defined]
    beyond = [r for r in records if is_beyond_paper(r.id)]  # type: ignore[attr-defined]
    return [(name, rs) for name, rs in ((PAPER, paper), (BEYOND, beyond)) if rs]
