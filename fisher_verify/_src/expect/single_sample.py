"""Exact expectations over y of single-sample terms, from the family's definition.

The independent route to the paper's expectations: for each input, the family's
``expectation_nodes`` give nodes t_s and weights w_s with ``E[g(t)] = Σ_s w_s g(t_s)`` exactly
for polynomials g of the stated degree (enumeration, series with proven tail bound, or
Gauss quadrature). Nothing here uses η(h) or I(h) from the family's kernels: the mean is
``Σ_s w_s t_s`` and the negative Hessian comes from autodiff of ℓ (Eq. 2), not from eq-5.

Main entry point: :func:`expect_single_sample`. Example (E and Cov of the single-sample Î₁
term, as needed by thm-4)::

    m1 = expect_single_sample(net, x, lambda s: s.score_outer, degree=2)
    m2 = expect_single_sample(net, x, lambda s: np.einsum("sij,skl->sijkl",
                                                          s.score_outer, s.score_outer), degree=4)
    cov = m2 - np.einsum("ij,kl->ijkl", m1, m1)        # one input: Cov(∂ℓ∂ℓᵀ)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..networks.network import Network


@dataclass
class SingleSampleTerms:
    """Single-sample quantities at every node t_s, for one input x_m.

    Attributes:
        t: nodes t_s ``(S, d)``.
        w: weights w_s ``(S,)`` (Σ w_s = 1 up to the tail bound).
        eta: the mean ``Σ_s w_s t_s`` ``(d,)`` (from the definition).
        J: ∂h_L/∂θ ``(d, P)``.
        H: ∂²h_L/∂θ∂θᵀ ``(d, P, P)``.
        hess_F: ∂²_θ F(h_L(θ)) ``(P, P)`` by autodiff (so ``−∂²ℓ = hess_F − t_a H^a``).
        tail: the family's bound on the truncated tail (0 when exact).
    """

    t: np.ndarray
    w: np.ndarray
    eta: np.ndarray
    J: np.ndarray
    H: np.ndarray
    hess_F: np.ndarray
    tail: float

    @cached_property
    def r(self) -> np.ndarray:
        """t_s − η ``(S, d)``."""
        return self.t - self.eta

    @cached_property
    def score(self) -> np.ndarray:
        """∂ℓ/∂θ = Jᵀ(t − η) at every node ``(S, P)`` (eq-4)."""
        return self.r @ self.J

    @cached_property
    def score_outer(self) -> np.ndarray:
        """∂ℓ ∂ℓᵀ at every node ``(S, P, P)``: the single-sample Î₁ term."""
        s = self.score
        return s[:, :, None] * s[:, None, :]

    @cached_property
    def neg_hessian(self) -> np.ndarray:
        """−∂²ℓ = ∂²_θ F(h_L) − t_a ∂²h^a_L at every node ``(S, P, P)``: the single-sample Î₂ term
        (Eq. 2, differentiated directly, not through eq-5)."""
        return self.hess_F[None] - np.einsum("sa,apq->spq", self.t, self.H)


def _hess_F(net: Network, x: np.ndarray) -> np.ndarray:
    import torch

    theta = torch.tensor(net.theta, dtype=torch.float64, requires_grad=True)
    xt = torch.as_tensor(x, dtype=torch.float64)

    def f(th: Any) -> Any:
        return net.family.log_partition(net.torch_forward(th, xt)[None])[0]

    return torch.autograd.functional.hessian(f, theta).detach().numpy()


def single_sample_terms(net: Network, x: Any, degree: int = 4) -> list[SingleSampleTerms]:
    """The :class:`SingleSampleTerms` of every input (nodes exact up to ``degree`` in t)."""
    X, _ = net.inputs(x)
    h = net.forward(X)
    net.family.check_natural(h)
    J = net.jacobian(X, method="autodiff")
    H = net.output_hessians(X, method="autodiff")
    out = []
    for m in range(X.shape[0]):
        t, w, tail = net.family.expectation_nodes(h[m], degree)
        t = np.asarray(t, dtype=np.float64).reshape(-1, net.family.dim)
        w = np.asarray(w, dtype=np.float64).reshape(-1)
        eta = w @ t
        out.append(SingleSampleTerms(t, w, eta, J[m], H[m], _hess_F(net, X[m]), float(tail)))
    return out


def expect_single_sample(
    net: Network,
    x: Any,
    fn: Callable[[SingleSampleTerms], np.ndarray],
    degree: int = 4,
    per_input: bool = False,
) -> np.ndarray:
    """E_y[fn(terms)] exactly, for ``fn`` polynomial in t of degree <= ``degree``.

    ``fn`` receives a :class:`SingleSampleTerms` and returns an array with leading axis S (one
    value per node). The result averages over the inputs (p(x) empirical), or is stacked
    ``(M, …)`` when ``per_input`` (e.g. to form per-input covariances before averaging).
    """
    vals = []
    for terms in single_sample_terms(net, x, degree):
        v = np.asarray(fn(terms), dtype=np.float64)
        vals.append(np.tensordot(terms.w, v, axes=(0, 0)))
    stacked = np.stack(vals)
    return stacked if per_input else stacked.mean(axis=0)


def expected_score_outer(net: Network, x: Any) -> np.ndarray:
    """E[∂ℓ ∂ℓᵀ] from the definition (eq-4 at the nodes), ``(P, P)``: equals eq-6."""
    return expect_single_sample(net, x, lambda s: s.score_outer, degree=2)


def expected_neg_hessian(net: Network, x: Any) -> np.ndarray:
    """E[−∂²ℓ] from the definition, ``(P, P)``: equals eq-6 for C² σ (thm-3)."""
    return expect_single_sample(net, x, lambda s: s.neg_hessian, degree=1)
