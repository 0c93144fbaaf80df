"""proofs room: the engine that finds, runs and records the statements of the top-level ``proofs/``.

Public API for proof files: :func:`statement` and :class:`Context` (see
:mod:`fisher_verify._src.proofs.api`). The gate (``fisher-verify check``) uses :func:`discover`,
:func:`run_all` and the writers of :mod:`fisher_verify._src.proofs.record`. The statements
themselves live in the top-level ``proofs/`` folder, not here.

May import: ``testing``, ``expect``, ``fisher``, ``networks``, ``identities``, ``families``,
``symbolic`` and ``errors`` (and the top-level ``analyze``).
"""

from __future__ import annotations

from .discover import discover, select
from .run import run_all, run_statement

__all__ = ["discover", "run_all", "run_statement", "select"]
