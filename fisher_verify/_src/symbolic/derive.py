"""Cumulants of an exponential family derived from its log-partition (``lemma-2``, ``lemma-5``).

All tensors are symmetric, so only sorted index tuples are differentiated; the full tensor
is filled from them. The expressions stay in the stable functions of
:mod:`fisher_verify._src.symbolic.safe`, so that code printed from them is stable too.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp


@dataclass(frozen=True)
class SymmetricTensor:
    """A symmetric tensor of order ``order`` over ``dim`` indices, stored by sorted index."""

    dim: int
    order: int
    entries: dict[tuple[int, ...], sp.Expr]

    def __getitem__(self, index: tuple[int, ...]) -> sp.Expr:
        return self.entries[tuple(sorted(index))]

    def unique_indices(self) -> list[tuple[int, ...]]:
        """Sorted index tuples, in a fixed order (the order kernels return values in)."""
        return list(itertools.combinations_with_replacement(range(self.dim), self.order))

    def to_array(self) -> sp.Array:
        """The full dense SymPy array (dim^order entries)."""
        shape = (self.dim,) * self.order
        flat = [self[idx] for idx in itertools.product(range(self.dim), repeat=self.order)]
        return sp.Array(flat, shape) if self.order else sp.Array(flat[0])


def derivative_tensors(
    f: sp.Expr, symbols: Sequence[sp.Symbol], max_order: int
) -> list[SymmetricTensor]:
    """Derivative tensors ∂^k f for k = 1..max_order, each from the one below it."""
    tensors: list[SymmetricTensor] = []
    previous: dict[tuple[int, ...], sp.Expr] = {(): f}
    d = len(symbols)
    for order in range(1, max_order + 1):
        entries: dict[tuple[int, ...], sp.Expr] = {}
        for idx in itertools.combinations_with_replacement(range(d), order):
            entries[idx] = sp.diff(previous[idx[:-1]], symbols[idx[-1]])
        tensors.append(SymmetricTensor(d, order, entries))
        previous = entries
    return tensors


def central_moment4_from_cumulants(
    fisher: SymmetricTensor, kappa4: SymmetricTensor
) -> SymmetricTensor:
    """K_abcd = κ_abcd + I_ab I_cd + I_ac I_bd + I_ad I_bc (``lemma-5``)."""
    entries: dict[tuple[int, ...], sp.Expr] = {}
    for a, b, c, dd in kappa4.unique_indices():
        entries[(a, b, c, dd)] = (
            kappa4[(a, b, c, dd)]
            + fisher[(a, b)] * fisher[(c, dd)]
            + fisher[(a, c)] * fisher[(b, dd)]
            + fisher[(a, dd)] * fisher[(b, c)]
        )
    return SymmetricTensor(kappa4.dim, 4, entries)


@dataclass(frozen=True)
class Derivation:
    """What SymPy derives from one family definition."""

    log_partition: sp.Expr
    eta: SymmetricTensor  # order 1: η = ∂F
    fisher: SymmetricTensor  # order 2: I = ∂²F (lemma-2)
    kappa3: SymmetricTensor  # order 3
    kappa4: SymmetricTensor  # order 4
    central_moment4: SymmetricTensor  # K (lemma-5)


def derive(log_partition: sp.Expr, h: Sequence[sp.Symbol]) -> Derivation:
    """Derive η, I, κ₃, κ₄ and K from the log-partition F(h) (``lemma-2``, ``lemma-5``)."""
    eta, fisher, kappa3, kappa4 = derivative_tensors(log_partition, h, 4)
    return Derivation(
        log_partition=log_partition,
        eta=eta,
        fisher=fisher,
        kappa3=kappa3,
        kappa4=kappa4,
        central_moment4=central_moment4_from_cumulants(fisher, kappa4),
    )
