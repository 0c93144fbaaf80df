"""A calibrated CI gate for *anyone's* Monte Carlo Fisher estimator.

:func:`gate_network` (behind :func:`fisher_verify.check_estimator`) runs a user's estimator
``R`` times and tests that it is unbiased for the exact Fisher information
``I(θ) = (1/M) Σ_m J_mᵀ I(h_L(x_m)) J_m`` (``eq-6``) of a
:class:`~fisher_verify._src.networks.network.Network`, and that it varies as an honest Monte Carlo
estimator with ``n`` draws per input does. It catches a missing ``1/N``, a wrong scale, the
"empirical Fisher" mistake (labels from data instead of from the model), argmax labels, labels
drawn at a stale θ, a parameter permutation, noise shared across inputs, reused draws, and
names the cause (:mod:`fisher_verify._src.testing.diagnose`).

**What is tested.** Each replicate ``Î^(r)`` (a ``P×P`` matrix, or its diagonal) is reduced to
``S`` linear statistics ``s_j(Î) = ⟨W_j, Î⟩``:

* every diagonal element ``Î_ii`` (``W = e_i e_iᵀ``);
* ``directions`` random quadratic forms ``vᵀ Î v`` (``W = v vᵀ``, ``v`` uniform on the unit
  sphere, drawn from ``rng`` *before* any replicate, so independent of the draws); with
  ``diagonal_only`` the form ``vᵀ Diag(Î) v = Σ_i v_i² Î_ii``.

Their exact mean, variance (``thm-4`` / ``thm-6``) and fourth central moment come from
:mod:`fisher_verify._src.testing.gate_exact`.

**Means.** For each statistic the ``R`` replicate values are i.i.d. with mean ``s_j(I(θ))``
and variance ``σ_j²`` under the null. Catoni's M-estimator (:mod:`fisher_verify._src.testing.catoni`)
misses the mean by more than ``σ_j sqrt(2L/(R − 2L))``, ``L = log(2/δ)``, with probability at
most ``δ`` — only the variance is used, no normality — and that radius is about 10% above the
Gaussian one at ``R = 200`` (3% at ``R = 10⁴``). Below Catoni's range (``R ≤ 2L``) the means
fall back to a median of group means (Chebyshev per group, an exact binomial tail).

**Spread.** The squared deviations ``(X − μ_j)²`` have mean ``σ_j²`` and variance
``μ₄ − σ_j⁴`` exactly, so Catoni's estimate of their mean tests the spread two-sided
(:mod:`fisher_verify._src.testing.spread`). A spread significantly *larger* than that of ``Î_kind``
fails (the mean test's guarantee assumes at most that variance); a *smaller* one fails only
when the estimator is declared to be ``Î_kind`` (``variance="exact"``), or when the replicates
do not vary at all and are not ``I(θ)``.

**Constant statistics.** A statistic equal to ``c`` in every replicate is rejected when
``(σ²/(σ² + (c − μ)²))^(R−1)`` — a bound on the probability of ``R`` equal values for any law
with mean ``μ`` and variance ``≤ σ²`` — is below its level.

**Pooled tests.** Linear combinations of the statistics average the noise down: the
precision-weighted scale factor against 1 and a split-sample omnibus
(:mod:`fisher_verify._src.testing.pooled`), calibrated by the exact variance of the combination
(the statistics' correlations included).

**Level.** ``0.9 alpha`` is split evenly over the ``T`` mean and spread tests, ``0.05 alpha``
over the constant-statistic tests and ``0.05 alpha`` over the pooled tests, so by the union
bound (Bonferroni) the whole gate raises a false alarm with probability ``≤ alpha`` (default
``1e-6``) for an estimator distributed as ``Î_kind`` with ``n`` draws. The mean, pooled and
constant tests stay valid for any unbiased estimator with at most that variance (every linear
statistic ``⟨W, Î⟩`` at most as variable as under ``Î_kind``). A tiny deterministic
tolerance ``rtol · ⟨|W|, |I(θ)|⟩`` for rounding only widens the acceptance regions.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np

from ..errors import FisherVerifyError, ShapeError, UnsupportedError
from ..networks.network import Network, require_network
from ..validation import (
    as_generator,
    check_callable,
    check_count,
    check_flag,
    check_fraction,
    check_nonnegative,
)
from .calibrated import DEFAULT_ALPHA, median_of_means_plan
from .catoni import catoni_mean, catoni_radius_factor, catoni_scale, minimum_catoni_draws
from .diagnose import diagnose
from .gate_exact import exact_statistics
from .gate_kinds import (
    Kind,
    Subsampled,
    check_kind,
    fisher_statistics,
    gnb_clipping,
    kind_alternatives,
    kind_note,
    kind_statistics,
    kind_target,
)
from .gate_report import (
    Estimator,
    EstimatorReport,
    GateStatistics,
    ParameterLabels,
    _as_array,
    _replaying,
    collect_values,
)
from .pooled import pooled_tests
from .spread import spread_test

__all__ = ["EstimatorReport"]

#: Exact sds below this fraction of ``⟨|W|, |I(θ)|⟩`` are zero up to rounding (no spread test).
SD_FLOOR = 1e-7



def _column_summaries(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain means, sample sds (``ddof=1``; 0 for one replicate) and ranges of the columns of
    ``values`` (R, S), a block of columns at a time: one pass that stays in cache instead of
    NumPy's separate passes and (R, S) temporaries."""
    R, S = values.shape
    means, sds, ptp = np.empty(S), np.zeros(S), np.empty(S)
    for lo in range(0, S, 512):
        block = values[:, lo : lo + 512]
        mu = block.mean(axis=0)
        means[lo : lo + 512] = mu
        ptp[lo : lo + 512] = block.max(axis=0) - block.min(axis=0)
        if R > 1:
            dev = block - mu
            dev *= dev
            sds[lo : lo + 512] = np.sqrt(dev.sum(axis=0) / (R - 1))
    return means, sds, ptp


def _own_param_labels(net: Network) -> list[str] | None:
    """``Î[i,i] (conv.weight[…])`` of a network that names its own parameters (any
    ``nn.Module``), else None (an Eq. 3 network's are made from its shapes when read)."""
    own = getattr(net, "parameter_labels", None)
    if own is None:
        return None
    return [f"Î[{i},{i}] ({label})" for i, label in enumerate(own())]


def _param_labels(net: Network) -> list[str]:
    """``Î[i,i] (W0[r,c])`` / ``(b0[r])`` for every flat-θ index, in order; a network that
    names its own parameters (``parameter_labels``, any ``nn.Module``) gives ``(conv.weight[…])``."""
    own = getattr(net, "parameter_labels", None)
    if own is not None:
        return [f"Î[{i},{i}] ({label})" for i, label in enumerate(own())]
    out: list[str] = []
    i = 0
    for layer, (rows, cols) in enumerate(net.shapes):
        for r in range(rows):
            for c in range(cols):
                what = f"b{layer}[{r}]" if c == cols - 1 else f"W{layer}[{r},{c}]"
                out.append(f"Î[{i},{i}] ({what})")
                i += 1
    return out


def _exact_statistics(
    net: Network, X: np.ndarray, kind: int, n: int, V: np.ndarray, diagonal_only: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(expected, variance, scales) of the statistics (kept for the tests of the large paths)."""
    ex = exact_statistics(net, X, kind, n, V, diagonal_only, fourth_moments=False)
    return ex.expected, ex.variance, ex.scales


# --- the gate ---------------------------------------------------------------------------------


#: Share of ``alpha`` for the tests of statistics that do not vary across replicates.
CONSTANT_SHARE = 0.05

#: Share of ``alpha`` for the pooled tests (:mod:`fisher_verify._src.testing.pooled`): the scale
#: factor against 1 (half of it) and the two split-sample omnibus tests (a quarter each).
POOLED_SHARE = 0.05

#: Share of ``alpha`` for the per-statistic mean and spread tests.
MAIN_SHARE = 1.0 - CONSTANT_SHARE - POOLED_SHARE


#: Most float64 entries the gate stores (R x (P + directions) statistics, directions x P).
GATE_ENTRY_LIMIT = 2**27


def minimum_replications(alpha: float, n_statistics: int) -> int:
    """Smallest R for which the gate runs at all: a level ``alpha / n_statistics`` test of each
    mean exists (Catoni, or below its range a median of means)."""
    R = 3
    while True:
        if _plan(alpha, n_statistics, 0, R) is not None:
            return R
        R += 1


def _plan(alpha: float, S: int, n_spread: int, R: int) -> tuple[str, float, int] | None:
    """(method, per-test level, number of tests): Catoni for the means and spreads when R allows
    it, else Catoni for the means only, else (small R) a median of means; None below that."""
    main = alpha * MAIN_SHARE
    if n_spread and R >= minimum_catoni_draws(main / (S + n_spread)):
        return "catoni+spread", main / (S + n_spread), S + n_spread
    if R >= minimum_catoni_draws(main / S):
        return "catoni", main / S, S
    try:
        median_of_means_plan(float(main / S), R)
    except ValueError:
        return None
    return "median_of_means", main / S, S


def _labels_statistic(net: Network, labels: Any, M: int) -> np.ndarray:
    """The data's labels as sufficient statistics ``(k, M, d)``."""
    y = net.family.check_labels(labels, "labels")
    t = np.asarray(net.family.statistic(y), dtype=np.float64)
    d = net.family.dim
    if t.ndim == 2 and t.shape == (M, d):
        return t[None]
    if t.ndim == 3 and t.shape == (M, 1, d) and M != 1:  # targets (M, 1) of a one-unit head
        return t[:, 0][None]
    if t.ndim == 3 and t.shape[1:] == (M, d):
        return t
    raise ShapeError(
        f"labels: expected one label per input, shape ({M},) (or (k, {M}) for k labels per "
        f"input), giving t(y) of shape ({M}, {d}); got t(y) of shape {t.shape}"
    )


def gate_network(
    estimator: Estimator,
    net: Network,
    x: Any,
    *,
    n: int,
    kind: Kind = 1,
    replications: int = 200,
    rng: np.random.Generator | int | None = 0,
    alpha: float = DEFAULT_ALPHA,
    diagonal_only: bool | None = False,
    directions: int = 8,
    rtol: float = 1e-9,
    variance: Literal["at_most", "exact"] = "at_most",
    labels: Any = None,
    labels_hint: str = "pass labels= to check_estimator",
    side: Literal["two-sided", "upper", "lower"] = "two-sided",
    which: Any = None,
) -> EstimatorReport:
    """Test that a user's Monte Carlo estimator is unbiased for I(θ) (``eq-6``) with the spread
    of ``Î_kind`` (``thm-4`` / ``thm-6``); never raises on a wrong estimator, returns an
    :class:`EstimatorReport`.

    Args:
        estimator: ``estimator(rng) -> array``: one estimate from ``n`` label draws per input
            ``y ~ p(y|x_m, θ)``, drawn by the user's code with the given ``numpy`` Generator;
            ``(P, P)`` in flat-θ order (:class:`~fisher_verify._src.networks.network.Network`), or the
            ``(P,)`` diagonal when ``diagonal_only``. Torch tensors are accepted.
        net: the network whose ``I(θ)`` the estimator targets.
        x: inputs, ``(n_0,)`` or ``(M, n_0)`` (p(x) is their empirical distribution).
        n: draws per input the estimator uses (``"gnb"``: independent GNB estimates averaged,
            each from one label per input; Hutchinson: probes averaged).
        kind: 1 calibrates with the exact variance of ``Î₁`` (``thm-4``), 2 with that of ``Î₂``
            (``thm-6``); ``"gnb"``: Sophia's Gauss–Newton–Bartlett ``M ĝ ⊙ ĝ`` (or ``M ĝ ĝᵀ``),
            ``ĝ`` the batch-mean gradient over all M inputs with one sampled label each
            (``ext-gnb``); ``"hutchinson-rademacher"`` / ``"hutchinson-gaussian"``: ``v ⊙ (I(θ) v)``
            with exact ``I(θ)`` (``ext-hutchinson``; ``diagonal_only=True``).
        replications: R independent calls of ``estimator``.
        rng: seed or Generator; directions are drawn from it first, then each call gets it.
        alpha: false-alarm rate of the whole gate (Bonferroni over all tests).
        diagonal_only: the estimator returns ``diag Î`` only (EWC / K-FAC style pipelines);
            None reads it from the shape of the first replicate (no extra call).
        directions: number of random quadratic forms ``vᵀÎv`` (``vᵀ Diag(Î) v`` when diagonal).
        rtol: deterministic rounding tolerance, relative to ``⟨|W|, |I(θ)|⟩``; raise it (e.g.
            ``1e-4``) for float32 estimators.
        variance: ``"at_most"`` (default): any unbiased estimator with at most the variance of
            ``Î_kind(n)`` passes; ``"exact"``: the estimator is declared to be ``Î_kind`` with
            ``n`` draws, and a spread that differs either way fails.
        labels: the data's labels, one per input (``(M,)``, or ``(k, M)``), when known: lets
            the diagnosis name the empirical Fisher.
        labels_hint: how the caller gives the data's labels, quoted by a diagnosis that
            suspects them (wrappers with another signature pass their own).
        side: ``"two-sided"`` (default): unbiased for I(θ). ``"upper"`` / ``"lower"``: the
            estimator estimates an upper / lower bound of I(θ) (e.g. ``OneBackward(centered=False)``
            for ``Jᵀ diag(p) J ⪰ I(θ)``); each statistic (every ``W ⪰ 0``, so the order carries
            over) is tested one-sided at ``alpha / S``, Catoni's radius with ``L = log(S/alpha)``
            and the kind's exact variance (``testing.one_sided``); no spread or pooled tests (they
            assume the mean I(θ)).
        which: the public name of ``kind`` recorded in the report (``"I1"`` for 1, ...);
            None records ``kind`` itself.

    Raises:
        ShapeError: the estimator returns an array of the wrong shape.
        FisherVerifyError: too few replications for ``alpha`` (the message gives the minimum).
        UnsupportedError: ``kind=2`` on a non-C² network (thm-3).
    """
    check_callable(estimator, "estimator", "estimator(rng) -> array of shape (P, P) or (P,)")
    net = require_network(net)
    n = check_count(n, "n (draws per input)", error=ShapeError)
    directions = check_count(directions, "directions", minimum=0)
    alpha = check_fraction(alpha, "alpha")
    declared = check_flag(diagonal_only, "diagonal_only", allow_none=True)
    check_kind(kind, True if declared is None else bool(declared))
    if side not in ("two-sided", "upper", "lower"):
        raise FisherVerifyError(
            f"side must be 'two-sided' (unbiased for I(θ)), 'upper' (an estimator of a bound ⪰ I(θ)) "
            f"or 'lower' (of a bound ⪯ I(θ)), got {side!r}"
        )
    if side == "two-sided" and getattr(kind, "centered", True) is False:
        raise FisherVerifyError(
            "kind=OneBackward(centered=False) estimates Jᵀ diag(p) J ⪰ I(θ), not I(θ): gate it "
            "with side='upper'"
        )
    rtol = check_nonnegative(rtol, "rtol")
    if variance not in ("at_most", "exact"):
        raise FisherVerifyError(
            f"variance must be 'at_most' (unbiased, at most the variance of Î_kind) or 'exact' "
            f"(the estimator is Î_kind with n draws), got {variance!r}"
        )
    if kind == 2 or (isinstance(kind, Subsampled) and kind.kind == 2):
        net.require_c2("the variance of the Hessian estimator (thm-6)", x)
    R = check_count(replications, "replications")
    gen = as_generator(rng)
    X, _ = net.inputs(x)
    M = X.shape[0]
    P, own_labels, own_orders = kind_target(kind, net, X)
    S = P + int(directions)
    # the gate holds R x S statistics and directions x P vectors: refuse at once what cannot fit
    # instead of a MemoryError (or swapping) after the exact statistics are computed
    if max(R * S, int(directions) * P) > GATE_ENTRY_LIMIT:
        raise UnsupportedError(
            f"replications = {R} and directions = {directions} on P = {P} parameters need "
            f"{max(R * S, int(directions) * P):,} stored statistics, above the limit "
            f"{GATE_ENTRY_LIMIT:,} (1 GiB of float64): lower replications or directions"
        )
    labels_t = None if labels is None else _labels_statistic(net, labels, M)

    V = gen.normal(size=(int(directions), P))
    V /= np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-300)
    first = None
    if declared is None:
        # the first replicate, drawn where the loop would draw it (the exact statistics use no
        # randomness), says whether the estimate is the diagonal
        first = _as_array(estimator(gen))
        declared = first.shape == (P,)
        check_kind(kind, declared)
        estimator = _replaying(first, estimator)
    diagonal_only = bool(declared)
    ex = kind_statistics(kind, net, X, n, V, diagonal_only)
    expected, var = ex.expected, ex.variance
    if side != "two-sided":
        from .one_sided import one_sided_gate

        one = one_sided_gate(
            estimator, ex, fisher_statistics(net, X, V, diagonal_only), gen, side=side, R=R,
            alpha=alpha, rtol=rtol, labels=own_labels or _param_labels(net), P=P,
            diagonal_only=diagonal_only, variance=variance, kind=kind, n=n, family=net.family,
        )
        return one if which is None else dataclasses.replace(one, which=which)
    slack = rtol * np.maximum(ex.scales, np.abs(expected))
    # a score that vanishes by symmetry (an attention key bias) is computed as cancelling terms
    # as large as the largest scores: it is rtol · max|g| at most from rounding, so Î_ii is zero
    # up to rtol² · max_k I_kk
    if P:
        slack[:P] = np.maximum(slack[:P], rtol * rtol * float(np.max(ex.scales[:P])))
    # an exact sd below 1e-7 of the statistic's scale is zero up to the rounding of thm-4's
    # cancelling terms (fig-1): its spread is not tested
    sd_floor = SD_FLOOR * ex.scales
    measurable = np.sqrt(var) > np.maximum(slack, sd_floor)
    spread_tested = measurable & np.isfinite(ex.fourth)
    plan = _plan(alpha, S, int(np.sum(spread_tested)), R)
    if plan is None:
        need = minimum_replications(alpha, S)
        full = minimum_catoni_draws(alpha * MAIN_SHARE / (S + int(np.sum(spread_tested))))
        raise FisherVerifyError(
            f"replications = {R} is too few for alpha = {alpha:g} over {S} statistics; use at "
            f"least {need} ({full} to test the spread too; 200 or more for useful power)"
        )
    method, per, T = plan
    if method != "catoni+spread":
        spread_tested = np.zeros(S, dtype=bool)
    per_constant = alpha * CONSTANT_SHARE / max(1, int(np.sum(measurable)))

    values = collect_values(estimator, gen, R, P, V, diagonal_only)

    finite = bool(np.all(np.isfinite(values)))
    sd = np.sqrt(var)
    means, emp_sd, ptp = _column_summaries(values)
    if method == "median_of_means":
        k, c = median_of_means_plan(float(per), R)
        m = R // k
        observed = np.median(values[: k * m].reshape(k, m, S).mean(axis=1), axis=0)
        radius = c * sd / math.sqrt(m)
    else:
        observed = catoni_mean(values, catoni_scale(sd, R, per))
        radius = sd * catoni_radius_factor(R, per)
    spread_fourth = np.where(spread_tested, ex.fourth, np.nan)
    spread = spread_test(values, expected, var, spread_fourth, per, slack, sd_floor)
    constant_cols = ptp <= 2.0 * slack + 1e-15 * np.abs(means)
    constant = finite and bool(np.all(constant_cols))
    # a statistic equal to c in every replicate: under the null (mean μ, variance ≤ σ²) an atom
    # at c has probability p ≤ σ²/(σ² + (c − μ)²), so R equal values have probability ≤ p^(R−1)
    dist = np.maximum(np.abs(values[0] - expected) - slack, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_atom = np.log(var) - np.log(var + dist * dist)
    constant_off = finite & constant_cols & measurable & ((R - 1) * log_atom <= math.log(per_constant))

    mean_ok = finite and bool(np.all(np.abs(observed - expected) <= radius + slack))
    pooled = (
        pooled_tests(values, ex, net.family, slack, measurable, alpha * POOLED_SHARE)
        if finite else ()
    )
    pooled_ok = all(t.passed for t in pooled)
    noisy = bool(np.any(spread.too_noisy))
    quiet = bool(np.any(spread.too_quiet))
    exact_equal = constant and bool(
        np.all(np.abs(values[0] - expected) <= slack + 1e-12 * np.abs(expected))
    )
    if not finite:
        passed = False
    elif exact_equal:
        passed = variance != "exact" or not quiet
    else:
        # a constant, wrong estimate also fails when its spread is too small for Î_kind
        # (calibrated for Î_kind: an honest Î_kind that happens to repeat a value passes)
        passed = (
            mean_ok and pooled_ok and not noisy and not bool(np.any(constant_off))
            and not ((variance == "exact" or constant) and quiet)
        )

    form = "Diag(Î)" if diagonal_only else "Î"
    own_txt = own_labels if own_labels is not None else _own_param_labels(net)
    names = ParameterLabels(None if own_txt is not None else net.shapes, own_txt, int(directions), form)
    bad_spread = spread.too_noisy | spread.too_quiet
    ratio = spread.ratio
    # each GateStatistic is made when read (P ~ 1e5 of them for a diagonal estimate)
    stats = GateStatistics(
        names, R, observed=observed, mean=means, expected=expected, sd=sd, empirical_sd=emp_sd,
        radius=radius, slack=slack, spread_ratio=ratio, spread_ok=~bad_spread,
        spread_radius=np.where(spread.tested, spread.radius, math.nan),
    )
    worst = stats.worst()
    positive = sd > 0
    sd_ratio = float(np.median(emp_sd[positive] / sd[positive])) if np.any(positive) else math.nan
    spread_med = float(np.nanmedian(ratio[spread_tested])) if np.any(spread_tested) else math.nan
    diag = diagnose(
        ex=ex, net=net if own_orders is None else _OwnOrders(net, own_orders),  # type: ignore[arg-type]
        values=values,
        observed=observed, radius=radius, slack=slack,
        spread=spread, constant=constant, passed=passed, mean_ok=mean_ok, declared=variance,
        labels_t=labels_t, M=M, emp_sd=emp_sd, pooled=pooled, labels_hint=labels_hint,
    )
    if not passed and diag.cause in ("distribution", "scale", "noisier"):
        diag = _known_fault(diag, kind_alternatives(kind, net, X, V, diagonal_only), means,
                            radius, slack, sd, emp_sd)
    if not passed and kind == "gnb" and finite and not constant:
        clipped = gnb_clipping(values[:, :P].sum(axis=1), net.family, ex.h)
        if clipped:
            diag = dataclasses.replace(diag, cause="clipped", factor="",
                                       text=clipped.strip() + f" (The numbers alone: {diag.text})")
    return EstimatorReport(
        passed=passed, which=kind if which is None else which, n=n, replications=R, diagonal_only=bool(diagonal_only),
        alpha=float(alpha), alpha_per_check=float(per), statistics=stats, worst=worst,
        scale=diag.scale, scale_explains=diag.scale_explains, sd_ratio=sd_ratio,
        diagnosis=diag.text + kind_note(kind, diag.cause, diag.factor), variance=variance,
        cause=diag.cause, factor=diag.factor,
        spread_ratio=spread_med, deterministic=constant, tests=T, method=method,
        pooled=pooled,
    )


class _OwnOrders:
    """The network seen by the diagnosis with the wrong orders of the kind's estimate (a K-FAC
    block's Kronecker order) instead of its parameter orders."""

    def __init__(self, net: Any, orders: list[tuple[str, np.ndarray]]) -> None:
        self.family = net.family
        self._orders = orders

    def layer_permutations(self) -> list[tuple[str, np.ndarray]]:
        return list(self._orders)


def _known_fault(diag: Any, alternatives: list[tuple[str, np.ndarray]], observed: np.ndarray,
                 radius: np.ndarray, slack: np.ndarray, sd: np.ndarray, emp_sd: np.ndarray) -> Any:
    """The diagnosis naming a known fault of the kind whose exact statistics fit every plain
    mean (``observed``: unbiased whatever the skew, where Catoni's estimate at the kind's scale
    is not for a noisier law) within the gate's radius, widened by the estimator's own empirical
    spread as the diagnosis of a noisier estimator is; unchanged when none fits or several do."""
    with np.errstate(divide="ignore", invalid="ignore"):
        widen = np.where(sd > 0, np.maximum(1.0, emp_sd / np.where(sd > 0, sd, 1.0)), 1.0)
    room = widen * radius + slack
    fits = [text for text, alt in alternatives
            if np.all(np.abs(observed - alt) <= room + 1e-9 * np.abs(alt))]
    if len(fits) != 1:
        return diag
    return dataclasses.replace(
        diag, cause="known_fault",
        text=f"biased: the estimate fits {fits[0]} (every statistic within the gate's radius).",
    )


# --- torch adapter ----------------------------------------------------------------------------


def torch_parameter_permutation(model: Any) -> np.ndarray:
    """Index map ``perm`` with ``θ_net[k] = θ_torch[perm[k]]``.

    ``θ_torch`` is ``torch.nn.utils.parameters_to_vector(model.parameters())`` (per Linear: the
    weight row-major, then the bias); ``θ_net`` the flat θ of
    :meth:`Network.from_torch <fisher_verify._src.networks.network.Network.from_torch>` (per layer
    ``[W | b]`` row-major, the bias as the last column).

    Raises:
        UnsupportedError: a Linear layer without bias (the Network would have parameters that the
            model lacks), or a parameter outside Linear layers.
    """
    import torch.nn as nn

    layers = [mod for mod in model if isinstance(mod, nn.Linear)]
    n_linear = sum(p.numel() for mod in layers for p in mod.parameters())
    if n_linear != sum(p.numel() for p in model.parameters()):
        raise UnsupportedError("the model has parameters outside its Linear layers")
    perm: list[int] = []
    t0 = 0
    for i, mod in enumerate(layers):
        if mod.bias is None:
            raise UnsupportedError(
                f"Linear layer {i} has no bias; the Network's flat θ has one per layer "
                "(use bias=True to check this estimator)"
            )
        out, inp = mod.weight.shape
        for r in range(out):
            perm.extend(t0 + r * inp + c for c in range(inp))
            perm.append(t0 + out * inp + r)
        t0 += out * inp + out
    return np.asarray(perm, dtype=np.int64)
