"""Quadrature rules used by the exact-expectation route (no SciPy at run time)."""

from __future__ import annotations

import math

import numpy as np


def gauss_hermite(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for ∫ g(x) e^{-x²} dx, exact for polynomials of degree <= 2m-1."""
    x, w = np.polynomial.hermite.hermgauss(m)
    return x, w


def gauss_laguerre(m: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for ∫_0^∞ g(x) x^alpha e^{-x} dx (Golub–Welsch).

    Exact for polynomials of degree <= 2m-1. The Jacobi matrix of the generalized
    Laguerre polynomials has diagonal 2i+alpha+1 and off-diagonal sqrt(i (i+alpha)).
    """
    nodes, probability = gauss_laguerre_probability(m, alpha)
    return nodes, math.gamma(alpha + 1.0) * probability


def gauss_laguerre_probability(m: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[g(X)], X ~ Gamma(alpha + 1, 1): the weights of
    :func:`gauss_laguerre` divided by Γ(alpha + 1), computed without Γ, which overflows
    float64 for alpha > 170 (the weights are the squared first components of the
    eigenvectors)."""
    i = np.arange(m, dtype=float)
    diag = 2.0 * i + alpha + 1.0
    off = np.sqrt(i[1:] * (i[1:] + alpha))
    jacobi = np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)
    nodes, vecs = np.linalg.eigh(jacobi)
    return nodes, vecs[0, :] ** 2


def points_for_degree(degree: int) -> int:
    """Number of Gauss nodes needed to integrate a polynomial of ``degree`` exactly."""
    return max(1, (degree + 2) // 2)
