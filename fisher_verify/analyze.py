"""``analyze(net, x, n=...)``: the paper's quantities for a user's own network and input.

Exact Fisher (``eq-6``; its diagonal when P is large), both estimators' variance for N draws
(``thm-4``, ``thm-6``) element-wise and as norms, the bounds of ``thm-7``/``thm-8`` and how
tight they are, the p.s.d. probability bound for Î₂ (``thm-10``), which estimator is better
per layer and overall, and the N each estimator needs for a target relative accuracy
(``lemma-12``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .fisher.degenerate import check_finite, frobenius, refuse_overflow, underflow_reasons
from .fisher.sample_size import samples_needed
from .validation import check_count, check_flag, check_fraction

#: ``Analysis.better`` (and per layer) when the result is degenerate: nothing can be decided
UNDETERMINED = "undetermined"
FULL_LIMIT = 2000  # above this many parameters only diagonals are formed (DESIGN: no P² arrays)
#: Seconds the streamed thm-7/thm-8 norms may be estimated to take inside analyze (else n/a)
NORM_SECONDS = 120.0


@dataclass
class LayerSummary:
    """One parameter group (the weights W_l of layer l, bias column included)."""

    layer: int
    params: int
    var_sum_1: float
    var_sum_2: float
    better: str  # "I1", "I2", "tie" or "undetermined" (a degenerate result)


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
    #: why the numbers carry no information (underflow to zero); empty when they do
    degenerate: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (large arrays summarized by their norms)."""
        out = asdict(self)
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
            lines.append(f"||Cov(I1)||_F = {_fmt(self.covariance_norm_1)} <= thm-7 bound "
                         f"{_fmt(self.bound_1)} (tightness {_fmt(self.tightness_1)})")
            lines.append(f"||Cov(I2)||_F = {_fmt(self.covariance_norm_2)} <= thm-8 bound "
                         f"{_fmt(self.bound_2)} (tightness {_fmt(self.tightness_2)})")
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


def _better(v1: float, v2: float) -> str:
    if math.isclose(v1, v2, rel_tol=1e-9, abs_tol=1e-300):
        return "tie"
    return "I1" if v1 < v2 else "I2"


def analyze(net: Any, x: Any, n: int = 1, target: float = 0.1, confidence: float = 0.95,
            diagonal: bool | None = None) -> Analysis:
    """Analyze both Fisher estimators for ``net`` at input(s) ``x`` with ``n`` draws.

    Args:
        net: a :class:`fisher_verify.Network`.
        x: one input ``(n_0,)`` or several ``(M, n_0)`` (averaged, p(x) empirical).
        n: number of draws N per input.
        target: relative accuracy ``‖Î − I‖_F ≤ target · ‖I‖_F`` for the sample sizes.
        confidence: probability of reaching it (lemma-12 with ε = 1 − confidence).
        diagonal: force diagonal-only output (default: when P > 2000).

    Raises:
        FisherVerifyError: n < 1, target or confidence outside (0, 1), a non-C² network
            (the variance of Î₂ needs thm-3/thm-6).
        UnsupportedError: the Fisher or a variance overflows float64 (no finite answer).

    A result that underflowed (every Fisher entry below the smallest normal float64, or a
    Var(Î₁) that is 0 only because the family's fourth moment underflowed) is returned with
    the reasons in ``Analysis.degenerate`` and ``better`` set to ``"undetermined"``.
    """
    from .networks.network import require_network

    net = require_network(net)
    n = check_count(n, "number of samples n")
    target = check_fraction(target, "target")
    confidence = check_fraction(confidence, "confidence")
    diagonal = check_flag(diagonal, "diagonal", allow_none=True)
    net.require_c2("the variance of the Hessian estimator (thm-6)", x)
    # float64 over- and underflow are detected and reported below (refusal or
    # Analysis.degenerate), so NumPy's RuntimeWarnings about them would only be noise
    with np.errstate(all="ignore"):
        return _compute(net, x, n, target, confidence, diagonal)


def _compute(net: Any, x: Any, n: int, target: float, confidence: float,
             diagonal: bool | None) -> Analysis:
    """The body of :func:`analyze` after its checks."""
    import fisher_verify as fv

    P = int(net.num_params)
    diag = P > FULL_LIMIT if diagonal is None else bool(diagonal)
    cov_norm: dict[int, float | None] = {1: None, 2: None}
    bound: dict[int, float | None] = {1: None, 2: None}
    psd = None
    if diag:
        # large P: PyTorch path, no P x P array (fisher/large.py); thm-10 needs lambda_min of
        # the P x P Fisher and is left out; thm-7/thm-8 only exactly, never a stochastic
        # estimate here
        # the norms are streamed over pairs of input blocks and refused (left out here) when
        # the cost model says they exceed the memory budget or NORM_SECONDS
        from .errors import UnsupportedError
        from .fisher.large import diagonals, thm7_large, thm8_large

        d = diagonals(net, x, n)
        fisher = np.asarray(d.fisher)
        var = {1: np.asarray(d.variance_1), 2: np.asarray(d.variance_2)}
        check_finite(net, x, fisher, var)
        for e, fn in ((1, thm7_large), (2, thm8_large)):
            try:
                b = fn(net, x, n, method="exact", time_budget=NORM_SECONDS)
            except UnsupportedError:
                continue
            cov_norm[e], bound[e] = b.lhs, b.rhs
    else:
        fisher = np.asarray(fv.exact_fisher(net, x))
        if not np.all(np.isfinite(fisher)):  # before the variances: they would be inf - inf
            refuse_overflow(net, x, "the Fisher information I(θ)")
        var = {e: np.asarray(fv.variance(net, x, estimator=e, n=n), dtype=float) for e in (1, 2)}
        check_finite(net, x, fisher, var)
        cov_norm = {e: float(fv.covariance_norm(net, x, estimator=e, n=n)) for e in (1, 2)}
        b = fv.bounds(net, x, n=n)
        # Bound objects: rhs is the bound (None where it does not apply, e.g. thm-10 when
        # lambda_min(I(theta)) = 0, as whenever M n_L < P: I(theta) has rank <= M n_L)
        bound[1] = b.thm7.rhs
        bound[2] = b.thm8.rhs
        psd = b.psd_probability.rhs
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
    for layer in range(len(net.shapes)):
        sl = slice(off[layer], off[layer + 1])
        if diag:
            s1, s2 = float(var[1][sl].sum()), float(var[2][sl].sum())
        else:
            s1, s2 = float(var[1][sl, sl].sum()), float(var[2][sl, sl].sum())
        layers.append(LayerSummary(layer, off[layer + 1] - off[layer], s1, s2, _better(s1, s2)))
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
        num_inputs=int(net.inputs(x)[0].shape[0]), degenerate=degenerate,
    )


