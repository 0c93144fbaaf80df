"""Every bound of the paper with both sides: ``thm-7``, ``thm-8``, ``lemma-9``, ``thm-10``,
``lemma-12``, ``lemma-14``, ``lemma-15`` and ``crlb``.

Several inputs (empirical p(x), N draws per input, as in
:mod:`fisher_verify._src.fisher.covariance`). Since ``Cov(Î) = (1/(M²N)) Σ_m Cov(term_m)``, the
triangle inequality gives the M-input forms used here, which are the paper's at ``M = 1``:

* ``thm-7``: ``‖Cov(Î₁)‖_F ≤ (1/(M²N)) Σ_m ‖J_m‖_F⁴ ‖K_m − I_m⊗I_m‖_F``;
* ``thm-8``: ``‖Cov(Î₂)‖_F ≤ (1/(M²N)) Σ_m ‖∂²h_L(x_m)‖_F² ‖I_m‖_F``;
* ``lemma-12``: ``P(‖Î − I(θ)‖_F ≤ (Σ_ij Var(Î_ij)/ε)^{1/2}) ≥ 1 − ε``; at M = 1,
  ``Σ_ij Var(Î_ij) = (1/N) Σ_ij Var(term_ij)``, the paper's radius.

**The √2 of lemma-9 (settled).** The extracted text shows a stray ``√2`` near lemma-9. The
bounds hold with constant 1 and no better constant is possible:

    ‖K − I⊗I‖_F ≤ (Σ_a √K_aaaa)² − ‖I‖_F² ≤ (Σ_a (√K_aaaa + I_aa))²,   ‖I‖_F ≤ Σ_a I_aa.

Proof. ``K − I⊗I = E[A⊗A]`` with ``A = (t−η)(t−η)ᵀ − I``. Jensen on the convex norm:
``‖E[A⊗A]‖_F ≤ E‖A⊗A‖_F = E‖A‖_F² = E‖t−η‖⁴ − ‖I‖_F²``, and
``E‖t−η‖⁴ = Σ_ab E[s_a² s_b²] ≤ Σ_ab √(K_aaaa K_bbbb) = (Σ_a √K_aaaa)²`` by Cauchy–Schwarz
(``s = t − η``). For the second, I ⪰ 0 so ``‖I‖_F = ‖λ‖₂ ≤ ‖λ‖₁ = tr I``. Sharpness: for
Bernoulli with ``p → 0``, ``K − I² = p(1−p)(1−2p)² ~ p`` and ``(√K + I)² ~ p``, so the ratio
tends to 1 (so a ``1/√2`` factor is false); for n_L = 1, ``‖I‖_F = I_aa`` (equality). A factor
``√2`` in front would be valid but loose. :data:`LEMMA9_CONSTANT` records the verdict and
every lemma-9 :class:`Bound` carries the constant in ``details``; :class:`Bounds` prints the
verdict once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..validation import as_generator, check_count, check_fraction
from .covariance import (
    _batched,
    cov1_frobenius,
    cov1_total_variance,
    cov2_frobenius,
    cov2_total_variance,
    moment_excess,
)
from .psd import psd_probability_bound, sample_psd
from .spectral import LayerNorms, layer_norms, sup_abs_derivative

__all__ = ["Bound", "bounds", "thm8_sides"]

#: The constant that holds in lemma-9 (no √2): proven above, sharp (Bernoulli, p → 0).
LEMMA9_CONSTANT = 1.0
LEMMA9_VERDICT = (
    "lemma-9 holds with constant 1 (no sqrt(2)): ||K - I(x)I||_F <= (sum_a sqrt(K_aaaa))^2 "
    "- ||I||_F^2 <= (sum_a (sqrt(K_aaaa) + I_aa))^2 by Jensen and Cauchy-Schwarz, and "
    "||I||_F <= tr I since I is p.s.d.; the constant is sharp (Bernoulli p -> 0 gives ratio -> 1, "
    "n_L = 1 gives equality in the second), so a 1/sqrt(2) factor is false and a sqrt(2) "
    "factor is valid but loose"
)

LEMMA14_NOTE = (
    "lemma-14 at the last layer l = L-1: dh_L/dW_{L-1} = I_{n_L} (x) hbar_{L-1} has Frobenius "
    "norm sqrt(n_L) ||hbar_{L-1}||, so the literal empty product (= 1) fails for n_L > 1; the "
    "rhs here reads it as ||B_L||_F = sqrt(n_L) (identity, equality). The rhs also carries the "
    "factor (sup|sigma'|)^(L-1-l), 1 under the hypothesis |sigma'| <= 1 (gelu breaks it)"
)

_RTOL = 1e-10


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


@dataclass(frozen=True, repr=False)
class Bound:
    """One bound with both sides.

    Attributes:
        id: statement id (``thm-7``, …).
        lhs: the bounded quantity (``None`` where it has no closed form and was not sampled).
        rhs: the bound (``None`` where the statement does not apply).
        relation: ``"<="`` (upper bound) or ``">="`` (lower bound, e.g. a probability).
        holds: whether ``lhs relation rhs`` (relative slack 1e-10), ``None`` if undecided.
        ratio: ``rhs / lhs`` (``None`` when undefined).
        description: what the sides are.
        details: extra numbers (tighter variants, hypotheses, the lemma-9 verdict).

    ``float(bound)`` is ``rhs``. ``repr`` is one line with both sides, the verdict and the
    ratio (``details`` is left out: it can hold matrices; read it as an attribute).
    """

    id: str
    lhs: float | None
    rhs: float | None
    relation: str
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def holds(self) -> bool | None:
        """``lhs <= rhs`` (or ``>=``) up to a relative 1e-10; ``None`` when a side is missing."""
        if self.lhs is None or self.rhs is None:
            return None
        slack = _RTOL * max(abs(self.lhs), abs(self.rhs), 1e-300)
        if self.relation == "<=":
            return bool(self.lhs <= self.rhs + slack)
        return bool(self.lhs >= self.rhs - slack)

    @property
    def ratio(self) -> float | None:
        """``rhs / lhs``; ``inf`` when lhs = 0 < rhs, ``None`` when undefined."""
        if self.lhs is None or self.rhs is None:
            return None
        if self.lhs == 0.0:
            return math.inf if self.rhs > 0 else None
        return self.rhs / self.lhs

    def __float__(self) -> float:
        if self.rhs is None:
            raise TypeError(f"{self.id}: the bound does not apply here")
        return float(self.rhs)

    def _verdict(self) -> str:
        if self.rhs is None:
            return "n/a"
        if self.lhs is None:
            return "rhs only"
        return "holds" if self.holds else "VIOLATED"

    def __repr__(self) -> str:
        ratio = self.ratio
        return (f"Bound({self.id}: {_num(self.lhs)} {self.relation} {_num(self.rhs)}, "
                f"{self._verdict()}, rhs/lhs {_num(ratio)})")

    def row(self, label: str = "") -> str:
        """One aligned line: label, lhs, relation, rhs, verdict, rhs/lhs, description."""
        return (f"{label or self.id:<14} {_num(self.lhs):>12} {self.relation} "
                f"{_num(self.rhs):<12} {self._verdict():<9} rhs/lhs {_num(self.ratio):<9} "
                f"{self.description}")


# --- array-level sides ------------------------------------------------------------------------


def thm7_sides(J: Any, K: Any, I: Any, n: int = 1) -> tuple[float, float, float]:
    """``thm-7``: (‖Cov(Î₁)‖_F, (1/(M²N)) Σ_m ‖J_m‖_F⁴‖K_m−I_m⊗I_m‖_F, spectral variant).

    The spectral variant ``Σ_m ‖J_m‖₂⁴ ‖C_m‖_F/(M²N)`` is tighter (``‖C ×_k Jᵀ‖_F ≤ ‖J‖₂‖C‖_F``).
    """
    rhs, spec = thm7_rhs(J, K, I, n)
    return cov1_frobenius(_batched(J, 2, "J"), K, I, n), rhs, spec


def thm7_rhs(J: Any, K: Any, I: Any, n: int = 1) -> tuple[float, float]:
    """``thm-7``'s bound ``(1/(M²N)) Σ_m ‖J_m‖_F⁴‖K_m−I_m⊗I_m‖_F`` and its spectral variant:
    per input, ``O(M)`` (the lhs, a sum over pairs of inputs, is :func:`thm7_sides`')."""
    Jb = _batched(J, 2, "J")
    C = moment_excess(K, I)
    C = C if C.ndim == 5 else C[None]
    M = Jb.shape[0]
    cn = np.linalg.norm(C.reshape(M, -1), axis=1)
    rhs = float(np.sum(np.linalg.norm(Jb, axis=(1, 2)) ** 4 * cn)) / (M * M * n)
    spec = float(np.sum(np.linalg.norm(Jb, 2, axis=(1, 2)) ** 4 * cn)) / (M * M * n)
    return rhs, spec


def thm8_rhs(H: Any, I: Any, n: int = 1) -> float:
    """``thm-8``'s bound ``(1/(M²N)) Σ_m ‖∂²h_L(x_m)‖_F² ‖I_m‖_F``, per input, ``O(M)``."""
    Hb = _batched(H, 3, "H")
    Ib = _batched(I, 2, "I")
    M = Hb.shape[0]
    return float(
        np.sum(np.linalg.norm(Hb.reshape(M, -1), axis=1) ** 2
               * np.linalg.norm(Ib.reshape(M, -1), axis=1))
    ) / (M * M * n)


def thm8_sides(H: Any, I: Any, n: int = 1) -> tuple[float, float]:
    """``thm-8``: (‖Cov(Î₂)‖_F, (1/(M²N)) Σ_m ‖∂²h_L(x_m)‖_F² ‖I_m‖_F)."""
    Hb = _batched(H, 3, "H")
    Ib = _batched(I, 2, "I")
    return cov2_frobenius(Hb, Ib, n), thm8_rhs(Hb, Ib, n)


def lemma9_sides(K: Any, I: Any) -> dict[str, np.ndarray]:
    """``lemma-9`` per input: both sides of both bounds and the sharper middle term.

    Keys: ``moment_lhs`` ‖K−I⊗I‖_F, ``moment_rhs`` (Σ_a(√K_aaaa+I_aa))², ``moment_sharp``
    (Σ_a √K_aaaa)² − ‖I‖_F², ``fisher_lhs`` ‖I‖_F, ``fisher_rhs`` Σ_a I_aa. Batched.
    """
    Ka = np.asarray(K, dtype=np.float64)
    Ia = np.asarray(I, dtype=np.float64)
    lead = Ia.shape[:-2]
    C = moment_excess(Ka, Ia)
    dk = np.einsum("...aaaa->...a", Ka)
    di = np.einsum("...aa->...a", Ia)
    inorm = np.linalg.norm(Ia.reshape(*lead, -1), axis=-1)
    return {
        "moment_lhs": np.linalg.norm(C.reshape(*lead, -1), axis=-1),
        "moment_rhs": np.sum(np.sqrt(np.maximum(dk, 0.0)) + di, axis=-1) ** 2,
        "moment_sharp": np.sum(np.sqrt(np.maximum(dk, 0.0)), axis=-1) ** 2 - inorm**2,
        "fisher_lhs": inorm,
        "fisher_rhs": np.sum(di, axis=-1),
    }


def lemma12_radius(total_variance: float, eps: float) -> float:
    """``lemma-12``'s radius ``(Σ_ij Var(Î_ij)/ε)^{1/2}`` (= ``(εN)^{-1/2}(Σ Var(term))^{1/2}``)."""
    eps = check_fraction(eps, "eps")
    return math.sqrt(max(total_variance, 0.0) / eps)


def fit_rate(ns: Any, errors: Any) -> float:
    """Least-squares slope of ``log errors`` against ``log ns`` (``lemma-12``: about −1/2)."""
    x = np.log(np.asarray(ns, dtype=np.float64))
    y = np.log(np.asarray(errors, dtype=np.float64))
    return float(np.polyfit(x, y, 1)[0])


def lemma12_coverage(
    net: Any, x: Any, n: int, eps: float, draws: int, rng: np.random.Generator | int | None = None
) -> dict[str, Any]:
    """Observed ``lemma-12`` coverage of both estimators over ``draws`` replicates.

    Returns the radii, hit counts and the root-mean-square errors (whose exact values are
    ``√(Σ Var(Î_ij))``).
    """
    from .estimators import sample_estimators
    from .exact import network_fisher

    gen = as_generator(rng)
    q1 = _moments(net, x, 1)
    q2 = _moments(net, x, 2)
    tv = (cov1_total_variance(q1["J"], q1["K"], q1["I"], n),
          cov2_total_variance(q2["H"], q2["I"], n))
    radius = (lemma12_radius(tv[0], eps), lemma12_radius(tv[1], eps))
    exact = np.asarray(network_fisher(net, x))
    err = np.zeros((2, draws))
    for r in range(draws):
        est = sample_estimators(net, x, n, gen)
        err[0, r] = np.linalg.norm(est.i1 - exact)
        err[1, r] = np.linalg.norm(est.i2 - exact)
    return {
        "radius": radius,
        "hits": (int(np.sum(err[0] <= radius[0])), int(np.sum(err[1] <= radius[1]))),
        "draws": draws,
        "errors": err,
        "rms": tuple(float(np.sqrt(np.mean(e**2))) for e in err),
        "rms_exact": tuple(math.sqrt(v) for v in tv),
    }


def crlb_linear_gaussian(net: Any, x: Any, n: int = 1) -> Bound:
    """``crlb`` where it is checkable in closed form: a linear network (L = 1), normal outputs.

    The MLE of W from N draws per input is least squares, with
    ``Cov(θ̂) = σ⁻² (I_{n_L} ⊗ (N Σ_m x̄_m x̄_mᵀ)⁻¹)`` (from the design matrix alone). The
    Cramér–Rao bound is ``(N M I(θ))⁻¹`` with I(θ) of eq-6. lhs = tr Cov(θ̂), rhs = tr CRLB,
    relation ``>=``; ``details['max_abs_difference']`` shows the MLE is efficient (equality).
    """
    from .exact import network_fisher

    fam = net.family
    comps = list(fam.factors)
    sigmas = {float(c.params.get("sigma", 1.0)) for c in comps}
    if net.depth != 1 or any(c.name != "normal" for c in comps) or len(sigmas) != 1:
        raise UnsupportedError(
            "crlb in closed form needs a linear network (one weight matrix) with 'normal' "
            f"outputs of one sigma; got depth {net.depth} and family {fam.label}"
        )
    X, _ = net.inputs(x)
    M = X.shape[0]
    sigma = sigmas.pop()
    Xb = np.concatenate([X, np.ones((M, 1))], axis=1)
    gram = n * Xb.T @ Xb
    if np.linalg.matrix_rank(gram) < gram.shape[0]:
        raise UnsupportedError(
            f"crlb: the {M} inputs do not span R^(n_0+1); I(theta) is singular"
        )
    n_out = net.widths[-1]
    mle_cov = np.kron(np.eye(n_out), np.linalg.inv(gram)) / sigma**2
    crlb = np.linalg.inv(n * M * np.asarray(network_fisher(net, x)))
    diff = mle_cov - crlb
    return Bound(
        "crlb", float(np.trace(mle_cov)), float(np.trace(crlb)), ">=",
        "tr Cov(MLE) >= tr (N M I(theta))^-1 (linear-Gaussian: equality)",
        {"mle_covariance": mle_cov, "crlb": crlb,
         "lambda_min_difference": float(np.linalg.eigvalsh(diff)[0]),
         "max_abs_difference": float(np.max(np.abs(diff)))},
    )


# --- network level ----------------------------------------------------------------------------


def _moments(net: Any, x: Any, estimator: int) -> dict[str, np.ndarray]:
    from .covariance import network_moments

    return network_moments(net, x, estimator)  # type: ignore[arg-type]


def _lemma14(ln: LayerNorms, sup: float, m: int) -> Bound:
    """``lemma-14`` for one layer and input ``m`` (last layer: ``√n_L``, :data:`LEMMA14_NOTE`)."""
    return Bound("lemma-14", ln.frobenius, ln.frobenius_bound * ln.derivative_factor, "<=",
                 f"||dh_L/dW_{ln.layer}||_F <= prod ||W_i^-||_F ||hbar||",
                 {**_layer_hypothesis(ln, sup, m), "factored": ln.frobenius_factored,
                  "paper_rhs": ln.frobenius_bound_paper,
                  "paper_form_holds": ln.frobenius <= ln.frobenius_bound_paper * (1 + 1e-10),
                  "note": LEMMA14_NOTE})


def _lemma15(ln: LayerNorms, sup: float, m: int) -> Bound:
    """``lemma-15`` for one layer and input ``m`` (the norm is certified exactly)."""
    return Bound("lemma-15", ln.spectral.value, ln.spectral_bound * ln.derivative_factor, "<=",
                 f"||dh_L/dW_{ln.layer}||_2sigma <= prod s_max(W_i^-) ||hbar||",
                 {**_layer_hypothesis(ln, sup, m), "paper_rhs": ln.spectral_bound,
                  "certified_interval": (ln.spectral.lower, ln.spectral.upper)})


def _layer_hypothesis(ln: LayerNorms, sup: float, m: int) -> dict[str, Any]:
    return {"layer": ln.layer, "input": m, "sup_abs_derivative": sup,
            "hypothesis_holds": sup <= 1.0, "derivative_factor": ln.derivative_factor}


def _worst(per_input: list[Bound]) -> Bound:
    """The input with the largest lhs/rhs (as lemma-9 reports it); every input's sides and
    whether the paper's literal form held for all of them go in ``details``."""
    worst = max(per_input, key=lambda b: (b.lhs or 0.0) / max(b.rhs or 0.0, 1e-300))
    details = {**worst.details,
               "lhs_per_input": [b.lhs for b in per_input],
               "rhs_per_input": [b.rhs for b in per_input]}
    if "paper_form_holds" in details:
        details["paper_form_holds"] = all(b.details["paper_form_holds"] for b in per_input)
    return replace(worst, details=details)


@dataclass(frozen=True, repr=False)
class Bounds:
    """All bounds for one network and input(s) (see :func:`bounds`). Iterating yields Bounds.

    ``repr`` is a table, one bound per line, with the lemma-9 verdict printed once at the end
    (``lemma9_verdict``; the lemma-9 bounds carry only its ``constant`` in ``details``).
    """

    thm7: Bound
    thm8: Bound
    lemma9_moment: Bound
    lemma9_fisher: Bound
    psd_probability: Bound
    lemma12_1: Bound
    lemma12_2: Bound
    lemma14: list[Bound]
    lemma15: list[Bound]
    lemma9_verdict: str = LEMMA9_VERDICT

    def __iter__(self) -> Iterator[Bound]:
        yield from (self.thm7, self.thm8, self.lemma9_moment, self.lemma9_fisher,
                    self.psd_probability, self.lemma12_1, self.lemma12_2)
        yield from self.lemma14
        yield from self.lemma15

    @property
    def thm10(self) -> Bound:
        """Alias of ``psd_probability``."""
        return self.psd_probability

    def all_hold(self) -> bool:
        """No bound is violated (undecided ones count as holding)."""
        return all(b.holds is not False for b in self)

    def __repr__(self) -> str:
        rows = [self.thm7.row(), self.thm8.row(), self.lemma9_moment.row("lemma-9 (K)"),
                self.lemma9_fisher.row("lemma-9 (I)"), self.psd_probability.row(),
                self.lemma12_1.row("lemma-12 (I1)"), self.lemma12_2.row("lemma-12 (I2)")]
        rows += [b.row(f"lemma-14 W{b.details.get('layer', k)}")
                 for k, b in enumerate(self.lemma14)]
        rows += [b.row(f"lemma-15 W{b.details.get('layer', k)}")
                 for k, b in enumerate(self.lemma15)]
        head = f"{'bound':<14} {'lhs':>12}    {'rhs':<12} {'verdict':<9} {'ratio':<17} claim"
        import textwrap

        verdict = textwrap.wrap(f"lemma-9 constant: {self.lemma9_verdict}", width=96,
                                initial_indent="  ", subsequent_indent="    ")
        lines = ["Bounds(", "  " + head, *("  " + r for r in rows),
                 f"  all hold: {self.all_hold()}", *verdict, ")"]
        return "\n".join(lines)


def bounds(
    net: Any,
    x: Any,
    n: int = 1,
    *,
    eps: float = 0.1,
    psd_draws: int = 0,
    rng: np.random.Generator | int | None = None,
) -> Bounds:
    """Every bound of the paper for ``net`` at input(s) ``x`` with ``n`` draws per input.

    ``thm-7``, ``thm-8``: closed-form lhs (no P⁴ tensor). ``lemma-9``: the input with the
    largest lhs/rhs. ``thm-10``: rhs is the probability bound (``None`` when λ_min(I(θ)) = 0);
    lhs is the observed p.s.d. frequency over ``psd_draws`` seeded replicates (``None`` when
    ``psd_draws = 0``; ``holds`` here ignores sampling error, so judge it with
    :func:`~fisher_verify._src.testing.calibrated.assert_frequency_at_least`). ``lemma-12``: lhs = exact
    ``√(E‖Î − I(θ)‖_F²)``, rhs the radius at ``eps`` (≥ lhs always, as ``ε < 1``).
    ``lemma-14``/``lemma-15``: per layer, the input with the largest lhs/rhs
    (``details['input']``; every input's sides in ``details['lhs_per_input']`` and
    ``details['rhs_per_input']``); rhs is the paper's bound times ``(sup|σ'|)^{L-1-l}`` (1
    under the hypothesis ``|σ'| ≤ 1``, recorded in ``details``), and for lemma-14's last layer
    the empty product is ``√n_L`` (:data:`LEMMA14_NOTE`); the paper's literal rhs is
    ``details['paper_rhs']``.
    """
    # every argument before any work: a bad n or eps must not surface as a ZeroDivisionError
    # (or a TypeError from a comparison) half-way through the bounds
    n = check_count(n, "number of draws per input n")
    eps = check_fraction(eps, "eps (lemma-12's 1 - coverage)")
    psd_draws = check_count(psd_draws, "psd_draws", minimum=0)
    rng = as_generator(rng)
    q1 = _moments(net, x, 1)
    q2 = _moments(net, x, 2)
    J, K, I, H = q1["J"], q1["K"], q1["I"], q2["H"]
    lhs7, rhs7, spec7 = thm7_sides(J, K, I, n)
    lhs8, rhs8 = thm8_sides(H, I, n)
    thm7 = Bound("thm-7", lhs7, rhs7, "<=", "||Cov(I1)||_F <= (1/N)||J||_F^4 ||K - I(x)I||_F",
                 {"spectral_variant": spec7})
    thm8 = Bound("thm-8", lhs8, rhs8, "<=", "||Cov(I2)||_F <= (1/N)||d2 h_L||_F^2 ||I(h_L)||_F")
    s9 = lemma9_sides(K, I)
    k = int(np.argmax(s9["moment_lhs"] / np.maximum(s9["moment_rhs"], 1e-300)))
    kf = int(np.argmax(s9["fisher_lhs"] / np.maximum(s9["fisher_rhs"], 1e-300)))
    verdict = {"constant": LEMMA9_CONSTANT}  # the verdict text: Bounds.lemma9_verdict, once
    l9m = Bound("lemma-9", float(s9["moment_lhs"][k]), float(s9["moment_rhs"][k]), "<=",
                "||K - I(x)I||_F <= (sum_a (sqrt K_aaaa + I_aa))^2",
                {**verdict, "sharp_middle": float(s9["moment_sharp"][k]), "input": k})
    l9f = Bound("lemma-9", float(s9["fisher_lhs"][kf]), float(s9["fisher_rhs"][kf]), "<=",
                "||I(h_L)||_F <= sum_a I_aa", {**verdict, "input": kf})
    pb = psd_probability_bound(J, H, I, n)
    freq: float | None = None
    if psd_draws > 0:
        freq = sample_psd(net, x, n, psd_draws, rng).frequency
    psd = Bound("thm-10", freq, pb.bound, ">=",
                "P(I2 psd) >= 1 - n_L ||rho||^2 lambda_max(I(h_L)) / (N lambda_min(I(theta))^2)",
                {"applicable": pb.applicable, "constant": pb.constant,
                 "bound_trace": pb.bound_trace, "lambda_min_fisher": pb.lambda_min_fisher,
                 "draws": psd_draws})
    tv1 = cov1_total_variance(J, K, I, n)
    tv2 = cov2_total_variance(H, I, n)
    l12 = [Bound("lemma-12", math.sqrt(tv), lemma12_radius(tv, eps), "<=",
                 f"RMS ||I{e} - I(theta)||_F <= radius at eps = {eps} (coverage >= 1 - eps)",
                 {"eps": eps, "total_variance": tv})
           for e, tv in ((1, tv1), (2, tv2))]
    l14: list[Bound] = []
    l15: list[Bound] = []
    # lemma-14/15 bound an Eq. 3 network's layer Jacobians, whose last layer is linear in h; a
    # head through a link (ext-links) is not of that form, and has only the bounds above
    if getattr(net, "link", None) is None:
        sup = sup_abs_derivative(net)
        per_input = layer_norms(net, x)  # [input][layer]
        l14 = [_worst([_lemma14(row[layer], sup, m) for m, row in enumerate(per_input)])
               for layer in range(net.depth)]
        l15 = [_worst([_lemma15(row[layer], sup, m) for m, row in enumerate(per_input)])
               for layer in range(net.depth)]
    return Bounds(thm7, thm8, l9m, l9f, psd, l12[0], l12[1], l14, l15)
