"""Every threshold, radius and standard error of the calibrated checks and of the estimator gate,
pinned to its formula computed here by an independent route (scipy's binomial law, label
enumeration, the thm-4 / thm-6 covariance tensor), so that a looser *or* a tighter one fails."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import fisher_verify as fv
from fisher_verify import check_estimator
from fisher_verify._src.fisher.covariance import network_covariance as covariance
from fisher_verify._src.testing.calibrated import (
    assert_frequency_at_least,
    assert_frequency_matches,
    assert_mean_matches,
    assert_variance_matches,
    bernstein_radius,
    median_of_means_plan,
    median_of_means_radius,
)
from fisher_verify._src.testing.catoni import catoni_radius
from fisher_verify._src.testing.spread import spread_test

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_estimator_gate import _Fast, _statistic_law  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(before)


# --- frequencies: the exact binomial quantile -------------------------------------------------


FREQ_CASES = [(1000, 0.95, 1e-6), (200, 0.5, 1e-6), (3000, 0.99, 1e-6), (150, 0.8, 0.05),
              (57, 0.999, 1e-3), (40, 0.0, 1e-6), (40, 1.0, 1e-6), (10, 0.3, 0.2)]


@pytest.mark.parametrize(("trials", "p0", "alpha"), FREQ_CASES)
def test_frequency_at_least_accepts_exactly_from_the_binomial_quantile(
    trials: int, p0: float, alpha: float
) -> None:
    """``P(success) ≥ p0`` is rejected exactly when ``P(Bin(trials, p0) ≤ k) < alpha``: the
    smallest accepted count k* (scipy's cdf) passes, k* − 1 fails, and the reported threshold is
    k*/trials. A check accepting one count below k* (or requiring one above) fails here."""
    ks = np.arange(trials + 1)
    cdf = stats.binom.cdf(ks, trials, p0)
    k_star = int(ks[np.argmax(cdf >= alpha)])  # cdf(trials) = 1 >= alpha: always found
    chk = assert_frequency_at_least(k_star, trials, p0, alpha=alpha, raise_on_fail=False)
    assert chk.passed and chk.threshold == pytest.approx(k_star / trials, rel=0, abs=1e-15)
    if k_star > 0:
        below = assert_frequency_at_least(k_star - 1, trials, p0, alpha=alpha, raise_on_fail=False)
        assert not below.passed
    # the level is attained from below: the rejection region has probability < alpha
    assert (stats.binom.cdf(k_star - 1, trials, p0) if k_star > 0 else 0.0) < alpha


def test_frequency_matches_accepts_exactly_the_two_sided_region() -> None:
    """Two-sided ``P(success) = p``: accepted iff both exact tails are ≥ alpha/2 (scipy)."""
    for trials, p, alpha in [(60, 0.3, 1e-3), (200, 0.5, 1e-6), (25, 0.9, 0.05)]:
        for k in range(trials + 1):
            lo, hi = stats.binom.cdf(k, trials, p), stats.binom.sf(k - 1, trials, p)
            want = lo >= alpha / 2 and hi >= alpha / 2
            got = assert_frequency_matches(k, trials, p, alpha=alpha, raise_on_fail=False).passed
            # a tail equal to alpha/2 to rounding is not a case here (checked below)
            assert min(abs(lo - alpha / 2), abs(hi - alpha / 2)) > 1e-9 * alpha
            assert got == want, (trials, p, k)


# --- radii of the calibrated mean checks ------------------------------------------------------


@pytest.mark.parametrize(("R", "delta", "sigma"), [(200, 1e-6 / 80, 1.0), (60, 0.01, 2.5),
                                                    (5000, 1e-8, 0.3), (100, 0.2, 7.0)])
def test_catoni_radius_formula_one_and_two_sided(R: int, delta: float, sigma: float) -> None:
    """σ sqrt(2L/(R − 2L)) with L = log(2/δ) (two-sided) or log(1/δ) (one-sided)."""
    for two_sided, L in [(True, math.log(2 / delta)), (False, math.log(1 / delta))]:
        want = sigma * math.sqrt(2 * L / (R - 2 * L))
        assert catoni_radius(sigma, R, delta, two_sided) == pytest.approx(want, rel=1e-13)


def test_mean_check_thresholds_are_their_formulas() -> None:
    """``assert_mean_matches``'s threshold for every method, and ``assert_variance_matches``'s
    from the exact ``Var(D²) = μ₄ − σ⁴``."""
    x = np.random.default_rng(0).normal(0.0, 2.0, size=400)
    slack = 1e-9 * max(0.5, float(np.max(np.abs(x))))
    L = math.log(2 / 1e-4)
    chk = assert_mean_matches(x, 0.5, 4.0, alpha=1e-4, raise_on_fail=False)
    assert chk.threshold == pytest.approx(2.0 * math.sqrt(2 * L / (400 - 2 * L)) + slack, rel=1e-13)
    chk = assert_mean_matches(x, 0.5, 4.0, alpha=1e-4, method="chebyshev", raise_on_fail=False)
    assert chk.threshold == pytest.approx(2.0 / math.sqrt(400 * 1e-4) + slack, rel=1e-13)
    k, c = median_of_means_plan(1e-4, 400)
    chk = assert_mean_matches(x, 0.5, 4.0, alpha=1e-4, method="median_of_means", raise_on_fail=False)
    assert chk.threshold == pytest.approx(c * 2.0 / math.sqrt(400 // k) + slack, rel=1e-13)
    assert median_of_means_radius(2.0, 400, 1e-4) == pytest.approx(c * 2.0 / math.sqrt(400 // k))
    # the median-of-means plan: its tail is <= alpha (scipy), and k is the smallest odd count
    # that makes it so for that c (k - 2 groups would not)
    assert stats.binom.sf((k + 1) // 2 - 1, k, 1 / c**2) <= 1e-4
    if k > 1:
        assert stats.binom.sf((k - 1) // 2 - 1, k - 2, 1 / c**2) > 1e-4
    # Bernstein: 2 exp(-n r² / (2σ² + 2br/3)) = alpha at the radius
    r = bernstein_radius(2.0, 5.0, 400, 1e-4)
    assert 2 * math.exp(-400 * r * r / (2 * 4.0 + 2 * 5.0 * r / 3)) == pytest.approx(1e-4, rel=1e-10)
    # the variance check: Catoni on D² with sd sqrt(μ₄ − σ⁴) (normal: μ₄ = 3σ⁴ = 48)
    d = x - 0.0
    chk = assert_variance_matches(d, 4.0, 48.0, alpha=1e-4, raise_on_fail=False)
    slack2 = 1e-9 * max(4.0, float(np.max(d * d)))
    want = math.sqrt(48.0 - 16.0) * math.sqrt(2 * L / (400 - 2 * L)) + slack2
    assert chk.threshold == pytest.approx(want, rel=1e-13)


def test_spread_radius_subtracts_sigma_to_the_fourth() -> None:
    """The spread test's radius on E(X − μ)² is Catoni's with sd sqrt(μ₄ − σ⁴), not sqrt(μ₄)."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=(300, 3))
    var = np.array([1.0, 2.0, 0.5])
    fourth = 3 * var**2 + np.array([0.0, 1.0, 0.2])
    res = spread_test(values, np.zeros(3), var, fourth, 1e-5, np.zeros(3))
    L = math.log(2 / 1e-5)
    want = np.sqrt(fourth - var**2) * math.sqrt(2 * L / (300 - 2 * L))
    np.testing.assert_allclose(res.radius, want, rtol=1e-13)


# --- the gate's own radii, from the exact law by enumeration ----------------------------------


def test_gate_mean_and_spread_radii_from_the_enumerated_law() -> None:
    """Bernoulli network, n = 2 draws, M = 4 inputs: the exact law of each statistic by all
    2^8 label sets gives σ² and μ₄; the gate's mean radius must be σ sqrt(2L/(R − 2L)) and its
    spread radius sqrt(μ₄ − σ⁴) sqrt(2L/(R − 2L)) with L = log(2T/(0.9 alpha)), T = S + the
    number of spread tests."""
    f = _Fast("bernoulli", n=2)
    R, D = 200, 2
    rep = check_estimator(f.i1, f.net, f.x, n=2, replications=R, rng=0, directions=D)
    assert rep.method == "catoni+spread"
    P = f.net.num_params
    V = np.random.default_rng(0).normal(size=(D, P))  # the gate draws its directions first
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    tested = sum(math.isfinite(s.spread_radius) for s in rep.statistics)
    S = P + D
    assert tested == S and rep.tests == S + tested
    L = math.log(2 * rep.tests / (0.9 * 1e-6))
    factor = math.sqrt(2 * L / (R - 2 * L))
    for j in [0, 3, P - 1, P, P + 1]:
        W = np.outer(np.eye(P)[j], np.eye(P)[j]) if j < P else np.outer(V[j - P], V[j - P])
        vals, probs = _statistic_law(f, W, 2)
        mu = float(np.sum(probs * vals))
        sig2 = float(np.sum(probs * (vals - mu) ** 2))
        mu4 = float(np.sum(probs * (vals - mu) ** 4))
        s = rep.statistics[j]
        assert s.expected == pytest.approx(mu, rel=1e-10)
        assert s.sd == pytest.approx(math.sqrt(sig2), rel=1e-9)
        assert s.radius == pytest.approx(math.sqrt(sig2) * factor, rel=1e-9)
        assert s.spread_radius == pytest.approx(math.sqrt(mu4 - sig2 * sig2) * factor, rel=1e-8)


def test_constant_statistic_level_is_the_atom_bound() -> None:
    """A statistic constant at distance d from its exact mean is rejected exactly when
    (σ²/(σ² + d²))^(R−1) ≤ 0.05 alpha / S (S measurable statistics): pinned at 0.98 and 1.02
    of the distance where equality holds (R just above Catoni's range for the means and
    below it for the spreads: no spread test)."""
    f = _Fast("poisson", n=16)
    P = f.net.num_params
    R = int(math.floor(2 * math.log(2 * P / 0.9e-6))) + 1
    assert R <= 2 * math.log(2 * 2 * P / 0.9e-6)
    from fisher_verify._src.testing.gate_exact import exact_statistics

    ex = exact_statistics(f.net, f.X, 1, 16, np.zeros((0, P)), False)
    j = 5
    sig2 = float(ex.variance[j])
    d_star = math.sqrt(sig2 * (math.exp(-math.log(0.05e-6 / P) / (R - 1)) - 1.0))
    for mult, ok in [(0.98, True), (1.02, False)]:
        est = f.I.copy()
        est[j, j] += mult * d_star
        rep = check_estimator(lambda g, e=est: e, f.net, f.x, n=16, replications=R,
                                     rng=0, directions=0)
        assert rep.method == "catoni" and rep.deterministic
        assert rep.passed == ok, (mult, rep.message())


# --- the pooled tests: exact variance of the combination, level split ------------------------


@pytest.mark.parametrize("kind", [1, 2])
@pytest.mark.parametrize("diagonal_only", [False, True])
@pytest.mark.parametrize(("name", "params"), [("categorical", {"K": 3}), ("poisson", {}),
                                              ("normal_unknown_variance", {})])
def test_combination_variance_matches_the_covariance_tensor(
    kind: int, diagonal_only: bool, name: str, params: dict
) -> None:
    """Var Σ_j a_j ⟨W_j, Î⟩ = Σ_jk a_j a_k ⟨W_j ⊗ W_k, Cov(Î)⟩ (thm-4 / thm-6 tensor), and the
    statistics' covariance matrix (from the family's nodes) equals ⟨W_j ⊗ W_k, Cov(Î)⟩."""
    from fisher_verify._src.testing.gate_exact import (
        combination_variance,
        exact_statistics,
        statistics_covariance,
    )

    fam = fv.family(name, **params)
    net = fv.Network.random((3, 4, fam.dim), "tanh", fam, rng=1)
    X = np.random.default_rng(2).normal(size=(4, 3))
    P = net.num_params
    V = np.random.default_rng(4).normal(size=(3, P))
    ex = exact_statistics(net, X, kind, 7, V, diagonal_only)
    cov = covariance(net, X, kind, 7)  # type: ignore[arg-type]
    Ws = [np.diag(np.eye(P)[i]) for i in range(P)]
    Ws += [np.diag(v * v) if diagonal_only else np.outer(v, v) for v in V]
    A = np.random.default_rng(5).normal(size=(2, len(Ws)))
    got = combination_variance(ex, net.family, A)
    for a, g in zip(A, got):
        W = sum(c * Wj for c, Wj in zip(a, Ws))
        want = np.einsum("ij,ijkl,kl->", W, cov, W)
        assert g == pytest.approx(want, rel=1e-9)
    Wm = np.stack(Ws).reshape(len(Ws), -1)
    C = Wm @ cov.reshape(P * P, P * P) @ Wm.T
    got_c = statistics_covariance(ex, net.family)
    np.testing.assert_allclose(got_c, C, rtol=1e-8, atol=1e-10 * float(np.max(np.abs(C))))


def test_pooled_radii_and_standard_errors_are_their_formulas() -> None:
    """The scale test: weights K⁻¹e normalised to Σ a e = 1 (K = Σ + 0.01 Diag Σ, Σ the exact
    covariance of the statistics from the thm-4 tensor), sd sqrt(aᵀ Σ a) (correlations
    included), two-sided Catoni at alpha·0.05/2; the omnibus: the direction K⁻¹(mean − μ)
    learned on one half, one-sided at alpha·0.05/4 on the other half of R/2 replicates."""
    f = _Fast("categorical", n=16, K=3)
    R, D, P = 200, 3, f.net.num_params
    seen: list[np.ndarray] = []

    def est(g: np.random.Generator) -> np.ndarray:
        out = f.i1(g)
        seen.append(out)
        return out

    rep = check_estimator(est, f.net, f.x, n=16, replications=R, rng=0, directions=D)
    V = np.random.default_rng(0).normal(size=(D, P))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    Ws = [np.diag(np.eye(P)[i]) for i in range(P)] + [np.outer(v, v) for v in V]
    cov = covariance(f.net, f.X, 1, 16)
    C = np.array([[np.einsum("ij,ijkl,kl->", Wa, cov, Wb) for Wb in Ws] for Wa in Ws])
    e = np.array([np.sum(W * f.I) for W in Ws])
    values = np.array([[np.sum(W * m) for W in Ws] for m in seen])
    K = C + 0.01 * np.diag(np.diag(C))
    a = np.linalg.solve(K, e)
    a /= a @ e
    scale = rep.scale_test
    assert scale is not None and scale.two_sided and scale.replications == R
    L = math.log(2 / (1e-6 * 0.05 / 2))
    assert scale.sd == pytest.approx(math.sqrt(a @ C @ a), rel=1e-9)
    assert scale.radius == pytest.approx(scale.sd * math.sqrt(2 * L / (R - 2 * L)), rel=1e-12)
    assert rep.scale_se == pytest.approx(math.sqrt(a @ C @ a / R), rel=1e-9)
    assert scale.expected == pytest.approx(1.0, rel=1e-12)
    assert scale.mean == pytest.approx(float(np.mean(values @ a)), rel=1e-12)
    assert rep.scale == pytest.approx(scale.mean, rel=1e-12)
    half = R // 2
    L1 = math.log(1 / (1e-6 * 0.05 / 4))
    for name, learn, test in [("omnibus A→B", values[:half], values[half:]),
                              ("omnibus B→A", values[half:], values[:half])]:
        t = next(p for p in rep.pooled if p.name == name)
        d = np.linalg.solve(K, learn.mean(axis=0) - e)
        d /= np.max(np.abs(d))
        assert not t.two_sided and t.replications == test.shape[0]
        assert t.sd == pytest.approx(math.sqrt(d @ C @ d), rel=1e-8)
        n_t = test.shape[0]
        assert t.radius == pytest.approx(t.sd * math.sqrt(2 * L1 / (n_t - 2 * L1)), rel=1e-12)
        assert t.expected == pytest.approx(float(d @ e), rel=1e-12)
        assert t.mean == pytest.approx(float(np.mean(test @ d)), rel=1e-10)


def test_gate_median_of_means_radius_below_catonis_range() -> None:
    """R = 20: the gate's means fall back to a median of k group means; its radius is
    c σ/√(R // k) where Bin(k, 1/c²) ≥ (k+1)/2 has probability ≤ 0.9 alpha/S (scipy)."""
    f = _Fast("poisson", n=16)
    R_ = 20
    rep = check_estimator(f.i1, f.net, f.x, n=16, replications=R_, rng=0)
    S = len(rep.statistics)
    assert rep.method == "median_of_means" and rep.tests == S
    level = 0.9e-6 / S
    assert rep.alpha_per_check == pytest.approx(level, rel=1e-12)
    k, c = median_of_means_plan(level, R_)
    assert k % 2 == 1 and k <= R_
    assert stats.binom.sf((k + 1) // 2 - 1, k, 1 / c**2) <= level
    for s in rep.statistics:
        assert s.radius == pytest.approx(c * s.sd / math.sqrt(R_ // k), rel=1e-12)
