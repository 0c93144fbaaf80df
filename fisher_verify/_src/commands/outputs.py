"""Output files of ``check`` (``--json``, ``--junit``) and the folder of ``report --out``:
resolved, checked and opened before any statement runs.

A path is made absolute first, so nothing a proof does (``os.chdir``) can move it. ``-`` means
standard output. An existing file is replaced only when it is this tool's own earlier output
(recognised by its first bytes: the JSON's ``"tool": "fisher-verify …"`` key, the JUnit suite
named ``fisher-verify``) or is empty, unless ``--force`` is given: ``--junit README.md`` must not
destroy a README. The file is written in the end through a temporary file in the same folder,
created (and given room on the disk) at once, so a read-only folder, a missing folder or a full
disk is exit 2 naming the file before the run, not after it, and an interrupted run leaves the
old file as it was.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..errors import FisherVerifyError

#: the first bytes of a JSON document this tool wrote (``check --json``, ``certificate.json``)
_JSON_MARK = re.compile(rb'^\s*\{\s*"tool"\s*:\s*"fisher-verify[ "]')
#: the first bytes of a JUnit file this tool wrote
_JUNIT_MARK = re.compile(rb'^<\?xml[^>]*\?>\s*<testsuites>\s*<testsuite name="fisher-verify"')
_MARKS = {"json": _JSON_MARK, "junit": _JUNIT_MARK}
_WHAT = {"json": "a fisher-verify JSON document", "junit": "a fisher-verify JUnit file"}

#: room claimed on the disk when the file is opened (a quick run's JSON is about 0.4 MB)
RESERVE_BYTES = {"json": 4 << 20, "junit": 1 << 20}

#: ``--force`` help, shared by ``check`` and ``report``
FORCE_HELP = ("replace output files that exist and were not written by fisher-verify (by default "
              "such a file is refused, so that e.g. --junit README.md cannot destroy it)")


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


def is_own_output(path: Path, kind: str) -> bool:
    """True when ``path`` is empty or starts like the ``kind`` (``json``, ``junit``) output of
    this tool."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return not head.strip() or bool(_MARKS[kind].match(head))


def _refuse_foreign(flag: str, given: str, path: Path, kind: str, force: bool) -> None:
    if force or not path.is_file() or is_own_output(path, kind):
        return
    raise FisherVerifyError(
        f"{flag} {given!r}: {path} exists and is not {_WHAT[kind]}; refusing to overwrite it "
        "(pass --force to replace it, or give another file name)")


def _reserve(fd: int, size: int) -> None:
    """Claim ``size`` bytes for the file now, so that a full disk is found before the run."""
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is None:
        return
    try:
        allocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        # EINVAL / EOPNOTSUPP: the file system cannot reserve; the write itself will tell


class OutputFile:
    """One output file (``--json FILE``, ``--junit FILE``; ``-`` is standard output)."""

    def __init__(self, flag: str, given: str, kind: str, force: bool = False) -> None:
        """Check ``given`` and open its temporary file now.

        Raises:
            FisherVerifyError: an empty name, a folder, a missing folder, a file that is not
                this tool's output (without ``force``), or a folder or disk that cannot take it;
                the message names the option and the file.
        """
        self.flag, self.given, self.kind = flag, given, kind
        self.path: Path | None = None
        self._tmp: Path | None = None
        self._fd: int | None = None
        self._direct = False
        if given == "-":
            return
        if not given.strip():
            raise FisherVerifyError(f"{flag} is an empty file name; give a file name, or - for "
                                    "standard output")
        path = Path(os.path.abspath(given))
        if path.is_symlink() or path.exists():
            path = path.resolve()
        self.path = path
        if path.is_dir():
            raise FisherVerifyError(f"{flag} {given!r} is a folder; give a file name")
        if not path.parent.is_dir():
            raise FisherVerifyError(
                f"cannot write {flag} {given!r}: its folder does not exist ({path.parent})")
        _refuse_foreign(flag, given, path, kind, force)
        if path.exists() and not path.is_file():
            # a device or a pipe (/dev/stdout, a FIFO): written in place, never replaced
            if not os.access(path, os.W_OK):
                raise FisherVerifyError(f"cannot write {flag} {given!r}: permission denied")
            self._direct = True
            return
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise FisherVerifyError(
                f"cannot write {flag} {given!r} in {path.parent}: {_strerror(exc)}") from None
        self._fd, self._tmp = fd, Path(tmp)
        try:
            _reserve(fd, RESERVE_BYTES.get(kind, 1 << 20))
        except OSError as exc:
            self.discard()
            raise FisherVerifyError(
                f"cannot write {flag} {given!r}: {_strerror(exc)} in {path.parent}") from None

    @property
    def stdout(self) -> bool:
        """True for ``-``."""
        return self.path is None

    def commit(self, text: str) -> None:
        """Write ``text`` and put the file in place.

        Raises:
            FisherVerifyError: the write failed (the message names the option and the file).
        """
        if self.path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        data = text.encode("utf-8")
        try:
            if self._direct:
                with self.path.open("wb") as fh:
                    fh.write(data)
                return
            assert self._fd is not None and self._tmp is not None
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                mode = (self.path.stat().st_mode & 0o7777 if self.path.exists()
                        else 0o666 & ~_umask())
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            os.replace(self._tmp, self.path)
            self._tmp = None
        except OSError as exc:
            self.discard()
            raise FisherVerifyError(
                f"cannot write {self.flag} {self.given!r} ({self.path}): {_strerror(exc)}"
            ) from None

    def discard(self) -> None:
        """Remove the temporary file (the run did not finish); the old file stays as it was."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        if self._tmp is not None:
            try:
                self._tmp.unlink()
            except OSError:
                pass
            self._tmp = None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def open_outputs(specs: Iterable[tuple[str, str | None, str]], force: bool,
                 inputs: Iterable[str] = ()) -> dict[str, OutputFile]:
    """The output files of ``specs`` (``(flag, value, kind)``, value None when not given),
    checked and opened; refuses two that name the same file (or both standard output) and one
    that is an input (a proof file given, or a ``.py`` file inside a folder given).

    Raises:
        FisherVerifyError: see :class:`OutputFile`; nothing is left open on refusal.
    """
    sources = [Path(p).resolve() for p in inputs]
    opened: dict[str, OutputFile] = {}
    seen: dict[object, str] = {}
    try:
        for flag, given, kind in specs:
            if given is None:
                continue
            key: object = "-" if given == "-" else Path(os.path.abspath(given)).resolve()
            if isinstance(key, Path) and given.strip() and (key in sources or (
                    key.suffix == ".py" and any(s in key.parents for s in sources))):
                raise FisherVerifyError(
                    f"{flag} {given!r} is one of the input files; writing it would destroy it")
            if key in seen:
                what = "standard output" if key == "-" else repr(given)
                raise FisherVerifyError(
                    f"{seen[key]} and {flag} both name {what}; the second would overwrite the "
                    "first, give each its own file")
            seen[key] = flag
            opened[flag] = OutputFile(flag, given, kind, force)
    except BaseException:
        for out in opened.values():
            out.discard()
        raise
    return opened


#: the files ``report`` writes into ``--out`` (a test keeps this list equal to what it writes)
REPORT_FILES = ("report.md", "report.html", "certificate.json", "tightness.json", "fig1.png",
                "fig1_extended.png", "tightness.png", "d24_tradeoff.png")


def prepare_report_dir(given: str, force: bool, reserve: int = 8 << 20) -> Path:
    """``report --out``: an absolute folder, created now, writable and with room, whose files of
    :data:`REPORT_FILES` are those of an earlier report (its ``certificate.json`` carries this
    tool's mark) unless ``force``.

    Raises:
        FisherVerifyError: an empty name, a file, a folder that cannot be created or written,
            a full disk, or files of someone else's in the way; the message names the path.
    """
    if not given.strip():
        raise FisherVerifyError("--out is an empty folder name; give a folder (default: report)")
    target = Path(os.path.abspath(given))
    if target.exists() and not target.is_dir():
        raise FisherVerifyError(f"--out {given!r} is a file; give a folder")
    if target.is_dir() and not force:
        present = [n for n in REPORT_FILES if (target / n).exists()]
        ours = is_own_output(target / "certificate.json", "json") and (
            target / "certificate.json").is_file()
        if present and not ours:
            raise FisherVerifyError(
                f"--out {given!r} holds {', '.join(present)}, not written by fisher-verify report "
                "(no certificate.json of ours); refusing to overwrite them (pass --force, or give "
                "another folder)")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FisherVerifyError(
            f"cannot create output folder {given!r} ({target}): {_strerror(exc)}") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fisher-verify.", suffix=".tmp", dir=target)
    except OSError as exc:
        raise FisherVerifyError(
            f"cannot write into output folder {given!r} ({target}): {_strerror(exc)}") from None
    try:
        _reserve(fd, reserve)
    except OSError as exc:
        raise FisherVerifyError(
            f"cannot write into output folder {given!r} ({target}): {_strerror(exc)}") from None
    finally:
        os.close(fd)
        os.unlink(tmp)
    return target
