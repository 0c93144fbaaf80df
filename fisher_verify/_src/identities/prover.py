"""Proofs of a family's identities against its own density.

For each family: F is the log-normalizer; ``lemma-2`` (Cov t = ∂²F = ∂η/∂h); ``lemma-5`` and
``remark-5.1`` (the 4th central moment from the density equals κ₄ + the three I⊗I
permutations); the stable kernels equal the textbook derivatives; ``table-1`` and the
claims of ``fig-1`` for the families of Table 1. Each identity is proved symbolically when
SymPy reduces the difference to 0 within a time limit, otherwise checked exactly (to 30+
digits) in mpmath at random rational points of the natural domain; the result names the
method used.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ..families.family import Family
from ..symbolic.safe import to_naive
from ..symbolic.timelimit import attempt
from .density import density_integral, raw_moments

SYMBOLIC = "symbolic"
MPMATH_DIGITS = 40
MPMATH_TOL_DIGITS = 30
MPMATH = (
    f"mpmath at 3 random rational points ({MPMATH_DIGITS} digits, tolerance 1e-{MPMATH_TOL_DIGITS})"
)


@dataclass
class IdentityResult:
    """One identity of one family, with its verdict and how it was reached."""

    statement_id: str
    claim: str
    holds: bool
    method: str
    detail: str = ""
    latex: list[tuple[str, str]] = field(default_factory=list)
    family: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "statement_id": self.statement_id,
            "family": self.family,
            "claim": self.claim,
            "holds": self.holds,
            "method": self.method,
            "detail": self.detail,
            "latex": [list(x) for x in self.latex],
        }


def _is_zero(expr: sp.Expr, seconds: float) -> bool | None:
    """True when SymPy simplifies ``expr`` to 0, None when it cannot decide in time."""

    def run() -> bool:
        # one natural parameter: first as a rational function of x = e^h, which cancel decides
        # exactly and quickly where simplify may take seconds (derivatives of softplus,
        # log1mexp); with several, cancel's multivariate gcds are slower than simplify
        exps = {e for e in expr.atoms(sp.exp) if e.args[0].is_Symbol}
        if len(exps) == 1:
            (power,) = exps
            if sp.cancel(sp.together(expr.subs(power, sp.Dummy(positive=True)))) == 0:
                return True
        e = sp.simplify(sp.expand(expr))
        if e == 0:
            return True
        e = sp.simplify(sp.powsimp(sp.expand(sp.exp(0) * e), force=True))
        if e == 0:
            return True
        raise ValueError("not reduced to zero")

    return attempt(run, seconds)


def random_rational_points(fam: Family, count: int = 3, seed: int = 0) -> list[list[Fraction]]:
    """Rational points inside the natural domain (h < 0 components where the domain says so)."""
    rng = random.Random(seed)
    negative = set(fam.definition.negative)
    check = fam.definition.domain_check
    points: list[list[Fraction]] = []
    while len(points) < count:
        pt = []
        for j in range(fam.dim):
            v = Fraction(rng.randint(-150, 150), 100)
            if j in negative:
                v = -abs(v) - Fraction(1, 10)
            pt.append(v)
        # a domain that is not a box of signs (−H₂ positive definite): draw again
        if check is None or check(np.array([[float(v) for v in pt]])) is None:
            points.append(pt)
    return points


def _mp_close(a: Any, b: Any) -> bool:
    scale = max(mpmath.mpf(1), abs(a), abs(b))
    return bool(abs(a - b) <= mpmath.mpf(10) ** (-MPMATH_TOL_DIGITS) * scale)


class _Prover:
    def __init__(self, fam: Family, seconds: float, seed: int) -> None:
        self.fam = fam
        self.d = fam.definition
        self.der = fam.derivation
        self.seconds = seconds
        self.seed = seed
        self.naive_f = to_naive(self.d.log_partition)
        self.indices = list(range(fam.dim))
        self._raw: dict[tuple[int, ...], sp.Expr] | None = None
        self._raw_failed = False
        # a parameter left as a symbol has no numeric value: no mpmath fallback then
        self.generic = bool(self.d.log_partition.free_symbols - set(self.d.h))

    def index_sets(self, order: int) -> list[tuple[int, ...]]:
        """The distinct entries of a symmetric tensor of ``order`` that the proofs check."""
        return list(itertools.combinations_with_replacement(self.indices, order))

    # raw moments up to order 4, from the density, once
    def raw(self) -> dict[tuple[int, ...], sp.Expr] | None:
        if not self.d.symbolic_density:
            self._raw_failed = True
        if self._raw is None and not self._raw_failed:
            monos = [p for p in itertools.product(range(5), repeat=self.fam.dim) if 0 < sum(p) <= 4]
            budget = self.seconds * 4
            self._raw = attempt(lambda: raw_moments(self.d, monos), budget)
            self._raw_failed = self._raw is None
        return self._raw

    def central_from_density(self, idx: tuple[int, ...]) -> sp.Expr | None:
        raw = self.raw()
        if raw is None:
            return None
        dim = self.fam.dim
        ts = sp.symbols(f"T0:{dim}")
        means = [raw[tuple(1 if a == b else 0 for a in range(dim))] for b in range(dim)]
        poly = sp.Poly(sp.Mul(*[ts[i] - means[i] for i in idx]), *ts)
        total = sp.Integer(0)
        for powers, coeff in poly.terms():
            total += coeff * (raw[powers] if sum(powers) else 1)
        return total

    def mp_central(self, idx: tuple[int, ...], point: list[Fraction]) -> Any:
        powers = [0] * self.fam.dim
        for i in idx:
            powers[i] += 1
        hs = [mpmath.mpf(p.numerator) / p.denominator for p in point]
        return self.fam.moment_mp(tuple(powers), hs)

    def mp_kernel(self, quantity: str, point: list[Fraction]) -> Any:
        hs = [mpmath.mpf(p.numerator) / p.denominator for p in point]
        return self.fam.kernel(quantity, "mpmath")(hs)

    def compare(
        self, sid: str, claim: str, quantity: str, order: int, derived: Any
    ) -> IdentityResult:
        """Central moment of ``order`` from the density vs the derived tensor ``quantity``."""
        idxs = self.index_sets(order)
        symbolic_ok = True
        for idx in idxs:
            lhs = self.central_from_density(idx)
            if lhs is None:
                symbolic_ok = False
                break
            verdict = _is_zero(lhs - to_naive(derived[idx]), self.seconds)
            if verdict is None:
                symbolic_ok = False
                break
        if symbolic_ok:
            return IdentityResult(
                sid, claim, True, SYMBOLIC, f"{len(idxs)} distinct entries reduce to 0"
            )
        if self.generic:
            return _unproved(sid, claim)
        with mpmath.workdps(MPMATH_DIGITS):
            worst = mpmath.mpf(0)
            for point in random_rational_points(self.fam, seed=self.seed):
                values = self.mp_kernel(quantity, point)
                for idx in idxs:
                    a = self.mp_central(idx, point)
                    b = values[idx]
                    if not _mp_close(a, b):
                        return IdentityResult(
                            sid,
                            claim,
                            False,
                            MPMATH,
                            f"differs at h={[str(p) for p in point]}, entry {idx}: "
                            f"{mpmath.nstr(a, 20)} vs {mpmath.nstr(b, 20)}",
                        )
                    worst = max(worst, abs(a - b))
        return IdentityResult(
            sid, claim, True, MPMATH, f"largest difference {mpmath.nstr(worst, 3)}"
        )


def prove_at_values(fam: Family, seconds: float, seed: int) -> list[IdentityResult]:
    """Every identity of ``fam`` at its own parameter values (no cache, no dispatch)."""
    p = _Prover(fam, seconds, seed)
    results = _moment_identities(p)
    results.extend(_table_1(p))
    results.extend(_fig_1(p))
    for r in results:
        r.family = fam.label
    return results


def _moment_identities(p: _Prover) -> list[IdentityResult]:
    """log-partition, stable kernels, ``lemma-2``, ``lemma-5``, ``remark-5.1``: the identities
    that need the density (sums or integrals), as opposed to Table 1 and Figure 1."""
    fam = p.fam
    results = [
        _log_normalizer(p),
        _stable_equals_naive(p),
        p.compare(
            "lemma-2",
            r"\operatorname{Cov}(t) = \partial^2 F = \partial\eta/\partial h",
            "fisher",
            2,
            p.der.fisher,
        ),
    ]
    k_claim = r"E[(t-\eta)^{\otimes 4}] = \kappa_4 + I_{ab}I_{cd} + I_{ac}I_{bd} + I_{ad}I_{bc}"
    results.append(p.compare("lemma-5", k_claim, "central_moment4", 4, p.der.central_moment4))
    if fam.dim == 1:
        r51 = p.compare(
            "remark-5.1", "K = F'''' + 3 (F'')^2", "central_moment4", 4, p.der.central_moment4
        )
        results.append(r51)
    return results


def _log_normalizer(p: _Prover) -> IdentityResult:
    claim = r"\int e^{t(y)^\top h}\, b(y)\, d\mu(y) = e^{F(h)}"
    z = (attempt(lambda: density_integral(p.d, sp.Integer(1)), p.seconds)
         if p.d.symbolic_density else None)
    if z is not None:
        # h_j = log(1 − w_j), w_j > 0, on the components that must be negative: SymPy then
        # knows 1 − e^{h_j} = w_j > 0, which (1 − e^h)^{−r} = e^{−r log(1 − e^h)} needs
        on_domain = {p.d.h[j]: sp.log(1 - sp.Dummy(f"w{j}", positive=True)) for j in p.d.negative}
        verdict = (
            _is_zero(sp.log(z) - p.naive_f, p.seconds)
            or _is_zero(z - sp.exp(p.naive_f), p.seconds)
            or _is_zero((z - sp.exp(p.naive_f)).subs(on_domain), p.seconds)
        )
        if verdict:
            return IdentityResult(
                "log-partition",
                claim,
                True,
                SYMBOLIC,
                f"Z(h) = {sp.sstr(z)}",
                latex=[("Z(h)", sp.latex(z)), ("F(h)", sp.latex(p.naive_f))],
            )
    if p.generic:
        return _unproved("log-partition", claim)
    with mpmath.workdps(MPMATH_DIGITS):
        for point in random_rational_points(p.fam, seed=p.seed):
            hs = [mpmath.mpf(q.numerator) / q.denominator for q in point]
            z_mp = p.fam.moment_mp(tuple([0] * p.fam.dim), hs, center=False)  # = 1 by normalization
            f_mp = p.fam.kernel("log_partition", "mpmath")(hs)
            z_direct = p.fam.integral_mp(hs)
            if not (_mp_close(z_mp, 1) and _mp_close(mpmath.log(z_direct), f_mp)):
                return IdentityResult(
                    "log-partition", claim, False, MPMATH, f"log Z != F at h={point}"
                )
    return IdentityResult("log-partition", claim, True, MPMATH, "log Z(h) = F(h) at every point")


def _stable_equals_naive(p: _Prover) -> IdentityResult:
    """The stable expressions the kernels are printed from equal the textbook derivatives."""
    claim = r"\text{stable kernels} = \partial^k \log\text{-partition (textbook form)}, k \le 4"
    f = p.naive_f
    for _name, tensor in (
        ("eta", p.der.eta),
        ("fisher", p.der.fisher),
        ("kappa3", p.der.kappa3),
        ("kappa4", p.der.kappa4),
    ):
        for idx in p.index_sets(tensor.order):
            naive = sp.diff(f, *[p.d.h[i] for i in idx])
            if not _is_zero(to_naive(tensor[idx]) - naive, p.seconds):
                return _unproved("stable-kernels", claim) if p.generic else _stable_mp(p, claim)
    return IdentityResult(
        "stable-kernels", claim, True, SYMBOLIC, "every derivative entry reduces to 0"
    )


def _unproved(sid: str, claim: str) -> IdentityResult:
    return IdentityResult(
        sid,
        claim,
        False,
        SYMBOLIC,
        "SymPy did not reduce it to 0 for every parameter value within the time limit",
    )


def _stable_mp(p: _Prover, claim: str) -> IdentityResult:
    f = p.naive_f
    with mpmath.workdps(MPMATH_DIGITS):
        for point in random_rational_points(p.fam, seed=p.seed):
            subs = dict(zip(p.d.h, [sp.Rational(q.numerator, q.denominator) for q in point]))
            for name, tensor in (("fisher", p.der.fisher), ("kappa4", p.der.kappa4)):
                values = p.mp_kernel(name, point)
                for idx in p.index_sets(tensor.order):
                    naive = sp.diff(f, *[p.d.h[i] for i in idx]).subs(subs).evalf(MPMATH_DIGITS)
                    if not _mp_close(mpmath.mpf(str(naive)), values[idx]):
                        return IdentityResult(
                            "stable-kernels",
                            claim,
                            False,
                            MPMATH,
                            f"{name}{idx} differs at {point}",
                        )
    return IdentityResult(
        "stable-kernels", claim, True, MPMATH, "kernels match textbook derivatives"
    )


TABLE_1_ROWS: dict[str, dict[str, str]] = {
    # the paper's Table 1, as printed: F(h), h(mean), F''(mean), F''''(mean)
    "bernoulli": {
        "F": "log(1 + exp(h))",
        "h": "log(p/(1 - p))",
        "I": "p*(1 - p)",
        "k4": "p*(1 - p)*(6*p**2 - 6*p + 1)",
    },
    "normal": {"F": "h**2/2", "h": "mu", "I": "1", "k4": "0"},
    "poisson": {"F": "exp(h)", "h": "log(lam)", "I": "lam", "k4": "lam"},
}


def _table_1(p: _Prover) -> list[IdentityResult]:
    fam = p.fam
    d = p.d
    results = []
    if d.natural_of_mean is not None and fam.dim == 1:
        (m,) = d.mean_symbols
        h_of_m = d.natural_of_mean[0]
        eta_m = to_naive(p.der.eta[(0,)]).subs(d.h[0], h_of_m)
        holds = bool(_is_zero(eta_m - _mean_of(fam, m), p.seconds))
        results.append(
            IdentityResult(
                "table-1",
                rf"\eta(h(\mu)) = \mu,\ h(\mu) = {sp.latex(h_of_m)}",
                holds,
                SYMBOLIC,
                "the mean map inverts h(mean)",
            )
        )
    row = TABLE_1_ROWS.get(fam.name)
    if row is None or fam.params.get("sigma", 1) != 1:
        return results
    (h,) = d.h
    (m,) = d.mean_symbols
    loc = {"p": m, "mu": m, "lam": m, "h": h}
    table_f = sp.sympify(row["F"], locals=loc)
    table_h = sp.sympify(row["h"], locals=loc)
    checks = [
        ("F", _is_zero(p.naive_f - table_f, p.seconds)),
        (
            "h(mean)",
            _is_zero(d.natural_of_mean[0] - table_h, p.seconds) if d.natural_of_mean else False,
        ),
        (
            "F''",
            _is_zero(
                to_naive(p.der.fisher[(0, 0)]).subs(h, table_h) - sp.sympify(row["I"], locals=loc),
                p.seconds,
            ),
        ),
        (
            "F''''",
            _is_zero(
                to_naive(p.der.kappa4[(0, 0, 0, 0)]).subs(h, table_h)
                - sp.sympify(row["k4"], locals=loc),
                p.seconds,
            ),
        ),
    ]
    bad = [name for name, ok in checks if not ok]
    results.append(
        IdentityResult(
            "table-1",
            rf"\text{{Table 1, {fam.name}: }} F = {sp.latex(table_f)},\ h = {sp.latex(table_h)},\ "
            rf"F'' = {sp.latex(sp.sympify(row['I'], locals=loc))},\ "
            rf"F^{{(4)}} = {sp.latex(sp.sympify(row['k4'], locals=loc))}",
            not bad,
            SYMBOLIC,
            "all four columns match" if not bad else f"mismatch in {', '.join(bad)}",
            latex=[
                ("F''(\\mu)", sp.latex(sp.sympify(row["I"], locals=loc))),
                ("F''''(\\mu)", sp.latex(sp.sympify(row["k4"], locals=loc))),
            ],
        )
    )
    return results


def _mean_of(fam: Family, m: sp.Symbol) -> sp.Expr:
    # η in the mean parameter m, as the definition states it (binomial: n·p, logarithmic: the
    # textbook mean in θ); every other family's m is the mean itself
    eta = fam.definition.eta_of_mean
    return eta[0] if eta is not None else m


def _fig_1(p: _Prover) -> list[IdentityResult]:
    fam, d = p.fam, p.d
    if fam.name not in ("bernoulli", "normal", "poisson"):
        return []
    (h,) = d.h
    (m,) = d.mean_symbols
    h_of_m = d.natural_of_mean[0] if d.natural_of_mean else h
    var = sp.simplify(to_naive(p.der.fisher[(0, 0)]).subs(h, h_of_m))
    k = sp.simplify(to_naive(p.der.central_moment4[(0, 0, 0, 0)]).subs(h, h_of_m))
    excess = sp.factor(sp.simplify(k - var**2))
    out = []
    if fam.name == "bernoulli":
        gap = sp.factor(sp.simplify(var - excess))
        violated = sp.solveset(sp.StrictLessThan(gap, 0), m, sp.Interval.open(0, 1))
        out.append(
            IdentityResult(
                "fig-1",
                r"\text{Bernoulli: } K - I^2 \le I \text{ for every } h",
                violated == sp.S.EmptySet,
                SYMBOLIC,
                f"I - (K - I²) = {gap}; no p in (0,1) makes it negative",
                latex=[("K - I^2", sp.latex(excess)), ("I - (K - I^2)", sp.latex(gap))],
            )
        )
        at_half = sp.simplify(excess.subs(m, sp.Rational(1, 2)))
        out.append(
            IdentityResult(
                "fig-1",
                r"\text{Bernoulli: } K - I^2 = 0 \text{ at } p = 1/2",
                at_half == 0,
                SYMBOLIC,
                f"K - I² at p = 1/2: {at_half}",
            )
        )
    elif fam.name == "normal":
        const = sp.diff(var, m) == 0 and sp.diff(excess, m) == 0
        out.append(
            IdentityResult(
                "fig-1",
                r"\text{Normal: } I \text{ and } K - I^2 \text{ constant}",
                bool(const),
                SYMBOLIC,
                f"I = {var}, K - I² = {excess}",
            )
        )
    else:
        deg_i = sp.Poly(var, m).degree()
        deg_k = sp.Poly(sp.expand(excess), m).degree()
        out.append(
            IdentityResult(
                "fig-1",
                r"\text{Poisson: } I \text{ linear}, K - I^2 \text{ quadratic in } \lambda",
                deg_i == 1 and deg_k == 2,
                SYMBOLIC,
                f"I = {var} (degree {deg_i}), K - I² = {sp.expand(excess)} (degree {deg_k})",
            )
        )
    return out
