"""ext-sharded's tolerance scale: the pair terms summed into ‖Cov(Î₁)‖_F² and ‖Cov(Î₂)‖_F² are
non-negative, so the summed terms' magnitude is the norm itself (proofs/ext_sharded.py).

Pair terms come from a dense route written here (full Jacobians, output Hessians and the
family's moments, contracted by einsum), independent of models.mlp_norms; their sum must give
the norms of fisher.bounds, and each is a trace of a product of PSD matrices: non-negative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify._src.fisher.bounds import thm7_sides, thm8_sides


def _pairs(net: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
    """Pair terms (M, M) of Z²‖Cov(Î₁)‖_F² and Z²‖Cov(Î₂)‖_F², Z = M²N, and the dense arrays."""
    fam = net.family
    h = net.forward(X)
    J = net.jacobian(X, method="autodiff")
    H = net.output_hessians(X, method="autodiff")
    I, K = fam.fisher(h), fam.central_moment4(h)
    C = K - np.einsum("mab,mcd->mabcd", I, I)
    M = len(X)
    p7, p8 = np.zeros((M, M)), np.zeros((M, M))
    for m in range(M):
        for k in range(M):
            G = J[m] @ J[k].T
            p7[m, k] = np.einsum("abcd,efgh,ae,bf,cg,dh->", C[m], C[k], G, G, G, G)
            T = np.einsum("apq,cpq->ac", H[m], H[k])
            p8[m, k] = np.einsum("ab,cd,ac,bd->", I[m], I[k], T, T)
    return p7, p8, (J, H, I, K)


@pytest.mark.parametrize("name", ["categorical", "poisson", "normal_unknown_variance"])
def test_pair_terms_are_non_negative(name: str) -> None:
    fam = fv.family("categorical", K=3) if name == "categorical" else fv.family(name)
    rng = np.random.default_rng(3)
    net = fv.Network.random([3, 4, 3, fam.dim], "tanh", fam, 1.0, rng)
    X = rng.normal(size=(5, 3))
    net = net.into_domain(X)
    n = 3
    Z = len(X) ** 2 * n
    p7, p8, (J, H, I, K) = _pairs(net, X)
    lhs7 = thm7_sides(J, K, I, n)[0]
    lhs8 = thm8_sides(H, I, n)[0]
    # the signed sums are the squared norms (the pair terms are the right ones)
    assert abs(np.sqrt(p7.sum()) / Z - lhs7) <= 1e-10 * lhs7
    assert abs(np.sqrt(p8.sum()) / Z - lhs8) <= 1e-10 * lhs8
    # every term non-negative (to rounding of its own magnitude): |terms| sum to the value
    for p in (p7, p8):
        assert p.min() >= -1e-13 * p.max() and p.max() > 0
