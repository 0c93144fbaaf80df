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


#: Largest array (bytes, as its header claims) read from a user's file unless told otherwise.
DEFAULT_MAX_BYTES = 4 << 30


def _claimed(stream: Any) -> tuple[int, int] | None:
    """``(bytes the .npy header says the data holds, bytes of the header)`` read from the
    open ``stream`` at its start, or None when it is not a readable .npy header."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        reader = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(
            version)
        if reader is None:
            return None
        shape, _, dtype = reader(stream)
    except (ValueError, EOFError, OSError):
        return None
    if dtype.hasobject:
        return None  # never unpickled: np.load refuses it below
    count = 1
    for dim in shape:
        count *= int(dim)
    return count * dtype.itemsize, int(stream.tell())


def _refuse_claim(label: str, what: str, claimed: int, held: int, max_bytes: int) -> None:
    if claimed > held:
        raise FisherVerifyError(
            f"{label}{what}: its header claims {claimed} bytes of data but the file holds "
            f"{held}: the file is truncated or its header damaged; write it again with numpy.save")
    if claimed > max_bytes:
        raise FisherVerifyError(
            f"{label}{what}: its array holds {claimed / 2**30:.4g} GiB, above the limit of "
            f"{max_bytes / 2**30:.4g} GiB read into memory from one file (max_bytes); give a "
            "smaller array")


def _check_claims(target: Path, label: str, max_bytes: int) -> None:
    """Refuse, before anything is read into memory, an array whose header claims more data
    than its file holds (a damaged header claiming terabytes) or more than ``max_bytes``."""
    if zipfile.is_zipfile(target):
        with zipfile.ZipFile(target) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as member:
                    got = _claimed(member)
                if got is not None:
                    _refuse_claim(label, f" member {info.filename!r}", got[0],
                                  info.file_size - got[1], max_bytes)
        return
    with open(target, "rb") as f:
        got = _claimed(f)
    if got is not None:
        _refuse_claim(label, "", got[0], target.stat().st_size - got[1], max_bytes)


def load_numpy_file(path: Any, label: str,
                    max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray | np.lib.npyio.NpzFile | None:
    """``np.load(path, allow_pickle=False)``: an array for an ``.npy`` file, an open archive for
    an ``.npz`` file, ``None`` when the file is neither (empty, damaged, text, or pickled
    objects); ``label`` names the file in refusals (e.g. ``"weights file 'W.npz'"``).

    Raises:
        FisherVerifyError: ``path`` is not a path, is missing, is a folder or cannot be read;
            an array whose header claims more bytes than the file holds or than
            ``max_bytes`` (default 4 GiB), refused before it is read.
    """
    if not isinstance(path, str | os.PathLike):
        raise FisherVerifyError(f"{label}: a path must be a str or a Path, got {type(path).__name__}")
    target = Path(path)
    if target.is_dir():
        raise FisherVerifyError(f"{label} is a folder; give a file")
    if not target.exists():
        raise FisherVerifyError(f"{label} does not exist")
    try:
        _check_claims(target, label, max_bytes)
    except OSError as exc:
        raise FisherVerifyError(f"cannot read {label}: {exc.strerror or exc}") from None
    except (EOFError, zipfile.BadZipFile):
        return None
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
