"""Strict JSON text for everything the package writes: RFC 8259 has no ``NaN`` or
``Infinity``, which :func:`json.dumps` writes by default and strict readers (``jq``,
JavaScript's ``JSON.parse``, Go) reject.

**Encoding of non-finite numbers**: a float that is not finite is written as the JSON string
``"inf"``, ``"-inf"`` or ``"nan"`` (``float("inf")`` etc. read them back in Python). Finite
numbers, NumPy scalars and arrays are written as numbers and lists.

Imports nothing from the package, so every room may use it.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps"]

#: how each non-finite float is written (a string, since JSON has no such number)
NONFINITE = {math.inf: "inf", -math.inf: "-inf"}


def _float(value: float) -> float | str:
    if math.isnan(value):
        return "nan"
    return NONFINITE.get(value, value)


def encode(obj: Any) -> Any:
    """``obj`` with every float made JSON-safe (non-finite floats as strings, see the module
    docstring); NumPy scalars and arrays become Python numbers and lists, tuples lists."""
    import numpy as np

    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        return _float(obj)
    if isinstance(obj, np.ndarray):
        return encode(obj.tolist())
    if isinstance(obj, np.generic):
        return encode(obj.item())
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [encode(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(encode(obj), allow_nan=False, **kwargs)``: strict JSON (no ``NaN`` or
    ``Infinity``; non-finite floats as the strings ``"inf"``, ``"-inf"``, ``"nan"``)."""
    kwargs.pop("allow_nan", None)
    default = kwargs.get("default")
    if default is not None:
        # what ``default`` makes of an unknown object is encoded too (it may hold floats)
        kwargs["default"] = lambda o: encode(default(o))
    return json.dumps(encode(obj), allow_nan=False, **kwargs)
