"""The process-wide state a proof can change, captured and put back; the time limit; and the
guard under which proof files are imported (:func:`guarded_import`).

Used by the worker processes (:mod:`.isolate`) between statements, and by discovery around each
proof file's import, which runs in the engine's own process: a file that calls ``os._exit`` or
``sys.exit``, loops, or changes the working directory at import is a broken file, not the end
of the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: seconds a statement may run before it is stopped (``check --timeout``), and a proof file may
#: take to import, per profile. Measured: the slowest quick statement (cov-n) takes 5.5 s alone
#: and 12 s on two cores shared with 7 other jobs; the slowest thorough one (thm-3) took 521 s
#: there. Each default is over 3x the slowest under that load.
DEFAULT_TIMEOUTS: dict[str, float] = {"quick": 300.0, "thorough": 1800.0}
#: the larger of the two (discovery, and callers that name no profile)
DEFAULT_TIMEOUT = max(DEFAULT_TIMEOUTS.values())


#: torch's own seed of its default generator at import (``torch.initial_seed()`` in a fresh
#: process): the state a statement sees when torch was first imported by an earlier one
_TORCH_IMPORT_SEED = 67280421310721


class GlobalState:
    """What a proof may change in its process and the next statement must not inherit:
    working directory, environment, umask, ``sys.path``, std streams, recursion limit, warning
    filters, NumPy's error handling and global random state, Python's ``random``, mpmath's
    precision, and torch's default dtype, grad mode, thread count and global generator."""

    def __init__(self) -> None:
        import random
        import warnings

        import numpy as np

        self.cwd = os.getcwd()
        self.environ = dict(os.environ)
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.sys_path = list(sys.path)
        self.streams = (sys.stdout, sys.stderr, sys.stdin)
        self.recursion = sys.getrecursionlimit()
        self.warnings = list(warnings.filters)
        self.np_err = np.geterr()
        self.np_errcall = np.geterrcall()
        self.np_random = np.random.get_state()
        self.py_random = random.getstate()
        self.mp_prec = self._mpmath().mp.prec if "mpmath" in sys.modules else None
        self.torch: tuple[Any, ...] | None = None
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            self.torch = (torch.get_default_dtype(), torch.is_grad_enabled(),
                          torch.get_num_threads(), torch.get_rng_state())

    @staticmethod
    def _mpmath() -> Any:
        import mpmath

        return mpmath

    def restore(self) -> None:
        """Put everything listed in the class docstring back as it was captured."""
        import random
        import warnings

        import numpy as np

        os.chdir(self.cwd)
        if dict(os.environ) != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)
        os.umask(self.umask)
        sys.path[:] = self.sys_path
        sys.stdout, sys.stderr, sys.stdin = self.streams
        sys.setrecursionlimit(self.recursion)
        warnings.filters[:] = self.warnings  # type: ignore[index]
        getattr(warnings, "_filters_mutated", lambda: None)()
        np.seterr(**self.np_err)
        np.seterrcall(self.np_errcall)
        np.random.set_state(self.np_random)
        random.setstate(self.py_random)
        if "mpmath" in sys.modules:
            mp = self._mpmath().mp
            if self.mp_prec is None:
                mp.dps = 15
            else:
                mp.prec = self.mp_prec
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            if self.torch is None:  # first imported by a statement: torch's own defaults
                self.torch = (torch.float32, True, torch.get_num_threads(), None)
            dtype, grad, threads, rng = self.torch
            torch.set_default_dtype(dtype)
            torch.set_grad_enabled(grad)
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            if rng is None:
                torch.manual_seed(_TORCH_IMPORT_SEED)
            else:
                torch.set_rng_state(rng)


class ImportStopped(BaseException):
    """A proof file did something at import that would end or stall the engine."""


@contextlib.contextmanager
def guarded_import(limit: float | None, source: str) -> Iterator[list[bool]]:
    """Import the file ``source`` in this process without letting it end or stall it:
    ``os._exit`` raises :class:`ImportStopped` instead, more than ``limit`` seconds raises it
    too (on the main thread of a POSIX process), and the global state is put back afterwards.
    The list yielded becomes ``[True]`` when a real Ctrl-C arrived (as opposed to a file that
    raises ``KeyboardInterrupt`` itself).

    The time limit stops the file's own code only, never a library import it started (torch
    under load can take longer than a short limit, and a module interrupted half-imported
    breaks every later use of it, even into a segmentation fault): while such an import runs,
    the check is repeated every quarter second."""
    target = os.path.abspath(source)
    state = GlobalState()
    interrupted: list[bool] = []
    real_exit = os._exit

    def refuse_exit(code: int) -> None:
        raise ImportStopped(f"called os._exit({code}) while being imported")

    main = threading.current_thread() is threading.main_thread()
    timed = main and limit is not None and hasattr(signal, "setitimer")
    old_int = old_alarm = None
    if main:
        def on_int(signum: int, frame: Any) -> None:
            interrupted.append(True)
            raise KeyboardInterrupt

        old_int = signal.signal(signal.SIGINT, on_int)
    if timed:
        def on_alarm(signum: int, frame: Any) -> None:
            f = frame
            while f is not None:
                name = f.f_code.co_filename
                if name == target or (not name.startswith("<")
                                       and os.path.abspath(name) == target):
                    raise ImportStopped(f"took longer than {limit:g} s to import (--timeout)")
                if name.startswith("<frozen importlib"):
                    break  # a nested import is running: never cut it in half
                f = f.f_back
            signal.setitimer(signal.ITIMER_REAL, 0.25)

        old_alarm = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, float(limit))  # type: ignore[arg-type]
    os._exit = refuse_exit  # type: ignore[assignment]
    try:
        yield interrupted
    finally:
        os._exit = real_exit
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_alarm)
        if main:
            signal.signal(signal.SIGINT, old_int)
        state.restore()
