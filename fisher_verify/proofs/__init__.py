"""The proofs engine: find, run and record the statements of ``proofs/`` (issue 5).

Public API for proof files: :func:`statement` and :class:`Context` (see
:mod:`fisher_verify.proofs.api`). The gate (``fisher-verify check``) uses :func:`discover`,
:func:`run_all` and the writers of :mod:`fisher_verify.proofs.record`.
"""

from __future__ import annotations

from .api import HOLDING, METHODS, VERDICTS, Check, Context, Result, Statement, statement
from .discover import Broken, discover, proof_files, select
from .run import Record, run_all, run_statement

__all__ = [
    "HOLDING",
    "METHODS",
    "VERDICTS",
    "Broken",
    "Check",
    "Context",
    "Record",
    "Result",
    "Statement",
    "discover",
    "proof_files",
    "run_all",
    "run_statement",
    "select",
    "statement",
]
