"""The ``@statement`` API that proof files import (public; docs/user-proofs.md).

``from fisher_verify.proofs import statement``; the engine that finds, runs and records the
statements is private (``fisher_verify._src.proofs``).
"""

from .._src.proofs.api import HOLDING, METHODS, VERDICTS, Check, Context, Result, Statement, statement

__all__ = ["HOLDING", "METHODS", "VERDICTS", "Check", "Context", "Result", "Statement", "statement"]
