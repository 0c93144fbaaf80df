"""Checks of the plain arguments the public API takes: a random source ``rng``, counts
(draws N, replicates, widths) and a torch model whose tensors hold data. One place, so every
function refuses the same bad values with the same message instead of a raw NumPy error or a
silent ``int(...)`` truncation.

Imports nothing from the package but :mod:`fisher_verify.errors`, so every room may use it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .errors import FisherVerifyError

__all__ = ["as_generator", "check_count", "check_materialized", "check_nonnegative"]

RngLike = np.random.Generator | int | None


def _shown(value: Any) -> str:
    text = repr(value)
    return (text if len(text) <= 60 else text[:57] + "...") + f" ({type(value).__name__})"


def as_generator(rng: Any, name: str = "rng") -> np.random.Generator:
    """The :class:`numpy.random.Generator` for ``rng``: a Generator itself, a seed (an
    integer ≥ 0), a :class:`numpy.random.SeedSequence` or :class:`~numpy.random.BitGenerator`,
    or ``None`` (fresh OS entropy).

    Raises:
        FisherVerifyError: anything else (a bool, a negative or fractional seed, a string,
            the legacy ``RandomState``), naming the value and what is valid.
    """
    if rng is None or isinstance(rng, np.random.Generator):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.SeedSequence | np.random.BitGenerator):
        return np.random.default_rng(rng)
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool | np.bool_) and int(rng) >= 0:
        return np.random.default_rng(int(rng))
    raise FisherVerifyError(
        f"{name} must be a seed (an integer >= 0), a numpy.random.Generator or None, "
        f"got {_shown(rng)}"
    )


def check_count(
    value: Any, name: str, minimum: int = 1, error: type[FisherVerifyError] = FisherVerifyError
) -> int:
    """``value`` as an ``int`` when it is a whole number ≥ ``minimum`` (a number of draws,
    replicates or units); an integer-valued float such as ``2.0`` is accepted, since nothing
    is changed by reading it as 2.

    Raises:
        FisherVerifyError: (or the subclass ``error``) a bool, a fraction, NaN/inf, a string or
            a number below ``minimum``, naming ``name`` and the value.
    """
    ok = not isinstance(value, bool | np.bool_) and isinstance(value, numbers.Real)
    if ok and not isinstance(value, numbers.Integral):
        ok = math.isfinite(float(value)) and float(value).is_integer()
    if not ok or int(value) < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {_shown(value)}")
    return int(value)


def check_nonnegative(value: Any, name: str) -> float:
    """``value`` as a float when it is a finite real number ≥ 0 (a scale, a standard deviation).

    Raises:
        FisherVerifyError: a bool, a negative number, NaN/inf or anything not a real number.
    """
    ok = not isinstance(value, bool | np.bool_) and isinstance(value, numbers.Real)
    if not ok or not math.isfinite(float(value)) or float(value) < 0:
        raise FisherVerifyError(f"{name} must be a finite number >= 0, got {_shown(value)}")
    return float(value)


def check_materialized(model: Any, name: str = "model") -> None:
    """Refuse a torch module with a parameter or buffer on the ``meta`` device (shapes only,
    no values: nothing about its Fisher information can be computed), naming the first one.

    Raises:
        FisherVerifyError: such a tensor, with how to give the module real values.
    """
    named = getattr(model, "named_parameters", None)
    if named is None:
        return
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for key, tensor in tensors:
        if getattr(tensor, "is_meta", False):
            raise FisherVerifyError(
                f"{name}: tensor {key!r} is on the meta device (a shape without values), so "
                "nothing can be computed from it; materialize the module first, e.g. "
                "model.to_empty(device='cpu') and load its weights, or build it on 'cpu'/'cuda'"
            )
