"""The per-input sums of ``fv.analyze``'s dense route, streamed over chunks of inputs.

Everything ``analyze`` reports for P ≤ its dense limit except the two covariance norms is a
sum over inputs (``eq-6``, ``thm-4``, ``thm-6`` element-wise, the right-hand sides of
``thm-7``/``thm-8`` and the ingredients of ``thm-10``), so it is accumulated a chunk of inputs
at a time: memory is the ``P × P`` accumulators plus one chunk's derivatives, never the
``(M, n_L, P, P)`` output Hessians of every input; time is ``O(M)``. The norms (sums over
*pairs* of inputs) go through :mod:`fisher_verify._src.models.mlp_norms`, costed first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from .bounds import thm7_rhs, thm8_rhs
from .covariance import cov1_variance, cov2_variance
from .exact import gauss_newton
from .psd import PsdBound, psd_bound_from_sums, spectral_radii

__all__ = ["chunk_inputs", "dense_sums"]

#: Largest chunk of inputs, whatever the budget (keeps each chunk's arrays near the cache).
MAX_CHUNK = 256

Progress = Callable[[str, int, int], None]


def per_input_bytes(P: int, n_L: int) -> int:
    """Bytes one input's terms hold at once: the output Hessians ``n_L P²`` and their
    temporaries (×4), ``J`` and the Hadamard rows ``n_L² P``, the dense ``K`` and
    ``K − I⊗I`` (``2 n_L⁴``; a categorical K = 160 alone is 5.2 GB)."""
    return 8 * (4 * n_L * P * P + 3 * n_L * n_L * P + 2 * n_L**4 + 8 * n_L * n_L)


def chunk_inputs(P: int, n_L: int, M: int, memory_budget: int) -> int:
    """Inputs per chunk within ``memory_budget`` besides four ``P × P`` accumulators.

    Raises:
        UnsupportedError: not even one input fits, naming the bytes and the budget.
    """
    held = 4 * 8 * P * P
    one = per_input_bytes(P, n_L)
    if held + one > memory_budget:
        raise UnsupportedError(
            f"one input's terms need {(held + one) / 2**20:.4g} MiB (P = {P}, n_L = {n_L}: "
            f"output Hessians n_L P^2 and the dense 4th moment n_L^4), above memory_budget = "
            f"{memory_budget / 2**20:.4g} MiB; pass a larger memory_budget")
    return int(max(1, min(MAX_CHUNK, M, (memory_budget - held) // one)))


@dataclass
class InputSums:
    """The sums over all M inputs, scaled as ``analyze`` reports them (N draws per input)."""

    fisher: np.ndarray  # I(θ), (P, P) (eq-6)
    variance_1: np.ndarray  # Var(Î₁)_ij (thm-4)
    variance_2: np.ndarray  # Var(Î₂)_ij (thm-6)
    thm7_rhs: float
    thm7_spectral: float
    thm8_rhs: float
    psd: PsdBound  # thm-10


def _chunk_terms(net: Any, Xc: np.ndarray) -> dict[str, Any]:
    """Unscaled sums over the inputs ``Xc`` (each function below divides by ``c`` or ``c²``,
    multiplied back here)."""
    fam = net.family
    c = Xc.shape[0]
    h = net.forward(Xc)
    fam.check_natural(h)
    I = np.asarray(fam.fisher(h), dtype=np.float64)
    K = np.asarray(fam.central_moment4(h), dtype=np.float64)
    J = np.asarray(net.jacobian(Xc), dtype=np.float64)
    H = np.asarray(net.output_hessians(Xc), dtype=np.float64)
    rhs7, spec7 = thm7_rhs(J, K, I, 1)
    return {
        "fisher": gauss_newton(J, I) * c,
        "var1": cov1_variance(J, K, I, 1) * (c * c),
        "var2": cov2_variance(H, I, 1) * (c * c),
        "rhs7": rhs7 * c * c, "spec7": spec7 * c * c, "rhs8": thm8_rhs(H, I, 1) * c * c,
        "rho2": float(np.sum(spectral_radii(H) ** 2)),
        "lam_max": float(np.sum(np.linalg.eigvalsh(I)[:, -1])),
        "trace": float(np.sum(np.trace(I, axis1=1, axis2=2))),
    }


def dense_sums(net: Any, X: np.ndarray, n: int, chunk: int, *, time_budget: float | None = None,
               progress: Progress | None = None) -> InputSums:
    """:class:`InputSums` of ``net`` over the inputs ``X`` (M, n_0), ``chunk`` at a time.

    With ``time_budget`` the first chunk (at most 16 inputs, after one warm-up input) is timed
    and the call refused at once when the rest is estimated to take longer.

    Raises:
        UnsupportedError: the estimate exceeds ``time_budget``, naming both.
    """
    M = int(X.shape[0])
    acc: dict[str, Any] = {}

    def add(part: dict[str, Any]) -> None:
        for k, v in part.items():
            acc[k] = v if k not in acc else acc[k] + v

    start = 0
    if time_budget is not None and M > 1:
        add(_chunk_terms(net, X[:1]))  # warm-up: kernels are compiled on first use
        first = min(M - 1, 16, chunk)
        t0 = time.perf_counter()
        add(_chunk_terms(net, X[1 : 1 + first]))
        per_input = (time.perf_counter() - t0) / first
        start = 1 + first
        estimate = per_input * (M - start)
        if estimate > time_budget:
            raise UnsupportedError(
                f"the per-input terms of M = {M} inputs are estimated at {estimate:.4g} s "
                f"({per_input * 1e3:.3g} ms per input, timed), above time_budget = "
                f"{time_budget:.4g} s; pass a larger time_budget or fewer inputs")
    for lo in range(start, M, chunk):
        add(_chunk_terms(net, X[lo : lo + chunk]))
        if progress is not None:
            progress("per-input terms (eq-6, thm-4, thm-6)", min(M, lo + chunk), M)
    n_L = int(net.widths[-1])
    scale = float(M * M * n)
    fisher = acc["fisher"] / M
    if np.all(np.isfinite(fisher)) and np.isfinite(acc["rho2"]):
        psd = psd_bound_from_sums(fisher, acc["rho2"], acc["lam_max"], acc["trace"], M, n_L, n)
    else:  # an overflowed Fisher has no eigenvalues; the caller refuses or reports it
        psd = PsdBound(None, None, None, np.zeros(0), math.nan, np.zeros(0), False)
    return InputSums(
        fisher=acc["fisher"] / M, variance_1=acc["var1"] / scale, variance_2=acc["var2"] / scale,
        thm7_rhs=acc["rhs7"] / scale, thm7_spectral=acc["spec7"] / scale,
        thm8_rhs=acc["rhs8"] / scale, psd=psd)
