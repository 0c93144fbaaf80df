"""The family's moments contracted with Jacobian columns, batched and without an ``n_L⁴ P`` array.

For one input with ``h = h_L(x)`` and a column ``u = J[:, i]`` (``n_L`` entries):

* eq-6:  ``uᵀ I(h) u``;
* thm-4: ``C[u, u, u, u]`` with ``C = K − I⊗I`` (remark-4.1), ``K`` the 4th central moment.

The contractions are the family's own (``Family.contractions``,
:mod:`fisher_verify._src.families.contractions`): the categorical family's direct forms on its finite
support (O(K) per parameter, centred at the dominant class so saturated logits keep their
relative accuracy), the dense ``C`` (``n_L⁴`` numbers per input, contracted with ``u ⊗ u``)
for the others. The same objects serve the Eq. 3 path of :mod:`fisher_verify._src.models.mlp`.
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []  # nothing for other rooms


def per_parameter_factor(family: Any, n_L: int, fourth: bool) -> int:
    """Numbers held per parameter per output per input (Jacobian rows and temporaries): the
    dense ``C[u⁴]`` route holds ``u ⊗ u`` and its product with C (thm-4); direct forms do not."""
    if not fourth or family.contraction_entries() == 0:
        return 5
    return 4 + 2 * n_L


def excess_pairs(family: Any, h: Any, G: Any) -> tuple[Any, Any]:
    """``⟨C_m, C_{m'} ×₄ G_{mm'}⟩`` for every pair (M, M) and ``‖C_m‖_F`` (M,) (thm-4, thm-7).

    ``G[m, m'] = J_m J_{m'}ᵀ`` (M, M, n_L, n_L); contracted by the family (O(K²) per pair for
    the categorical family, the dense ``C`` otherwise), one row of pairs at a time.
    """
    ctr = family.contractions(h)
    return ctr.pair_rows(G), ctr.excess_fro_norms()
