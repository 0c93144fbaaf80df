"""A wall-clock limit for SymPy attempts that may not finish (main thread, POSIX signals)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class SymbolicTimeout(Exception):
    """SymPy did not finish within the time limit."""


@contextmanager
def time_limit(seconds: float) -> Any:
    """Abort the block after ``seconds`` (main thread only; elsewhere no limit applies)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise SymbolicTimeout

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(fn: Callable[[], T], seconds: float) -> T | None:
    """``fn()`` or None when SymPy times out or cannot finish in closed form."""
    try:
        with time_limit(seconds):
            return fn()
    except (SymbolicTimeout, ValueError, NotImplementedError, TypeError, RecursionError):
        return None
