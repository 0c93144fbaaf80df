"""Derive each family once: in memory per process, and on disk across processes.

The disk cache is keyed by the package version, the SymPy version, a hash of the source of
``symbolic/``, ``families/`` and ``identities/``, and the family's name and parameters, so a change to any of
them re-derives. Set ``FISHER_VERIFY_CACHE=0`` to disable it or
to a folder to move it. A cache file that cannot be read is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import sympy as sp

_CACHE_FORMAT = 1


def cache_dir() -> Path | None:
    """The on-disk cache folder, or None when disabled."""
    setting = os.environ.get("FISHER_VERIFY_CACHE")
    if setting == "0":
        return None
    if setting:
        return Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fisher-verify"


@lru_cache(maxsize=1)
def _source_fingerprint() -> str:
    """Hash of the code that derives and proves, so an edited derivation never reads a stale cache."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for folder in ("symbolic", "families", "identities"):
        for path in sorted((root / folder).glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _cache_file(key: tuple[object, ...]) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    from ... import __version__

    digest = hashlib.sha256(
        repr((key, __version__, sp.__version__, _CACHE_FORMAT, _source_fingerprint())).encode()
    ).hexdigest()
    return folder / f"{key[0]}-{digest[:16]}.pkl"


T = TypeVar("T")


def disk_cached(key: tuple[object, ...], compute: Callable[[], T], kind: type) -> T:
    """``compute()``, stored on disk under ``key``; a cached value of another type, or one that
    cannot be read, is recomputed and rewritten (the cache is never trusted over the code)."""
    path = _cache_file(key)
    if path is not None and path.exists():
        try:
            with path.open("rb") as fh:
                cached = pickle.load(fh)
            if isinstance(cached, kind):
                return cached  # type: ignore[return-value]
        except Exception:  # noqa: BLE001 - a stale or broken cache is recomputed, not fatal
            pass
    result = compute()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as fh:
                pickle.dump(result, fh)
            tmp.replace(path)
        except OSError:
            pass
    return result
