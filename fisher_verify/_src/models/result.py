"""The one result of ``fisher_verify.analyze``, for an Eq. 3 ``Network`` and for any ``nn.Module``.

:class:`Analysis` holds the paper's quantities for one model over its inputs: per parameter
tensor, per layer and in total the sums of ``diag I(θ)`` (``eq-6``) and of both estimators'
variances (``thm-4``, ``thm-6``) with the better estimator and why (:mod:`fisher_verify._src.fisher.tradeoff`),
``‖Cov(Î)‖_F`` against the bounds of ``thm-7``/``thm-8``, the p.s.d. bound of ``thm-10`` where
it applies, and the draws each estimator needs (``lemma-12``). It renders as a table, a
summary, JSON and a PNG. What a route does not compute is ``None`` with the reason in the
matching ``*_note``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import jsontext
from ..fisher.tradeoff import REASONS
from .decision import UNDECIDED, interval

__all__ = ["Analysis", "Row"]


@dataclass
class Row:
    """Sums over one parameter tensor, one layer or all parameters (for ``n`` draws per input).

    ``var_1``/``var_2`` sum the variances over the entries that were computed: the diagonal,
    or every entry of the block when the full ``P×P`` matrices were formed (an Eq. 3 network
    with few parameters); ``diag_var_1``/``diag_var_2`` always sum the diagonal, and ``lower``,
    ``ratio``, ``reason`` and ``why`` read the diagonal sums (:func:`fisher_verify._src.fisher.tradeoff.tradeoff`).
    """

    name: str
    params: int
    fisher: float  # Σ_i diag I(θ)_i
    var_1: float  # Σ Var(Î₁) (exact)
    var_2: float | None  # Σ Var(Î₂); None when refused
    var_2_stderr: float = 0.0  # 0 when exact
    var_2_exact: bool = True
    var_2_method: str = "exact"  # exact | eq3 | hessian | hutchinson | mixed | refused
    #: "I1", "I2", "tie", "undetermined" (degenerate), "undecided" (an estimate that cannot
    #: decide); "(estimate)" appended when Var(Î₂) is estimated; "I1 (I2 refused)"
    better: str = "tie"
    diag_var_1: float | None = None
    diag_var_2: float | None = None
    lower: str | None = None
    ratio: float | None = None
    reason: str | None = None
    why: str | None = None


@dataclass
class Analysis:
    """The result of :func:`fisher_verify.analyze` (all sums in float64).

    Attributes:
        model: what was analysed (``"Network widths (2, 3, 1), tanh"`` or the module's class).
        family: the output family's label.
        num_inputs, n, num_params: M, N draws per input, P.
        tensors, layers, total: :class:`Row` per parameter tensor, per layer, in total.
        fisher, variance_1, variance_2: the entries themselves, as :func:`fisher_verify.exact_fisher`
            and :func:`fisher_verify.variance` give them for this model (NumPy ``(P, P)`` or
            ``(P,)`` for a Network; ``{name: tensor}`` for a module; ``variance_2`` None when
            refused).
        diagonal_only: only the diagonals were formed.
        covariance_norm_1, covariance_norm_2: ``‖Cov(Î₁)‖_F`` (thm-4), ``‖Cov(Î₂)‖_F`` (thm-6);
            ``*_stderr`` > 0 when a sampled-pairs estimate (``covariance_norms_exact`` False).
        bound_1, bound_2: the rhs of thm-7 and thm-8; ``bound_1_spectral`` thm-7's spectral
            variant where computed; ``bound_1_note``/``bound_2_note`` how they were computed
            or why not.
        psd_probability: thm-10's lower bound on P(Î₂ ⪰ 0) (None with ``psd_note``).
        samples_needed_1, samples_needed_2: lemma-12's draws per input for
            ``‖Î − I‖_F ≤ target_rel_accuracy ‖I‖_F`` with probability ``confidence``.
        var_2_refused: why Var(Î₂) was refused (a non-C² module), else None.
        probes, probe_note: Hutchinson probes of an estimated Var(Î₂) and how they were chosen.
        envelopes: sun26-spectrum's ``J'LJ ≤ I(θ) ≤ J'UJ`` on trace and diagonal (categorical
            output, small P; else None with ``envelopes_note``).
        degenerate: why the numbers carry no information (underflow, overflow); empty when
            they do.
    """

    model: str
    family: str
    num_inputs: int
    n: int
    num_params: int
    tensors: list[Row]
    layers: list[Row]
    total: Row
    fisher: Any = field(repr=False)
    variance_1: Any = field(repr=False)
    variance_2: Any = field(repr=False)
    diagonal_only: bool = True
    covariance_norm_1: float | None = None
    covariance_norm_2: float | None = None
    covariance_norm_1_stderr: float = 0.0
    covariance_norm_2_stderr: float = 0.0
    covariance_norms_exact: bool = True
    bound_1: float | None = None
    bound_2: float | None = None
    bound_1_spectral: float | None = None
    bound_1_note: str = ""
    bound_2_note: str = ""
    psd_probability: float | None = None
    psd_note: str = ""
    target_rel_accuracy: float = 0.1
    confidence: float = 0.95
    samples_needed_1: int | None = None
    samples_needed_2: int | None = None
    samples_needed_2_note: str = ""
    var_2_refused: str | None = None
    probes: int = 0
    probe_note: str = ""
    envelopes: dict[str, Any] | None = None
    envelopes_note: str = ""
    degenerate: list[str] = field(default_factory=list)

    @property
    def better(self) -> str:
        """The estimator with the smaller summed variance overall (``total.better``)."""
        return self.total.better

    @property
    def tightness_1(self) -> float | None:
        """``‖Cov(Î₁)‖_F`` / thm-7 bound (None when either is missing)."""
        return _ratio(self.covariance_norm_1, self.bound_1)

    @property
    def tightness_2(self) -> float | None:
        """``‖Cov(Î₂)‖_F`` / thm-8 bound (None when either is missing)."""
        return _ratio(self.covariance_norm_2, self.bound_2)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form: large arrays summarized by their shape and Frobenius norm, a
        module's per-tensor entries by their sums; the ``exact`` flags of estimates included."""
        out = asdict(self)
        for key in ("fisher", "variance_1", "variance_2"):
            out[key] = _entries(getattr(self, key))
        if self.envelopes is not None:
            out["envelopes"] = {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
                                for k, v in self.envelopes.items()}
        out["better"] = self.better
        out["tightness_1"], out["tightness_2"] = self.tightness_1, self.tightness_2
        out["var_2_all_exact"] = self.total.var_2_exact
        out["decided"] = UNDECIDED not in self.total.better
        if self.total.var_2 is not None and not self.total.var_2_exact:
            out["var_2_interval"] = list(interval(self.total.var_2, self.total.var_2_stderr,
                                                  self.confidence))
        return out

    def to_json(self, **kwargs: Any) -> str:
        """The result as strict JSON text (non-finite floats as strings)."""
        return jsontext.dumps(self.as_dict(), **kwargs)

    def table(self) -> str:
        """A per-layer text table; estimates marked with ``±`` and ``*``."""
        def v2(r: Row) -> str:
            if r.var_2 is None:
                return "refused"
            return f"{r.var_2:.4g}" if r.var_2_exact else f"{r.var_2:.4g}±{r.var_2_stderr:.2g}*"

        def ratio(r: Row) -> str:
            return "" if r.ratio is None else f"{r.ratio:.4g}"

        head = f"{'layer':<28} {'params':>9} {'sum diag I':>12} {'sum Var I1':>12} " \
               f"{'sum Var I2':>20} {'I2/I1':>10} {'why':<14} better"
        lines = [head, "-" * len(head)]
        for r in [*self.layers, self.total]:
            lines.append(f"{r.name[:28]:<28} {r.params:>9} {r.fisher:>12.4g} {r.var_1:>12.4g} "
                         f"{v2(r):>20} {ratio(r):>10} {r.reason or '':<14} {r.better}")
        for reason in sorted({r.reason for r in self.layers if r.reason}):
            lines.append(f"  {reason}: {REASONS[reason]}")
        if not self.diagonal_only:
            lines.append("  (sums over every entry of each block: the full P x P matrices were formed; "
                         "I2/I1 and why read the diagonals)")
        return "\n".join(lines)

    def summary(self) -> str:
        """The table with the global quantities and the notes."""
        lines = [f"WARNING: degenerate result: {why}" for why in self.degenerate]
        lines += [f"{self.model}, family {self.family}, M = {self.num_inputs} inputs, "
                  f"N = {self.n} draws per input, P = {self.num_params}"
                  + (" (diagonals only)" if self.diagonal_only else ""), self.table()]
        if not self.total.var_2_exact and self.var_2_refused is None:
            lines.append("* Var(I2): unbiased Hutchinson ESTIMATE ± standard error (not exact)"
                         + (f", {self.probes} probes" if self.probes else ""))
            if self.probe_note:
                lines.append(f"  {self.probe_note}")
            if UNDECIDED in self.total.better:
                lo, hi = interval(self.total.var_2 or 0.0, self.total.var_2_stderr,
                                  self.confidence)
                lines.append(
                    f"better estimator UNDECIDED: the {self.confidence:g} interval of sum Var(I2) "
                    f"[{lo:.4g}, {hi:.4g}] contains 0 or sum Var(I1) = {self.total.var_1:.4g}; "
                    "more probes (probes='auto' with a smaller rel_precision) can decide it")
        if self.var_2_refused:
            lines.append(f"Var(I2) refused: {self.var_2_refused}")
        for e, theorem in ((1, "thm-7"), (2, "thm-8")):
            norm = getattr(self, f"covariance_norm_{e}")
            bound = getattr(self, f"bound_{e}")
            note = getattr(self, f"bound_{e}_note")
            if norm is None or bound is None:
                lines.append(f"||Cov(I{e})||_F and {theorem}: n/a, {note or 'not computed'}")
                continue
            se = getattr(self, f"covariance_norm_{e}_stderr")
            text = f"{norm:.6g}" if not se else f"{norm:.6g} ± {se:.2g} (ESTIMATE)"
            extra = [f"tightness {_fmt(getattr(self, f'tightness_{e}'))}"]
            if e == 1 and self.bound_1_spectral is not None:
                extra.append(f"spectral variant {self.bound_1_spectral:.6g}")
            if note:
                extra.append(note)
            lines.append(f"||Cov(I{e})||_F = {text} <= {theorem} bound {bound:.6g} "
                         f"({'; '.join(extra)})")
        if self.psd_probability is not None:
            lines.append(f"P(I2 p.s.d.) >= {_fmt(self.psd_probability)} (thm-10"
                         + (", vacuous at this N)" if self.psd_probability <= 0 else ")"))
        elif self.psd_note:
            lines.append(f"P(I2 p.s.d.): {self.psd_note}")
        if self.envelopes is not None:
            env = self.envelopes
            lines.append(
                f"sun26-spectrum: tr J'LJ = {env['trace_lower']:.6g} <= tr I(theta) = "
                f"{env['trace_fisher']:.6g} <= tr J'UJ = {env['trace_upper']:.6g}; diagonal: "
                f"I_ii / (J'UJ)_ii in [{env['diag_upper_tightness'][0]:.4g}, "
                f"{env['diag_upper_tightness'][1]:.4g}]")
        elif self.envelopes_note:
            lines.append(f"sun26-spectrum envelopes: {self.envelopes_note}")
        lines.append(f"better overall: {self.better}")
        lines.append(
            f"draws per input for ||I_hat - I||_F <= {self.target_rel_accuracy:g} ||I||_F"
            + (" on the diagonal" if self.diagonal_only else "")
            + f" with prob. >= {self.confidence:g} (lemma-12): I1 {self.samples_needed_1}, "
            f"I2 {self.samples_needed_2}"
            + (f" ({self.samples_needed_2_note})" if self.samples_needed_2_note else ""))
        return "\n".join(lines)

    def plot(self, path: str) -> None:
        """A PNG of the per-layer variance sums of both estimators (error bars on estimates)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [r.name for r in self.layers]
        x = list(range(len(names)))
        fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(names) + 2), 4))
        w = 0.4
        series = [([r.var_1 for r in self.layers], [0.0] * len(names), -w / 2, "Var(Î₁) (exact)")]
        if self.var_2_refused is None:
            label = "Var(Î₂) (exact)" if self.total.var_2_exact else "Var(Î₂) (* estimate ± s.e.)"
            series.append(([r.var_2 or 0.0 for r in self.layers],
                           [r.var_2_stderr for r in self.layers], w / 2, label))
        positive = [v for vals, _, _, _ in series for v in vals if v > 0]
        floor = min(positive) / 10 if positive else 1e-12
        for vals, err, shift, label in series:
            # a sum that is exactly 0 (h linear in those weights) gets a label, not a bar
            bars = [v if v > 0 else float("nan") for v in vals]
            ax.bar([i + shift for i in x], bars, w, yerr=err if any(err) else None, capsize=3,
                   label=label)
            for i, v in enumerate(vals):
                if v <= 0:
                    ax.text(i + shift, floor * 1.5, "0", ha="center", fontsize=8)
        ax.set_ylim(bottom=floor)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"sum of variances, N = {self.n}")
        ax.set_title(f"{self.family}, M = {self.num_inputs}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.6g}"


def _frobenius(arr: np.ndarray) -> float:
    scale = float(np.max(np.abs(arr))) if arr.size else 0.0
    if scale == 0.0 or not math.isfinite(scale):
        return scale
    return scale * math.sqrt(float(np.sum((arr / scale) ** 2)))


def _entries(value: Any) -> Any:
    """An array as a list (up to 400 entries) or ``{shape, frobenius}``; per-tensor entries as
    ``{name: {shape, sum}}``; None as None."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: {"shape": list(v.shape), "sum": float(v.sum())} for k, v in value.items()}
    arr = np.asarray(value)
    return arr.tolist() if arr.size <= 400 else {"shape": list(arr.shape),
                                                 "frobenius": _frobenius(arr)}
