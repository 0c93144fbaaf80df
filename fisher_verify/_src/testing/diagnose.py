"""Name the cause of an estimator gate result (the text of ``EstimatorReport.diagnosis``).

The checks run in a fixed order, so each cause is named by the first check that explains it:

1. non-finite values;
2. replicates that do not vary (compared exactly, at rounding tolerance): equal to ``I(θ)``
   (an exact Fisher, e.g. EWC's "all labels weighted by their probability"), or to it up to
   float32 rounding, or to it times a factor ("I(θ) × M (a sum over the inputs, not a mean)"),
   the Gauss–Newton matrix of a non-canonical head at the data's labels (``J_fᵀ ∂²(−ℓ)/∂f²
   J_f`` for a head ``f`` with a link ``h = g(f)``: "the GGN of a non-canonical head",
   ``ext-ggn-noncanonical``), the argmax labels (``Î`` at the most likely label), the data's labels (the empirical
   Fisher), either of those times a factor ("the empirical Fisher × 16/15"), or deterministic
   and wrong with its relative error;
3. the means pass and the spread does not: "unbiased but k× noisier than Î₁ with n draws"
   (or quieter, when the estimator was declared to be ``Î_kind``);
4. a constant factor ``c`` (the pooled scale test's weighted mean) when ``c · I(θ)`` fits every
   statistic within the standard error of the residual, named when a known factor is within 4
   exact standard errors of ``c`` (1/n, n, 1/M, M, N/(N−1), M/(M−1), (N−1)/N, a simple
   fraction such as 4/3);
5. a parameter permutation of ``I(θ)`` (``model.parameters()`` order, column-major weights);
   before 4, for a family with a padding mask (``ext-sequence``): the Fisher information with the
   padded positions counted;
6. otherwise: labels from a distribution other than ``p(y|x,θ)``.

The verdict itself (pass/fail) is the calibrated test of the gate; this module only reads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..networks.network import Network
from .gate_exact import ExactStatistics
from .spread import SpreadResult

__all__: list[str] = []  # nothing for other rooms


@dataclass(frozen=True)
class Diagnosis:
    """What the gate's numbers say.

    Attributes:
        cause: a short code: ``ok``, ``exact``, ``nonfinite``, ``rounding``, ``exact_scaled``,
            ``ggn_noncanonical``, ``argmax_labels``, ``data_labels``, ``deterministic``,
            ``noisier``, ``quieter``, ``padding``, ``scale``, ``permutation``, ``distribution``.
        text: the sentence shown to the user.
        scale: the precision-weighted least-squares factor c in ``observed ≈ c · exact``.
        scale_explains: whether ``c · I(θ)`` fits every statistic.
        factor: the named factor (e.g. ``"1/n"``, ``"4/3"``), or ``""``.
    """

    cause: str
    text: str
    scale: float
    scale_explains: bool
    factor: str = ""


#: Relative errors up to this size (about 84 float32 epsilons) are rounding, not a wrong estimate.
FLOAT32_ROUNDING = 1e-5

#: float32's machine epsilon: an error above a quarter of it has the size of float32 rounding.
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def rounding_text(err: float, what: str) -> str:
    """The sentence for an estimate equal to ``what`` up to a relative error ``err`` ≤
    :data:`FLOAT32_ROUNDING`, above the rounding tolerance it was checked at."""
    # storing a float64 value as float32 is off by up to eps/2 relative; a float32 computation
    # by more: from eps/4 on, the error has float32's size
    if err >= FLOAT32_EPS / 4:
        cause = (
            f"the size of float32 rounding (float32 eps = {FLOAT32_EPS:.2g}). A float32 "
            "computation (a float32 reference operator or model copy) on a float64 model? "
            "Compute in float64, or pass rtol=1e-4 to accept float32 rounding."
        )
    else:
        cause = (
            f"rounding well below float32's epsilon ({FLOAT32_EPS:.2g}): digits lost in a float64 "
            "computation (e.g. an operator densified by products)? Pass a larger rtol to accept it."
        )
    return f"equal to {what} up to a relative error {err:.2g}, above the rounding tolerance: {cause}"


def layer_permutations(net: Network) -> list[tuple[str, np.ndarray]]:
    """Orders a user might return: ``π`` with ``estimate[i] = I[π(i)]`` in the Network's order.

    * ``model.parameters()`` order (per Linear: the weight row-major, then the bias), the usual
      PyTorch flattening, when the estimate was not permuted into the Network's ``[W | b]``;
    * the inverse permutation (permuted twice);
    * column-major ``[W | b]`` (a transposed weight).
    """
    own = getattr(net, "layer_permutations", None)
    if own is not None:  # a network of any parameter tensors knows its own plausible orders
        return list(own())
    torch_order: list[int] = []
    col_major: list[int] = []
    off = net.offsets
    for layer, (rows, cols) in enumerate(net.shapes):
        base = off[layer]
        torch_order.extend(base + r * cols + c for r in range(rows) for c in range(cols - 1))
        torch_order.extend(base + r * cols + cols - 1 for r in range(rows))
        col_major.extend(base + r * cols + c for c in range(cols) for r in range(rows))
    perm = np.asarray(torch_order, dtype=np.int64)
    out = [
        ("model.parameters() order (weight, then bias, per layer) instead of the Network's "
         "[W | b] rows", perm),
        ("the inverse of the model.parameters() permutation (permuted twice?)", np.argsort(perm)),
        ("column-major weights (a transposed W)", np.asarray(col_major, dtype=np.int64)),
    ]
    ident = np.arange(net.num_params)
    return [(name, p) for name, p in out if not np.array_equal(p, ident)]


def _named_factors(n: int, M: int) -> list[tuple[float, str, str]]:
    """Known factors (value, short name, meaning), in order of preference."""
    out: list[tuple[float, str, str]] = [
        (float(n), "n", f"n = {n}: a missing 1/N (a sum over the draws instead of a mean)"),
        (float(M), "M", f"M = {M}: a missing 1/M (a sum over the inputs instead of a mean)"),
        (float(n * M), "n·M", f"n·M = {n * M}: a sum over draws and inputs instead of a mean"),
        (1.0 / n, "1/n", f"1/n = 1/{n}: divided by the number of draws twice (a Monte Carlo "
         "Fisher that scales as 1/(number of samples), as ASDL's fisher_mc does)"),
        (1.0 / M, "1/M", f"1/M = 1/{M}: divided by the number of inputs twice"),
    ]
    if M > 1:
        out.append((1.0 / (M * M), "1/M²", f"1/M² = 1/{M * M}: outer products of the gradients "
                    "of the batch-mean loss (each already carries 1/M; backward hooks on a "
                    "mean-reduced loss), then averaged over the M inputs"))
    if n > 1:
        out += [
            (n / (n - 1.0), "N/(N-1)", f"N/(N−1) = {n}/{n - 1}: a Bessel correction over the "
             "draws (the score's mean is 0 exactly: divide by N)"),
            ((n - 1.0) / n, "(N-1)/N", f"(N−1)/N = {n - 1}/{n}: the draws' sample mean "
             "subtracted from the scores (their mean is 0 exactly: do not centre)"),
        ]
    if M > 1:
        out += [
            (M / (M - 1.0), "M/(M-1)", f"M/(M−1) = {M}/{M - 1}: a Bessel correction over the "
             "inputs (divide by M)"),
            ((M - 1.0) / M, "(M-1)/M", f"(M−1)/M = {M - 1}/{M}: centred over the inputs"),
        ]
    out += [
        (0.5, "1/2", "1/2: a loss convention with a factor 1/2 (e.g. MSE as 0.5‖·‖²)?"),
        (2.0, "2", "2: a factor 2 (e.g. squared error without 1/2)?"),
    ]
    for q in range(1, 7):
        for p in range(1, 7):
            f = Fraction(p, q)
            if f.denominator == q and p != q and float(f) not in {v for v, _, _ in out}:
                out.append((float(f), f"{p}/{q}" if q > 1 else f"{p}", ""))
    return out


#: What a factor means when it multiplies a deterministic estimate (compound diagnoses).
_COMPOUND_MEANING = {
    "M": "a sum over the inputs, not a mean",
    "1/M": "divided by the number of inputs twice",
    "M/(M-1)": "divided by M − 1 instead of M",
    "(M-1)/M": "centred over the inputs",
}


def _exact_factor(observed: np.ndarray, ref: np.ndarray, tol: np.ndarray) -> float | None:
    """``c`` with ``observed = c · ref`` at the tolerance ``tol`` (deterministic estimates), else
    None (also for ``c`` = 1 and a zero reference)."""
    den = float(ref @ ref)
    if not den > 0:
        return None
    c = float(observed @ ref) / den
    if not math.isfinite(c) or abs(c - 1.0) <= 1e-9:
        return None
    return c if _equal_at(observed, c * ref, tol) else None


def _equal_at(observed: np.ndarray, ref: np.ndarray, tol: np.ndarray) -> bool:
    """Whether a deterministic ``observed`` equals ``ref`` at the tolerance ``tol`` (widened by
    ``1e-6 |ref|``: the reference is computed by another route and rounds differently)."""
    return bool(np.all(np.abs(observed - ref) <= tol + 1e-6 * np.abs(ref)))


def _compound(c: float, n: int, M: int) -> tuple[str, str]:
    """``(" × 16/15 (divided by M − 1 instead of M)", short name)`` for a factor that fits
    exactly; the number alone when no known factor is within 1e-6 of it."""
    for value, short, _ in _named_factors(n, M):
        # a deterministic estimate draws nothing: the factors of the draws do not apply
        if short in ("n", "n·M", "1/n", "N/(N-1)", "(N-1)/N"):
            continue
        if abs(value - c) <= 1e-6 * abs(c):
            frac = Fraction(value).limit_denominator(10**6)
            shown = f"{frac.numerator}/{frac.denominator}" if frac.denominator > 1 else f"{frac.numerator}"
            meaning = _COMPOUND_MEANING.get(short, "")
            return f" × {shown}" + (f" ({meaning})" if meaning else ""), short
    return f" × {c:.6g}", ""


def _at_labels(
    observed: np.ndarray, ref: np.ndarray, tol: np.ndarray, n: int, M: int, cause: str,
    equal_text: str, scaled_text: Callable[[str], str],
) -> Diagnosis | None:
    """The diagnosis ``cause`` of a deterministic ``observed`` equal to ``ref``, the statistics
    at some labels (``equal_text``), or to ``ref`` times a factor (``scaled_text`` of the
    factor's words from :func:`_compound`); None when it is neither."""
    if _equal_at(observed, ref, tol):
        return Diagnosis(cause, equal_text, math.nan, False)
    c = _exact_factor(observed, ref, tol)
    if c is None:
        return None
    text, short = _compound(c, n, M)
    return Diagnosis(cause, scaled_text(text), math.nan, False, short)


def scale_fit(
    observed: np.ndarray, expected: np.ndarray, variance: np.ndarray, emp_sd: np.ndarray,
    scales: np.ndarray, R: int,
) -> tuple[float, float]:
    """Precision-weighted least squares ``c`` of ``observed ≈ c · expected`` and a bound on its
    standard error (Cauchy–Schwarz over the correlated statistics)."""
    use = (variance > 0) & (expected != 0) & np.isfinite(observed)
    if np.any(use):
        wts = 1.0 / variance[use]
        e, o, s = expected[use], observed[use], emp_sd[use]
    else:
        use = (scales > 0) & np.isfinite(observed)
        if not np.any(use):
            return math.nan, math.nan
        wts = 1.0 / scales[use] ** 2
        e, o, s = expected[use], observed[use], emp_sd[use]
    den = float(np.sum(wts * e * e))
    if den <= 0:
        return math.nan, math.nan
    c = float(np.sum(wts * e * o) / den)
    se = float(np.sum(np.abs(wts * e) * s) / math.sqrt(R) / den)
    return c, se


def _fits_within_se(
    means: np.ndarray, c: float, se_c: float, expected: np.ndarray, variance: np.ndarray,
    emp_sd: np.ndarray, radius: np.ndarray, slack: np.ndarray, R: int,
) -> bool:
    """Whether ``c · exact`` fits every statistic's plain mean within the gate's threshold in
    standard errors of the residual ``mean − c·exact``: the estimator's own (empirical) standard
    error and that of ``c``. A factor that fits only because the threshold calibrated for
    ``Î_kind`` dwarfs a small estimate (softmax fed to cross_entropy: per-entry ratios from
    0.026 to 0.14) is not a constant factor."""
    if not (math.isfinite(c) and math.isfinite(se_c)):
        return False
    sd = np.sqrt(np.maximum(variance, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, radius * math.sqrt(R) / np.where(sd > 0, sd, 1.0), 0.0)
    se_res = np.sqrt(emp_sd**2 / R + (se_c * expected) ** 2)
    room = np.where(sd > 0, z * se_res, radius) + slack + 1e-9 * np.abs(c * expected)
    return bool(np.all(np.abs(means - c * expected) <= room))


def _fits(
    target: np.ndarray, observed: np.ndarray, radius: np.ndarray, slack: np.ndarray, factor: float
) -> bool:
    room = max(1.0, abs(factor)) * (radius + slack) + 1e-9 * abs(target)
    return bool(np.all(np.abs(observed - target) <= room))


def _padding_counted(ex: ExactStatistics, fam: Any) -> np.ndarray | None:
    """The statistics' expectation had the padded positions been counted (a family with a padding
    mask, ``ext-sequence``: every mask entry set to 1), or None when no position is padded."""
    unmasked = getattr(fam, "unmasked", None)
    if unmasked is None:
        return None
    h_all = np.asarray(unmasked(ex.h), dtype=np.float64)
    if np.array_equal(h_all, ex.h):
        return None
    Ih = np.asarray(fam.fisher(h_all), dtype=np.float64)
    M, _, P = ex.J.shape
    if ex.diagonal_only:
        diag = np.einsum("map,mab,mbp->p", ex.J, Ih, ex.J) / M
        return np.concatenate([diag, (ex.V * ex.V) @ diag])
    F = np.einsum("map,mab,mbq->pq", ex.J, Ih, ex.J) / M
    return np.concatenate([np.diag(F), np.einsum("kp,pq,kq->k", ex.V, F, ex.V)])


def _mode_statistic(fam: Any, h: np.ndarray) -> np.ndarray | None:
    """t at the most likely label per input (M, d); None for a continuous support."""
    if fam.factors != (fam,):  # independent components: each one's mode
        parts = [_mode_statistic(c, h[..., b]) for c, b in zip(fam.factors, fam.factor_blocks)]
        if any(p is None for p in parts):
            return None
        return np.concatenate(parts, axis=-1)  # type: ignore[arg-type]
    if fam.definition.support.kind == "continuous":
        return None
    t, w, _ = fam.expectation_nodes(h, degree=2)
    idx = np.argmax(w, axis=-1)
    return np.take_along_axis(t, idx[:, None, None], axis=1)[:, 0, :]


def head_link(net: Any) -> Any:
    """The link ``h = g(f)`` of ``net``'s head, or None for a canonical head: a
    :class:`~fisher_verify._src.networks.linked.LinkedNetwork`'s, or the one a loss's head put on a
    module network's output map (:func:`fisher_verify._src.models.prepared.prepare_model`)."""
    link = getattr(net, "link", None)
    if link is None:
        output = getattr(getattr(net, "prep", None), "output", None)
        link = getattr(output, "link", None)
    return link


def noncanonical_ggn(ex: ExactStatistics, net: Any, labels_t: np.ndarray) -> np.ndarray | None:
    """The gate's statistics of the Gauss–Newton matrix split at the head's output ``f`` with
    the labels ``labels_t`` (k, M, d): ``(1/M) Σ_m J_fᵀ (−∂²ℓ/∂f²) J_f`` with ``−∂²ℓ/∂f² =
    g′ᵀ I(h) g′ − Σ_k (t − η)_k g″_k`` (``ext-ggn-noncanonical``), written in ``J_h = g′ J_f``;
    None for a canonical head (where it is ``I(θ)`` at every label)."""
    link = head_link(net)
    if link is None or ex.labels_fn is not None:
        return None
    f = link.head_of(ex.h)
    inv = np.linalg.inv(link.jacobian(f))  # (M, n, d): J_f = g′⁻¹ J_h
    B = np.einsum("mia,mkij,mjb->mkab", inv, link.hessian(f), inv)
    r = np.mean(np.asarray(labels_t, dtype=np.float64) - ex.eta[None], axis=0)  # (M, d)
    A = np.asarray(net.family.fisher(ex.h)) - np.einsum("mk,mkab->mab", r, B)
    J = ex.J
    M, P = J.shape[0], J.shape[-1]
    diag = np.einsum("map,mab,mbp->p", J, A, J) / M
    if ex.diagonal_only:
        dirs = (ex.V * ex.V) @ diag
    else:
        Jv = np.einsum("map,kp->mka", J, ex.V)
        dirs = np.einsum("mka,mab,mkb->k", Jv, A, Jv) / M
    out = np.concatenate([diag, dirs])
    assert out.shape[0] == P + ex.V.shape[0]
    return out


def _deterministic(
    ex: ExactStatistics, net: Network, observed: np.ndarray, slack: np.ndarray, labels_t: Any,
    declared: str, labels_hint: str, M: int,
) -> Diagnosis:
    kind = ex.tag or ex.kind
    expected = ex.expected
    P = ex.J.shape[-1]
    if np.all(np.abs(observed - expected) <= slack + 1e-12 * np.abs(expected)):
        if np.all(np.sqrt(ex.variance) <= 1e-7 * ex.scales):  # zero up to rounding (fig-1)
            return Diagnosis(
                "exact", f"deterministic and equal to I(θ) (eq-6), as Î{kind} is at these "
                "parameters: its exact variance is 0 (e.g. fig-1, a Bernoulli output at h = 0).",
                1.0, True,
            )
        if declared == "exact":
            return Diagnosis(
                "exact", "deterministic and equal to I(θ) at rounding tolerance (an exact "
                f"Fisher), but it was declared to be the Monte Carlo Î{kind} with n = {ex.n} "
                "draws: it does not sample.", 1.0, True,
            )
        return Diagnosis(
            "exact", "deterministic and equal to I(θ) (eq-6) at rounding tolerance: an exact "
            "Fisher (e.g. every label weighted by its probability), not a Monte Carlo one.",
            1.0, True,
        )
    d_obs, d_exp = observed[:P], expected[:P]
    rel = float(np.linalg.norm(d_obs - d_exp)) / max(float(np.linalg.norm(d_exp)), 1e-300)
    tol = 1e-6 * np.maximum(np.abs(observed), 1.0e-300) + slack
    n = ex.n
    # off by float32 rounding only (a float32 operator or model copy on a float64 model): say
    # so at the size observed, rather than suspect the labels
    err = float(np.max(np.abs(observed - expected) / np.maximum(ex.scales, 1e-300)))
    if err <= FLOAT32_ROUNDING:
        return Diagnosis(
            "rounding", "deterministic and " + rounding_text(err, "I(θ)"), 1.0, True,
        )
    # a deterministic estimate that is also rescaled: both parts are named
    c = _exact_factor(observed, expected, tol)
    if c is not None:
        text, short = _compound(c, n, M)
        return Diagnosis(
            "exact_scaled", f"deterministic and equal to I(θ){text}: an exact Fisher (every "
            "label weighted by its probability) with a wrong normalisation, not a Monte Carlo "
            "estimate.", c, True, short,
        )
    ggn = noncanonical_ggn(ex, net, labels_t) if labels_t is not None else None
    if ggn is not None and _equal_at(observed, ggn, tol):
        link = head_link(net)
        return Diagnosis(
            "ggn_noncanonical", "deterministic and equal to the GGN of a non-canonical head at "
            f"the data's labels: J_fᵀ ∂²(−log p(y|f))/∂f² J_f for a head f through the link "
            f"{link.name} (h = g(f)), which carries the residual (t(y) − η) times ∂²h/∂f² and so "
            f"is not I(θ) (relative error {rel:.3g} on the diagonal; ext-ggn-noncanonical). Use "
            "J_fᵀ g′ᵀ I(h) g′ J_f, or draw the labels from the model p(y|x,θ): the GGN is "
            "unbiased for I(θ) then.", math.nan, False,
        )
    if labels_t is not None:
        found = _at_labels(
            observed, ex.at_labels(labels_t), tol, n, M, "data_labels",
            f"deterministic and equal to Î{kind} at the data's labels: this "
            f"is the empirical Fisher (relative error {rel:.3g} against I(θ) on the "
            "diagonal). Draw the labels from the model p(y|x,θ) instead.",
            lambda text: f"deterministic and equal to the empirical Fisher{text}: Î{kind} "
            "at the data's labels, rescaled (relative error "
            f"{rel:.3g} against I(θ) on the diagonal). Draw the labels from the model "
            "p(y|x,θ) instead, and fix the normalisation.",
        )
        if found is not None:
            return found
    t_mode = _mode_statistic(net.family, ex.h)
    if t_mode is not None:
        found = _at_labels(
            observed, ex.at_labels(t_mode[None]), tol, n, M, "argmax_labels",
            f"deterministic and equal to Î{kind} at the most likely label "
            "of every input (argmax labels, the top-class score outer product; relative "
            f"error {rel:.3g} against I(θ) on the diagonal). Sample y ~ p(y|x,θ) instead "
            "of taking the argmax.",
            lambda text: f"deterministic and equal to Î{kind} at the most likely label "
            f"of every input{text} (argmax labels, rescaled). Sample y ~ p(y|x,θ) instead of "
            "taking the argmax, and fix the normalisation.",
        )
        if found is not None:
            return found
    hint = (
        f" If it uses the data's labels this is the empirical Fisher ({labels_hint}); "
        "otherwise the rng may be ignored."
        if labels_t is None
        else " It is not the empirical Fisher of the given labels either; is the rng ignored?"
    )
    return Diagnosis(
        "deterministic", "the replicates do not vary: deterministic and wrong (relative "
        f"error {rel:.3g} against I(θ) on the diagonal), not I(θ), not the argmax labels.{hint}",
        math.nan, False,
    )


def diagnose(
    *,
    ex: ExactStatistics,
    net: Network,
    values: np.ndarray,
    observed: np.ndarray,
    radius: np.ndarray,
    slack: np.ndarray,
    spread: SpreadResult,
    constant: bool,
    passed: bool,
    mean_ok: bool,
    declared: str,
    labels_t: np.ndarray | None,
    M: int,
    emp_sd: np.ndarray | None = None,
    pooled: tuple[Any, ...] = (),
    labels_hint: str = "pass labels= to check_estimator",
) -> Diagnosis:
    """The first cause (module docstring order) that explains the numbers."""
    kind, n = ex.tag or ex.kind, ex.n
    expected, variance = ex.expected, ex.variance
    R = values.shape[0]
    if not np.all(np.isfinite(values)):
        return Diagnosis("nonfinite", "the estimator returned NaN or infinite values", math.nan, False)
    if emp_sd is None:
        emp_sd = values.std(axis=0, ddof=1) if R > 1 else np.zeros_like(expected)
    quiet = bool(np.any(spread.too_quiet))
    noisy = bool(np.any(spread.too_noisy))
    exact_equal = bool(np.all(np.abs(observed - expected) <= slack + 1e-12 * np.abs(expected)))
    if constant and passed and not exact_equal:
        return Diagnosis(
            "ok", "consistent with an unbiased estimator of I(θ) (eq-6): the replicates did not "
            f"vary, but neither would those of Î{kind} with n = {n} draws often do here (a "
            "label with probability near 1); the calibrated mean and spread tests accept it.",
            math.nan, False,
        )
    if constant:
        return _deterministic(ex, net, observed, slack, labels_t, declared, labels_hint, M)
    ratio = spread.ratio
    tested = spread.tested
    # plain means: unbiased for c·I(θ) whatever the skew (Catoni's estimate is not, for c ≠ 1)
    c, se = scale_fit(values.mean(axis=0), expected, variance, emp_sd, ex.scales, R)
    scale_t = next((t for t in pooled if t.name == "scale"), None)
    if scale_t is not None:
        # the pooled scale test's plain mean is c; its standard error is exact (thm-4 /
        # thm-6, correlations included), or the empirical one for a noisier estimator
        c = scale_t.mean
        se = max(scale_t.standard_error, scale_t.empirical_sd / math.sqrt(scale_t.replications))
    if scale_t is not None:
        explains = _fits_within_se(values.mean(axis=0), c, se, expected, variance, emp_sd, radius,
                                   slack, R)
    else:
        explains = bool(math.isfinite(c) and _fits(c * expected, observed, radius, slack, c))
    name = f"Î{kind}"
    # a noisier estimator may miss the means calibrated for Î_kind by noise alone: judge its
    # means with the radius widened by its own (empirical, mean-free) spread
    with np.errstate(divide="ignore", invalid="ignore"):
        widen = np.where(variance > 0, np.maximum(1.0, emp_sd / np.sqrt(variance)), 1.0)
    unbiased_given_spread = bool(np.all(np.abs(observed - expected) <= widen * radius + slack))
    if (mean_ok or (noisy and unbiased_given_spread)) and (
        noisy or (quiet and declared == "exact")
    ):
        bad = spread.too_noisy if noisy else spread.too_quiet
        # the sample variance (mean-free) over the exact one, on the statistics that are off
        emp_ratio = (widen if noisy else emp_sd / np.sqrt(np.where(variance > 0, variance, 1.0))) ** 2
        k = float(np.median(emp_ratio[bad]))
        if noisy:
            return Diagnosis(
                "noisier", f"unbiased{'' if mean_ok else ' (as far as its spread lets us tell)'} "
                f"but {k:.3g}x noisier than {name} with n = {n} draws per "
                f"input (variance ratio, median over the {int(np.sum(bad))} statistics whose "
                f"spread is off; like about {n / k:.3g} draws): noise shared across inputs, "
                "draws reused, or a mini-batch shortcut (a squared batch-mean gradient)? The "
                f"mean test's guarantee assumes at most the variance of {name}(n).", c, explains,
            )
        return Diagnosis(
            "quieter", f"unbiased but {1 / k:.3g}x less variable than the declared {name} with "
            f"n = {n} draws per input (like about {n / k:.3g} draws): it is not {name}(n) as "
            "declared (more draws, or another estimator).", c, explains,
        )
    if passed:
        text = f"consistent with an unbiased estimator of I(θ) (eq-6) with the spread of {name}."
        if np.any(tested):
            med = float(np.nanmedian(ratio[tested]))
            if med < 0.5:
                text = (
                    "consistent with an unbiased estimator of I(θ) (eq-6), "
                    f"{1 / med:.2g}x less variable than {name} with n = {n} draws (allowed: "
                    "declare variance='exact' to require it to be that estimator)."
                )
        return Diagnosis("ok", text, c, explains)
    # the means are off
    padded = _padding_counted(ex, net.family)
    # plain means against their empirical standard errors: Catoni's estimate, scaled for the
    # spread of the correct estimator, is pulled far off by one that also samples padding labels
    if padded is not None and R > 1 and bool(np.all(
            np.abs(values.mean(axis=0) - padded) <= 6.0 * emp_sd / math.sqrt(R) + slack)):
        return Diagnosis(
            "padding", "your estimator counts the padding positions: its mean is the Fisher "
            "information with every position's label included (I(θ) of the unmasked sequences), "
            "not that of the real positions only. Mask the padded positions out of the loss "
            "(ignore_index, or the attention/padding mask) when sampling the labels.", c, explains,
        )
    if explains and abs(c - 1.0) > 1e-3:
        best: tuple[float, str, str] | None = None
        for value, short, why in _named_factors(n, M):
            if short == "1/M²" and ex.tag not in ("", "_KFAC"):
                continue  # per-sample gradients outer-producted: Î₁, Î₂ and K-FAC's G only
            if scale_t is not None:
                # named only within 4 exact standard errors of ĉ for value · Î_kind (a fixed z):
                # an estimator that is not a rescaled Î_kind (label smoothing: ĉ 12x noisier than
                # that) gets no spurious simple fraction
                tol = 4.0 * abs(value) * scale_t.standard_error + 1e-9 * abs(value)
            else:
                tol = 3.0 * se + 5e-3 * abs(c) if math.isfinite(se) else 5e-3 * abs(c)
            if abs(value - c) <= tol and _fits(value * expected, observed, radius, slack, value):
                if best is None or abs(math.log(value / c)) < abs(math.log(best[0] / c)) - 1e-12:
                    best = (value, short, why)
        size = "too large" if c > 1 else "too small"
        if best is not None:
            value, short, why = best
            if value < 1:
                # "1/nx too small" misreads; say how many times too small, then the factor
                head = f"{1 / value:.4g}x {size} ({value:.4g}x = {short})"
            else:
                shown = short if "/" in short or short.isdigit() else f"{short} = {value:.4g}"
                head = f"{shown}x {size} ({value:.4g}x)"
            return Diagnosis(
                "scale", f"your estimator is {head}: a rescaled I(θ) "
                "fits every statistic." + (f" The factor is {why}" if why else ""), c, True, short,
            )
        head = f"{1 / c:.4g}x {size} ({c:.4g}x)" if 0 < c < 1 else f"{c:.4g}x {size}"
        note = ""
        if scale_t is not None and scale_t.sd > 0:
            spread_x = scale_t.empirical_sd / (abs(c) * scale_t.sd)
            if spread_x > 2.0:
                note = (
                    f" It is not a rescaled Î{kind} with n = {n} draws, though: its weighted mean "
                    f"varies {spread_x:.3g}x more than c·Î{kind}'s would (smoothed or tempered "
                    "labels, other per-sample terms?), so no simple factor is named."
                )
        return Diagnosis(
            "scale", f"your estimator is {head}: a rescaled I(θ) fits every statistic.{note}",
            c, True,
        )
    P = ex.J.shape[-1]
    for what, perm in layer_permutations(net):
        diag_p = expected[:P][perm]
        if ex.diagonal_only:
            dirs = (ex.V * ex.V) @ diag_p
        else:
            assert ex.fisher_full is not None
            Ip = ex.fisher_full[np.ix_(perm, perm)]
            dirs = np.einsum("kp,pq,kq->k", ex.V, Ip, ex.V)
        # the permuted diagonal has the permuted exact sd; a permuted direction's sd is not
        # computed, so its radius is widened (this is a diagnosis, not the calibrated verdict)
        rad_p = np.concatenate([radius[:P][perm], 3.0 * radius[P:]])
        slack_p = np.concatenate([slack[:P][perm], slack[P:]])
        if _fits(np.concatenate([diag_p, dirs]), observed, rad_p, slack_p, 1.0):
            return Diagnosis(
                "permutation", f"the estimate is I(θ) in another parameter order: {what}. "
                "Permute it into the Network's flat θ (a module's gate reads it in parameters() order itself).",
                c, explains,
            )
    pooled_only = "" if not mean_ok else (
        " (seen by the pooled tests; every statistic alone is within its threshold)"
    )
    return Diagnosis(
        "distribution", f"biased{pooled_only}, and not by a constant factor (best factor {c:.3g} does not "
        "fit) nor a parameter permutation: the labels seem to come from a distribution other "
        "than p(y|x,θ) (a stale or perturbed θ, a wrong family or link, tempered or smoothed "
        "labels) or the per-sample terms are wrong.", c, explains,
    )
