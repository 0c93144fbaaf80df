"""Run statements: one :class:`Record` per statement, every exception caught per proof.

Statements can run in worker processes (``jobs > 1``); a worker re-imports the proof file
and runs the statement with the same per-statement seed, so the outcome does not depend on
``jobs`` or on the order.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import HOLDING, Context, Profile, Result, Statement, seed_for
from .discover import Broken, Entry, exception_line, load_file


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


def _run_in_worker(source: str, sid: str, profile: Profile, seed: int) -> Record:
    for entry in load_file(Path(source)):
        if entry.id == sid:
            return run_statement(entry, profile, seed)
    return run_statement(Broken(sid, source, f"statement {sid!r} vanished from {source}"),
                         profile, seed)


Progress = Callable[[int, int, Record], None]
Started = Callable[[str], None]


def run_all(
    entries: Sequence[Entry],
    profile: Profile = "quick",
    seed: int = 0,
    jobs: int = 1,
    progress: Progress | None = None,
    started: Started | None = None,
) -> list[Record]:
    """Run every entry and return the records in the entries' order.

    Args:
        entries: statements (and broken files) from :func:`~fisher_verify.proofs.discover`.
        profile: ``quick`` or ``thorough``.
        seed: the run seed; each statement's seed is derived from it and its id.
        jobs: worker processes (1 runs in this process; 0 means one per CPU).
        progress: called as ``progress(done, total, record)`` after each statement.
        started: called as ``started(id)`` when a statement starts (with ``jobs > 1``: when a
            free worker takes it, so the ids started and not finished are those in flight).
    """
    total = len(entries)
    if jobs == 0:
        jobs = os.cpu_count() or 1
    records: dict[int, Record] = {}
    if jobs <= 1 or total <= 1:
        for i, entry in enumerate(entries):
            if started:
                started(entry.id)
            records[i] = run_statement(entry, profile, seed)
            if progress:
                progress(i + 1, total, records[i])
        return [records[i] for i in range(total)]
    workers = min(jobs, total)

    def failed(i: int, exc: Exception) -> None:
        records[i] = run_statement(
            Broken(entries[i].id, entries[i].source, f"worker failed: {exc}"), profile, seed)
        if progress:
            progress(len(records), total, records[i])

    with ProcessPoolExecutor(max_workers=workers) as pool:
        # at most one statement per worker is submitted, so what was started is what runs
        queue: list[int] = []
        for i, entry in enumerate(entries):
            if isinstance(entry, Broken):
                records[i] = run_statement(entry, profile, seed)
                if progress:
                    progress(len(records), total, records[i])
            else:
                queue.append(i)
        queue.reverse()
        futures: dict[Future[Record], int] = {}
        while queue or futures:
            while queue and len(futures) < workers:
                i = queue.pop()
                if started:
                    started(entries[i].id)
                try:
                    futures[pool.submit(_run_in_worker, entries[i].source, entries[i].id,
                                        profile, seed)] = i
                except Exception as exc:  # noqa: BLE001 - a broken pool is an error verdict
                    failed(i, exc)
            if not futures:
                continue
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = futures.pop(fut)
                try:
                    records[i] = fut.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker is an error verdict
                    failed(i, exc)
                    continue
                if progress:
                    progress(len(records), total, records[i])
    return [records[i] for i in range(total)]
