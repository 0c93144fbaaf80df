"""Independent products of families, for networks with several output units of mixed kinds.

For y = (y¹, …, yᵐ) independent, t = (t¹, …, tᵐ) and F(h) = Σ_c F_c(h^c): every cumulant
tensor is block-diagonal (an entry is nonzero only when all its indices fall in one block),
while K = κ₄ + the three I⊗I permutations (``lemma-5``) couples blocks through I⊗I.
The derivation is assembled from the components', never re-derived.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import sympy as sp

from ..errors import ParameterError, UnsupportedError
from ..symbolic.derive import Derivation, SymmetricTensor, central_moment4_from_cumulants
from .definition import FamilyDefinition, Support
from .family import Family


def _shift(expr: sp.Expr, mapping: dict[sp.Symbol, sp.Symbol]) -> sp.Expr:
    return expr.xreplace(mapping)


def product(*components: Family) -> Family:
    """The independent product of ``components`` (``family("product", components=[...])``).

    Its y has shape (..., m) for m components; t(y), h and every tensor concatenate the
    components' in order.
    """
    if len(components) < 1 or not all(isinstance(c, Family) for c in components):
        raise ParameterError(
            "product() needs one or more Family objects, e.g. product(family('bernoulli'), family('normal'))"
        )
    return ProductFamily(list(components))


class ProductFamily(Family):
    """A :class:`Family` whose kernels are the components' kernels, assembled blockwise."""

    def __init__(self, components: list[Family]) -> None:
        self.components = components
        self.strategy_margin = max(c.strategy_margin for c in components)
        offsets = np.cumsum([0] + [c.dim for c in components])
        self.blocks = [slice(int(offsets[i]), int(offsets[i + 1])) for i in range(len(components))]
        h_syms: list[sp.Symbol] = []
        stats: list[sp.Expr] = []
        self._renames: list[dict[sp.Symbol, sp.Symbol]] = []
        y_syms: list[sp.Symbol] = []
        y_renames: list[dict[sp.Symbol, sp.Symbol]] = []
        # where each component's y lies on the product's last axis: one slot for a scalar y,
        # len(event) slots for a vector y (a multinomial's counts)
        self.y_slots: list[int | slice] = []
        for ci, comp in enumerate(components):
            d = comp.definition
            rename = {s: sp.Symbol(f"{s.name}_{ci + 1}", **s.assumptions0) for s in d.h}
            y_rename = {s: sp.Symbol(f"{s.name}_{ci + 1}" if d.event else f"y_{ci + 1}",
                                     **s.assumptions0) for s in d.y_symbols}
            self._renames.append(rename)
            y_renames.append(y_rename)
            h_syms.extend(rename[s] for s in d.h)
            stats.extend(_shift(t, y_rename) for t in d.statistic)
            start = len(y_syms)
            y_syms.extend(y_rename[s] for s in d.y_symbols)
            self.y_slots.append(slice(start, len(y_syms)) if d.event else start)
        definition = FamilyDefinition(
            name="product",
            params={"components": tuple(c.label for c in components)},
            h=tuple(h_syms),
            y=y_syms[0],
            statistic=tuple(stats),
            log_base=sp.Add(
                *[
                    _shift(c.definition.log_base, y_renames[i])
                    for i, c in enumerate(components)
                ]
            ),
            support=Support("continuous"),
            log_partition=sp.Add(
                *[
                    _shift(c.definition.log_partition, self._renames[i])
                    for i, c in enumerate(components)
                ]
            ),
            negative=tuple(
                self.blocks[i].start + j
                for i, c in enumerate(components)
                for j in c.definition.negative
            ),
            domain_text="; ".join(f"{c.label}: {c.definition.domain_text}" for c in components),
            sampler=self._sample_impl,
            description="independent product of " + ", ".join(c.label for c in components),
        )
        super().__init__(definition)
        self.y_symbols = tuple(y_syms)

    @property
    def label(self) -> str:
        """``product(bernoulli, normal(sigma=1))``."""
        return "product(" + ", ".join(c.label for c in self.components) + ")"

    @property
    def factors(self) -> tuple[Family, ...]:
        """The independent components, in order."""
        return tuple(self.components)

    @property
    def factor_blocks(self) -> tuple[slice, ...]:
        """Each component's slice of h and t."""
        return tuple(self.blocks)

    def projected_central_moments(self, h: np.ndarray, U: np.ndarray, order: int) -> np.ndarray:
        """The components' projected moments convolved (independent terms of ``uᵀ(t − η)``,
        lemma-2): never a tensor product of their node grids."""
        from .higher_moments import convolve_moments

        out: np.ndarray | None = None
        for comp, b in zip(self.components, self.blocks):
            mom = comp.projected_central_moments(h[..., b], U[..., b], order)
            out = mom if out is None else convolve_moments(out, mom)
        assert out is not None
        return out

    def kappa4_diagonal(self, h: Any, u: Any) -> Any:
        """``κ₄[u⁴]`` component by component (lemma-5: κ₄ of independent components is
        block-diagonal), each in its own direct form."""
        return sum(c.kappa4_diagonal(h[:, b], u[..., b])
                   for c, b in zip(self.components, self.blocks))

    # --- symbolic: assembled from the components' derivations -------------------------------------

    @property
    def derivation(self) -> Derivation:
        """Block-diagonal cumulants assembled from the components (no re-derivation)."""
        if not hasattr(self, "_derivation"):
            tensors: dict[str, SymmetricTensor] = {}
            for name, order in (("eta", 1), ("fisher", 2), ("kappa3", 3), ("kappa4", 4)):
                entries: dict[tuple[int, ...], sp.Expr] = {}
                for idx in itertools.combinations_with_replacement(range(self.dim), order):
                    entries[idx] = sp.Integer(0)
                for ci, comp in enumerate(self.components):
                    part: SymmetricTensor = getattr(comp.derivation, name)
                    off = self.blocks[ci].start
                    for idx, expr in part.entries.items():
                        entries[tuple(i + off for i in idx)] = _shift(expr, self._renames[ci])
                tensors[name] = SymmetricTensor(self.dim, order, entries)
            self._derivation = Derivation(
                log_partition=self.definition.log_partition,
                eta=tensors["eta"],
                fisher=tensors["fisher"],
                kappa3=tensors["kappa3"],
                kappa4=tensors["kappa4"],
                central_moment4=central_moment4_from_cumulants(
                    tensors["fisher"], tensors["kappa4"]
                ),
            )
        return self._derivation

    # --- data ----------------------------------------------------------------------------------------

    def _split(self, h: np.ndarray) -> list[np.ndarray]:
        return [h[..., b] for b in self.blocks]

    def _sample_impl(self, h: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        draws = [c.sample(hc, n, rng) for c, hc in zip(self.components, self._split(h))]
        return np.concatenate(
            [y if isinstance(slot, slice) else y[..., None]
             for y, slot in zip(draws, self.y_slots)], -1
        )

    def statistic(self, y: Any) -> np.ndarray:
        """t(y) for y of shape (..., m) (m: one slot per scalar component, len(event) per
        vector one): the components' statistics concatenated."""
        y = np.asarray(y, dtype=float)
        return np.concatenate(
            [c.statistic(y[..., slot]) for slot, c in zip(self.y_slots, self.components)], -1
        )

    def log_base(self, y: Any) -> np.ndarray:
        """Σ_c log b_c(y_c)."""
        y = np.asarray(y, dtype=float)
        return sum(  # type: ignore[return-value]
            c.log_base(y[..., slot]) for slot, c in zip(self.y_slots, self.components)
        )

    def expectation_nodes(
        self, h: np.ndarray, degree: int = 4, tol: float = 1e-15
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Tensor product of the components' rules (exact where each component's rule is)."""
        h = np.asarray(h, dtype=float)
        self.check_natural(h)
        t_all: np.ndarray | None = None
        w_all: np.ndarray | None = None
        tail = 0.0
        for comp, hc in zip(self.components, self._split(h)):
            t, w, tl = comp.expectation_nodes(hc, degree, tol)
            tail += tl
            if t_all is None or w_all is None:
                t_all, w_all = t, w
                continue
            s1, s2 = w_all.shape[-1], w.shape[-1]
            batch = w.shape[:-1]
            t_all = np.concatenate(
                [
                    np.broadcast_to(t_all[..., :, None, :], batch + (s1, s2, t_all.shape[-1])),
                    np.broadcast_to(t[..., None, :, :], batch + (s1, s2, t.shape[-1])),
                ],
                -1,
            ).reshape(batch + (s1 * s2, -1))
            w_all = (w_all[..., :, None] * w[..., None, :]).reshape(batch + (s1 * s2,))
        assert t_all is not None and w_all is not None
        return t_all, w_all, tail

    def integral_mp(self, h: Any, g: Any = None) -> Any:
        """Z(h) = Π_c Z_c(h^c); other integrands do not factor and are refused."""
        if g is not None:
            raise UnsupportedError("product families integrate only g = 1; use moment_mp for moments")
        result = 1
        for ci, comp in enumerate(self.components):
            result *= comp.integral_mp(list(h)[self.blocks[ci]])
        return result

    def moment_mp(self, powers: tuple[int, ...], h: Any, center: bool = True) -> Any:
        """Product of the components' moments (independence)."""
        result = 1
        for ci, comp in enumerate(self.components):
            b = self.blocks[ci]
            result *= comp.moment_mp(tuple(powers[b]), list(h)[b], center)
        return result
