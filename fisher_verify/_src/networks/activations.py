"""Activation functions of the Eq. 3 network, with σ, σ', σ'' in NumPy, torch and mpmath.

Every activation is written once per backend in its exact form (GELU with erf, softplus as
``log(1 + eʸ)`` without torch's linear threshold), so the analytic route (lemma-13) and the
autodiff route (torch.func) differentiate the same function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

from ..errors import FisherVerifyError

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class Activation:
    """An elementwise activation σ with its first two derivatives.

    ``is_c2`` is False for ReLU: thm-3 needs σ ∈ C²(ℝ) (remark-3.1). At ReLU's kink the
    derivative convention is σ'(0) = 0, which is torch's (the subgradient autograd uses).
    ``kinks`` lists the points where σ is not smooth; away from them σ is a polynomial
    piece (σ'' = 0 for ReLU), so thm-3 holds at inputs whose pre-activations avoid them
    (thm-3-ae).
    """

    name: str
    is_c2: bool
    np_f: Callable[[np.ndarray], np.ndarray]
    np_d1: Callable[[np.ndarray], np.ndarray]
    np_d2: Callable[[np.ndarray], np.ndarray]
    torch_f: Callable[[Any], Any]
    mp_f: Callable[[Any], Any]
    kinks: tuple[float, ...] = ()


_erf_vec = np.vectorize(math.erf, otypes=[float])


def _np_erf(a: np.ndarray) -> np.ndarray:
    return np.asarray(_erf_vec(np.asarray(a, dtype=float)), dtype=float)


def _expit(a: np.ndarray) -> np.ndarray:
    """Logistic function 1/(1+e^-a), stable for large |a|."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(a, dtype=float)))


def _np_gelu(a: np.ndarray) -> np.ndarray:
    return 0.5 * a * (1.0 + _np_erf(a / _SQRT2))


def _np_gelu_d1(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _np_erf(a / _SQRT2)) + a * _INV_SQRT_2PI * np.exp(-0.5 * a * a)


def _np_gelu_d2(a: np.ndarray) -> np.ndarray:
    return (2.0 - a * a) * _INV_SQRT_2PI * np.exp(-0.5 * a * a)


def _np_softplus(a: np.ndarray) -> np.ndarray:
    return np.logaddexp(a, 0.0)


def _sig_d1(a: np.ndarray) -> np.ndarray:
    s = _expit(a)
    return s * (1.0 - s)


def _sig_d2(a: np.ndarray) -> np.ndarray:
    s = _expit(a)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


def _tanh_d1(a: np.ndarray) -> np.ndarray:
    t = np.tanh(a)
    return 1.0 - t * t


def _tanh_d2(a: np.ndarray) -> np.ndarray:
    t = np.tanh(a)
    return -2.0 * t * (1.0 - t * t)


def _torch(name: str) -> Callable[[Any], Any]:
    def f(a: Any) -> Any:
        import torch

        if name == "tanh":
            return torch.tanh(a)
        if name == "sigmoid":
            return torch.sigmoid(a)
        if name == "softplus":
            return torch.logaddexp(a, torch.zeros_like(a))
        if name == "gelu":
            return 0.5 * a * (1.0 + torch.erf(a / _SQRT2))
        if name == "relu":
            return torch.relu(a)
        return a

    return f


def _mp_softplus(a: Any) -> Any:
    return mpmath.log1p(mpmath.exp(a)) if a < 0 else a + mpmath.log1p(mpmath.exp(-a))


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", True, np.tanh, _tanh_d1, _tanh_d2, _torch("tanh"), mpmath.tanh),
    "sigmoid": Activation(
        "sigmoid",
        True,
        _expit,
        _sig_d1,
        _sig_d2,
        _torch("sigmoid"),
        lambda a: 1 / (1 + mpmath.exp(-a)),
    ),
    "softplus": Activation(
        "softplus", True, _np_softplus, _expit, _sig_d1, _torch("softplus"), _mp_softplus
    ),
    "gelu": Activation(
        "gelu",
        True,
        _np_gelu,
        _np_gelu_d1,
        _np_gelu_d2,
        _torch("gelu"),
        lambda a: a * (1 + mpmath.erf(a / mpmath.sqrt(2))) / 2,
    ),
    "identity": Activation(
        "identity",
        True,
        lambda a: np.array(a, dtype=float, copy=True),
        np.ones_like,
        np.zeros_like,
        _torch("identity"),
        lambda a: a,
    ),
    "relu": Activation(
        "relu",
        False,
        lambda a: np.maximum(a, 0.0),
        lambda a: (a > 0).astype(float),
        np.zeros_like,
        _torch("relu"),
        lambda a: a if a > 0 else mpmath.mpf(0),
        kinks=(0.0,),
    ),
}


def get_activation(name: str | Activation) -> Activation:
    """The activation called ``name`` (tanh, sigmoid, softplus, gelu, identity, relu)."""
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise FisherVerifyError(
            f"unknown activation {name!r}; known activations: {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]
