"""Run statements in worker processes, so that no proof can end, hang or poison the run.

A proof is user code: it may call ``sys.exit(0)`` or ``os._exit(0)``, loop forever, change the
working directory, ``np.seterr``, the global random state, ``torch.set_default_dtype`` or the
environment. Statements therefore run in worker processes (forked from the engine, which has
already imported the proof files; where ``fork`` does not exist a worker imports the proof
file itself), one statement per task. A worker sends back each
:class:`~fisher_verify._src.proofs.run.Record`, then puts its process-wide state back
(:class:`~fisher_verify._src.proofs.state.GlobalState`) before the next statement. A ``SystemExit``,
``KeyboardInterrupt`` or other ``BaseException`` from a proof is an ``error`` record naming it;
a worker that ends without a record (``os._exit``, a crash) or passes the per-statement time
limit is killed with everything it started and replaced, and its statement gets an ``error``
record whose summary names what happened.

Why reused workers and not a fresh process per statement: a fresh process starts with cold
caches (each family's generated kernels, torch), which made the quick gate three times as
expensive in CPU time (37.7 s against 12.5 s); a reused worker keeps them, at the same CPU time
as running in-process. The per-statement seed keeps the outcome independent of the number of
workers and of the order.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from .api import Profile
from .discover import Broken, Entry, exception_line, load_file
from .state import GlobalState

_FORK = "fork" in mp.get_all_start_methods()


def cpu_count() -> int:
    """The CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def ended_reason(exitcode: int | None) -> str:
    """Why a child that sent no record is gone, from its exit code."""
    if exitcode is None:
        return "its process did not report"
    if exitcode >= 0:
        return (f"ended its process with exit code {exitcode} before reporting (os._exit, or "
                "a crash in native code; a proof must return a verdict)")
    name = _signal_name(-exitcode)
    hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
    return f"its process was killed by {name} before reporting{hint}"


def timeout_reason(limit: float) -> str:
    """The summary of a statement stopped at the time limit."""
    return f"exceeded the per-statement time limit of {limit:g} s (--timeout); stopped"


def raised_reason(exc: BaseException) -> str:
    """The summary of a proof that raised something a proof must not raise (SystemExit, …)."""
    if isinstance(exc, SystemExit):
        code = exc.code if exc.code is not None else 0
        return (f"ended its process with exit code {code} before reporting (sys.exit / "
                "SystemExit raised by the proof; a proof must return a verdict)")
    return f"raised {exception_line(exc)} (a proof must return a verdict)"


def _fresh_streams() -> None:
    """New ``sys.stdout``/``sys.stderr`` objects on stderr's descriptor: locks held by a thread of
    the parent at fork time are not inherited, and what a proof prints never reaches stdout,
    which belongs to the table (or to ``--json -``)."""
    try:
        os.dup2(2, 1)
    except OSError:
        pass
    for name in ("stdout", "stderr"):
        raw: io.RawIOBase
        try:
            raw = io.FileIO(2, "w", closefd=False)
        except OSError:  # no stderr at all: what the proof prints is dropped
            raw = io.FileIO(os.devnull, "w")
        setattr(sys, name, io.TextIOWrapper(raw, line_buffering=True,
                                            errors="backslashreplace"))


def _die_with_parent(engine: int) -> None:
    """On Linux, have the kernel kill this worker when the engine dies (a killed engine must not
    leave a worker looping in a statement, out of reach of Ctrl-C in its own process group)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != engine:  # the engine died before prctl took effect
        os._exit(1)


def _single_threaded_torch() -> None:
    """A forked child of a process whose torch already ran parallel work (a pytest session,
    a notebook) inherits GNU OpenMP's thread pool without its threads: the first parallel
    region then waits forever. One intra-op thread never enters the pool, so the worker is
    safe (statements are small; on a shared machine one thread is also the faster choice)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _worker(conn: Connection, entries: list[Entry] | None, profile: Profile, seed: int,
            run: Callable[..., Any], failed: Callable[..., Any], py_random: Any,
            engine: int) -> None:
    """A worker process: receive ``(index, source, id)``, run that statement, send its record,
    restore the process's global state, repeat until told to stop (``None``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle
    if _FORK:
        try:
            os.setpgid(0, 0)  # so that stopping the worker also stops what a proof started
        except OSError:
            pass
    _die_with_parent(engine)
    _fresh_streams()
    _single_threaded_torch()
    import random

    random.setstate(py_random)  # the engine's, which fork reseeds: every worker starts alike
    state = GlobalState()
    loaded: dict[str, list[Entry]] = {}
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            break
        if task is None:
            break
        index, source, sid = task
        if entries is not None:
            entry = entries[index]
        else:  # spawned: import the proof file here, once
            if source not in loaded:
                loaded[source] = load_file(Path(source))
            found = [e for e in loaded[source] if e.id == sid]
            entry = found[0] if found else Broken(sid, source,
                                                  f"statement {sid!r} vanished from {source}")
        start = time.perf_counter()
        try:
            record = run(entry, profile, seed)
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: a failure
            detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            record = failed(entry, profile, seed, raised_reason(exc),
                            time.perf_counter() - start, detail)
        try:
            state.restore()
            clean = True
        except BaseException:  # noqa: BLE001 - this worker is spoilt: report, then retire
            clean = False
        try:
            conn.send(record)
        except BaseException as exc:  # noqa: BLE001 - an unpicklable record is still a verdict
            conn.send(failed(entry, profile, seed,
                             f"its record could not be sent back: {exception_line(exc)}",
                             record.seconds, ""))
        if not clean:
            break
    conn.close()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)  # skip the atexit handlers and finalizers inherited from the engine


class _Worker:
    """The engine's handle on one worker process and the statement it is running."""

    def __init__(self, ctx: Any, entries: list[Entry], profile: Profile, seed: int,
                 run: Callable[..., Any], failed: Callable[..., Any]) -> None:
        for stream in (sys.stdout, sys.stderr):  # no buffered text is forked twice
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        import random

        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_worker, args=(child, entries if _FORK else None, profile, seed, run, failed,
                                  random.getstate(), os.getpid()),
            name="fisher-verify worker", daemon=True)
        try:
            self.process.start()
        finally:
            child.close()
        self.index: int | None = None
        self.start = 0.0
        self.eof = False  # the worker closed its end of the pipe
        self.spent = False  # the worker must not take another statement

    def assign(self, index: int, entry: Entry) -> None:
        self.conn.send((index, entry.source, entry.id))
        self.index = index
        self.start = time.perf_counter()

    def receive(self, fail: Callable[[str], Any]) -> Any:
        """The record waiting on the pipe, or None (``eof`` set) when none will come."""
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.eof = True
        except Exception as exc:  # noqa: BLE001 - a garbled record is the statement's failure
            self.spent = True
            return fail(f"sent back an unreadable record: {exception_line(exc)}")
        return None

    def collect(self, readable: bool, now: float, timeout: float,
                fail: Callable[[str], Any]) -> Any:
        """The record of the running statement when it has one or will never have one (the
        worker died, or the time limit passed: ``spent`` is then set); None while it runs."""
        if readable and not self.eof:
            record = self.receive(fail)
            if record is not None:
                return record
        if not self.process.is_alive():
            if not self.eof and self.conn.poll():  # sent, then ended, between two waits
                record = self.receive(fail)
                if record is not None:
                    return record
            self.spent = True
            self.process.join(timeout=1.0)
            return fail(ended_reason(self.process.exitcode))
        if now - self.start >= timeout:
            self.spent = True
            return fail(timeout_reason(timeout))
        return None

    def stop(self) -> None:
        """Kill the worker and everything it started."""
        if _FORK and self.process.pid is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()

    def retire(self) -> None:
        """Ask an idle worker to end; kill it if it does not."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=2.0)
        self.stop()


def run_isolated(
    entries: list[Entry],
    indices: list[int],
    profile: Profile,
    seed: int,
    workers: int,
    timeout: float,
    run: Callable[..., Any],
    failed: Callable[..., Any],
    done: Callable[[int, Any], None],
    started: Callable[[str], None] | None = None,
) -> None:
    """Run ``entries[i]`` for ``i`` in ``indices`` in at most ``workers`` worker processes;
    ``done(i, record)`` receives every record (those of dead or stopped workers too).

    ``run(entry, profile, seed)`` makes the record in the worker; ``failed(entry, profile, seed,
    summary, seconds, detail)`` makes the ``error`` record of a statement that did not report.
    A worker whose statement passed ``timeout`` seconds is killed; a dead one is replaced.
    """
    ctx = mp.get_context("fork" if _FORK else "spawn")
    queue = list(reversed(indices))
    pool: list[_Worker] = []
    try:
        while queue or any(w.index is not None for w in pool):
            for w in [w for w in pool if w.index is None and not w.process.is_alive()]:
                w.stop()  # ended between statements (a thread a proof left behind)
                pool.remove(w)
            while queue and (len(pool) < workers or any(w.index is None for w in pool)):
                idle = next((w for w in pool if w.index is None), None)
                i = queue.pop()
                if idle is None:
                    try:
                        idle = _Worker(ctx, entries, profile, seed, run, failed)
                    except Exception as exc:  # noqa: BLE001 - no process, no verdict: an error
                        done(i, failed(entries[i], profile, seed,
                                       f"could not start a worker process: "
                                       f"{exception_line(exc)}", 0.0, ""))
                        continue
                    pool.append(idle)
                if started:
                    started(entries[i].id)
                try:
                    idle.assign(i, entries[i])
                except OSError:
                    idle.index = i  # its pipe is gone: collected below as an ended process
            busy = [w for w in pool if w.index is not None]
            if not busy:
                continue
            now = time.perf_counter()
            wait_for = max(0.0, min(w.start + timeout for w in busy) - now)
            handles: list[Any] = [w.conn for w in busy if not w.eof]
            handles += [w.process.sentinel for w in busy]
            ready = set(wait(handles, timeout=wait_for))
            now = time.perf_counter()
            for w in busy:
                index = w.index
                assert index is not None
                seconds = now - w.start

                def fail(summary: str, i: int = index, seconds: float = seconds) -> Any:
                    return failed(entries[i], profile, seed, summary, seconds, "")

                record = w.collect(w.conn in ready, now, timeout, fail)
                if record is None:
                    continue
                w.index = None
                if w.spent or w.eof or not w.process.is_alive():
                    w.stop()
                    pool.remove(w)
                done(index, record)
    finally:
        for w in pool:
            if w.index is None:
                w.retire()
            else:  # interrupted: leave no child behind
                w.stop()
