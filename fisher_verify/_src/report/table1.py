"""``table-1`` regenerated for every family of the catalog: F(h), h(mean), F'' and F⁽⁴⁾ in the
mean parameters, as SymPy expressions from each family's own derivation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: SymPy's simplify has no time limit: on the sphere's entries (sinh, cosh: trigsimp) and the
#: full covariance's (rational in five means: resultants) it ran for many minutes. An entry is
#: simplified only when it is at most this many operations, in at most this many symbols, of
#: elementary functions exp and log alone; otherwise it is shown as derived. Every entry of the
#: paper's families (and of the catalog's before the sphere and the covariance) meets all three
#: (the largest: 77 operations, 3 symbols), so their rows read as before.
SIMPLIFY_MAX_OPS = 80
SIMPLIFY_MAX_SYMBOLS = 3


def _simplifiable(expr: Any) -> bool:
    import sympy as sp

    functions = {type(f) for f in expr.atoms(sp.Function)}
    return (sp.count_ops(expr) <= SIMPLIFY_MAX_OPS
            and len(expr.free_symbols) <= SIMPLIFY_MAX_SYMBOLS
            and functions <= {sp.exp, sp.log})


def _simplify(expr: Any) -> Any:
    import sympy as sp

    from ..symbolic.safe import to_naive

    expr = to_naive(expr)
    if not _simplifiable(expr):
        return expr
    try:
        return sp.factor(sp.simplify(expr))
    except Exception:  # noqa: BLE001 - a report row never fails on simplification
        return expr


def _textbook(expr: Any) -> Any:
    """F as the paper writes it: the stable functions replaced, nothing simplified
    (SymPy would turn -2 log(-h) into -log(h²), equal on h < 0 but not the paper's form)."""
    from ..symbolic.safe import to_naive

    return to_naive(expr)


def _paper_sign(expr: Any) -> Any:
    """``−p(p − 1)`` written as the paper does, ``p(1 − p)``: a negative product with a factor
    whose constant term is negative takes the sign into that factor (same value)."""
    import sympy as sp

    if not isinstance(expr, sp.Mul):
        return expr
    coeff, factors = expr.as_coeff_mul()
    if coeff >= 0:
        return expr
    for i, f in enumerate(factors):
        if isinstance(f, sp.Add) and f.as_coeff_add()[0] < 0:
            return sp.Mul(-coeff, *factors[:i], *factors[i + 1:], -f)
    return expr


def _display_symbols(expr: Any, symbols: Sequence[Any]) -> Any:
    """A mean symbol named as a square (``sigma2``, the variance) shown as one: σ², not σ₂."""
    import sympy as sp

    from .mathml import _GREEK

    subs = {}
    for sym in symbols:
        m = re.fullmatch(r"([A-Za-z]+)2", sym.name)
        if m and m.group(1) in _GREEK:
            subs[sym] = sp.Symbol(m.group(1), positive=True) ** 2
    return expr.subs(subs) if subs else expr


def table_1_rows() -> list[dict[str, Any]]:
    """``table-1`` for every family of the catalog: F(h), h(mean), F'' and F⁽⁴⁾ in the mean.

    For a vector family (categorical, normal with unknown variance) h(mean) is a vector, F'' the
    matrix I in the mean parameters and F⁽⁴⁾ the diagonal κ_aaaa. Every entry is a SymPy
    expression from the family's own derivation.
    """
    import sympy as sp

    from ..families.registry import family, family_names

    rows = []
    for name in family_names():
        fam = family(name)
        d = fam.definition
        row: dict[str, Any] = {"family": fam.label, "F": _textbook(d.log_partition)}
        fisher = fam.symbolic("fisher")
        kappa4 = fam.symbolic("kappa4")
        subs: dict[Any, Any] = {}
        if d.natural_of_mean is None or not d.mean_symbols:
            row["h"] = d.h[0] if fam.dim == 1 else sp.Matrix(d.h)
        else:
            subs = dict(zip(d.h, d.natural_of_mean, strict=True))
            row["h"] = d.natural_of_mean[0] if fam.dim == 1 else sp.Matrix(d.natural_of_mean)
        row["mean"] = d.mean_symbols[0] if fam.dim == 1 else sp.Matrix(d.mean_symbols)
        means = list(d.mean_symbols)
        # categorical: the mean parameters are probabilities with Σ p = 1
        simplex = name == "categorical"

        def in_mean(expr: Any, indices: tuple[int, ...] = (), subs: dict[Any, Any] = subs,
                    means: list[Any] = means, simplex: bool = simplex) -> Any:
            value = _textbook(sp.sympify(expr)).subs(subs)
            if simplex:
                # eliminate one probability not indexed by the entry, so that an entry that
                # depends on p_a alone reads as a function of p_a (p0 (1 - p0), not p0 (p1 + p2))
                j = max(i for i in range(len(means)) if i not in indices)
                rest = sp.Add(*(m for i, m in enumerate(means) if i != j))
                value = sp.expand(value.subs(means[j], 1 - rest))
            return _display_symbols(_paper_sign(_simplify(value)), means)

        if fam.dim == 1:
            row["F2"] = in_mean(fisher[0, 0])
            row["F4"] = in_mean(kappa4[0, 0, 0, 0])
        else:
            dim = fam.dim
            row["F2"] = sp.Matrix([[in_mean(fisher[a, b], (a, b)) for b in range(dim)]
                                   for a in range(dim)])
            row["F4"] = sp.Matrix([in_mean(kappa4[a, a, a, a], (a,)) for a in range(dim)])
        row["h"] = _display_symbols(row["h"], means)
        row["mean"] = _display_symbols(row["mean"], means)
        rows.append(row)
    return rows


