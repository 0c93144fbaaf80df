"""``analyze(net, x, n=...)``: the paper's quantities for a user's own network and input.

Exact Fisher (``eq-6``; its diagonal when P is large), both estimators' variance for N draws
(``thm-4``, ``thm-6``) element-wise and as norms, the bounds of ``thm-7``/``thm-8`` and how
tight they are, the p.s.d. probability bound for Î₂ (``thm-10``), which estimator is better
per layer and overall, and the N each estimator needs for a target relative accuracy
(``lemma-12``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import FisherVerifyError
from .fisher.degenerate import check_finite, frobenius, refuse_overflow, underflow_reasons
from .fisher.sample_size import samples_needed
from .fisher.tradeoff import PIECEWISE_LINEAR_ACTIVATIONS, reason_for, tradeoff
from .validation import check_count, check_flag, check_fraction

#: ``Analysis.better`` (and per layer) when the result is degenerate: nothing can be decided
UNDETERMINED = "undetermined"
FULL_LIMIT = 2000  # above this many parameters only diagonals are formed (DESIGN: no P² arrays)
#: Seconds the streamed thm-7/thm-8 norms may be estimated to take inside analyze exactly
#: (above it: the sampled-pairs estimate with its standard error, labelled exact=False)
NORM_SECONDS = 120.0
#: Seconds the per-input terms may be estimated to take unless ``time_budget`` is given
DEFAULT_TIME_BUDGET = 300.0

Progress = Callable[[str, int, int], None]


@dataclass
class LayerSummary:
    """One parameter group (the weights W_l of layer l, bias column included)."""

    layer: int
    params: int
    var_sum_1: float
    var_sum_2: float
    better: str  # "I1", "I2", "tie" or "undetermined" (a degenerate result)
    #: the diagonal trade-off (fisher.tradeoff): Σ_i Var(Î₂)_ii / Σ_i Var(Î₁)_ii and the
    #: statement that explains it, chosen from the network's structure
    diag_var_1: float = 0.0
    diag_var_2: float = 0.0
    lower: str = "tie"
    ratio: float | None = None
    reason: str = "thm-4/thm-6"
    why: str = ""


@dataclass
class Analysis:
    """The result of :func:`analyze` (all float64; arrays are NumPy)."""

    family: str
    widths: tuple[int, ...]
    activation: str
    num_params: int
    n: int
    diagonal_only: bool
    fisher: np.ndarray  # (P, P), or (P,) when diagonal_only
    variance_1: np.ndarray  # Var(Î₁)^{ij} for N draws; (P, P) or (P,)
    variance_2: np.ndarray
    covariance_norm_1: float | None  # ‖Cov(Î₁)‖_F (thm-4), None when diagonal_only
    covariance_norm_2: float | None
    bound_1: float | None  # thm-7
    bound_2: float | None  # thm-8
    tightness_1: float | None  # covariance_norm / bound
    tightness_2: float | None
    psd_probability: float | None  # thm-10 lower bound on P(Î₂ ⪰ 0)
    layers: list[LayerSummary] = field(default_factory=list)
    better: str = "tie"  # "I1", "I2", "tie" or "undetermined" (a degenerate result)
    target_rel_accuracy: float = 0.1
    confidence: float = 0.95
    samples_needed_1: int | None = None  # lemma-12
    samples_needed_2: int | None = None
    num_inputs: int = 1
    #: sun26-spectrum for a categorical output: J'LJ <= I(theta) <= J'UJ summarized on the
    #: trace and the diagonal (None otherwise, with the reason in envelopes_note)
    envelopes: dict[str, Any] | None = None
    envelopes_note: str = ""
    #: standard errors of the norms (0 when exact) and whether each norm is exact: above
    #: NORM_SECONDS the norms are sampled-pairs estimates (fisher/mlp_norms.py)
    covariance_norm_1_stderr: float = 0.0
    covariance_norm_2_stderr: float = 0.0
    covariance_norms_exact: bool = True
    norm_notes: list[str] = field(default_factory=list)
    #: why the numbers carry no information (underflow to zero); empty when they do
    degenerate: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (large arrays summarized by their norms)."""
        out = asdict(self)
        if self.envelopes is not None:
            out["envelopes"] = {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
                                for k, v in self.envelopes.items()}
        for key in ("fisher", "variance_1", "variance_2"):
            arr = np.asarray(getattr(self, key))
            out[key] = arr.tolist() if arr.size <= 400 else {
                "shape": list(arr.shape), "frobenius": frobenius(arr)}
        return out

    def summary(self) -> str:
        """A human-readable multi-line summary."""
        lines = [f"WARNING: degenerate result: {why}" for why in self.degenerate]
        lines += [
            f"network widths {self.widths}, activation {self.activation}, family {self.family}, "
            f"P = {self.num_params}, N = {self.n}",
            f"exact Fisher (eq-6): ||I||_F = {frobenius(np.asarray(self.fisher)):.6g}"
            + (" (diagonal only)" if self.diagonal_only else ""),
            f"sum of Var(I1) = {np.sum(self.variance_1):.6g}   sum of Var(I2) = "
            f"{np.sum(self.variance_2):.6g}",
        ]
        if self.covariance_norm_1 is not None or self.covariance_norm_2 is not None:
            lines.append(f"||Cov(I1)||_F = {_est(self.covariance_norm_1, self.covariance_norm_1_stderr)}"
                         f" <= thm-7 bound {_fmt(self.bound_1)} (tightness "
                         f"{_fmt(self.tightness_1)})")
            lines.append(f"||Cov(I2)||_F = {_est(self.covariance_norm_2, self.covariance_norm_2_stderr)}"
                         f" <= thm-8 bound {_fmt(self.bound_2)} (tightness "
                         f"{_fmt(self.tightness_2)})")
        lines += [f"  {note}" for note in self.norm_notes]
        if self.diagonal_only:
            lines.append("P(I2 p.s.d.): thm-10 not computed for large P (it needs lambda_min of the "
                         "P x P Fisher)")
        elif self.psd_probability is None:
            rank_cap = self.num_inputs * self.widths[-1]
            why = (f"rank I(theta) <= M n_L = {rank_cap} < P = {self.num_params}; more inputs can help"
                   if rank_cap < self.num_params else "I(theta) is singular at this theta")
            lines.append(f"P(I2 p.s.d.): thm-10 does not apply (lambda_min(I(theta)) = 0: {why})")
        else:
            lines.append(f"P(I2 p.s.d.) >= {_fmt(self.psd_probability)} (thm-10"
                         + (", vacuous at this N)" if self.psd_probability <= 0 else ")"))
        for g in self.layers:
            lines.append(f"  layer {g.layer} ({g.params} params): sum Var I1 = {g.var_sum_1:.4g}, "
                         f"I2 = {g.var_sum_2:.4g} -> {g.better}")
            r = "n/a" if g.ratio is None else f"{g.ratio:.4g}"
            lines.append(f"    diagonal: {g.lower} lower, Var(I2)/Var(I1) = {r} "
                         f"[{g.reason}: {g.why}]")
        if self.envelopes is not None:
            e = self.envelopes
            lines.append(
                f"sun26-spectrum: tr J'LJ = {e['trace_lower']:.6g} <= tr I(theta) = "
                f"{e['trace_fisher']:.6g} <= tr J'UJ = {e['trace_upper']:.6g}; diagonal: "
                f"I_ii / (J'UJ)_ii in [{e['diag_upper_tightness'][0]:.4g}, "
                f"{e['diag_upper_tightness'][1]:.4g}]")
        elif self.envelopes_note:
            lines.append(f"sun26-spectrum envelopes: {self.envelopes_note}")
        lines.append(f"better overall: {self.better}")
        lines.append(
            f"samples for ||I_hat - I||_F <= {self.target_rel_accuracy:g} ||I||_F"
            + (" (diagonals)" if self.diagonal_only else "")
            + " with prob. "
            f">= {self.confidence:g} (lemma-12): I1 {self.samples_needed_1}, "
            f"I2 {self.samples_needed_2}")
        return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.6g}"


def _est(v: float | None, se: float) -> str:
    """A norm, with ``± se (ESTIMATE)`` when it is a sampled-pairs estimate."""
    return _fmt(v) if not se else f"{_fmt(v)} ± {se:.2g} (ESTIMATE)"


def _better(v1: float, v2: float) -> str:
    if math.isclose(v1, v2, rel_tol=1e-9, abs_tol=1e-300):
        return "tie"
    return "I1" if v1 < v2 else "I2"


def analyze(net: Any, x: Any, n: int = 1, target: float = 0.1, confidence: float = 0.95,
            diagonal: bool | None = None, *, memory_budget: int | None = None,
            time_budget: float | None = None, progress: Progress | None = None) -> Analysis:
    """Analyze both Fisher estimators for ``net`` at input(s) ``x`` with ``n`` draws.

    Args:
        net: a :class:`fisher_verify.Network`.
        x: one input ``(n_0,)`` or several ``(M, n_0)`` (averaged, p(x) empirical).
        n: number of draws N per input.
        target: relative accuracy ``‖Î − I‖_F ≤ target · ‖I‖_F`` for the sample sizes.
        confidence: probability of reaching it (lemma-12 with ε = 1 − confidence).
        diagonal: force diagonal-only output (default: when P > 2000).
        memory_budget: bytes the computation may hold at once (default 1 GiB).
        time_budget: seconds the per-input terms (``O(M)``) may be estimated to take (default
            :data:`DEFAULT_TIME_BUDGET`); the estimate comes from timing the first inputs.
        progress: ``progress(stage, done, total)``, called as chunks of inputs and block
            pairs finish (the CLI shows it on stderr).

    The per-input terms (eq-6, thm-4, thm-6, the bounds' right-hand sides, thm-10) are
    streamed over chunks of inputs (:mod:`fisher_verify.fisher.streamed`); the norms
    ‖Cov(Î)‖_F of thm-7/thm-8, sums over pairs of inputs, over pairs of input blocks
    (:mod:`fisher_verify.models.mlp_norms`), exactly when the cost model says they fit
    ``NORM_SECONDS`` and the memory budget, else as a sampled-pairs estimate with its standard
    error (``covariance_norms_exact=False``, the reason in ``norm_notes``).

    Raises:
        FisherVerifyError: n < 1, target or confidence outside (0, 1), a non-C² network
            (the variance of Î₂ needs thm-3/thm-6); UnsupportedError (at once, before the
            work) when one input's terms exceed ``memory_budget`` or the per-input terms are
            estimated above ``time_budget``.
        UnsupportedError: the Fisher or a variance overflows float64 (no finite answer).

    A result that underflowed (every Fisher entry below the smallest normal float64, or a
    Var(Î₁) that is 0 only because the family's fourth moment underflowed) is returned with
    the reasons in ``Analysis.degenerate`` and ``better`` set to ``"undetermined"``.
    """
    from .networks.network import require_network
    from .validation import check_budget

    net = require_network(net)
    n = check_count(n, "number of samples n")
    target = check_fraction(target, "target")
    confidence = check_fraction(confidence, "confidence")
    diagonal = check_flag(diagonal, "diagonal", allow_none=True)
    budget = check_budget(memory_budget)
    tbudget = _time_budget(time_budget)
    net.require_c2("the variance of the Hessian estimator (thm-6)", x)
    # float64 over- and underflow are detected and reported below (refusal or
    # Analysis.degenerate), so NumPy's RuntimeWarnings about them would only be noise
    with np.errstate(all="ignore"):
        return _compute(net, x, n, target, confidence, diagonal, budget, tbudget, progress)


def _compute(net: Any, x: Any, n: int, target: float, confidence: float,
             diagonal: bool | None, budget: int, tbudget: float,
             progress: Progress | None) -> Analysis:
    """The body of :func:`analyze` after its checks."""
    X, _ = net.inputs(x)
    M = int(X.shape[0])
    P = int(net.num_params)
    diag = P > FULL_LIMIT if diagonal is None else bool(diagonal)
    cov_norm: dict[int, float | None] = {1: None, 2: None}
    cov_se = {1: 0.0, 2: 0.0}
    bound: dict[int, float | None] = {1: None, 2: None}
    notes: list[str] = []
    norms_exact = True
    psd = None
    if diag:
        # large P: PyTorch path, no P x P array (models/mlp.py); thm-10 needs lambda_min of
        # the P x P Fisher and is left out; thm-7/thm-8 only exactly, never a stochastic
        # estimate here
        # the norms are streamed over pairs of input blocks and refused (left out here) when
        # the cost model says they exceed the memory budget or NORM_SECONDS
        from .errors import UnsupportedError
        from .models.mlp import diagonals
        from .models.mlp_bounds import thm7_large, thm8_large

        d = diagonals(net, X, n, memory_budget=budget)
        fisher = np.asarray(d.fisher)
        var = {1: np.asarray(d.variance_1), 2: np.asarray(d.variance_2)}
        check_finite(net, x, fisher, var)
        for e, fn in ((1, thm7_large), (2, thm8_large)):
            try:
                b = fn(net, X, n, method="exact", time_budget=NORM_SECONDS, memory_budget=budget)
            except UnsupportedError as exc:
                notes.append(f"thm-{6 + e}: n/a ({exc})")
                continue
            cov_norm[e], bound[e] = b.lhs, b.rhs
    else:
        from .fisher.streamed import chunk_inputs, dense_sums
        from .models.mlp_norms import pair_norm

        chunk = chunk_inputs(P, int(net.widths[-1]), M, budget)  # refuses at once
        sums = dense_sums(net, X, n, chunk, time_budget=tbudget, progress=progress)
        fisher, var = sums.fisher, {1: sums.variance_1, 2: sums.variance_2}
        if not np.all(np.isfinite(fisher)):  # the variances would hold inf - inf
            refuse_overflow(net, x, "the Fisher information I(θ)")
        check_finite(net, x, fisher, var)
        bound[1], bound[2] = sums.thm7_rhs, sums.thm8_rhs
        # rhs None where thm-10 does not apply (lambda_min(I(theta)) = 0, as whenever
        # M n_L < P: I(theta) has rank <= M n_L)
        psd = sums.psd.bound
        for e, statement in ((1, "thm-7"), (2, "thm-8")):
            stage = f"||Cov(I{e})||_F ({statement}), block pairs"
            est, cost = pair_norm(
                net, X, n, statement, method="auto", memory_budget=budget,
                time_budget=NORM_SECONDS,
                progress=None if progress is None else
                (lambda done, total, stage=stage: progress(stage, done, total)))
            cov_norm[e], cov_se[e] = float(est.value), float(est.stderr)
            if not est.exact:
                norms_exact = False
                notes.append(
                    f"{statement}: ||Cov(I{e})||_F is a sampled-pairs ESTIMATE over "
                    f"{est.details.get('sample_inputs')} of {M} inputs (exact=False): the exact "
                    f"sum is estimated at {cost.seconds:.3g} s, above NORM_SECONDS = "
                    f"{NORM_SECONDS:g}, or {(cost.held_bytes + cost.block_bytes) / 2**20:.4g} "
                    f"MiB against memory_budget = {budget / 2**20:.4g} MiB")
    overflowed: list[str] = []
    for e, theorem in ((1, "thm-7"), (2, "thm-8")):
        # the variances are finite (checked), but a norm of them is formed from their squares,
        # which can overflow although the norm itself would fit: left out, and said so
        if any(v is not None and not math.isfinite(v) for v in (cov_norm[e], bound[e])):
            overflowed.append(
                f"||Cov(I{e})||_F and the {theorem} bound overflowed float64 in their sums of "
                "squares (the variances themselves are finite and reported); not computed")
            cov_norm[e] = bound[e] = None
    if psd is not None and not math.isfinite(psd):
        psd = None
    tight: dict[int, float | None] = {}
    for e in (1, 2):
        c, bd = cov_norm[e], bound[e]
        tight[e] = c / bd if c is not None and bd else None
    layers = []
    off = net.offsets
    L = len(net.shapes)
    pwl = net.activation in PIECEWISE_LINEAR_ACTIVATIONS
    dvar = {e: (var[e] if diag else np.diagonal(var[e])) for e in (1, 2)}
    for layer in range(L):
        sl = slice(off[layer], off[layer + 1])
        if diag:
            s1, s2 = float(var[1][sl].sum()), float(var[2][sl].sum())
        else:
            s1, s2 = float(var[1][sl, sl].sum()), float(var[2][sl, sl].sum())
        d1, d2 = float(dvar[1][sl].sum()), float(dvar[2][sl].sum())
        # the reason from the structure: W_{L-1} is last; ReLU/identity is piecewise linear;
        # W_{L-2} under a C² activation is the group of d24-groups
        t = tradeoff(d1, d2, reason_for(last=layer == L - 1, piecewise_linear=pwl,
                                        before_last_smooth=layer == L - 2 and net.is_c2))
        layers.append(LayerSummary(layer, off[layer + 1] - off[layer], s1, s2, _better(s1, s2),
                                   d1, d2, t.lower, t.ratio, t.reason, t.why))
    envelopes, env_note = _envelopes(net, X, fisher, diag, budget)
    t1, t2 = float(var[1].sum()), float(var[2].sum())
    fnorm = frobenius(fisher)
    for e, total in ((1, t1), (2, t2)):
        if not math.isfinite(total):
            overflowed.append(f"the sum of Var(I{e}) overflowed float64; its sample size is "
                              "not computed")
    underflowed = underflow_reasons(net, x, fisher, var[1])
    degenerate = underflowed + overflowed
    better = _better(t1, t2)
    if underflowed:  # a comparison of zeros decides nothing
        better = UNDETERMINED
        for g in layers:
            g.better = UNDETERMINED
            g.lower, g.ratio = UNDETERMINED, None
    return Analysis(
        family=net.family.label, widths=tuple(net.widths), activation=net.activation,
        num_params=P, n=int(n), diagonal_only=diag, fisher=fisher,
        variance_1=var[1], variance_2=var[2],
        covariance_norm_1=cov_norm[1], covariance_norm_2=cov_norm[2],
        bound_1=bound[1], bound_2=bound[2], tightness_1=tight[1], tightness_2=tight[2],
        psd_probability=psd, layers=layers, better=better,
        target_rel_accuracy=target, confidence=confidence,
        samples_needed_1=samples_needed(t1 * n, fnorm, target, confidence)
        if math.isfinite(t1 * n) else None,
        samples_needed_2=samples_needed(t2 * n, fnorm, target, confidence)
        if math.isfinite(t2 * n) else None,
        num_inputs=M, degenerate=degenerate, covariance_norm_1_stderr=cov_se[1],
        covariance_norm_2_stderr=cov_se[2], covariance_norms_exact=norms_exact,
        norm_notes=notes,
        envelopes=envelopes, envelopes_note=env_note,
    )


def _envelopes(net: Any, X: np.ndarray, fisher: np.ndarray, diag: bool, budget: int
               ) -> tuple[dict[str, Any] | None, str]:
    """sun26-spectrum's pulled-back envelopes ``J'LJ <= I(theta) <= J'UJ`` on the trace and the
    diagonal, for a categorical output (``I(h) = diag(p) - pp'``); the ``(m, n_L, P)`` Jacobians
    are formed a chunk of inputs at a time within ``budget`` bytes (the diagonals are sums over
    inputs)."""
    from .fisher.diagonal import pulled_back_diagonals

    if not net.family.softmax_core:  # the envelopes bound I(h) = diag(p) - pp' only
        return None, ""
    if diag:
        return None, (f"not computed for P > {FULL_LIMIT} (they need the (M, n_L, P) "
                      "Jacobians)")
    M, P, K = int(X.shape[0]), int(net.num_params), int(net.widths[-1])
    chunk = max(1, int(budget) // (4 * 8 * K * P))  # J, its centred copy and their squares
    low, up = np.zeros(P), np.zeros(P)
    for start in range(0, M, chunk):
        Xc = X[start:start + chunk]
        p = np.asarray(net.family.mean(net.forward(Xc)))
        lo_c, up_c = pulled_back_diagonals(net.jacobian(Xc), p)
        low += lo_c * Xc.shape[0]
        up += up_c * Xc.shape[0]
    low, up = low / M, up / M
    f = np.diagonal(fisher)
    with np.errstate(divide="ignore", invalid="ignore"):
        tight = np.where(up > 0, f / np.where(up > 0, up, 1.0), np.nan)
    finite = tight[np.isfinite(tight)]
    span = [float(finite.min()), float(finite.max())] if finite.size else [math.nan, math.nan]
    return {"diag_lower": low, "diag_upper": up, "trace_lower": float(low.sum()),
            "trace_fisher": float(f.sum()), "trace_upper": float(up.sum()),
            "diag_upper_tightness": span}, ""


def _time_budget(value: Any) -> float:
    if value is None:
        return DEFAULT_TIME_BUDGET
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or float(value) <= 0:
        raise FisherVerifyError(f"time_budget must be a number of seconds > 0, got {value!r}")
    return float(value)


