"""The proof-file API: ``@statement`` and the :class:`Context` a proof receives.

A proof is a Python function decorated with :func:`statement`; it receives a
:class:`Context` (profile, seeded generator, tolerances, evidence recorder) and returns a
:class:`Result` built by one of ``ctx.proved``, ``ctx.verified``, ``ctx.refuted``,
``ctx.not_applicable`` or ``ctx.conclude`` (returning ``None`` is ``ctx.conclude()``)::

    from fisher_verify.proofs import statement

    @statement("my-claim", claim=r"\\mathbb{E}[t] = \\eta", method="exact expectation")
    def check(ctx):
        fam = fisher_verify.family("poisson")
        ctx.close("E[t] vs eta", fam.expect(lambda t: t, [[0.3]]), fam.mean([[0.3]]))
        return ctx.conclude()

The engine (:mod:`fisher_verify._src.proofs.run`) catches every exception of a proof and records
an ``error`` verdict, so one broken proof never stops the gate.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Verdict = Literal["proved", "verified", "refuted", "not applicable", "error"]
Profile = Literal["quick", "thorough"]
Method = str  # "symbolic identity" | "exact expectation" | "property over random networks" | ...

HOLDING: frozenset[str] = frozenset({"proved", "verified", "not applicable"})
VERDICTS: tuple[str, ...] = ("proved", "verified", "refuted", "not applicable", "error")

METHODS: tuple[str, ...] = (
    "symbolic identity",
    "exact expectation",
    "property over random networks",
    "calibrated Monte Carlo",
)


@dataclass
class Check:
    """One recorded comparison: a name, the observed discrepancy, the tolerance, pass/fail."""

    name: str
    passed: bool
    observed: float
    tolerance: float
    kind: str = "close"  # "close" | "leq" | "true"
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "name": self.name,
            "passed": self.passed,
            "observed": _jsonable(self.observed),
            "tolerance": _jsonable(self.tolerance),
            "kind": self.kind,
            "detail": self.detail,
        }


@dataclass
class Result:
    """What a proof concluded; the engine adds timing, seed and profile."""

    verdict: Verdict
    summary: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    counterexample: dict[str, Any] | None = None
    reason: str = ""
    steps: list[tuple[str, str]] = field(default_factory=list)
    errata: list[dict[str, Any]] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        """True for proved, verified and not applicable."""
        return self.verdict in HOLDING


@dataclass(frozen=True)
class Statement:
    """A registered statement: its id, the claim in LaTeX, hypotheses, method, the proof."""

    id: str
    claim: str
    method: Method
    func: Callable[[Context], Result | None]
    title: str = ""
    hypotheses: tuple[str, ...] = ()
    source: str = ""  # the file the statement was loaded from (set by discovery)

    def __call__(self, ctx: Context) -> Result | None:
        return self.func(ctx)


def statement(
    id: str,
    *,
    claim: str,
    method: Method,
    title: str = "",
    hypotheses: Sequence[str] = (),
) -> Callable[[Callable[[Context], Result | None]], Statement]:
    """Register the decorated function as the proof of statement ``id``.

    Args:
        id: the statement id (``thm-4``, ``lemma-5``, … or any id of your own).
        claim: the claim in LaTeX (inline math, without ``$``).
        method: how it is established: ``symbolic identity``, ``exact expectation``,
            ``property over random networks`` or ``calibrated Monte Carlo`` (free text is
            accepted for methods of your own).
        title: a short human title (``Theorem 4``).
        hypotheses: the hypotheses, each in LaTeX or plain text.
    """
    if not isinstance(id, str) or not id.strip():
        raise ValueError("statement id must be a non-empty string")

    def decorate(func: Callable[[Context], Result | None]) -> Statement:
        return Statement(
            id=id.strip(),
            claim=claim,
            method=method,
            func=func,
            title=title,
            hypotheses=tuple(hypotheses),
        )

    return decorate


def _jsonable(value: Any) -> Any:
    """Convert NumPy / mpmath / SymPy values into JSON-friendly Python values."""
    if isinstance(value, (bool, str, type(None))):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        if value.size > 64:
            return {"shape": list(value.shape), "max_abs": float(np.max(np.abs(value)))}
        return [_jsonable(v) for v in value.tolist()] if value.ndim else _jsonable(value.item())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def seed_for(seed: int, statement_id: str) -> int:
    """The per-statement seed: stable across runs and independent of the run order."""
    digest = hashlib.sha256(f"{seed}:{statement_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class Context:
    """What a proof gets: profile, seeded generator, tolerances, and the evidence recorder.

    Attributes:
        id: the statement id being proved.
        profile: ``quick`` (the CI gate, seconds) or ``thorough`` (more families, networks,
            samples).
        seed: the per-statement seed (derived from the run seed and the id).
        rng: a :class:`numpy.random.Generator` seeded with ``seed``.
        rtol, atol: default tolerances for float64 comparisons: ``rtol`` is relative to the
            magnitude of the quantities compared (see :meth:`close`), ``atol`` an extra
            absolute slack, 0 by default so that no check is vacuous for small quantities.
        alpha: false-alarm rate per calibrated Monte Carlo check (DESIGN: at most 1e-6).
    """

    def __init__(
        self,
        statement_id: str,
        profile: Profile = "quick",
        seed: int = 0,
        rtol: float = 1e-9,
        atol: float = 0.0,
        alpha: float = 1e-6,
    ) -> None:
        self.id = statement_id
        self.profile: Profile = profile
        self.run_seed = seed
        self.seed = seed_for(seed, statement_id)
        self.rng = np.random.default_rng(self.seed)
        self.rtol = rtol
        self.atol = atol
        self.alpha = alpha
        self.evidence: dict[str, Any] = {}
        self.checks: list[Check] = []
        self.steps: list[tuple[str, str]] = []
        self.errata: list[dict[str, Any]] = []
        self._counterexample: dict[str, Any] | None = None

    # --- profile helpers ----------------------------------------------------------------------

    @property
    def thorough(self) -> bool:
        """True under the thorough profile."""
        return self.profile == "thorough"

    def pick(self, quick: Any, thorough: Any) -> Any:
        """``quick`` under the quick profile, ``thorough`` otherwise."""
        return thorough if self.thorough else quick

    def families(self, quick: Sequence[str] = ("bernoulli", "normal", "poisson")) -> list[Any]:
        """Families to exercise: ``quick`` names, or the whole catalog under thorough."""
        from ..families.registry import family, family_names

        names = list(family_names()) if self.thorough else list(quick)
        return [family(n) for n in names]

    # --- evidence -----------------------------------------------------------------------------

    def record(self, key: str, value: Any) -> Any:
        """Store one piece of evidence (numbers, shapes, seeds); returns ``value``."""
        self.evidence[key] = _jsonable(value)
        return value

    def step(self, label: str, latex: str) -> None:
        """Record one derivation step (LaTeX) for the report."""
        self.steps.append((label, latex))

    def erratum(self, text: str, literal: str = "", **counterexample: Any) -> None:
        """Record a documented disagreement with the paper's literal statement.

        Use it when the literal text is false but the paper's intent holds (STATEMENTS.md:
        "the paper's intent wins, and the project should say so"): the proof checks the
        intended form, and the erratum states what is wrong with the literal one, with the
        numbers that show it. An erratum never changes the verdict; the gate's table, the
        JSON and JUnit outputs and the report print it.

        Args:
            text: one sentence: what the literal form gets wrong and what holds instead.
            literal: the literal form (LaTeX), if it differs from the claim shown.
            counterexample: where the literal form fails (network, layer, both sides).
        """
        if not text.strip():
            raise ValueError("an erratum needs a text")
        self.errata.append({"text": text.strip(), "literal": literal,
                            "counterexample": _jsonable(counterexample)})

    def counterexample(self, **data: Any) -> None:
        """Remember a counterexample (the first one is kept)."""
        if self._counterexample is None:
            self._counterexample = _jsonable(data)

    def close(
        self,
        name: str,
        actual: Any,
        expected: Any,
        rtol: float | None = None,
        atol: float | None = None,
        *,
        scale: float | None = None,
        **where: Any,
    ) -> bool:
        """Record whether ``actual`` ≈ ``expected``: ``max|a − e| ≤ atol + rtol·S`` (see below).

        **Tolerance (scaled to the quantities compared).** ``S`` is the magnitude of what is
        compared: ``max|e|`` over the whole array, or ``scale`` when that is larger (pass the
        magnitude of the terms that cancel when the expected value is a difference, e.g. 0). So
        a comparison of quantities of size 1e-20 is as strict, relatively, as one of size 1:
        no fixed absolute floor makes small quantities vacuously "close". ``atol`` (default
        ``ctx.atol`` = 0) is an extra absolute slack for the rare case where no scale exists;
        an expected exact zero with neither ``scale`` nor ``atol`` demands exact equality.
        The comparison is norm-wise (max-norm): entries much smaller than the array's largest
        are judged relative to the largest, as rounding in sums of large terms requires.

        The observed value stored is the relative error ``max|a − e| / S``, so a report shows how
        much room there was.
        """
        rtol = self.rtol if rtol is None else rtol
        atol = self.atol if atol is None else atol
        a = np.asarray(_to_float_array(actual))
        e = np.asarray(_to_float_array(expected))
        if a.shape != e.shape:
            try:
                a, e = np.broadcast_arrays(a, e)
            except ValueError:
                self.checks.append(
                    Check(name, False, math.inf, rtol, "close", f"shapes {a.shape} vs {e.shape}")
                )
                self.counterexample(check=name, shapes=[list(a.shape), list(e.shape)], **where)
                return False
        diff = np.abs(a - e)
        size = float(np.max(np.abs(e))) if e.size else 0.0
        size = max(size, abs(float(scale))) if scale is not None else size
        allowed = atol + rtol * size
        finite = bool(np.all(np.isfinite(a))) and bool(np.all(np.isfinite(e)))
        ok = finite and (bool(np.all(diff <= allowed)) if diff.size else True)
        worst = float(np.max(diff)) if diff.size else 0.0
        observed = worst / size if size > 0 else (0.0 if worst == 0 else math.inf)
        self.checks.append(Check(name, ok, observed if finite else math.inf, rtol, "close",
                                 f"scale {size:.3g}"))
        if not ok:
            idx = int(np.argmax(np.where(np.isfinite(diff), diff, np.inf))) if diff.size else 0
            self.counterexample(
                check=name,
                actual=a.reshape(-1)[idx] if a.size else None,
                expected=e.reshape(-1)[idx] if e.size else None,
                **where,
            )
        return ok

    def leq(self, name: str, lhs: Any, rhs: Any, rtol: float = 1e-9, *,
            scale: float | None = None, **where: Any) -> bool:
        """Record whether ``lhs ≤ rhs + rtol·max(|lhs|, |rhs|, scale)`` element-wise (a bound holds).

        The slack is relative to the sides themselves (plus ``ctx.atol``, 0 by default), so a
        bound between tiny quantities is checked as strictly as one between large ones.
        The observed value is the largest ratio lhs / rhs (the bound's tightness).
        """
        lv, rv = np.broadcast_arrays(np.asarray(_to_float_array(lhs)),
                                     np.asarray(_to_float_array(rhs)))
        size = np.maximum(np.abs(lv), np.abs(rv))
        if scale is not None:
            size = np.maximum(size, abs(float(scale)))
        finite = bool(np.all(np.isfinite(lv))) and bool(np.all(np.isfinite(rv)))
        ok = finite and bool(np.all(lv <= rv + rtol * size + self.atol))
        with np.errstate(divide="ignore", invalid="ignore"):
            safe = np.where(rv != 0, rv, 1.0)
            ratio = np.where(rv != 0, lv / safe, np.where(lv <= 0, 0.0, np.inf))
        observed = float(np.max(ratio)) if ratio.size else 0.0
        self.checks.append(Check(name, ok, observed, 1.0 + rtol, "leq"))
        if not ok:
            with np.errstate(invalid="ignore"):
                excess = np.where(np.isfinite(lv - rv), lv - rv, np.inf)
            idx = int(np.argmax(excess)) if excess.size else 0
            self.counterexample(check=name, lhs=lv.reshape(-1)[idx], rhs=rv.reshape(-1)[idx],
                                **where)
        return ok

    def true(self, name: str, condition: Any, detail: str = "", **where: Any) -> bool:
        """Record a boolean fact (e.g. "every probability lies in [0, 1]")."""
        ok = bool(np.all(condition))
        self.checks.append(Check(name, ok, float(ok), 1.0, "true", detail))
        if not ok:
            self.counterexample(check=name, detail=detail, **where)
        return ok

    @property
    def failed(self) -> bool:
        """True once any recorded check failed."""
        return any(not c.passed for c in self.checks)

    # --- verdicts -----------------------------------------------------------------------------

    def _result(self, verdict: Verdict, summary: str, **extra: Any) -> Result:
        self.evidence.update({k: _jsonable(v) for k, v in extra.items()})
        return Result(
            verdict=verdict,
            summary=summary,
            evidence=self.evidence,
            checks=self.checks,
            counterexample=self._counterexample,
            steps=self.steps,
            errata=self.errata,
        )

    def proved(self, summary: str = "", **evidence: Any) -> Result:
        """The claim holds symbolically (for every parameter value), unless a check failed."""
        if self.failed:
            return self.refuted()
        return self._result("proved", summary, **evidence)

    def verified(self, summary: str = "", **evidence: Any) -> Result:
        """The claim holds on the stated evidence (numbers, seeds), unless a check failed."""
        if self.failed:
            return self.refuted()
        return self._result("verified", summary, **evidence)

    def refuted(self, summary: str = "", counterexample: dict[str, Any] | None = None,
                **evidence: Any) -> Result:
        """The claim fails; ``counterexample`` (or the first failing check) says where."""
        if counterexample is not None:
            self._counterexample = _jsonable(counterexample)
        failing = [c.name for c in self.checks if not c.passed]
        if failing and not summary:
            summary = "failed: " + ", ".join(failing[:3])
        return self._result("refuted", summary, **evidence)

    def not_applicable(self, reason: str, **evidence: Any) -> Result:
        """The statement cannot be checked here; ``reason`` says why."""
        res = self._result("not applicable", reason, **evidence)
        res.reason = reason
        return res

    def conclude(self, summary: str = "", symbolic: bool = False, **evidence: Any) -> Result:
        """Verdict from the recorded checks: proved/verified when all passed, else refuted."""
        if not self.checks and not evidence and not self.evidence:
            raise RuntimeError(f"{self.id}: proof recorded no checks and no evidence")
        if symbolic:
            return self.proved(summary, **evidence)
        return self.verified(summary, **evidence)


def _to_float_array(value: Any) -> Any:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return np.asarray([float(v) for v in np.ravel(np.asarray(value, dtype=object))])
