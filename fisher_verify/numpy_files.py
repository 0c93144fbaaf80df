"""Reading a user's ``.npy`` / ``.npz`` file: never unpickling (a pickle can run code), and
each failure named for what it is (missing, a folder, unreadable), not NumPy's guess.

Imports nothing from the package but :mod:`fisher_verify.errors`, so every room may use it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FisherVerifyError

__all__ = ["exact_float64", "load_numpy_file"]


def load_numpy_file(path: Any, label: str) -> np.ndarray | np.lib.npyio.NpzFile | None:
    """``np.load(path, allow_pickle=False)``: an array for an ``.npy`` file, an open archive for
    an ``.npz`` file, ``None`` when the file is neither (empty, damaged, text, or pickled
    objects); ``label`` names the file in refusals (e.g. ``"weights file 'W.npz'"``).

    Raises:
        FisherVerifyError: ``path`` is not a path, is missing, is a folder or cannot be read.
    """
    if not isinstance(path, str | os.PathLike):
        raise FisherVerifyError(f"{label}: a path must be a str or a Path, got {type(path).__name__}")
    target = Path(path)
    if target.is_dir():
        raise FisherVerifyError(f"{label} is a folder; give a file")
    if not target.exists():
        raise FisherVerifyError(f"{label} does not exist")
    try:
        return np.load(target, allow_pickle=False)
    except OSError as exc:
        raise FisherVerifyError(f"cannot read {label}: {exc.strerror or exc}") from None
    except (ValueError, EOFError, zipfile.BadZipFile):
        return None


def exact_float64(array: Any, label: str) -> np.ndarray:
    """``array`` (bool, integer or floating) as a float64 copy, refused when the conversion
    would change a value (integers beyond 2^53), so a user's numbers are never silently
    rounded; ``label`` names the array in the refusal.

    Raises:
        FisherVerifyError: an integer that float64 cannot hold exactly, naming its index.
    """
    raw = np.asarray(array)
    out = np.array(raw, dtype=np.float64)
    limit = 2**53  # every integer of magnitude up to 2^53 is a float64
    if raw.dtype.kind in "iu" and raw.size and (int(raw.max()) > limit or int(raw.min()) < -limit):
        # compare in exact integer arithmetic: out beyond the integer range casts back wrongly
        back = np.array([int(v) for v in out.ravel()], dtype=object).reshape(raw.shape)
        changed = back != raw.astype(object)
        if np.any(changed):
            index = tuple(int(i) for i in np.argwhere(changed)[0])
            raise FisherVerifyError(
                f"{label}: the integer {raw[index]} at {list(index)} has no exact float64 value "
                f"(it would become {float(out[index])!r}); give values below 2^53 or floats")
    return out
