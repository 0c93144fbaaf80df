"""Checks of the plain arguments the public API takes: a random source ``rng``, counts
(draws N, replicates, widths), probabilities (a target, a confidence, a level), flags, choices,
callables, instances, the arrays a user's code hands back and a torch model whose tensors hold
data. One place, so every function refuses the same bad values with the same message instead of
a raw NumPy error, a ``TypeError`` from a comparison or a silent ``int(...)``/``bool(...)``
conversion.

Imports nothing from the package but :mod:`fisher_verify.errors`, so every room may use it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal

import numpy as np

from .errors import FisherVerifyError, ShapeError

__all__ = [
    "as_generator",
    "as_real_array",
    "check_budget",
    "check_callable",
    "check_choice",
    "check_count",
    "check_flag",
    "check_fraction",
    "check_instance",
    "check_materialized",
    "check_nonnegative",
    "check_which",
]

RngLike = np.random.Generator | int | None

#: Bytes a computation may hold at once unless the caller gives a memory budget (1 GiB).
DEFAULT_MEMORY_BUDGET = 1 << 30


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


def check_nonnegative(value: Any, name: str, strict: bool = False) -> float:
    """``value`` as a float when it is a finite real number ≥ 0 (a scale, a standard deviation),
    or > 0 when ``strict`` (a margin that must keep a point off a boundary).

    Raises:
        FisherVerifyError: a bool, a negative (or, when ``strict``, zero) number, NaN/inf or
            anything not a real number.
    """
    ok = not isinstance(value, bool | np.bool_) and isinstance(value, numbers.Real)
    if not ok or not math.isfinite(float(value)) or float(value) < 0 or (
            strict and float(value) == 0):
        raise FisherVerifyError(
            f"{name} must be a finite number {'>' if strict else '>='} 0, got {_shown(value)}")
    return float(value)


def _is_real(value: Any) -> bool:
    return not isinstance(value, bool | np.bool_) and isinstance(value, numbers.Real)


def check_fraction(value: Any, name: str) -> float:
    """``value`` as a float when it is a real number strictly between 0 and 1 (a target
    relative accuracy, a confidence, a false-alarm rate, lemma-12's ε).

    Raises:
        FisherVerifyError: a bool, a string, NaN/inf or a number outside (0, 1), naming
            ``name`` and the value.
    """
    if not _is_real(value) or not 0.0 < float(value) < 1.0:
        raise FisherVerifyError(
            f"{name} must lie strictly between 0 and 1, got {_shown(value)}"
        )
    return float(value)


def check_flag(value: Any, name: str, allow_none: bool = False) -> bool | None:
    """``value`` when it is ``True`` or ``False`` (or ``None`` when ``allow_none``, meaning
    "decide for me"): a string such as ``"no"`` is truthy, so reading it as a flag would turn
    the user's "no" into yes.

    Raises:
        FisherVerifyError: anything else, naming ``name`` and the value.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, bool | np.bool_):
        valid = "True, False or None" if allow_none else "True or False"
        raise FisherVerifyError(f"{name} must be {valid}, got {_shown(value)}")
    return bool(value)


def check_choice(value: Any, name: str, choices: tuple[Any, ...]) -> Any:
    """``value`` when it is one of ``choices``, compared with its type so that ``True`` is not
    taken for ``1`` (nor ``1`` for ``True``); an integer-valued float counts as the integer.

    Raises:
        FisherVerifyError: anything else, naming ``name``, the value and the choices.
    """
    for choice in choices:
        same_kind = isinstance(value, bool | np.bool_) == isinstance(choice, bool)
        if isinstance(choice, str):
            same_kind = isinstance(value, str)
        elif isinstance(choice, numbers.Number):
            same_kind = same_kind and isinstance(value, numbers.Number)
        if same_kind and value == choice:
            return choice
    listed = ", ".join(repr(c) for c in choices)
    raise FisherVerifyError(f"{name} must be one of {listed}, got {_shown(value)}")


def check_callable(value: Any, name: str, signature: str) -> Any:
    """``value`` when it can be called; ``signature`` says how it will be (for the message).

    Raises:
        FisherVerifyError: anything not callable, naming ``name``.
    """
    if not callable(value):
        raise FisherVerifyError(f"{name} must be a callable {signature}, got {_shown(value)}")
    return value


def check_instance(value: Any, kind: type | tuple[type, ...], name: str, valid: str) -> Any:
    """``value`` when it is an instance of ``kind``; ``valid`` says in words what is expected.

    Raises:
        FisherVerifyError: anything else, naming ``name``, what is valid and the value's type.
    """
    if not isinstance(value, kind):
        raise FisherVerifyError(f"{name} must be {valid}, got {_shown(value)}")
    return value


def as_real_array(value: Any, name: str) -> np.ndarray:
    """``value`` (an array, a tensor on any device, a nested list, a number) as a float64
    NumPy array, without changing a value: real numbers (bool and integer entries are exact
    in float64) only.

    Raises:
        FisherVerifyError: strings, objects, ``None``, complex numbers, a tensor without data
            (the ``meta`` device) or a ragged list, naming ``name`` and what was given.
    """
    if hasattr(value, "detach") and hasattr(value, "device"):  # a torch tensor
        if getattr(value.device, "type", None) == "meta":
            raise FisherVerifyError(
                f"{name} is a tensor on the meta device, which holds no values; give a tensor on "
                "a device with data (cpu, cuda, ...)"
            )
        if getattr(value, "is_complex", lambda: False)():
            raise FisherVerifyError(
                f"{name} must hold real numbers, got a tensor of dtype {value.dtype}"
            )
        value = value.detach().cpu()
        if value.dtype.is_floating_point:
            value = value.double()
        value = value.numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise FisherVerifyError(f"{name} must be an array of real numbers: {exc}") from None
    if arr.dtype.kind not in "biuf":
        what = f"{type(value).__name__}" if arr.dtype.kind == "O" else f"dtype {arr.dtype}"
        raise FisherVerifyError(
            f"{name} must be an array of real numbers (bool, int or float), got {what}"
            + (f": {_shown(value)}" if arr.ndim == 0 else "")
        )
    return arr.astype(np.float64)
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


def check_budget(memory_budget: Any, name: str = "memory_budget") -> int:
    """The memory budget in bytes (:data:`DEFAULT_MEMORY_BUDGET` for None), refused unless a
    whole number >= 1 MiB; ``name`` is the argument's name in the message (the models room
    calls it ``memory``)."""
    if memory_budget is None:
        return DEFAULT_MEMORY_BUDGET
    try:
        return check_count(memory_budget, name, minimum=1 << 20, error=ShapeError)
    except ShapeError:
        raise ShapeError(f"{name} must be a number of bytes >= 2**20 (1 MiB), got "
                         f"{memory_budget!r}") from None
Which = Literal["I1", "I2"]

#: ``which`` -> the paper's estimator number (thm-4: 1, thm-6: 2)
WHICH: dict[str, Literal[1, 2]] = {"I1": 1, "I2": 2}


def check_which(which: Any, name: str = "which") -> Literal[1, 2]:
    """The estimator number of ``which`` (``"I1"`` -> 1, ``"I2"`` -> 2); anything else is refused.

    Raises:
        ShapeError: ``which`` is not ``"I1"`` or ``"I2"`` (the message names both).
    """
    if isinstance(which, str) and which in WHICH:
        return WHICH[which]
    hint = (f" (the estimator is named, not numbered: which='I{which}')"
            if which in (1, 2) and not isinstance(which, bool) else "")
    raise ShapeError(f"{name} must be 'I1' (score outer products, thm-4) or 'I2' (negative "
                     f"Hessians, thm-6), got {which!r}{hint}")
