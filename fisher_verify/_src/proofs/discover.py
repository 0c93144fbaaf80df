"""Find proof files and the statements they register.

A proof file is any ``*.py`` file (not starting with ``_``) under the given paths; each
module-level :class:`~fisher_verify._src.proofs.api.Statement` it defines is a statement. A file
that cannot be imported becomes a :class:`Broken` entry (an ``error`` verdict at run time)
named by the id it declares, so a syntax error never hides a statement from the gate.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import FisherVerifyError
from .api import Statement
from .state import DEFAULT_TIMEOUT, ImportStopped, guarded_import

_ID_PATTERN = re.compile(r"""statement\(\s*(?:id\s*=\s*)?["']([^"']+)["']""")


@dataclass(frozen=True)
class Broken:
    """A proof file that failed to import: its declared id, path and the error text.

    ``error`` is one line naming the file, the exception type and its message (what the
    gate's table shows); ``detail`` the traceback (what the JSON and JUnit outputs keep).
    """

    id: str
    source: str
    error: str
    detail: str = ""


def exception_line(exc: BaseException) -> str:
    """``Type: message`` on one line; a SyntaxError also names its line number."""
    if isinstance(exc, SyntaxError):
        where = f" (line {exc.lineno})" if exc.lineno else ""
        return f"{type(exc).__name__}: {exc.msg}{where}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


Entry = Statement | Broken


def proof_files(paths: Iterable[str | Path]) -> list[Path]:
    """The proof files under ``paths`` (files taken as given, folders searched recursively).

    Raises:
        FisherVerifyError: a path does not exist, or a given file is not a ``.py`` file.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FisherVerifyError(f"proof path {str(raw)!r} does not exist")
        if path.is_file():
            if path.suffix != ".py":
                raise FisherVerifyError(f"proof file {str(raw)!r} is not a .py file")
            files.append(path)
            continue
        files.extend(
            p for p in sorted(path.rglob("*.py"))
            if not p.name.startswith("_") and "__pycache__" not in p.parts
        )
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    return f"fisher_verify_proofs_user.{stem}_{digest}"


def load_file(path: Path, timeout: float | None = DEFAULT_TIMEOUT) -> list[Entry]:
    """Import one proof file and return its statements (or one :class:`Broken`).

    The import runs under :func:`~fisher_verify._src.proofs.state.guarded_import`: a file that calls
    ``sys.exit``/``os._exit``, raises ``KeyboardInterrupt``, or takes more than ``timeout``
    seconds at import is :class:`Broken` (its statement fails naming why), and whatever it
    changed in the process (working directory, environment, ``np.seterr`` …) is put back.
    """
    name = _module_name(path)
    try:
        with guarded_import(timeout, str(path)) as interrupted:
            try:
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            except KeyboardInterrupt:
                if interrupted:  # a real Ctrl-C: the user wants to stop
                    raise
                raise ImportStopped("raised KeyboardInterrupt while being imported") from None
    except BaseException as exc:  # noqa: BLE001 - a broken proof file must not stop the gate
        if isinstance(exc, KeyboardInterrupt):
            raise
        sys.modules.pop(name, None)
        text = path.read_text(encoding="utf-8", errors="replace")
        match = _ID_PATTERN.search(text)
        sid = match.group(1) if match else path.stem
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).strip()
        if isinstance(exc, ImportStopped):
            why = str(exc)
        elif isinstance(exc, SystemExit):
            code = exc.code if exc.code is not None else 0
            why = f"called sys.exit({code!r}) while being imported"
        else:
            why = exception_line(exc)
        return [Broken(sid, str(path), f"cannot import {path.name}: {why}", tb)]
    found: list[Entry] = []
    for value in vars(module).values():
        if isinstance(value, Statement) and not any(value is f for f in found):
            found.append(_with_source(value, str(path)))
    return found


def _with_source(st: Statement, source: str) -> Statement:
    return Statement(
        id=st.id, claim=st.claim, method=st.method, func=st.func, title=st.title,
        hypotheses=st.hypotheses, source=source,
    )


def discover(paths: Iterable[str | Path], timeout: float | None = DEFAULT_TIMEOUT) -> list[Entry]:
    """All statements under ``paths``, in file order (each file imported under
    :func:`load_file`'s guard, at most ``timeout`` seconds).

    Raises:
        FisherVerifyError: a missing path, or two files that define the same id.
    """
    entries: list[Entry] = []
    where: dict[str, str] = {}
    for path in proof_files(paths):
        for entry in load_file(path, timeout):
            if entry.id in where:
                raise FisherVerifyError(
                    f"statement id {entry.id!r} is defined twice: in {where[entry.id]} "
                    f"and in {entry.source}"
                )
            where[entry.id] = entry.source
            entries.append(entry)
    return entries


def select(entries: list[Entry], only: Iterable[str] | None) -> list[Entry]:
    """Keep the entries whose id is in ``only`` (all when ``only`` is empty).

    Raises:
        FisherVerifyError: an id in ``only`` that no proof file defines.
    """
    wanted = list(only or [])
    if not wanted:
        return entries
    known = {e.id for e in entries}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise FisherVerifyError(
            f"unknown statement id(s) {', '.join(unknown)}; known ids: "
            + ", ".join(e.id for e in entries)
        )
    return [e for e in entries if e.id in set(wanted)]
