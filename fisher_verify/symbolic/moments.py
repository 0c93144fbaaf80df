"""Moments of t(y) computed from the family's own density (the independent route).

E[g(y)] = ∫ g(y) exp(t(y)ᵀh + log b(y)) dμ(y) / Z(h), with Z(h) computed here as well, so
nothing in this module uses the log-partition F. Symbolic when SymPy can sum or integrate
in closed form within a time limit; callers fall back to mpmath otherwise.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, TypeVar

import sympy as sp

from ..families.definition import FamilyDefinition

T = TypeVar("T")


class SymbolicTimeout(Exception):
    """SymPy did not finish within the time limit."""


@contextmanager
def time_limit(seconds: float) -> Any:
    """Abort the block after ``seconds`` (main thread only; elsewhere no limit applies)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise SymbolicTimeout

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _unevaluated(expr: sp.Expr) -> bool:
    return bool(expr.has(sp.Sum, sp.Integral, sp.Piecewise)) or expr.has(sp.nan, sp.zoo)


def density_integral(definition: FamilyDefinition, g: sp.Expr) -> sp.Expr:
    """∫ g(y) exp(t(y)ᵀh) b(y) dμ(y) in closed form (unnormalized).

    Raises:
        SymbolicTimeout: never here; callers wrap it in :func:`time_limit`.
        ValueError: SymPy left the sum or integral unevaluated.
    """
    d = definition
    y = d.y
    kernel = sp.exp(sum(t * h for t, h in zip(d.statistic, d.h)) + d.log_base)
    integrand = g * kernel
    if d.support.kind == "finite":
        result = sp.Add(*[integrand.subs(y, v) for v in d.support.values])
    elif d.support.kind == "countable":
        result = sp.summation(sp.expand(integrand), (y, d.support.start, sp.oo))
        if isinstance(result, sp.Piecewise):
            result = result.args[0][0]  # the convergent branch; the domain h < 0 selects it
    else:
        result = sp.integrate(
            sp.expand(integrand), (y, d.support.lower, d.support.upper), conds="none"
        )
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


def attempt(fn: Callable[[], T], seconds: float) -> T | None:
    """``fn()`` or None when SymPy times out or cannot finish in closed form."""
    try:
        with time_limit(seconds):
            return fn()
    except (SymbolicTimeout, ValueError, NotImplementedError, TypeError, RecursionError):
        return None
