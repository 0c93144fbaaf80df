"""What the estimator gate reports (:class:`EstimatorReport`, one :class:`GateStatistic` per
tested statistic) and how it reads a user's estimator (:func:`collect_values`).

Below both :mod:`.estimator_gate` and :mod:`.one_sided`, which build reports, so that neither
imports the other back.
"""

from __future__ import annotations

import bisect
import math
import operator
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from ..errors import ShapeError
from ..validation import as_real_array
from .gate_kinds import describe_kind, kind_of
from .pooled import PooledTest

__all__: list[str] = []  # nothing for other rooms

#: A user's estimator: ``estimator(rng) -> (P, P)`` array (or ``(P,)`` diagonal).
Estimator = Callable[[np.random.Generator], Any]


# --- report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateStatistic:
    """One tested statistic ``⟨W, Î⟩`` of the replicates.

    Attributes:
        label: which element / direction, e.g. ``"Î[5,5] (W0[1,2])"`` or ``"v3ᵀ Î v3"``.
        observed: Catoni's estimate of the replicates' mean (the tested estimate).
        mean: plain mean over all replicates.
        expected: the exact value ``⟨W, I(θ)⟩`` (``eq-6``).
        sd: exact standard deviation of one replicate (``thm-4`` / ``thm-6``).
        empirical_sd: standard deviation of the replicate values.
        radius: Catoni radius at the per-test level ``alpha / T``.
        slack: deterministic rounding tolerance ``rtol · ⟨|W|, |I(θ)|⟩``.
        replications: R.
        spread_ratio: Catoni estimate of ``E (X − μ)²`` over the exact ``σ²`` (NaN: untested).
        spread_ok: whether that ratio is within its calibrated two-sided radius.
        spread_radius: the acceptance radius on ``E (X − μ)²``, Catoni's at ``alpha / T`` from
            the exact ``Var (X − μ)² = μ₄ − σ⁴`` (NaN: untested).
    """

    label: str
    observed: float
    mean: float
    expected: float
    sd: float
    empirical_sd: float
    radius: float
    slack: float
    replications: int
    spread_ratio: float = math.nan
    spread_ok: bool = True
    spread_radius: float = math.nan
    side: str = "two-sided"

    @property
    def threshold(self) -> float:
        """Largest accepted ``|observed − expected|``."""
        return self.radius + self.slack

    @property
    def passed(self) -> bool:
        """Whether ``|observed − expected| ≤ threshold`` (the mean test); one-sided
        (``side="upper"``: an estimator of a bound ⪰ I(θ)): ``observed ≥ expected − threshold``,
        (``"lower"``): ``observed ≤ expected + threshold``."""
        dev = self.observed - self.expected
        if self.side == "upper":
            return bool(-dev <= self.threshold)
        if self.side == "lower":
            return bool(dev <= self.threshold)
        return bool(abs(dev) <= self.threshold)

    @property
    def excess(self) -> float:
        """``|observed − expected| / threshold`` (> 1 fails; ``inf`` for non-finite values)."""
        dev = abs(self.observed - self.expected)
        if self.side != "two-sided":
            signed = self.observed - self.expected
            dev = max(-signed if self.side == "upper" else signed, 0.0)
        if not math.isfinite(dev):
            return math.inf
        return dev / self.threshold if self.threshold > 0 else (0.0 if dev == 0 else math.inf)

    @property
    def standard_error(self) -> float:
        """Exact sd of the mean of R replicates, ``sd / √R``."""
        return self.sd / math.sqrt(self.replications)

    @property
    def z(self) -> float:
        """``(observed − expected)`` in exact standard errors (``inf`` when the sd is 0)."""
        dev = self.observed - self.expected
        se = self.standard_error
        if se > 0:
            return dev / se
        return 0.0 if dev == 0 else math.copysign(math.inf, dev)

    @property
    def threshold_z(self) -> float:
        """The acceptance radius in exact standard errors (about 6.8 at R = 200, alpha/T = 1e-8)."""
        se = self.standard_error
        return self.radius / se if se > 0 else 0.0

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        z = f"{abs(self.z):.1f}" if math.isfinite(self.z) else "inf"
        text = (
            f"{self.label}: {verdict}: observed {self.observed:.6g}, exact {self.expected:.6g} "
            f"(off by {z} exact standard errors; threshold {self.threshold_z:.1f} = "
            f"{self.threshold:.3g})"
        )
        if math.isfinite(self.spread_ratio):
            text += f"; variance {self.spread_ratio:.3g}x exact" + (
                "" if self.spread_ok else " (spread FAILED)"
            )
        return text


def excess_array(observed: np.ndarray, expected: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """:attr:`GateStatistic.excess` (two-sided) of every statistic at once."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        dev = np.abs(observed - expected)
        out = np.where(threshold > 0, dev / np.where(threshold > 0, threshold, 1.0),
                       np.where(dev == 0, 0.0, np.inf))
    return np.where(np.isfinite(dev), out, np.inf)


class ParameterLabels:
    """``Î[i,i] (W0[r,c])`` / ``(b0[r])`` of an Eq. 3 network's flat-θ index, then the directions'
    ``vjᵀ Î vj`` (or ``own`` labels for the parameters), each made when asked for."""

    def __init__(self, shapes: Sequence[tuple[int, int]] | None, own: Sequence[str] | None,
                 directions: int, form: str) -> None:
        self.shapes = [tuple(map(int, sh)) for sh in shapes] if shapes is not None else None
        self.own = list(own) if own is not None else None
        ends = [rows * cols for rows, cols in (self.shapes or [])]
        self.ends = np.cumsum(ends).tolist()
        self.P = len(self.own) if self.own is not None else (self.ends[-1] if self.ends else 0)
        self.directions = int(directions)
        self.form = form

    def __len__(self) -> int:
        return self.P + self.directions

    def __call__(self, i: int) -> str:
        if i >= self.P:
            j = i - self.P
            return f"v{j}ᵀ {self.form} v{j} (random unit v{j})"
        if self.own is not None:
            return self.own[i]
        assert self.shapes is not None
        layer = bisect.bisect_right(self.ends, i)
        rows, cols = self.shapes[layer]
        r, c = divmod(i - (self.ends[layer - 1] if layer else 0), cols)
        what = f"b{layer}[{r}]" if c == cols - 1 else f"W{layer}[{r},{c}]"
        return f"Î[{i},{i}] ({what})"


class GateStatistics(Sequence[GateStatistic]):
    """The gate's tested statistics (a read-only sequence of :class:`GateStatistic`), each made
    when it is read: a diagonal estimate at P ~ 1e5 has that many, and a report is mostly
    read for its verdict, its worst statistic and its failures (found here from the arrays).

    Columns (arrays of length S): ``observed, mean, expected, sd, empirical_sd, radius, slack,
    spread_ratio, spread_ok, spread_radius``; ``labels(j)`` names statistic ``j``.
    """

    _COLUMNS = ("observed", "mean", "expected", "sd", "empirical_sd", "radius", "slack",
                "spread_ratio", "spread_ok", "spread_radius")

    def __init__(self, labels: Callable[[int], str], replications: int, **columns: np.ndarray) -> None:
        if set(columns) != set(self._COLUMNS):
            raise ValueError(f"GateStatistics needs the columns {self._COLUMNS}")
        self._labels = labels
        self._R = int(replications)
        self._cols = {k: np.asarray(v) for k, v in columns.items()}
        self._n = int(self._cols["observed"].shape[0])

    def __len__(self) -> int:
        return self._n

    def _make(self, j: int) -> GateStatistic:
        c = self._cols
        return GateStatistic(
            self._labels(j), float(c["observed"][j]), float(c["mean"][j]), float(c["expected"][j]),
            float(c["sd"][j]), float(c["empirical_sd"][j]), float(c["radius"][j]),
            float(c["slack"][j]), self._R, float(c["spread_ratio"][j]), bool(c["spread_ok"][j]),
            float(c["spread_radius"][j]),
        )

    @overload
    def __getitem__(self, j: int) -> GateStatistic: ...

    @overload
    def __getitem__(self, j: slice) -> tuple[GateStatistic, ...]: ...

    def __getitem__(self, j: int | slice) -> GateStatistic | tuple[GateStatistic, ...]:
        if isinstance(j, slice):
            return tuple(self._make(k) for k in range(*j.indices(self._n)))
        k = operator.index(j)
        if k < 0:
            k += self._n
        if not 0 <= k < self._n:
            raise IndexError(f"statistic {j} out of range for {self._n} statistics")
        return self._make(k)

    def __iter__(self) -> Iterator[GateStatistic]:
        return (self._make(k) for k in range(self._n))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"GateStatistics({self._n} statistics)"

    def excess(self) -> np.ndarray:
        """:attr:`GateStatistic.excess` of every statistic."""
        c = self._cols
        return excess_array(c["observed"], c["expected"], c["radius"] + c["slack"])

    def worst(self) -> GateStatistic | None:
        """The statistic with the largest excess (the first of equals), as ``max`` would pick."""
        return self[int(np.argmax(self.excess()))] if self._n else None

    def failed(self) -> tuple[GateStatistic, ...]:
        """The statistics outside their mean threshold (:attr:`GateStatistic.passed`)."""
        c = self._cols
        with np.errstate(invalid="ignore"):
            ok = np.abs(c["observed"] - c["expected"]) <= c["radius"] + c["slack"]
        return tuple(self._make(int(k)) for k in np.flatnonzero(~ok))

    def spread_failed(self) -> tuple[GateStatistic, ...]:
        """The statistics whose spread is outside its threshold."""
        return tuple(self._make(int(k)) for k in np.flatnonzero(~self._cols["spread_ok"].astype(bool)))


@dataclass(frozen=True)
class EstimatorReport:
    """Outcome of :func:`fisher_verify.check_estimator`, the one report of the gate.

    ``reference="fisher"``: the calibrated test of unbiasedness for ``I(θ)`` (module docs);
    ``reference="empirical"``: the exact comparison with the empirical Fisher of the data's
    labels, where ``statistics`` is empty, ``worst`` None and ``max_error``, ``rtol`` and
    ``worst_entry`` describe the comparison.

    Attributes:
        passed: every mean within its threshold, and the spread as required (module docs).
        which: ``"I1"`` (``Î₁``, score outer products), ``"I2"`` (``Î₂``, negative Hessians), ``"gnb"``
            (Sophia's Gauss–Newton–Bartlett, ``ext-gnb``) or ``"hutchinson-rademacher"`` /
            ``"hutchinson-gaussian"`` (``ext-hutchinson``): whose exact variance calibrates the
            test.
        n: draws per input the estimator is declared to use.
        replications: R.
        diagonal_only: whether the estimator returns ``diag Î`` only.
        alpha: false-alarm rate of the whole gate.
        alpha_per_check: ``alpha / T`` (Bonferroni over T tests).
        statistics: every tested statistic (diagonal elements first, then directions); a
            read-only sequence (:class:`GateStatistics`: each made when read).
        worst: the statistic with the largest ``|observed − expected| / threshold``.
        scale: least-squares factor c in ``observed ≈ c · exact``, weighted by the exact
            covariance of the statistics (the pooled scale test's plain mean; precision-weighted
            when that test did not run); 1 for a correct estimator.
        scale_explains: whether ``c · exact`` fits every statistic within the standard error of
            the residual (a pure rescaling).
        sd_ratio: median over statistics of (empirical sd / exact sd of ``Î_kind``).
        diagnosis: a one-line reading of the numbers (:mod:`fisher_verify._src.testing.diagnose`).
        variance: ``"at_most"`` or ``"exact"`` (the estimator declared to be ``Î_kind``).
        cause: short code of the diagnosis (``ok``, ``scale``, ``noisier``, ...).
        factor: the named scale factor (``"1/n"``, ``"4/3"``, ...) or ``""``.
        spread_ratio: median over tested statistics of observed / exact variance.
        deterministic: the replicates did not vary (compared exactly).
        tests: T, the number of mean and spread tests sharing ``MAIN_SHARE · alpha``.
        method: ``"catoni+spread"`` (Catoni means and spreads), ``"catoni"`` (R too small for
            the spread tests) or ``"median_of_means"`` (R too small for Catoni's bound).
        pooled: the pooled tests (scale factor against 1, split-sample omnibus), sharing
            ``POOLED_SHARE · alpha`` (:mod:`fisher_verify._src.testing.pooled`).
        reference: ``"fisher"`` or ``"empirical"``: what the estimate was compared with.
        reference_note: how the exact reference was obtained when that needs saying (e.g. a
            train()-mode model with dropout evaluated in eval mode); "" otherwise.
        max_error, rtol, worst_entry: the exact comparison (``reference="empirical"``): the
            largest relative error, the rounding tolerance, and the entry where it occurs.
    """

    passed: bool
    which: Any
    n: int
    replications: int
    diagonal_only: bool
    alpha: float
    alpha_per_check: float
    statistics: Sequence[GateStatistic]
    worst: GateStatistic | None
    scale: float
    scale_explains: bool
    sd_ratio: float
    diagnosis: str
    variance: str = "at_most"
    cause: str = ""
    factor: str = ""
    spread_ratio: float = math.nan
    deterministic: bool = False
    tests: int = 0
    method: str = "catoni+spread"
    pooled: tuple[PooledTest, ...] = ()
    reference: str = "fisher"
    reference_note: str = ""
    max_error: float = math.nan
    rtol: float = math.nan
    worst_entry: str = ""

    @property
    def scale_test(self) -> PooledTest | None:
        """The pooled test of the precision-weighted scale factor against 1 (None: not run)."""
        return next((t for t in self.pooled if t.name == "scale"), None)

    @property
    def scale_se(self) -> float:
        """Exact standard error of :attr:`scale` (thm-4 / thm-6 with the statistics'
        correlations; NaN when the scale test did not run)."""
        t = self.scale_test
        return t.standard_error if t is not None else math.nan

    @property
    def pooled_failures(self) -> tuple[PooledTest, ...]:
        """The pooled tests that rejected."""
        return tuple(t for t in self.pooled if not t.passed)

    @property
    def failures(self) -> tuple[GateStatistic, ...]:
        """The statistics outside their mean threshold."""
        if isinstance(self.statistics, GateStatistics):
            return self.statistics.failed()
        return tuple(s for s in self.statistics if not s.passed)

    @property
    def spread_failures(self) -> tuple[GateStatistic, ...]:
        """The statistics whose spread is outside its two-sided threshold."""
        if isinstance(self.statistics, GateStatistics):
            return self.statistics.spread_failed()
        return tuple(s for s in self.statistics if not s.spread_ok)

    def message(self) -> str:
        """A multi-line human summary (the AssertionError text of the assert form)."""
        if self.reference == "empirical":
            head = "PASSED" if self.passed else "FAILED"
            return "\n".join([
                f"Empirical Fisher check {head}: exact comparison at rounding tolerance rtol = "
                f"{self.rtol:.1e}",
                f"  worst: {self.worst_entry}: off by {self.max_error:.3g} (relative to the "
                "entry's magnitude)",
                f"  scale factor (least squares of estimate vs empirical Fisher): {self.scale:.4g}",
                f"  diagnosis: {self.diagnosis}",
            ])
        est = describe_kind(kind_of(self.which))
        head = "PASSED" if self.passed else "FAILED"
        shape = "diagonal" if self.diagonal_only else "P x P"
        lines = [
            f"Fisher estimator gate {head}: {len(self.failures)} of {len(self.statistics)} "
            f"means off, {len(self.spread_failures)} spreads off ({shape} estimate calibrated "
            f"by the exact variance of {est}, n = {self.n} draws per input, R = "
            f"{self.replications} replicates; alpha = {self.alpha:.1e} for the whole gate, "
            f"{self.alpha_per_check:.2e} per test; {_METHOD_TEXT[self.method]})",
            f"  worst: {self.worst}",
            f"  scale factor (least squares of observed vs exact, weighted by the exact covariance): "
            f"{self.scale:.4g}" + (f" ± {self.scale_se:.2g} (exact standard error)"
                                   if math.isfinite(self.scale_se) else "")
            + (" — a rescaled I(θ) fits every statistic" if self.scale_explains else ""),
            f"  spread: empirical sd / exact sd = {self.sd_ratio:.3g}"
            + (f"; variance ratio {self.spread_ratio:.3g}" if math.isfinite(self.spread_ratio) else ""),
            f"  diagnosis: {self.diagnosis}",
        ]
        if self.pooled:
            lines.insert(2, "  pooled: " + "; ".join(str(t) for t in self.pooled))
        if self.reference_note:
            lines.append(f"  reference: {self.reference_note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.message()


_METHOD_TEXT = {
    "catoni+spread": "Catoni means and spreads",
    "catoni": "Catoni means; R too small to test the spread",
    "median_of_means": "median-of-means means; R too small for Catoni's bound or the spread",
    "catoni-upper": "one-sided Catoni means: an estimator of an upper bound of I(θ)",
    "catoni-lower": "one-sided Catoni means: an estimator of a lower bound of I(θ)",
}


def _as_array(value: Any, name: str = "the estimator's return value") -> np.ndarray:
    torch = sys.modules.get("torch")
    if not (torch is not None and isinstance(value, torch.Tensor)) and (
            hasattr(value, "detach") and not hasattr(value, "__array__")):
        # e.g. a Kronecker-factored curvature object: never call into it as if it were a tensor
        raise ShapeError(
            f"the estimator returned a {type(value).__name__}, which has .detach but is not a "
            "torch.Tensor (a structured curvature object?): return the (P, P) matrix, or its (P,) "
            "diagonal with diagonal_only=True, as an array or tensor in the Network's flat-θ order"
        )
    return as_real_array(value, name)  # real numbers only: complex, text, meta tensors named


def _replaying(first: np.ndarray, estimator: Estimator) -> Estimator:
    """``estimator`` whose first call returns ``first``, the replicate already drawn."""
    pending = [first]

    def call(gen: np.random.Generator) -> Any:
        return pending.pop() if pending else estimator(gen)

    return call


def collect_values(estimator: Estimator, gen: np.random.Generator, R: int, P: int, V: np.ndarray,
                   diagonal_only: bool) -> np.ndarray:
    """The (R, P + D) statistics of R calls: diagonal elements, then ``vᵀ Î v`` (or
    ``vᵀ Diag(Î) v``) per direction."""
    want = (P,) if diagonal_only else (P, P)
    values = np.empty((R, P + V.shape[0]))
    W2 = V * V  # the weights of vᵀ Diag(Î) v, formed once rather than per replicate
    for r in range(R):
        est = _as_array(estimator(gen))
        if est.shape != want:
            hint = " (pass diagonal_only=True for a diagonal estimator)" if est.shape == (P,) else ""
            raise ShapeError(f"the estimator returned shape {est.shape}, expected {want}{hint}")
        if diagonal_only:
            values[r, :P] = est
            values[r, P:] = W2 @ est
        else:
            values[r, :P] = np.diagonal(est)
            values[r, P:] = np.sum((V @ est) * V, axis=1)
    return values


