"""Kernels printed from the derivation by ``lambdify``: NumPy, PyTorch and mpmath.

A kernel evaluates the unique entries of a symmetric tensor (common subexpressions shared)
and scatters them into the full tensor, batched over the leading axes of h.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, Literal

import mpmath
import numpy as np
import sympy as sp

from .derive import SymmetricTensor
from .safe import MPMATH_KERNELS, NUMPY_KERNELS, torch_kernels

Backend = Literal["numpy", "torch", "mpmath"]
BACKENDS: tuple[Backend, ...] = ("numpy", "torch", "mpmath")


def _modules(backend: Backend) -> list[Any]:
    if backend == "numpy":
        return [NUMPY_KERNELS, "numpy"]
    if backend == "torch":
        return [torch_kernels(), "torch"]
    return [MPMATH_KERNELS, "mpmath"]


def lambdify_list(
    symbols: Sequence[sp.Symbol], exprs: Sequence[sp.Expr], backend: Backend
) -> Callable[..., list[Any]]:
    """``lambdify`` a list of expressions with shared subexpressions, for one backend."""
    fn = sp.lambdify(list(symbols), list(exprs), modules=_modules(backend), cse=True)
    return fn


def float_constants(expr: sp.Expr) -> sp.Expr:
    """Exact constants too large for float64 (a numerator or denominator beyond 2¹⁰⁰⁰, e.g.
    6·shape at shape = 1e308) as floats: Python cannot convert such an int to float (it raises
    OverflowError), while a float constant overflows to inf as float64 arithmetic does."""
    big = {
        q: sp.Float(q, 17)
        for q in expr.atoms(sp.Rational)
        if max(abs(q.p), q.q) > 2**1000
    }
    return expr.xreplace(big) if big else expr


def numeric_constants(expr: sp.Expr) -> sp.Expr:
    """Constant subexpressions such as ``sqrt(10)`` (from an exact parameter, e.g. the inverse
    Gaussian's ``−sqrt(2λ)·sqrt(−h)`` at λ = 5) as floats: the printed ``torch.sqrt(10)`` is a
    TypeError, since torch's functions take tensors only, not Python numbers."""
    return expr.replace(
        lambda a: (a.is_Pow or a.is_Function) and a.is_number and not a.is_Rational
        and bool(a.is_extended_real),
        lambda a: a.evalf(20),
    )


class TensorKernel:
    """Numeric kernel for one symmetric tensor (or a scalar when ``order == 0``)."""

    def __init__(
        self, symbols: Sequence[sp.Symbol], tensor: SymmetricTensor | sp.Expr, backend: Backend
    ) -> None:
        self.backend = backend
        self.dim = len(symbols)
        if isinstance(tensor, SymmetricTensor):
            self.order = tensor.order
            unique = tensor.unique_indices()
            exprs = [tensor.entries[i] for i in unique]
            position = {idx: k for k, idx in enumerate(unique)}
            full = itertools.product(range(self.dim), repeat=self.order)
            self.gather = np.array([position[tuple(sorted(i))] for i in full], dtype=np.int64)
        else:
            self.order = 0
            exprs = [tensor]
            self.gather = np.zeros(1, dtype=np.int64)
        if backend != "mpmath":
            exprs = [float_constants(e) for e in exprs]
        if backend == "torch":
            exprs = [numeric_constants(e) for e in exprs]
        self.fn = lambdify_list(symbols, exprs, backend)
        self.shape = (self.dim,) * self.order

    def __call__(self, h: Any) -> Any:
        if self.backend == "numpy":
            return self._numpy(h)
        if self.backend == "torch":
            return self._torch(h)
        return self._mpmath(h)

    def _numpy(self, h: np.ndarray) -> np.ndarray:
        args = list(np.moveaxis(h, -1, 0))
        with np.errstate(over="ignore", under="ignore"):
            values = self.fn(*args)
        batch = h.shape[:-1]
        stacked = np.stack([np.broadcast_to(np.asarray(v, dtype=float), batch) for v in values], -1)
        return stacked[..., self.gather].reshape(batch + self.shape)

    def _torch(self, h: Any) -> Any:
        import torch

        args = list(torch.unbind(h, dim=-1))
        values = self.fn(*args)
        batch = h.shape[:-1]
        cols = [
            v.expand(batch)
            if torch.is_tensor(v)
            else torch.full(batch, float(v), dtype=h.dtype, device=h.device)
            for v in values
        ]
        stacked = torch.stack(cols, dim=-1)
        index = torch.as_tensor(self.gather, device=h.device)
        return stacked[..., index].reshape(tuple(batch) + self.shape)

    def _mpmath(self, h: Sequence[Any]) -> np.ndarray:
        args = [mpmath.mpf(v) for v in h]
        values = self.fn(*args)
        out = np.empty(len(self.gather), dtype=object)
        for k, g in enumerate(self.gather):
            out[k] = mpmath.mpf(values[g])
        return out.reshape(self.shape) if self.shape else out[0]
