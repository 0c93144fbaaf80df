"""Moments up to order 8 of projections uᵀ(t − η) (fisher_verify._src.families.higher_moments)
against the derivatives of the log-partition F (lemma-2: the cumulants are ∂ᵏF), taken by
mpmath differentiation of the family's own F at 40 digits: an independent route."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify._src.families.higher_moments import projected_central_moments

CASES = [
    ("categorical", {"K": 3}, [0.3, -0.2, 1.1], [0.5, -1.2, 0.7]),
    ("bernoulli", {}, [-2.5], [1.7]),
    ("poisson", {}, [0.7], [1.3]),
    ("binomial", {"n": 4}, [0.2], [1.1]),
    ("geometric", {}, [-0.6], [0.9]),
    ("normal", {"sigma": 1}, [0.4], [1.2]),
    ("normal_unknown_variance", {}, [0.4, -0.8], [0.9, 0.3]),
    ("gamma", {"shape": 2}, [-1.3], [0.8]),
]


def _moments_from_cumulants(kappa: list) -> list:  # type: ignore[type-arg]
    """Central moments from cumulants (κ₁ = 0): μ_n = Σ_j C(n−1, j−1) κ_j μ_{n−j}."""
    mu = [mpmath.mpf(1)]
    for n in range(1, len(kappa)):
        mu.append(mpmath.fsum(mpmath.binomial(n - 1, j - 1) * kappa[j] * mu[n - j]
                              for j in range(1, n + 1)))
    return mu


@pytest.mark.parametrize(("name", "params", "h", "u"), CASES)
def test_projected_moments_match_derivatives_of_F(name: str, params: dict, h: list, u: list) -> None:
    fam = fv.family(name, **params)
    with mpmath.workdps(40):
        hm = [mpmath.mpf(v) for v in h]
        um = [mpmath.mpf(v) for v in u]

        def F(tau):  # type: ignore[no-untyped-def]
            return fam.log_partition([a + tau * b for a, b in zip(hm, um)])

        kappa = [mpmath.mpf(0), mpmath.mpf(0)] + [mpmath.diff(F, 0, k) for k in range(2, 9)]
        want = np.array([float(v) for v in _moments_from_cumulants(kappa)])
    got = projected_central_moments(fam, np.array([h]), np.array([[u]]), 8)[0, 0]
    assert abs(got[1]) < 1e-12 * np.sqrt(want[2])
    np.testing.assert_allclose(got[2:], want[2:], rtol=1e-11)
    np.testing.assert_allclose(got[0], 1.0, rtol=1e-14)


def test_order_is_checked() -> None:
    with pytest.raises(ValueError, match="order"):
        projected_central_moments(fv.family("poisson"), np.zeros((1, 1)), np.ones((1, 1, 1)), 9)
