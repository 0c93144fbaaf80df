"""Derive each family once: in memory per process, and on disk across processes.

The disk cache is keyed by the package version, the SymPy version and the family's name and
parameters, so a change to either re-derives. Set ``FISHER_VERIFY_CACHE=0`` to disable it or
to a folder to move it. A cache file that cannot be read is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import sympy as sp

from .derive import Derivation, derive

if TYPE_CHECKING:
    from ..families.definition import FamilyDefinition

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


def _cache_file(key: tuple[object, ...]) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    from .. import __version__

    digest = hashlib.sha256(
        repr((key, __version__, sp.__version__, _CACHE_FORMAT)).encode()
    ).hexdigest()
    return folder / f"{key[0]}-{digest[:16]}.pkl"


_MEMO: dict[tuple[object, ...], Derivation] = {}


def _load_or_derive(key: tuple[object, ...], definition: FamilyDefinition) -> Derivation:
    path = _cache_file(key)
    if path is not None and path.exists():
        try:
            with path.open("rb") as fh:
                cached = pickle.load(fh)
            if isinstance(cached, Derivation):
                return cached
        except Exception:  # noqa: BLE001 - a stale or broken cache is re-derived, not fatal
            pass
    result = derive(definition.log_partition, definition.h)
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


def cached_derivation(definition: FamilyDefinition) -> Derivation:
    """The derivation of ``definition``, computed at most once per process and per cache."""
    key = definition.key
    if key not in _MEMO:
        _MEMO[key] = _load_or_derive(key, definition)
    return _MEMO[key]
