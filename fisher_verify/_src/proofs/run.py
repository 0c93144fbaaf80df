"""Run statements: one :class:`Record` per statement, every exception caught per proof.

:func:`run_all` runs each statement in a process of its own (:mod:`.isolate`), with the same
per-statement seed, so the outcome depends neither on ``jobs`` nor on the order, and no proof
can end, hang or poison the run. :func:`run_statement` runs one in the calling process.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .api import HOLDING, Context, Profile, Result, Statement, seed_for
from .discover import Broken, Entry, exception_line
from .isolate import cpu_count, run_isolated
from .state import DEFAULT_TIMEOUTS


@dataclass
class Record:
    """The outcome of one statement, as the gate, the JSON/JUnit writers and the report see it."""

    id: str
    title: str
    claim: str
    method: str
    hypotheses: list[str]
    source: str
    verdict: str
    summary: str
    seconds: float
    seed: int
    profile: str
    evidence: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    counterexample: dict[str, Any] | None = None
    reason: str = ""
    error: str = ""
    steps: list[tuple[str, str]] = field(default_factory=list)
    errata: list[dict[str, Any]] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        """True for proved, verified and not applicable."""
        return self.verdict in HOLDING

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "id": self.id,
            "title": self.title,
            "claim": self.claim,
            "method": self.method,
            "hypotheses": self.hypotheses,
            "source": self.source,
            "verdict": self.verdict,
            "holds": self.holds,
            "summary": self.summary,
            "seconds": round(self.seconds, 4),
            "seed": self.seed,
            "profile": self.profile,
            "evidence": self.evidence,
            "checks": self.checks,
            "counterexample": self.counterexample,
            "reason": self.reason,
            "error": self.error,
            "steps": [list(s) for s in self.steps],
            "errata": self.errata,
        }


def run_statement(entry: Entry, profile: Profile = "quick", seed: int = 0) -> Record:
    """Run one statement; an exception in the proof becomes an ``error`` record."""
    if isinstance(entry, Broken):
        return Record(
            id=entry.id, title="", claim="", method="", hypotheses=[], source=entry.source,
            verdict="error", summary=entry.error, seconds=0.0, seed=seed_for(seed, entry.id),
            profile=profile, error=entry.detail or entry.error,
        )
    st: Statement = entry
    ctx = Context(st.id, profile=profile, seed=seed)
    start = time.perf_counter()
    error = ""
    result: Result | None
    try:
        result = st.func(ctx)
        if result is None:
            result = ctx.conclude()
        if not isinstance(result, Result):
            raise TypeError(
                f"proof returned {type(result).__name__}; return ctx.proved/verified/refuted/"
                "not_applicable/conclude(...)"
            )
    except Exception as exc:  # noqa: BLE001 - the engine records every failure per proof
        error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        result = Result(
            verdict="error", summary=exception_line(exc)[:300], evidence=ctx.evidence,
            checks=ctx.checks, steps=ctx.steps, errata=ctx.errata,
        )
    seconds = time.perf_counter() - start
    return Record(
        id=st.id,
        title=st.title,
        claim=st.claim,
        method=st.method,
        hypotheses=list(st.hypotheses),
        source=st.source,
        verdict=result.verdict,
        summary=result.summary,
        seconds=seconds,
        seed=ctx.seed,
        profile=profile,
        evidence=result.evidence,
        checks=[c.as_dict() for c in result.checks],
        counterexample=result.counterexample,
        reason=result.reason,
        error=error,
        steps=list(result.steps),
        errata=list(result.errata),
    )


def failed_record(entry: Entry, profile: Profile, seed: int, summary: str, seconds: float = 0.0,
                  detail: str = "") -> Record:
    """The ``error`` record of a statement that did not report a verdict: its process ended,
    was killed or passed the time limit; ``summary`` names what happened."""
    if isinstance(entry, Broken):
        return run_statement(entry, profile, seed)
    return Record(
        id=entry.id, title=entry.title, claim=entry.claim, method=entry.method,
        hypotheses=list(entry.hypotheses), source=entry.source, verdict="error",
        summary=summary, seconds=seconds, seed=seed_for(seed, entry.id), profile=profile,
        error=detail or summary,
    )


Progress = Callable[[int, int, Record], None]
Started = Callable[[str], None]


def run_all(
    entries: Sequence[Entry],
    profile: Profile = "quick",
    seed: int = 0,
    jobs: int = 1,
    progress: Progress | None = None,
    started: Started | None = None,
    timeout: float | None = None,
) -> list[Record]:
    """Run every entry, each in a process of its own, and return the records in the entries'
    order.

    A statement whose process ends without a record (``sys.exit``, ``os._exit``, a crash), is
    killed, or runs longer than ``timeout`` seconds gets an ``error`` record naming why; what a
    proof changes in its process (working directory, ``np.seterr``, random state, environment)
    never reaches another statement or the caller.

    Args:
        entries: statements (and broken files) from :func:`~fisher_verify._src.proofs.discover`.
        profile: ``quick`` or ``thorough``.
        seed: the run seed; each statement's seed is derived from it and its id.
        jobs: statements run at once (0 means one per CPU); never more than the CPUs this
            process may use (:func:`~fisher_verify._src.proofs.isolate.cpu_count`) or the
            statements.
        progress: called as ``progress(done, total, record)`` after each statement.
        started: called as ``started(id)`` when a statement starts (with ``jobs > 1`` the ids
            started and not finished are those in flight).
        timeout: the per-statement time limit in seconds (> 0); None is the profile's default
            (:data:`~fisher_verify._src.proofs.state.DEFAULT_TIMEOUTS`).
    """
    if timeout is None:
        timeout = DEFAULT_TIMEOUTS[profile]
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    total = len(entries)
    workers = max(1, min(jobs or cpu_count(), cpu_count(), total))
    records: dict[int, Record] = {}

    def done(i: int, record: Record) -> None:
        records[i] = record
        if progress:
            progress(len(records), total, record)

    todo = []
    for i, entry in enumerate(entries):
        if isinstance(entry, Broken):
            done(i, run_statement(entry, profile, seed))
        else:
            todo.append(i)
    run_isolated(list(entries), todo, profile, seed, workers, timeout, run_statement,
                 failed_record, done, started)
    return [records[i] for i in range(total)]
