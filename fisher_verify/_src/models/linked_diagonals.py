"""Diagonals of ``I(θ)``, ``Var(Î₁)`` and ``Var(Î₂)`` of a head through a link, no ``P×P`` array
(``eq-6``, ``thm-4``, ``thm-6``; ``ext-links``): ``fv.analyze``'s large-P route of a
:class:`~fisher_verify._src.networks.linked.LinkedNetwork`.

The base Eq. 3 network's lemma-13 factors (:mod:`.mlp`) give ``∂f_j/∂W_l[r,c] = G_l[j, r] h̄_l[c]``
and ``∂²f_j/∂W_l[r,c]² = Γ^j_l[r, r] h̄_l[c]²``. Through ``h = g(f)``:

* ``∂h_a/∂W_l[r,c] = (g′ G_l)[a, r] h̄_l[c]``, so eq-6 and thm-4 are :mod:`.mlp`'s with
  ``G_l`` replaced by ``g′ G_l`` and the family's moments at ``h = g(f)``;
* ``∂²h_a/∂W_l[r,c]² = h̄_l[c]² (Σ_j g′_aj Γ^j_l[r, r] + Σ_ij g″_aij G_l[i, r] G_l[j, r])``: the
  second sum is the link's term (``g″``), which a canonical head does not have; so thm-6 is
  :mod:`.mlp`'s with ``γ_l = g′ diag Γ_l + g″[G_l, G_l]``.

The base's output ``f`` is checked against the link's domain, not the family's (``f`` is not a
natural parameter).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .mlp import (
    LargeDiagonals,
    _check_n,
    _chunks,
    _diagonal_elements,
    _forward_backward,
    _gamma_diagonals,
    _setup,
)

__all__ = ["linked_diagonals"]


class _HeadDomain:
    """Stands in for the family in the base network's pass: ``f`` is checked against the
    link's domain (the family checks ``h = g(f)`` afterwards)."""

    def __init__(self, link: Any) -> None:
        self.link = link

    def check_natural(self, f: Any) -> None:
        self.link.check_output(f.detach().cpu().numpy())


def linked_diagonals(net: Any, x: Any, n: int = 1, *, memory_budget: int | None = None
                     ) -> LargeDiagonals:
    """``diag I(θ)``, ``diag Var(Î₁)``, ``diag Var(Î₂)`` of ``net = g(f(θ))`` (module docstring).

    Memory: :func:`~.mlp.diagonals`' per-input arrays plus the link's ``n_L³`` per input, in
    chunks sized from ``memory_budget``; no ``P×P`` array.

    Raises:
        UnsupportedError: a non-C² base network (thm-6 rests on thm-3).
        DomainError: ``f`` outside the link's domain, or ``g(f)`` outside the family's.
    """
    link = net.link
    base = net.base
    net.require_c2("the variance of the Hessian estimator (thm-6)", x)
    s = _setup(base, x, None, None)
    s = replace(s, family=_HeadDomain(link))
    fam = net.family
    N = _check_n(n)
    torch = s.torch
    shapes = [tuple(W.shape) for W in s.weights]
    acc = {key: [torch.zeros(sh, dtype=s.dtype, device=s.device) for sh in shapes]
           for key in ("f", "v1", "v2")}
    per = _diagonal_elements(replace(s, family=fam), True, True, True) + 4 * s.n_L**3
    for Xc in _chunks(s, per, None, memory_budget):
        q = _forward_backward(s, Xc)
        f = q.h.cpu().numpy()
        d1 = torch.as_tensor(link.jacobian(f), dtype=s.dtype, device=s.device)  # (m, a, j)
        d2 = torch.as_tensor(link.hessian(f), dtype=s.dtype, device=s.device)  # (m, a, i, j)
        h = torch.as_tensor(link.natural(f), dtype=s.dtype, device=s.device)
        fam.check_natural(h)
        mom = fam.contractions(h)
        gam = _gamma_diagonals(s, q)
        for layer, G in enumerate(q.G):
            Gh = d1 @ G  # ∂h/∂a_l (m, n_L, n_{l+1})
            hb2 = q.hbar[layer] ** 2
            c4, quad = mom.excess4(Gh.transpose(1, 2))
            acc["v1"][layer] += c4.T @ (hb2 * hb2)
            acc["f"][layer] += quad.T @ hb2
            gh = d1 @ gam[layer] + torch.einsum("maij,mir,mjr->mar", d2, G, G)
            acc["v2"][layer] += mom.quad(gh, gh).T @ (hb2 * hb2)
    scale = {"f": 1.0 / s.M, "v1": 1.0 / (s.M * s.M * N), "v2": 1.0 / (s.M * s.M * N)}
    out = {key: (torch.cat([b.reshape(-1) for b in blocks]) * scale[key]).cpu().numpy()
           for key, blocks in acc.items()}
    return LargeDiagonals(out["f"], out["v1"], out["v2"], int(n), str(s.device),
                          str(s.dtype).replace("torch.", ""))
