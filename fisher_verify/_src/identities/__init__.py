"""identities room: the proofs of each family's identities against its own density.

Holds the log-normalizer, ``lemma-2``, ``lemma-5``, ``remark-5.1``, the stable kernels,
``table-1`` and ``fig-1`` for one family (:mod:`.prover`), the moments of t(y) from the
density (:mod:`.density`), the proofs that hold for every value of a family's
parameter (:mod:`.generic`), and :func:`~.prove.prove_family`, which picks between them
(:mod:`.prove`, above both).

May import: ``symbolic`` and ``families``. It sits above both because a proof needs a built
:class:`~fisher_verify._src.families.family.Family` and the SymPy machinery, while neither of those
needs the proofs to compute. Nothing below it imports it.
"""

from __future__ import annotations

from .prove import prove_family
from .prover import IdentityResult

__all__ = ["IdentityResult", "prove_family"]
