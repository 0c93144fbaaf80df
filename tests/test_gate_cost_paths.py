"""The estimator gate's fast paths (issue 19) against their definitions, computed independently.

* Catoni's comparisons without the root (``catoni_outside``, the spread test's verdicts) against
  the root of the defining equation ``Σ_i ψ(a (X_i − θ)) = 0`` found by bisection in plain
  Python (``math.log1p`` per term), and ``catoni_mean`` against the same root;
* the categorical family's projected moments per input on column blocks against
  ``Σ_k p_k (u_k − pᵀu)^j`` written out, in both memory layouts and across a block boundary;
* ``weighted_grams`` against the einsum of its definition, the blocked fourth moments against
  the unblocked ones, the blocked column summaries against NumPy's;
* the report's lazily made statistics against the eager ``GateStatistic`` objects (labels,
  worst statistic, failures), and the vectorised excess against the property on edge cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify._src.testing.catoni import catoni_mean, catoni_outside, catoni_scale
from fisher_verify._src.testing.gate_report import (
    GateStatistic,
    GateStatistics,
    ParameterLabels,
    excess_array,
)


def _psi_sum(x: np.ndarray, a: float, theta: float) -> float:
    """Σ ψ(a (x_i − θ)), ψ(y) = sign(y) log(1 + |y| + y²/2), term by term in Python floats."""
    total = 0.0
    for xi in x.tolist():
        y = a * (xi - theta)
        total += math.copysign(math.log1p(abs(y) + 0.5 * y * y), y)
    return total


def _root(x: np.ndarray, a: float) -> float:
    """The root of the strictly decreasing Σ ψ(a (x_i − θ)), by bisection to float resolution."""
    lo, hi = float(np.min(x)), float(np.max(x))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _psi_sum(x, a, mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _columns(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(R, S) samples of several laws and their Catoni scales (R = 120)."""
    R = 120
    cols = [
        rng.normal(size=R),
        rng.standard_t(2.5, size=R) * 3.0 + 7.0,
        rng.lognormal(0.0, 1.0, size=R),
        rng.chisquare(1, size=R) * 1e-6,
        rng.normal(size=R) * 1e3 + 1e6,
        rng.exponential(size=R) ** 2,
    ]
    x = np.stack(cols, axis=1)
    sd = np.array([1.0, 3.0 * math.sqrt(5.0), 2.2, 1.4e-6, 1e3, 4.5])
    return x, catoni_scale(sd, R, 1e-4)


def test_catoni_mean_is_the_root_of_its_equation() -> None:
    x, a = _columns(np.random.default_rng(0))
    est = catoni_mean(x, a)
    for j in range(x.shape[1]):
        root = _root(x[:, j], float(a[j]))
        scale = float(np.max(np.abs(x[:, j])))
        assert abs(est[j] - root) <= 1e-12 * scale, j


def test_catoni_outside_decides_the_side_of_the_root() -> None:
    """At bounds on both sides of the root, far and within 1e-9 of the spread, and on the
    root's float neighbours: ``(θ̂ < lower, θ̂ > upper)`` exactly as the bisection root says."""
    rng = np.random.default_rng(1)
    x, a = _columns(rng)
    S = x.shape[1]
    roots = np.array([_root(x[:, j], float(a[j])) for j in range(S)])
    spread = x.max(axis=0) - x.min(axis=0)
    for offset in (-0.3, -1e-3, -1e-9, 1e-9, 1e-3, 0.3):
        bound = roots + offset * spread
        below, above = catoni_outside(x, a, bound, bound)
        np.testing.assert_array_equal(below, roots < bound)
        np.testing.assert_array_equal(above, roots > bound)
    # an interval around the root holds it: neither side
    below, above = catoni_outside(x, a, roots - 1e-9 * spread, roots + 1e-9 * spread)
    assert not below.any() and not above.any()
    # a bound at the root itself (symmetric draws: the sum is exactly 0 at 0) is on neither side
    sym = np.tile([-1.5, 1.5, -0.25, 0.25], 30)[:, None]
    below, above = catoni_outside(sym, np.array([0.7]), np.zeros(1), np.zeros(1))
    assert not below[0] and not above[0]


def test_catoni_outside_takes_the_plain_mean_where_catoni_mean_does() -> None:
    """Constant columns, a = inf (zero variance claimed) and non-finite values: the plain mean."""
    x = np.array([[0.3, 1.0, 2.0, np.nan], [0.3, 3.0, 2.0, 1.0], [0.3, 5.0, 2.0, 2.0]])
    a = np.array([1.0, np.inf, 1.0, 1.0])
    plain = np.array([0.3, 3.0, 2.0, np.nan])
    np.testing.assert_array_equal(catoni_mean(x, a)[:3], x.mean(axis=0)[:3])
    below, above = catoni_outside(x, a, plain - 0.01, plain + 0.01)
    assert not below[:3].any() and not above[:3].any()
    below, above = catoni_outside(x, a, plain + 0.01, plain + 0.02)
    np.testing.assert_array_equal(below[:3], [True, True, True])
    below, above = catoni_outside(x, a, plain, plain)  # at the plain mean: neither side
    assert not below[:3].any() and not above[:3].any()
    assert not below[3] and not above[3]  # NaN compares with nothing


def test_spread_verdicts_are_catoni_estimates_compared_with_the_bounds() -> None:
    """too_noisy ⟺ the root for (X − μ)² exceeds σ² + radius + slack; too_quiet ⟺ below
    σ² − radius − slack; the lazily found estimate is that root."""
    from fisher_verify._src.testing.catoni import catoni_radius_factor
    from fisher_verify._src.testing.spread import spread_test

    rng = np.random.default_rng(2)
    R, S = 200, 9
    true_sd = np.array([1.0, 1.0, 1.0, 2.0, 0.5, 1.0, 1.3, 0.7, 1.0])
    values = rng.normal(size=(R, S)) * true_sd
    claimed = np.array([1.0, 1.6, 0.6, 1.0, 1.0, 1.05, 1.3, 0.7, 1.0]) ** 2
    fourth = 3.0 * claimed**2
    fourth[-1] = np.nan  # μ₄ unknown: not tested
    delta = 1e-3
    radius = np.sqrt(2.0 * claimed**2) * catoni_radius_factor(R, delta)
    a = catoni_scale(np.sqrt(2.0) * claimed, R, delta)
    roots = np.array([_root(values[:, j] ** 2, float(a[j])) for j in range(S - 1)])
    flagged = []
    for rtol in (1e-9, 0.2):  # the rounding slack widens the acceptance region
        slack = np.full(S, rtol)
        res = spread_test(values, np.zeros(S), claimed, fourth, delta, slack)
        assert not res.tested[-1]
        slack_y = 2.0 * slack * np.sqrt(claimed) + slack**2 + 1e-12 * claimed
        for j in range(S - 1):
            assert res.estimate[j] == pytest.approx(roots[j], rel=1e-12, abs=1e-15)
            assert bool(res.too_noisy[j]) == (roots[j] - claimed[j] > radius[j] + slack_y[j])
            assert bool(res.too_quiet[j]) == (claimed[j] - roots[j] > radius[j] + slack_y[j])
        assert not res.too_noisy[-1] and not res.too_quiet[-1] and math.isnan(res.estimate[-1])
        flagged.append(int(np.sum(res.too_noisy | res.too_quiet)))
    assert flagged[0] > flagged[1] > 0  # the planted ones; the slack spares some


@pytest.mark.parametrize("transposed", [False, True])
def test_categorical_projected_moments_against_their_definition(transposed: bool) -> None:
    """Σ_k p_k (u_k − pᵀu)^j for j = 0..8, across the 4096-column block boundary, with U given
    as (M, R, K) or as the transposed view of a (M, K, R) Jacobian."""
    rng = np.random.default_rng(3)
    K, M, R = 4, 2, 4100
    fam = fv.family("categorical", K=K)
    h = rng.normal(size=(M, K)) * 2.0
    if transposed:
        U = np.swapaxes(rng.normal(size=(M, K, R)), 1, 2)
    else:
        U = rng.normal(size=(M, R, K))
    got = fam.projected_central_moments(h, U, 8)
    p = np.exp(h - h.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d = U - np.einsum("mk,mrk->mr", p, U)[..., None]
    for j in range(9):
        want = np.einsum("mk,mrk->mr", p, d**j)
        scale = np.einsum("mk,mrk->mr", p, np.abs(d) ** j)
        assert np.all(np.abs(got[..., j] - want) <= 1e-12 * scale + 1e-300), j


def test_weighted_grams_is_its_definition_across_blocks() -> None:
    from fisher_verify._src.testing.gate_exact import weighted_grams

    rng = np.random.default_rng(4)
    M, d, P = 3, 10, 2000  # K = 8 rows: blocks of 819 parameters
    J = rng.normal(size=(M, d, P))
    W = rng.normal(size=(8, P))
    want = np.einsum("map,kp,mbp->kmab", J, W, J)
    got = weighted_grams(J, W)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * float(np.abs(want).max()))


def test_fourth_moments_in_blocks_equal_the_whole() -> None:
    from fisher_verify._src.families.higher_moments import projected_central_moments
    from fisher_verify._src.testing.gate_exact import _statistic_moments

    rng = np.random.default_rng(5)
    fam = fv.family("categorical", K=3)
    h = rng.normal(size=(4, 3))
    parts = [np.swapaxes(rng.normal(size=(4, 3, 5000)), 1, 2), rng.normal(size=(4, 6, 3))]
    var, mu4 = _statistic_moments(fam, h, parts, 1, 5)
    whole = np.concatenate(parts, axis=1)
    mu = projected_central_moments(fam, h, whole, 8)
    m2, m4, m6, m8 = mu[..., 2], mu[..., 4], mu[..., 6], mu[..., 8]
    c2 = np.maximum(m4 - m2 * m2, 0.0)
    c4 = np.maximum(m8 - 4 * m6 * m2 + 6 * m4 * m2 * m2 - 3 * m2**4, 0.0)
    M, n = 4, 5
    want_var = c2.sum(0) / (M * M * n)
    per = M**4 * n**3
    want4 = np.maximum(c4.sum(0) / per + 3 * want_var**2 - 3 * (c2 * c2).sum(0) / per, want_var**2)
    np.testing.assert_allclose(var, want_var, rtol=1e-13)
    np.testing.assert_allclose(mu4, want4, rtol=1e-13)


def test_column_summaries_are_numpy_mean_std_and_range() -> None:
    from fisher_verify._src.testing.estimator_gate import _column_summaries

    rng = np.random.default_rng(6)
    values = rng.lognormal(size=(37, 1300)) + 1e3
    means, sds, ptp = _column_summaries(values)
    np.testing.assert_allclose(means, values.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(sds, values.std(axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_array_equal(ptp, np.ptp(values, axis=0))
    _, one_sd, _ = _column_summaries(values[:1])
    assert not one_sd.any()


def test_lazy_statistics_are_the_eager_ones() -> None:
    """Labels of an Eq. 3 network and of the directions, every field, the worst statistic and
    the failures, against GateStatistic objects made one by one as the gate made them."""
    from fisher_verify._src.testing.estimator_gate import _param_labels

    net = fv.Network.random([3, 4, 2], family=fv.family("categorical", K=2), rng=0)
    P, D = net.num_params, 3
    rng = np.random.default_rng(7)
    S = P + D
    cols = {
        "observed": rng.normal(size=S), "mean": rng.normal(size=S), "expected": rng.normal(size=S),
        "sd": rng.uniform(0.5, 1.0, size=S), "empirical_sd": rng.uniform(size=S),
        "radius": rng.uniform(0.5, 2.0, size=S), "slack": np.full(S, 1e-9),
        "spread_ratio": rng.uniform(size=S), "spread_ok": rng.uniform(size=S) > 0.2,
        "spread_radius": rng.uniform(size=S),
    }
    cols["radius"][5] = 0.0
    cols["slack"][5] = 0.0  # zero threshold, nonzero deviation: excess inf
    names = ParameterLabels(net.shapes, None, D, "Î")
    lazy = GateStatistics(names, 200, **cols)
    labels = _param_labels(net) + [f"v{j}ᵀ Î v{j} (random unit v{j})" for j in range(D)]
    eager = tuple(
        GateStatistic(labels[j], *(float(cols[k][j]) for k in
                                   ("observed", "mean", "expected", "sd", "empirical_sd", "radius",
                                    "slack")), 200, float(cols["spread_ratio"][j]),
                      bool(cols["spread_ok"][j]), float(cols["spread_radius"][j]))
        for j in range(S)
    )
    assert len(lazy) == S and lazy == eager and tuple(lazy) == eager
    assert lazy[-1] == eager[-1] and lazy[2:5] == eager[2:5]
    assert lazy.worst() == max(eager, key=lambda s: s.excess)
    assert lazy.failed() == tuple(s for s in eager if not s.passed)
    assert lazy.spread_failed() == tuple(s for s in eager if not s.spread_ok)
    with pytest.raises(IndexError):
        lazy[S]


def test_excess_array_is_the_property_on_edge_cases() -> None:
    obs = np.array([1.0, 1.0, 2.0, np.nan, np.inf, 3.0, 1.0])
    exp = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.5])
    thr = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 4.0, np.nan])
    got = excess_array(obs, exp, thr)
    for j in range(len(obs)):
        s = GateStatistic("x", obs[j], 0.0, exp[j], 1.0, 1.0, thr[j], 0.0, 10)
        assert got[j] == s.excess or (math.isnan(got[j]) and math.isnan(s.excess)), j


@pytest.mark.parametrize("family", ["categorical", "poisson", "bernoulli"])
def test_factored_exact_statistics_equal_the_dense_jacobian_route(family: str) -> None:
    """An Eq. 3 network's diagonal-estimate statistics from lemma-13's factors (I_ii, the
    directions' Var via J_m Diag(v²) J_mᵀ, the fourth moments) equal those from its dense
    Jacobian, the route every other network takes (a subclass is not factored)."""
    from fisher_verify._src.networks.network import Network
    from fisher_verify._src.testing.gate_exact import _eq3_factors, exact_statistics

    class Dense(Network):
        pass

    fam = fv.family("categorical", K=3) if family == "categorical" else fv.family(family)
    width = 3 if family == "categorical" else 1
    net = Network.random([4, 5, 3, width], family=fam, rng=1)
    dense = Dense(net.weights, activation=net.act, family=fam)
    X = np.random.default_rng(8).normal(size=(6, 4))
    V = np.random.default_rng(9).normal(size=(3, net.num_params))
    assert _eq3_factors(net, X) is not None and _eq3_factors(dense, X) is None
    fast = exact_statistics(net, X, 1, 3, V, True)
    slow = exact_statistics(dense, X, 1, 3, V, True)
    for name in ("expected", "variance", "scales"):
        a, b = getattr(fast, name), getattr(slow, name)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14 * float(np.abs(b).max()))
    P = net.num_params
    np.testing.assert_allclose(fast.fourth[:P], slow.fourth[:P], rtol=1e-11,
                               atol=1e-13 * float(np.abs(slow.fourth[:P]).max()))
    assert np.isnan(fast.fourth[P:]).all() and np.isnan(slow.fourth[P:]).all()
    # the pooled tests' combination variances (J_m Diag(b) J_mᵀ with signed weights)
    from fisher_verify._src.testing.gate_exact import combination_variance

    assert fast.factors is not None and slow.factors is None
    coeffs = np.random.default_rng(10).normal(size=(2, P + 3))
    np.testing.assert_allclose(combination_variance(fast, fam, coeffs),
                               combination_variance(slow, fam, coeffs), rtol=1e-11)
    # the Jacobian, formed from the factors only when read, is the network's own
    assert fast.dense_J is None
    np.testing.assert_array_equal(fast.J, net.jacobian(X))
    np.testing.assert_array_equal(fast.J, slow.J)
