"""One family's identities, by the cheapest sound route (the room's entry point).

A product family is proved component by component (independence), a catalog family with a
parameter once for every value of it (:mod:`.generic`), any other family at its own values
(:mod:`.prover`), cached on disk. This dispatch sits above both :mod:`.prover` and
:mod:`.generic` so that neither imports the other back.
"""

from __future__ import annotations

from ..families.family import Family
from ..symbolic.cache import disk_cached
from .generic import generic_proof
from .prover import IdentityResult, prove_at_values

__all__ = ["prove_family"]


def prove_family(fam: Family, seconds: float = 20.0, seed: int = 0) -> list[IdentityResult]:
    """Prove every identity of issue 2 for ``fam``.

    Covers the log-normalizer, the stable kernels, ``lemma-2``, ``lemma-5``, ``remark-5.1``,
    ``table-1`` and ``fig-1``; ``seconds`` limits each SymPy attempt before mpmath takes over.
    """
    if fam.factors != (fam,):
        # a product's identities are its components' (independence); each is proved on its own
        out = []
        for comp in fam.factors:
            for r in prove_family(comp, seconds, seed):
                r.family = f"{fam.label} / {comp.label}"
                out.append(r)
        return out
    generic = generic_proof(fam, seconds, seed)
    if generic is not None:
        return generic
    return disk_cached(
        ("identities", *fam.definition.key, seconds, seed), lambda: prove_at_values(fam, seconds, seed), list
    )

