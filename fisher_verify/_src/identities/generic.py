"""Identities proved once for every value of a family's parameter, then reused at each value.

Proving per value does not scale: binomial(n) sums n + 1 terms, categorical(K) has C(K+3, 4)
κ₄ entries, and Γ(1e308) cannot be evaluated at all. So:

- binomial(n), negative_binomial(r), normal(σ), gamma(k): the family is built with its
  parameter as a SymPy symbol carrying the domain's assumptions (n a positive integer, the
  others positive), its identities are proved there, and the verdict holds at every value.
- categorical(K): every entry of a cumulant of order ≤ 4 involves m ≤ 4 distinct classes.
  Relabelling the classes (F and the law are symmetric in them) maps it to the canonical
  entry over classes 0..m−1 (:func:`canonical_entries`), so only those are proved. For K ≥ 5
  the classes m..K−1 enter only through r = logsumexp(h_m, …, h_{K−1}): F is
  logsumexp(h_0, …, h_{m−1}, r) (logsumexp is associative) and on the density side those
  classes have statistic 0 on components 0..m−1 and total weight e^r. That is categorical(5)
  with h_4 = r, so one proof there holds for every K ≥ 5; K ≤ 4 is proved on itself.

Table 1 and Figure 1 need no density and are checked at the value itself.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from ..families.catalog import PARAMETER_SYMBOLS, generic_definition
from ..families.family import Family
from ..families.registry import family as catalog_family
from ..symbolic.cache import disk_cached
from .prover import IdentityResult, _fig_1, _moment_identities, _Prover, _table_1

# categorical(K) for K >= CARRIER_K is proved through categorical(CARRIER_K) (module docstring)
CARRIER_K = 5
# a multinomial with more count vectors than this is proved through the categorical it sums
ENUMERATION_LIMIT = 500


def canonical_entries(order: int) -> list[tuple[int, ...]]:
    """One sorted index tuple per pattern of equal indices, e.g. order 4: 0000, 0001, 0011,
    0012, 0123 (the integer partitions of ``order``, largest block first)."""

    def partitions(n: int, largest: int) -> list[list[int]]:
        if n == 0:
            return [[]]
        return [
            [k, *rest] for k in range(min(n, largest), 0, -1) for rest in partitions(n - k, k)
        ]

    out = []
    for blocks in partitions(order, order):
        out.append(tuple(label for label, size in enumerate(blocks) for _ in range(size)))
    return out


class _CanonicalProver(_Prover):
    def index_sets(self, order: int) -> list[tuple[int, ...]]:
        return [idx for idx in canonical_entries(order) if max(idx) < self.fam.dim]


def _is_catalog_family(fam: Family) -> bool:
    """Only the catalog's own definition may borrow the generic proof (a user's edited copy
    with the same name is proved as written)."""
    try:
        return catalog_family(fam.name, **fam.params).definition is fam.definition
    except Exception:  # noqa: BLE001 - anything the registry refuses is not a catalog family
        return False


@cache
def _parameter_proof(name: str, seconds: float, seed: int) -> tuple[IdentityResult, ...]:
    def prove() -> list[IdentityResult]:
        return _moment_identities(_Prover(Family(generic_definition(name)), seconds, seed))

    return tuple(disk_cached(("identities-generic", name, seconds, seed), prove, list))


@cache
def _categorical_proof(k: int, seconds: float, seed: int) -> tuple[IdentityResult, ...]:
    def prove() -> list[IdentityResult]:
        carrier = catalog_family("categorical", K=k)
        return _moment_identities(_CanonicalProver(carrier, seconds, seed))

    key = ("identities-canonical", "categorical", k, seconds, seed)
    return tuple(disk_cached(key, prove, list))


def _canonical_proof(fam: Family, seconds: float, seed: int) -> tuple[IdentityResult, ...]:
    key = ("identities-canonical", *fam.definition.key, seconds, seed)
    return tuple(disk_cached(key, lambda: _moment_identities(_CanonicalProver(fam, seconds, seed)),
                             list))


def generic_proof(fam: Family, seconds: float, seed: int) -> list[IdentityResult] | None:
    """The identities of ``fam`` from a proof that holds for every parameter value, or None
    when ``fam`` is proved directly (no parameter, or not the catalog's own definition)."""
    if not _is_catalog_family(fam):
        return None
    if fam.name in PARAMETER_SYMBOLS:
        (param,) = fam.params
        sym = PARAMETER_SYMBOLS[fam.name]
        domain = "a positive integer" if sym.is_integer else "> 0"
        scope = f"for every {param} {domain} ({param} symbolic); here {param} = {fam.params[param]}"
        shared = _parameter_proof(fam.name, seconds, seed)
    elif fam.name == "categorical" and fam.dim >= CARRIER_K:
        scope = (
            f"for every K >= {CARRIER_K} at once: the canonical entries of categorical("
            f"{CARRIER_K}), classes >= 4 lumped into one (symmetry and lumping, see "
            f"fisher_verify._src.identities.generic); here K = {fam.dim}"
        )
        shared = _categorical_proof(CARRIER_K, seconds, seed)
    elif fam.name == "categorical":
        scope = (
            "the canonical entries; every other entry is one of them after relabelling the "
            "classes (F and the law are symmetric in them)"
        )
        shared = _categorical_proof(fam.dim, seconds, seed)
    elif fam.name == "multinomial" and len(fam.definition.support.values) <= ENUMERATION_LIMIT:
        scope = (
            "the canonical entries; every other entry is one of them after relabelling the "
            "classes (F and the law are symmetric in them); here n = "
            f"{fam.params['n']} (every count vector summed)"
        )
        shared = _canonical_proof(fam, seconds, seed)
    elif fam.name == "multinomial":
        k = fam.params["K"]
        scope = (
            f"through categorical(K={k}): the multinomial law is that of the sum of n = "
            f"{fam.params['n']} independent categorical draws (the multinomial theorem, "
            f"{len(fam.definition.support.values):.3g} count vectors, beyond the "
            f"{ENUMERATION_LIMIT} summed directly), so F = n·F_cat and every cumulant is n times "
            "the categorical's (cumulants of independent sums add); the identity proved for "
            "categorical holds for the sum"
        )
        carrier = catalog_family("categorical", K=k)
        shared = tuple(generic_proof(carrier, seconds, seed) or ())
        shared = tuple(r for r in shared if r.statement_id not in ("table-1", "fig-1"))
    else:
        return None
    results = [
        replace(r, detail=f"{r.detail}; {scope}" if r.detail else scope, family=fam.label)
        for r in shared
    ]
    extra: list[IdentityResult] = []
    if fam.dim == 1:
        p = _Prover(fam, seconds, seed)
        extra = _table_1(p) + _fig_1(p)
    for r in extra:
        r.family = fam.label
    return results + extra
