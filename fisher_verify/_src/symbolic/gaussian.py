"""Integrals of a polynomial times a Gaussian over ℝᵏ in closed form (Fubini, one axis at a
time), where SymPy's ``integrate`` leaves them unevaluated for symbolic coefficients: the
density route of a vector family on ℝᵏ (the multivariate normal)."""

from __future__ import annotations

import sympy as sp

__all__ = ["gaussian_integral"]


def gaussian_integral(g: sp.Expr, exponent: sp.Expr, axes: tuple[sp.Symbol, ...]) -> sp.Expr:
    """∫_{ℝᵏ} g(y) e^{E(y)} dy for g a polynomial and E a quadratic in the axes, one axis at a
    time: with E = −a y² + b y + c in that axis (a > 0),

        ∫ yᵐ e^{−a y² + b y} dy = ∂ᵐ/∂bᵐ (√(π/a) e^{b²/(4a)}) = √(π/a) Pₘ(b) e^{b²/(4a)},

    P₀ = 1, Pₘ₊₁ = Pₘ′ + b/(2a) Pₘ (the one-dimensional Gaussian integral; SymPy's
    ``integrate`` leaves these unevaluated for a symbolic b). What is left is again a
    polynomial times the exponential of a quadratic in the other axes.

    Raises:
        ValueError: E is not a quadratic with a negative leading coefficient in some axis.
    """
    g, exponent = sp.expand(g), sp.expand(exponent)
    beta = sp.Dummy("beta")
    for y in axes:
        q = sp.Poly(exponent, y)
        if q.degree() != 2:
            raise ValueError("the exponent is not quadratic in y")
        a, b, c = -q.coeff_monomial(y**2), q.coeff_monomial(y), q.coeff_monomial(1)
        if not a.is_positive:
            raise ValueError("the exponent is not a Gaussian in y")
        poly_g = sp.Poly(g, y)
        deg = poly_g.degree()
        ps = [sp.Integer(1)]
        for _ in range(max(deg, 0)):
            ps.append(sp.expand(sp.diff(ps[-1], beta) + beta / (2 * a) * ps[-1]))
        inner = sp.Add(*[coeff * ps[m] for (m,), coeff in poly_g.terms()])
        g = sp.expand(sp.sqrt(sp.pi / a) * inner.subs(beta, b))
        exponent = sp.expand(c + b**2 / (4 * a))
    return g * sp.exp(exponent)
