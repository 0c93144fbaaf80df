"""Central moments up to order 8 of projections ``uᵀ(t(y) − η)`` of an exponential family.

The variance of a variance (the spread test of the estimator gate, ``thm-4`` / ``thm-6``)
needs the fourth central moment of a score outer product ``(uᵀ r)²``, i.e. the eighth moment of
``s = uᵀ r`` with ``r = t(y) − η``. Its cumulants are the directional derivatives of the
log-partition, ``κ_k(s) = d^k/dτ^k F(h + τu)|₀`` (``lemma-2``); here they are taken by the
exact-expectation route instead, which needs no 8th-order symbolic tensor:
:meth:`Family.expectation_nodes <fisher_verify._src.families.family.Family.expectation_nodes>` with
``degree=8`` (every support point of a finite support, Gauss quadrature exact for polynomials of
degree 8, or a series with a proven tail bound). A product family (independent outputs) is
handled component by component (its ``Family.projected_central_moments`` override): the moments
of a sum of independent terms are the binomial convolution of the components' moments
(:func:`convolve_moments`), so the node grid never becomes a tensor product.

Tests check these moments against the derivatives of ``F`` (mpmath differentiation of the
symbolic log-partition), an independent route.
"""

from __future__ import annotations

from math import comb
from typing import Any

import numpy as np

__all__ = ["projected_central_moments"]

#: Highest moment order provided (the fourth moment of a squared projection).
MAX_ORDER = 8

#: Cap on the entries of one (batch, projections, nodes) block held at once.
_BLOCK_ENTRIES = 4_000_000


def node_moments(fam: Any, h: np.ndarray, U: np.ndarray, order: int) -> np.ndarray:
    """Moments 0..order of ``uᵀ(t − E t)`` by one family's own nodes (lemma-2, the
    exact-expectation route); h (M, d), U (M, K, d) float64: (M, K, order + 1)."""
    t, w, _ = fam.expectation_nodes(h, degree=order)  # (M, Q, d), (M, Q)
    w = np.asarray(w, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    total = w.sum(axis=-1, keepdims=True)
    w = w / total
    mean_t = np.einsum("mq,mqd->md", w, t)
    r = t - mean_t[:, None, :]  # (M, Q, d)
    M, K, _ = U.shape
    Q = r.shape[1]
    out = np.empty((M, K, order + 1))
    step = max(1, _BLOCK_ENTRIES // max(1, M * Q))
    for k0 in range(0, K, step):
        s = np.einsum("mqd,mkd->mkq", r, U[:, k0 : k0 + step])  # (M, k, Q)
        p = np.ones_like(s)
        for k in range(order + 1):
            out[:, k0 : k0 + step, k] = np.einsum("mkq,mq->mk", p, w)
            p = p * s
    return out


def convolve_moments(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Moments of ``s₁ + s₂`` (independent) from those of each: ``Σ_j C(k,j) a_j b_{k−j}``
    (the binomial theorem; lemma-2 for a product family)."""
    order = a.shape[-1] - 1
    out = np.zeros_like(a)
    for k in range(order + 1):
        for j in range(k + 1):
            out[..., k] += comb(k, j) * a[..., j] * b[..., k - j]
    return out


def projected_central_moments(fam: Any, h: Any, U: Any, order: int = MAX_ORDER) -> np.ndarray:
    """``E[(uᵀ(t(y) − η))^k]`` for ``k = 0..order``, exactly (``lemma-2``: cumulants of F).

    The family's own ``Family.projected_central_moments`` computes them (a product family
    splits into its independent components).

    Args:
        fam: the family.
        h: natural parameters ``(M, d)``.
        U: projections ``(M, K, d)`` (K per batch element).
        order: highest order (at most 8).

    Returns:
        ``(M, K, order + 1)``; entry 0 is 1, entry 1 is 0 up to rounding, entry 2 is ``uᵀIu``.
    """
    if not 1 <= order <= MAX_ORDER:
        raise ValueError(f"order must lie in 1..{MAX_ORDER}, got {order}")
    h = np.asarray(h, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    return np.asarray(fam.projected_central_moments(h, U, order))
