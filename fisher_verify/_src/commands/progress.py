"""What the CLI shows on stderr while statements run (``check``, ``report``).

On a terminal: one live line, redrawn in place (``\\r``) twice a second, with a bar, the count
of finished statements and what is running now with its elapsed time (all statements in
flight under ``-j N``). Elsewhere (CI logs, pipes): plain lines, ``running <id>`` when a
statement starts and ``[done/total] <id> <verdict>`` when it ends. Only stderr is written, so
stdout tables, ``--json`` and ``--junit`` files are unaffected.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, TextIO

_BAR_WIDTH = 24
_REDRAW_SECONDS = 0.5


def _bar(done: int, total: int, width: int = _BAR_WIDTH) -> str:
    """``[#####-----]`` with ``done/total`` of the width filled."""
    filled = width if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


class ProgressDisplay:
    """Progress of a run of statements on ``stream`` (stderr).

    Hook it into :func:`fisher_verify._src.proofs.run_all` as ``started=display.started`` and
    ``progress=display.finished``; call :meth:`stage` for work after the statements (the
    report's figures), and :meth:`close` at the end (it erases the live line on a terminal).
    """

    def __init__(self, stream: TextIO, total: int = 0, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)()) if tty is None else tty
        self.total = total
        self.done = 0
        self.running: dict[str, float] = {}  # id → start time, in start order
        self.current_stage = ""
        self.stage_start = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._drawn = False

    # --- hooks ------------------------------------------------------------------------------

    def started(self, sid: str) -> None:
        """A statement began (called by ``run_all`` before it runs, or when it is sent to a
        worker)."""
        with self._lock:
            self.running[sid] = time.perf_counter()
            if self.tty:
                self._draw()
            else:
                more = (f" (in flight: {', '.join(self.running)})"
                        if len(self.running) > 1 else "")
                self._line(f"running {sid}{more}")
        self._ensure_ticker()

    def finished(self, done: int, total: int, record: Any) -> None:
        """A statement ended with ``record`` (``run_all``'s ``progress`` callback)."""
        with self._lock:
            start = self.running.pop(record.id, None)
            self.done, self.total = done, total
            took = f" ({_seconds(time.perf_counter() - start)})" if start is not None else ""
            if self.tty:
                if not record.holds:  # a failure stays visible above the live line
                    self._erase()
                    self.stream.write(f"{record.id}: {record.verdict}{took}\n")
                self._draw()
            else:
                self._line(f"[{done}/{total}] {record.id} {record.verdict}{took}")

    def stage(self, text: str) -> None:
        """Work that is not a statement has begun (e.g. ``tightness sweep (200 networks)``)."""
        with self._lock:
            self.running.clear()
            self.current_stage = text
            self.stage_start = time.perf_counter()
            if self.tty:
                self._draw()
            else:
                self._line(text)
        self._ensure_ticker()

    def close(self) -> None:
        """Stop redrawing and erase the live line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2 * _REDRAW_SECONDS)
        with self._lock:
            self._erase()
            self.stream.flush()

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- drawing ----------------------------------------------------------------------------

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def _erase(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = False

    def _status(self) -> str:
        now = time.perf_counter()
        if self.running:
            items = [f"{sid} {_seconds(now - t)}" for sid, t in self.running.items()]
            return "running " + ", ".join(items)
        if self.current_stage:
            return f"{self.current_stage} {_seconds(now - self.stage_start)}"
        return ""

    def _columns(self) -> int:
        """The terminal's width: a longer line would wrap, and ``\r`` only rewinds its last
        row."""
        try:
            cols = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            cols = 0
        return cols if cols > 20 else 100

    def _draw(self) -> None:
        text = f"{_bar(self.done, self.total)} {self.done}/{self.total} {self._status()}"
        self.stream.write("\r\033[K" + text[:self._columns() - 1])
        self.stream.flush()
        self._drawn = True

    def _ensure_ticker(self) -> None:
        # Only a terminal gets redrawn: the elapsed time then moves while thm-4 runs a minute
        if not self.tty or self._ticker is not None:
            return
        self._ticker = threading.Thread(target=self._tick, name="fisher-verify-progress",
                                        daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(_REDRAW_SECONDS):
            with self._lock:
                if self.running or self.current_stage:
                    self._draw()


class StageProgress:
    """``progress(stage, done, total)`` for long library calls (``analyze``): nothing for the
    first :data:`QUIET_SECONDS`, then at most one update per :data:`QUIET_SECONDS` on
    ``stream`` (stderr), redrawn in place on a terminal, plain lines elsewhere, with the
    elapsed time and, from the rate so far, the time left of the stage."""

    QUIET_SECONDS = 2.0

    def __init__(self, stream: TextIO, label: str, tty: bool | None = None) -> None:
        self.stream = stream
        self.label = label
        self.tty = bool(getattr(stream, "isatty", lambda: False)()) if tty is None else tty
        self.start = time.perf_counter()
        self.last = self.start
        self.stage = ""
        self.stage_start = self.start
        self._drawn = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if stage != self.stage:
            self.stage, self.stage_start = stage, now
        if now - self.start < self.QUIET_SECONDS or now - self.last < self.QUIET_SECONDS:
            return
        self.last = now
        left = ""
        if 0 < done < total:
            left = f", about {_seconds((now - self.stage_start) * (total - done) / done)} left"
        text = (f"{self.label}: {stage} {_bar(done, total)} {done}/{total} "
                f"({_seconds(now - self.start)} elapsed{left})")
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Erase the live line on a terminal."""
        if self.tty and self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False
