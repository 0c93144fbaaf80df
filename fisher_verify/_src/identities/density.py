"""Moments of t(y) computed from the family's own density (the independent route).

E[g(y)] = ∫ g(y) exp(t(y)ᵀh + log b(y)) dμ(y) / Z(h), with Z(h) computed here as well, so
nothing in this module uses the log-partition F. Symbolic when SymPy can sum or integrate
in closed form within a time limit; callers fall back to mpmath otherwise.

A one-dimensional count family whose parameter is a symbol (binomial with n symbolic,
negative binomial with r symbolic) is summed as a hypergeometric series: the ratio of
consecutive terms b(y+1)e^{h(y+1)} / b(y)e^{hy} is read off the density, the series is closed
by ``hyperexpand``, and E[yᵏ] = Z⁽ᵏ⁾(h)/Z(h) by termwise differentiation (exact for a
terminating series, and inside the radius of convergence for an infinite one).
"""

from __future__ import annotations

import sympy as sp

from ..families.definition import FamilyDefinition
from ..symbolic.gaussian import gaussian_integral


def _unevaluated(expr: sp.Expr) -> bool:
    return bool(expr.has(sp.Sum, sp.Integral, sp.Piecewise, sp.hyper)) or expr.has(
        sp.nan, sp.zoo
    )


def _uses_series(definition: FamilyDefinition) -> bool:
    """Whether the support is summed as a hypergeometric series (a symbolic upper end, or a
    parameter symbol in the base measure of a countable support)."""
    s = definition.support
    if definition.dim != 1 or s.kind == "continuous":
        return False
    return s.last is not None or bool(definition.log_base.free_symbols - {definition.y})


def generating_series(definition: FamilyDefinition) -> sp.Expr:
    """Z(h) = Σ_y b(y) e^{hy} in closed form, as a hypergeometric series read off the density.

    Raises:
        ValueError: the term ratio is not a ratio of products of linear factors in y, or
            ``hyperexpand`` cannot close the series.
    """
    d = definition
    y, (h,) = d.y, d.h
    x = sp.Dummy("x", positive=True)  # e^h
    term = sp.exp(d.log_base) * x**y
    shifted = term.subs(y, y + d.support.start)
    ratio = sp.factor(sp.gammasimp(sp.combsimp(shifted.subs(y, y + 1) / shifted)))
    num, den = sp.fraction(ratio)
    upper: list[sp.Expr] = []
    lower: list[sp.Expr] = []
    scale = sp.Integer(1)
    for poly_expr, params, sign in ((num, upper, 1), (den, lower, -1)):
        poly = sp.Poly(poly_expr, y)
        roots = sp.roots(poly)
        if sum(roots.values()) != poly.degree():
            raise ValueError("term ratio does not split into linear factors")
        scale *= poly.LC() ** sign
        for root, mult in roots.items():
            params.extend([-root] * mult)
    if sp.Integer(1) in lower:
        lower.remove(sp.Integer(1))
    else:
        upper.append(sp.Integer(1))
    z = sp.simplify(scale)
    if not z.has(x):
        raise ValueError("the term ratio does not carry e^h")
    first = sp.simplify(shifted.subs(y, 0))
    closed = sp.hyperexpand(sp.hyper(upper, lower, z))
    if closed.has(sp.hyper):
        raise ValueError("hyperexpand left the series unevaluated")
    return sp.simplify((first * closed).subs(x, sp.exp(h)))


def _series_integral(definition: FamilyDefinition, g: sp.Expr) -> sp.Expr:
    """Σ g(y) b(y) e^{hy} for a polynomial g, as Σ_k g_k ∂ᵏZ/∂hᵏ with Z the closed series."""
    z = generating_series(definition)
    poly = sp.Poly(sp.expand(g), definition.y)
    (h,) = definition.h
    return sp.Add(*[c * sp.diff(z, h, k) for (k,), c in zip(poly.monoms(), poly.coeffs())])


def _positive_stand_ins(definition: FamilyDefinition) -> dict[sp.Symbol, sp.Expr]:
    """h_j → −s_j with s_j > 0 for the components that must be negative: SymPy then integrates
    e^{−s y} y^a without branch factors (exp_polar) it cannot simplify away."""
    return {definition.h[j]: -sp.Dummy(f"s{j}", positive=True) for j in definition.negative}


def _powers_of_logs(expr: sp.Expr, y: sp.Symbol) -> sp.Expr:
    """exp(a + c·log y) → y^c · exp(a), which SymPy integrates where it cannot the former."""
    expr = sp.expand(sp.expand_log(expr, force=True))
    factor, rest = sp.Integer(1), sp.Integer(0)
    for term in sp.Add.make_args(expr):
        coeff, logs = term.as_independent(y)
        if isinstance(logs, sp.log) and logs.args[0] == y:
            factor *= y**coeff
        else:
            rest += term
    return factor * sp.exp(rest)


def _has_log_power(expr: sp.Expr, y: sp.Symbol) -> bool:
    """Whether log y occurs other than as a power y^c (e.g. log² y in an exponent)."""
    return any(
        isinstance(e, sp.log) and e.args[0] == y for e in sp.preorder_traversal(expr)
    )


def density_integral(definition: FamilyDefinition, g: sp.Expr) -> sp.Expr:
    """∫ g(y) exp(t(y)ᵀh) b(y) dμ(y) in closed form (unnormalized).

    Raises:
        ValueError: SymPy left the sum or integral unevaluated (callers wrap this in
            :func:`fisher_verify._src.symbolic.timelimit.attempt`).
    """
    d = definition
    y = d.y
    if _uses_series(d):
        return _series_integral(d, g)
    stand_ins = _positive_stand_ins(d)
    exponent = sum(t * h for t, h in zip(d.statistic, d.h)) + d.log_base
    if d.support.kind == "finite":
        kernel = sp.exp(exponent)
        ys = d.y_symbols
        result = sp.Add(*[
            (g * kernel).subs(dict(zip(ys, v if isinstance(v, tuple) else (v,))))
            for v in d.support.values
        ])
    elif d.event:
        # a vector y on ℝᵏ (multivariate normal): one axis after another (Fubini)
        result = gaussian_integral(g, exponent, d.event)
    elif d.support.kind == "countable":
        result = sp.summation(sp.expand(g * sp.exp(exponent)), (y, d.support.start, sp.oo))
        if isinstance(result, sp.Piecewise):
            result = result.args[0][0]  # the convergent branch; the domain h < 0 selects it
        if _unevaluated(result) and d.dim == 1:
            return _series_integral(d, g)  # e.g. Poisson: Σ yᵏ e^{hy}/y! does not close directly
    else:
        integrand = sp.expand(g) * _powers_of_logs(exponent.subs(stand_ins), y)
        lower, upper = d.support.lower, d.support.upper
        if lower == 0 and upper == sp.oo and _has_log_power(integrand, y):
            # log² y in the density (log-normal): y = eᵘ, dy = eᵘ du turns it into a Gaussian
            # integral over the real line, which SymPy closes where it cannot the former
            u = sp.Dummy("u", real=True)
            integrand = sp.expand(
                sp.expand_log(integrand.subs(y, sp.exp(u)), force=True) * sp.exp(u)
            )
            integrand = sp.powsimp(sp.expand(integrand), combine="exp")
            y, lower, upper = u, -sp.oo, sp.oo
        result = sp.integrate(sp.expand(integrand), (y, lower, upper), conds="none")
        result = result.subs({-v: -h for h, v in stand_ins.items()})  # s_j back to −h_j
    if _unevaluated(result):
        raise ValueError("SymPy left the sum or integral unevaluated")
    return result


def raw_moments(
    definition: FamilyDefinition, monomials: list[tuple[int, ...]]
) -> dict[tuple[int, ...], sp.Expr]:
    """E[Π_a t_a^{k_a}] for each exponent tuple, from the density (normalized by its own Z)."""
    z = density_integral(definition, sp.Integer(1))
    out: dict[tuple[int, ...], sp.Expr] = {}
    for powers in monomials:
        g = sp.Mul(*[t**k for t, k in zip(definition.statistic, powers)])
        out[powers] = density_integral(definition, g) / z
    return out
