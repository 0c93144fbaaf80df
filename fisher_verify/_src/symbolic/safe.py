"""Numerically stable elementary functions, as SymPy functions with one kernel per backend.

The derivations keep these functions opaque, and each one knows its own derivative
(``fdiff``) in terms of stable functions again, so that SymPy's ``diff`` of a
log-partition written with them yields cumulants that `lambdify` prints as calls to the
stable kernels instead of textbook formulas (a naive derivative of ``log(1+e^h)`` is NaN at
h = 800). Each function also knows its textbook form (:meth:`SafeFunction.naive`), which
the proofs substitute to show that the stable expression equals the naive derivative.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .polygamma import TAYLOR_RATIO, TAYLOR_TERMS, _digamma, hurwitz, np_lgamma_diff, np_polygamma
from .radial import mp_radial, radial_kernel


class SafeFunction(sp.Function):
    """Base class: a function with a textbook form and stable numeric kernels."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:  # pragma: no cover - abstract
        raise NotImplementedError

    def _print_as_call(self, printer: Any) -> str:
        # A plain call, resolved in the namespace that `lambdify` gets for each backend.
        return f"{type(self).__name__}({', '.join(printer._print(a) for a in self.args)})"

    _torchcode = _print_as_call
    _mpmathcode = _print_as_call


class expit(SafeFunction):  # noqa: N801 - the printed name is the kernel's name
    """Logistic function 1 / (1 + exp(-x)); d/dx = expit(x) expit(-x)."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return 1 / (1 + sp.exp(-args[0]))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x = self.args[0]
        return expit(x) * expit(-x)


class softplus(SafeFunction):  # noqa: N801
    """log(1 + exp(x)); d/dx = expit(x)."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return sp.log(1 + sp.exp(args[0]))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return expit(self.args[0])


class logsumexp(SafeFunction):  # noqa: N801
    """log(sum_k exp(x_k)); d/dx_k = softmax(k, x)."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return sp.log(sp.Add(*[sp.exp(x) for x in args]))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return softmax(sp.Integer(argindex - 1), *self.args)


class softmax(SafeFunction):  # noqa: N801
    """softmax(k, h_0, ..., h_{K-1}) = exp(h_k) / sum_j exp(h_j)."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        k, hs = int(args[0]), args[1:]
        return sp.exp(hs[k]) / sp.Add(*[sp.exp(h) for h in hs])

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        k, hs = self.args[0], self.args[1:]
        j = argindex - 2
        if j < 0:
            raise sp.ArgumentIndexError(self, argindex)
        if j == int(k):
            # p_k (1 - p_k) with the complement kept apart, so p_k -> 1 keeps accuracy
            return softmax(k, *hs) * softmax_comp(k, *hs)
        return -softmax(k, *hs) * softmax(sp.Integer(j), *hs)


class softmax_comp(SafeFunction):  # noqa: N801
    """softmax_comp(k, h...) = 1 - softmax(k, h...), computed without cancellation."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return 1 - softmax.naive(*args)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return -softmax(*self.args).fdiff(argindex)


class log1mexp(SafeFunction):  # noqa: N801
    """log(1 - exp(x)) for x < 0; d/dx = -inv_expm1(-x)."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return sp.log(1 - sp.exp(args[0]))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return -inv_expm1(-self.args[0])


class inv_expm1(SafeFunction):  # noqa: N801
    """1 / (exp(x) - 1); d/dx = -g (1 + g) with g = inv_expm1(x)."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return 1 / (sp.exp(args[0]) - 1)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        g = inv_expm1(self.args[0])
        return -g * (1 + g)


class logarithmic_cumulant(SafeFunction):  # noqa: N801
    """logarithmic_cumulant(k, h) = d^k/dh^k log(−log(1 − eʰ)), h < 0: the k-th cumulant of the
    logarithmic (log-series) law, k ≤ 4 (k = 0: its log-partition). d/dh raises k by one.

    Its kernels switch between two forms at θ = eʰ = 1/2 (:func:`_logarithmic_series`): a
    series in θ with a proven tail bound below (the closed forms cancel there: at h = −700 the
    variance θ/2 ~ e^{−700} is a difference of terms of order 1), and the closed forms in
    a = 1/(e^{−h} − 1) and u = a/L, L = −log(1 − eʰ), above (no cancellation: L ≥ log 2).
    """

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        k, h = int(args[0]), args[1]
        return sp.diff(sp.log(-sp.log(1 - sp.exp(h))), h, k)

    def fdiff(self, argindex: int = 2) -> sp.Expr:
        if argindex != 2:
            raise sp.ArgumentIndexError(self, argindex)
        return logarithmic_cumulant(self.args[0] + 1, self.args[1])


class lgamma_diff(SafeFunction):  # noqa: N801
    """lgamma_diff(m, a, b) = ψ⁽ᵐ⁾(a) − ψ⁽ᵐ⁾(a + b) for m ≥ 0 and log Γ(a) − log Γ(a + b) for
    m = −1 (a, b > 0; b a fixed parameter): the beta family's log-partition and cumulants.
    d/da raises m by one. Its kernels keep the difference apart where the two terms cancel
    (a ≫ b: a Taylor series in b, :mod:`fisher_verify._src.symbolic.polygamma`)."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        m, a, b = int(args[0]), args[1], args[2]
        if m == -1:
            return sp.loggamma(a) - sp.loggamma(a + b)
        return sp.polygamma(m, a) - sp.polygamma(m, a + b)

    def fdiff(self, argindex: int = 2) -> sp.Expr:
        m, a, b = self.args
        if argindex == 2:
            return lgamma_diff(m + 1, a, b)
        if argindex == 3:  # b a variable too (the Dirichlet's rest Σ_{j≠i} α_j): −ψ⁽ᵐ⁺¹⁾(a + b)
            return -polygamma_fn(m + 1, a + b)
        raise sp.ArgumentIndexError(self, argindex)


class polygamma_fn(SafeFunction):  # noqa: N801
    """polygamma_fn(m, x) = ψ⁽ᵐ⁾(x), x > 0, m ≥ 0; d/dx raises m by one. Its NumPy and PyTorch
    kernels are the Euler–Maclaurin Hurwitz zeta of :mod:`fisher_verify._src.symbolic.polygamma`
    (torch's own trigamma is accurate to only ~1e-10)."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return sp.polygamma(int(args[0]), args[1])

    def fdiff(self, argindex: int = 2) -> sp.Expr:
        if argindex != 2:
            raise sp.ArgumentIndexError(self, argindex)
        return polygamma_fn(self.args[0] + 1, self.args[1])


class log_multibeta(SafeFunction):  # noqa: N801
    """log_multibeta(a_1, …, a_K) = Σ log Γ(a_i) − log Γ(Σ a_i), a_i > 0: the Dirichlet's
    log-partition in its concentrations. d/da_k = ψ(a_k) − ψ(Σ a) is written as
    ``lgamma_diff(0, a_k, Σ_{j≠k} a_j)``, so every derivative keeps apart the difference that
    cancels when a_k dominates the sum (ψ'(a_k) − ψ'(Σ a) at a_k = 10⁶ ≫ the others)."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return sp.Add(*[sp.loggamma(a) for a in args]) - sp.loggamma(sp.Add(*args))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        k = argindex - 1
        rest = sp.Add(*[a for j, a in enumerate(self.args) if j != k])
        return lgamma_diff(sp.Integer(0), self.args[k], rest)


class log_bessel_radial(SafeFunction):  # noqa: N801
    """log_bessel_radial(d, i₁, …, i_d, h₁, …, h_d) = ∂₁^{i₁}…∂_d^{i_d} log ₀F₁(; d/2; ‖h‖²/4):
    the von Mises (d = 2, ₀F₁(; 1; r²/4) = I₀(r)) and von Mises–Fisher (d = 3: sinh r/r)
    log-partitions without their constants, and their cumulants up to order 4. d/dh_a raises
    i_a by one. Analytic in h (a function of ‖h‖²), so exact and finite at h = 0; its kernels
    (:mod:`fisher_verify._src.symbolic.radial`) use the power series of ₀F₁ below ‖h‖ = 25 and
    the Bessel ratio's asymptotic series above, written in the mean direction and its
    complement so that the entries along the mean (A′(κ) ≈ 1/(2κ²)) do not cancel."""

    @classmethod
    def naive(cls, *args: sp.Expr) -> sp.Expr:
        return _radial_naive(*args)

    def _latex(self, printer: Any, exp: Any = None) -> str:
        d = int(self.args[0])
        orders, hs = self.args[1 : 1 + d], self.args[1 + d :]
        parts = "".join(
            rf"\partial_{{{printer._print(h)}}}" + (f"^{{{k}}}" if int(k) > 1 else "")
            for h, k in zip(hs, orders) if int(k))
        norm = "+".join(f"{printer._print(h)}^2" for h in hs)
        body = rf"{parts}\log {{}}_0F_1\left(;{sp.latex(sp.Rational(d, 2))};\tfrac{{{norm}}}{{4}}\right)"
        return body if exp is None else rf"\left({body}\right)^{{{exp}}}"

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        d = int(self.args[0])
        axis = argindex - 2 - d
        if not 0 <= axis < d:  # d and the orders are fixed integers, never differentiated
            raise sp.ArgumentIndexError(self, argindex)
        orders = list(self.args[1 : 1 + d])
        orders[axis] = orders[axis] + 1
        return log_bessel_radial(self.args[0], *orders, *self.args[1 + d :])


@lru_cache(maxsize=4096)
def _radial_naive(*args: sp.Expr) -> sp.Expr:
    """The textbook form of :class:`log_bessel_radial`, each derivative from the one of one
    order less (memoised: the 81 entries of a κ₄ in three variables share 15 forms)."""
    d = int(args[0])
    orders, hs = [int(k) for k in args[1 : 1 + d]], args[1 + d :]
    for axis, k in enumerate(orders):
        if k:
            lower = list(args)
            lower[1 + axis] = sp.Integer(k - 1)
            return sp.diff(_radial_naive(*lower), hs[axis])
    return sp.log(sp.hyper([], [sp.Rational(d, 2)], sp.Add(*[v**2 for v in hs]) / 4))


def _radial_args(backend: Any, d: Any, rest: tuple[Any, ...]) -> Any:
    d = int(d)
    return radial_kernel(backend, d, tuple(int(k) for k in rest[:d]), tuple(rest[d:]))


def stable_function_names() -> list[str]:
    """The stable functions a log-partition may be written with (``derive`` lists them)."""
    return [cls.__name__ for cls in SafeFunction.__subclasses__()]


def to_naive(expr: Any) -> Any:
    """Replace every stable function in ``expr`` by its textbook form."""
    return expr.replace(
        lambda e: isinstance(e, SafeFunction),
        lambda e: type(e).naive(*e.args),
    )


# --- NumPy --------------------------------------------------------------------------------


def _np_stack(xs: tuple[Any, ...]) -> Any:
    return np.stack(np.broadcast_arrays(*[np.asarray(x, dtype=float) for x in xs]), axis=-1)


def _np_expit(x: Any) -> Any:
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _np_lse_last(s: Any) -> Any:
    # m + log1p(Σ_{j ≠ argmax} e^{s_j - m}): log of a sum near 1 would lose the small terms
    top = np.argmax(s, axis=-1)
    m = np.take_along_axis(s, top[..., None], axis=-1)
    m = np.where(np.isfinite(m), m, 0.0)
    is_top = np.arange(s.shape[-1]) == top[..., None]
    rest = np.sum(np.where(is_top, 0.0, np.exp(s - m)), axis=-1)
    return np.log1p(rest) + m[..., 0]


def _np_logsumexp(*xs: Any) -> Any:
    return _np_lse_last(_np_stack(xs))


def _np_softmax(k: Any, *hs: Any) -> Any:
    s = _np_stack(hs)
    return np.exp(s[..., int(k)] - _np_lse_last(s))


def _np_softmax_comp(k: Any, *hs: Any) -> Any:
    s = _np_stack(hs)
    others = np.delete(s, int(k), axis=-1)
    return np.exp(_np_lse_last(others) - _np_lse_last(s))


def _np_log1mexp(x: Any) -> Any:
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def _np_inv_expm1(x: Any) -> Any:
    with np.errstate(over="ignore", divide="ignore"):
        return 1.0 / np.expm1(x)


#: Terms of the log-series kept below θ = 1/2: for j ≥ J the ratio of consecutive terms of
#: Σ j^m θ^j/(j+1) (m ≤ 4) is at most ρ = θ (1 + 1/J)^4 ≤ 0.5·(81/80)^4 < 0.53, so the tail
#: after J terms is at most term_J · ρ/(1 − ρ) < 1.13 · term_J ≤ 1.13 · J⁴ 2^{−J}/(J+1), which
#: is below 10⁻¹⁷ of the sum's first term θ^0 = 1 (``test_logarithmic_series_tail_bound``).
LOGARITHMIC_TERMS = 80
#: The closed forms hold from θ = eʰ ≥ 1/2 on (L = −log(1 − θ) ≥ log 2: no cancellation).
LOGARITHMIC_SWITCH = -math.log(2.0)


def _log_series_cumulants(z_moments: list[Any], log_s0: Any, h: Any, k: int) -> Any:
    """The k-th cumulant of y = 1 + z from the raw moments μ_m of z (no cancellation for θ
    small: every μ_m is θ/2 + O(θ²)), or F = h + log S₀ for k = 0."""
    if k == 0:
        return h + log_s0
    m1, m2, m3, m4 = z_moments
    if k == 1:
        return 1.0 + m1
    c2 = m2 - m1 * m1
    if k == 2:
        return c2
    if k == 3:
        return m3 - 3.0 * m1 * m2 + 2.0 * m1**3
    c4 = m4 - 4.0 * m1 * m3 + 6.0 * m1 * m1 * m2 - 3.0 * m1**4
    return c4 - 3.0 * c2 * c2


def _log_closed(a: Any, u: Any, log_l: Any, h: Any, k: int) -> Any:
    """The k-th derivative of log(−log(1 − eʰ)) in a = 1/(e^{−h} − 1), u = a/L."""
    if k == 0:
        return log_l
    if k == 1:
        return u
    if k == 2:
        return u * (1.0 + a - u)
    if k == 3:
        return u * (2.0 * a * a + 3.0 * a + 1.0 - 3.0 * u * (a + 1.0) + 2.0 * u * u)
    return u * (6.0 * a**3 + 12.0 * a * a + 7.0 * a + 1.0 - u * (11.0 * a * a + 18.0 * a + 7.0)
                + 12.0 * u * u * (a + 1.0) - 6.0 * u**3)


def _check_order(k: Any) -> int:
    k = int(k)
    if not 0 <= k <= 4:
        raise ValueError(f"logarithmic_cumulant is implemented for orders 0..4, got {k}")
    return k


def _np_logarithmic_cumulant(k: Any, h: Any) -> Any:
    k = _check_order(k)
    h = np.asarray(h, dtype=float)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
        hs = np.minimum(h, LOGARITHMIC_SWITCH)[..., None]
        j = np.arange(LOGARITHMIC_TERMS + 1, dtype=float)
        terms = np.exp(j * hs) / (j + 1.0)  # θ^j/(j+1); θ^0 = 1 exactly
        s0 = np.sum(terms, axis=-1)
        mom = [np.sum(terms * j**m, axis=-1) / s0 for m in range(1, 5)]
        series = _log_series_cumulants(mom, np.log1p(np.sum(terms[..., 1:], axis=-1)), hs[..., 0], k)
        hc = np.maximum(h, LOGARITHMIC_SWITCH)
        a = 1.0 / np.expm1(-hc)
        big_l = -np.log(-np.expm1(hc))
        closed = _log_closed(a, a / big_l, np.log(big_l), hc, k)
    return np.where(h < LOGARITHMIC_SWITCH, series, closed)


_np_lgamma = np.vectorize(lambda x: math.lgamma(x) if x < 2.5e305 else math.inf, otypes=[float])


def _log_multibeta(args: tuple[Any, ...], lgamma: Callable[[Any], Any],
                   diff: Callable[[int, Any, Any], Any],
                   where: Callable[[Any, Any, Any], Any]) -> Any:
    """Σ log Γ(a_i) − log Γ(Σ a) as Σ_k [log Γ(min(c, a_k)) + D₋₁(max(c, a_k), min(c, a_k))],
    c = a_1 + … + a_{k−1}: each log Γ(c) + log Γ(a_k) − log Γ(c + a_k) with the larger first, so
    the difference D₋₁ that cancels (one concentration ≫ the rest) is the stable
    ``lgamma_diff`` (the textbook sum loses ~log10(a) digits at a = 10⁶). The two are chosen by
    one ``where`` on c ≤ a, not by min/max: at a tie autograd of min/max splits the gradient
    evenly, and the Hessian of that split is wrong (each branch alone is the whole function)."""
    total = args[0]
    out = None
    for a in args[1:]:
        first = total <= a
        small, big = where(first, total, a), where(first, a, total)
        term = lgamma(small) + diff(-1, big, small)
        out = term if out is None else out + term
        total = total + a
    return out


NUMPY_KERNELS: dict[str, Callable[..., Any]] = {
    "expit": _np_expit,
    "softplus": lambda x: np.logaddexp(0.0, x),
    "logsumexp": _np_logsumexp,
    "softmax": _np_softmax,
    "softmax_comp": _np_softmax_comp,
    "log1mexp": _np_log1mexp,
    "inv_expm1": _np_inv_expm1,
    "logarithmic_cumulant": _np_logarithmic_cumulant,
    "lgamma_diff": lambda m, a, b: np_lgamma_diff(int(m), a, b),
    "log_bessel_radial": lambda d, *rest: _radial_args(np, d, rest),
    "polygamma_fn": lambda m, x: np_polygamma(int(m), x),
    "log_multibeta": lambda *a: _log_multibeta(
        tuple(np.asarray(v, dtype=float) for v in a), _np_lgamma, np_lgamma_diff, np.where),
}


# --- PyTorch (optional extra, imported lazily) ------------------------------------------------


def torch_kernels() -> dict[str, Callable[..., Any]]:
    """The stable kernels for PyTorch."""
    import torch

    def stack(xs: tuple[Any, ...]) -> Any:
        ts = [torch.as_tensor(x, dtype=torch.float64) if not torch.is_tensor(x) else x for x in xs]
        return torch.stack(list(torch.broadcast_tensors(*ts)), dim=-1)

    def lse_last(s: Any) -> Any:
        # as the NumPy kernel: m + log1p(Σ_{j ≠ argmax} e^{s_j - m}), differentiable
        top = torch.argmax(s, dim=-1, keepdim=True)
        m = torch.gather(s, -1, top)
        is_top = torch.arange(s.shape[-1], device=s.device) == top
        rest = torch.sum(torch.where(is_top, torch.zeros_like(s), torch.exp(s - m)), dim=-1)
        return torch.log1p(rest) + m[..., 0]

    def t_softmax(k: Any, *hs: Any) -> Any:
        s = stack(hs)
        return torch.exp(s[..., int(k)] - lse_last(s))

    def t_softmax_comp(k: Any, *hs: Any) -> Any:
        s = stack(hs)
        k = int(k)
        others = torch.cat([s[..., :k], s[..., k + 1 :]], dim=-1)
        return torch.exp(lse_last(others) - lse_last(s))

    def t_log1mexp(x: Any) -> Any:
        return torch.where(
            x > -float(np.log(2.0)), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x))
        )

    def t_logarithmic_cumulant(k: Any, h: Any) -> Any:
        k = _check_order(k)
        h = torch.as_tensor(h, dtype=torch.float64) if not torch.is_tensor(h) else h
        # each branch at an argument clamped into its own region, so that neither produces a
        # NaN (which torch.where would carry into the gradient)
        hs = torch.clamp(h, max=LOGARITHMIC_SWITCH)[..., None]
        j = torch.arange(LOGARITHMIC_TERMS + 1, dtype=h.dtype, device=h.device)
        terms = torch.exp(j * hs) / (j + 1.0)
        s0 = torch.sum(terms, dim=-1)
        mom = [torch.sum(terms * j**m, dim=-1) / s0 for m in range(1, 5)]
        series = _log_series_cumulants(
            mom, torch.log1p(torch.sum(terms[..., 1:], dim=-1)), hs[..., 0], k)
        hc = torch.clamp(h, min=LOGARITHMIC_SWITCH)
        a = 1.0 / torch.expm1(-hc)
        big_l = -torch.log(-torch.expm1(hc))
        closed = _log_closed(a, a / big_l, torch.log(big_l), hc, k)
        return torch.where(h < LOGARITHMIC_SWITCH, series, closed)

    class _LogGamma(torch.autograd.Function):
        """log Γ(x) by torch.lgamma, differentiated by the Euler–Maclaurin ψ: torch's own
        second derivative (its trigamma) is ~1e-10 accurate, which torch.func.hessian of a
        Dirichlet's F would carry (the derivatives of ψ are arithmetic, exact to rounding)."""

        generate_vmap_rule = True

        @staticmethod
        def forward(x: Any) -> Any:
            return torch.lgamma(x)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            ctx.save_for_backward(inputs[0])
            ctx.save_for_forward(inputs[0])

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (x,) = ctx.saved_tensors
            return grad * _digamma(x, torch.log)

        @staticmethod
        def jvp(ctx: Any, tangent: Any) -> Any:  # forward mode (torch.func.hessian, jacfwd)
            (x,) = ctx.saved_tensors
            return tangent * _digamma(x, torch.log)

    def t_lgamma(x: Any) -> Any:
        return _LogGamma.apply(x)

    def t_lgamma_diff(m: Any, a: Any, b: Any) -> Any:
        m = int(m)

        def psi(k: int, x: Any) -> Any:
            if k == -1:
                return t_lgamma(x)
            if k == 0:  # not torch.digamma: its backward (torch's trigamma) is ~1e-10 accurate
                return _digamma(x, torch.log)
            return (-1.0) ** (k + 1) * math.factorial(k) * hurwitz(k + 1, x)

        b = torch.as_tensor(b, dtype=a.dtype, device=a.device)
        far = a > TAYLOR_RATIO * b
        try:  # the series costs ~10³ operations: skipped where no entry needs it
            any_far = bool(torch.any(far))
        except RuntimeError:  # inside a torch.func transform values are not readable
            any_far = True
        if not any_far:
            return psi(m, a) - psi(m, a + b)
        a_t = torch.where(far, a, TAYLOR_RATIO * b + 1.0)
        a_d = torch.where(far, torch.ones_like(a), a)
        b_d = torch.where(far, torch.ones_like(a), b)
        series = torch.zeros_like(a)
        coeff = torch.ones_like(a)
        for n in range(1, TAYLOR_TERMS + 1):
            coeff = coeff * b / n
            series = series - psi(m + n, a_t) * coeff
        return torch.where(far, series, psi(m, a_d) - psi(m, a_d + b_d))

    def t_polygamma(m: Any, x: Any) -> Any:
        m = int(m)
        if m == 0:
            return _digamma(x, torch.log)
        return (-1.0) ** (m + 1) * math.factorial(m) * hurwitz(m + 1, x)

    def t_log_multibeta(*a: Any) -> Any:
        return _log_multibeta(a, t_lgamma, lambda m, x, y: t_lgamma_diff(m, x, y), torch.where)

    return {
        "log_bessel_radial": lambda d, *rest: _radial_args(torch, d, rest),
        "polygamma_fn": t_polygamma,
        "log_multibeta": t_log_multibeta,
        "lgamma_diff": t_lgamma_diff,
        "logarithmic_cumulant": t_logarithmic_cumulant,
        "expit": torch.sigmoid,
        "softplus": lambda x: torch.logaddexp(torch.zeros_like(x), x),
        "logsumexp": lambda *xs: lse_last(stack(xs)),
        "softmax": t_softmax,
        "softmax_comp": t_softmax_comp,
        "log1mexp": t_log1mexp,
        "inv_expm1": lambda x: 1.0 / torch.expm1(x),
    }


# --- mpmath (the high-precision reference) ----------------------------------------------------


def _mp_logsumexp(*xs: Any) -> Any:
    top = max(range(len(xs)), key=lambda i: xs[i])
    m = xs[top]
    return m + mpmath.log1p(mpmath.fsum(mpmath.exp(x - m) for i, x in enumerate(xs) if i != top))


def _mp_softmax(k: Any, *hs: Any) -> Any:
    return mpmath.exp(hs[int(k)] - _mp_logsumexp(*hs))


def _mp_softmax_comp(k: Any, *hs: Any) -> Any:
    k = int(k)
    return mpmath.exp(_mp_logsumexp(*(hs[:k] + hs[k + 1 :])) - _mp_logsumexp(*hs))


def _mp_softplus(x: Any) -> Any:
    return mpmath.log1p(mpmath.exp(x)) if x < 0 else x + mpmath.log1p(mpmath.exp(-x))


def _mp_log1mexp(x: Any) -> Any:
    # log(1 - e^x): log1p(-e^x) far from 0, log(-expm1(x)) near it (Mächler's split), as in NumPy
    return mpmath.log1p(-mpmath.exp(x)) if x < -mpmath.log(2) else mpmath.log(-mpmath.expm1(x))


def _mp_logarithmic_cumulant(k: Any, h: Any) -> Any:
    k = _check_order(k)
    h = mpmath.mpf(h)
    if h < LOGARITHMIC_SWITCH:
        theta = mpmath.exp(h)
        # terms until the proven tail (ratio ρ = θ (1 + 1/j)^4 < 1 from j = 80 on) is below
        # the working precision
        sums = [mpmath.mpf(0)] * 5
        j = 0
        while True:
            term = theta**j / (j + 1)
            for m in range(5):
                sums[m] += term * mpmath.mpf(j) ** m
            if j >= LOGARITHMIC_TERMS:
                rho = theta * (1 + mpmath.mpf(1) / j) ** 4
                if term * j**4 * rho / (1 - rho) < mpmath.eps * sums[0] * 1e-5:
                    break
            j += 1
        mom = [sums[m] / sums[0] for m in range(1, 5)]
        return _log_series_cumulants(mom, mpmath.log(sums[0]), h, k)
    a = 1 / mpmath.expm1(-h)
    big_l = -mpmath.log(-mpmath.expm1(h))
    return _log_closed(a, a / big_l, mpmath.log(big_l), h, k)


def _mp_lgamma_diff(m: Any, a: Any, b: Any) -> Any:
    # the two terms agree to about log10(a/b) digits: computed with that many more
    m, a, b = int(m), mpmath.mpf(a), mpmath.mpf(b)
    extra = int(max(0, mpmath.log10(a / b))) + 10
    with mpmath.workdps(mpmath.mp.dps + extra):
        if m == -1:
            value = mpmath.loggamma(a) - mpmath.loggamma(a + b)
        else:
            value = mpmath.psi(m, a) - mpmath.psi(m, a + b)
    return +value


def _mp_log_multibeta(*a: Any) -> Any:
    a = tuple(mpmath.mpf(v) for v in a)
    # the terms cancel to about log10(max a / min a) digits: carried that many more
    extra = int(max(0, mpmath.log10(max(a) / min(a)))) + 10
    with mpmath.workdps(mpmath.mp.dps + extra):
        value = mpmath.fsum(mpmath.loggamma(v) for v in a) - mpmath.loggamma(mpmath.fsum(a))
    return +value


MPMATH_KERNELS: dict[str, Callable[..., Any]] = {
    "log_bessel_radial": lambda d, *rest: mp_radial(
        int(d), tuple(int(k) for k in rest[: int(d)]), tuple(rest[int(d) :])),
    "polygamma_fn": lambda m, x: mpmath.psi(int(m), x),
    "log_multibeta": _mp_log_multibeta,
    "lgamma_diff": _mp_lgamma_diff,
    "logarithmic_cumulant": _mp_logarithmic_cumulant,
    "expit": lambda x: 1 / (1 + mpmath.exp(-x)),
    "softplus": _mp_softplus,
    "logsumexp": _mp_logsumexp,
    "softmax": _mp_softmax,
    "softmax_comp": _mp_softmax_comp,
    "log1mexp": _mp_log1mexp,
    "inv_expm1": lambda x: 1 / mpmath.expm1(x),
}
