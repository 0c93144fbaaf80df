"""The families added for issue 18 (chi-square, inverse Gaussian, logarithmic, multinomial,
multivariate normal, beta) against independent routes: SciPy's distributions and special
functions, mpmath quadrature of the density, and the proven bounds their kernels rely on.

The generic suite (``tests/test_families.py``, ``tests/test_registry_families.py``,
``ext-kernel-stability``) already runs every registered family; this file pins what is new:
the exact-expectation routes built from moments, the stable special-function kernels, the
vector y and its refusals."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.special as sc
import scipy.stats as ss
import torch

import fisher_verify as fv
from fisher_verify._src.families.moment_rules import VERIFY_DIGITS, inverse_gaussian_moments
from fisher_verify._src.symbolic import polygamma as pg
from fisher_verify._src.symbolic import safe
from fisher_verify.errors import DomainError, ParameterError, ShapeError

EPS = np.finfo(float).eps


# --- proven bounds the kernels rely on ----------------------------------------------------------


def test_logarithmic_series_tail_bound() -> None:
    """The log-series is cut after J terms below θ = 1/2: the ratio of consecutive terms of
    Σ jᵐ θʲ/(j+1) (m ≤ 4) from j = J on is at most ρ = θ(1 + 1/J)⁴ < 1, and the tail is at most
    term_J · ρ/(1 − ρ), below 10⁻¹⁷ of the first term (= 1): the docstring's bound."""
    j = safe.LOGARITHMIC_TERMS
    theta = math.exp(safe.LOGARITHMIC_SWITCH)
    assert theta == pytest.approx(0.5, rel=1e-15)
    rho = theta * (1 + 1 / j) ** 4
    assert rho < 0.53
    tail = j**4 * theta**j / (j + 1) * rho / (1 - rho)
    assert tail < 1e-17
    # one term fewer would not do at this precision for m = 4: the bound is not loose by much
    assert (j - 20) ** 4 * theta ** (j - 20) / (j - 19) > 1e-17


def test_hurwitz_remainder_bound() -> None:
    """The Euler–Maclaurin remainder of ζ(s, x) after N = 2s + 12 terms and 8 Bernoulli terms is
    at most the first omitted term B₁₈/18! (s)₁₇ (x+N)^{−s−17}; the sum is at least its integral
    term (x+N)^{1−s}/(s−1), so relative to it the remainder is at most
    B₁₈/18! (s)₁₇ (s−1) (x+N)^{−18}, below 10⁻¹⁹ for every x > 0 and every s used (2..45: the
    Taylor series of the beta's kernels reaches ψ⁽⁴³⁾); with N = s + 12 it would not be."""
    b18 = 43867 / 798
    for s in range(2, 46):
        rising = math.prod(s + i for i in range(17))
        worst = b18 / math.factorial(18) * rising * (s - 1) * (2 * s + 12) ** (-18)  # x → 0⁺
        assert worst < 1e-19, s
    s = 45
    assert b18 / math.factorial(18) * math.prod(s + i for i in range(17)) * (s - 1) * (s + 12) ** (
        -18) > 1e-15


@pytest.mark.parametrize("k", [0, 1, 2, 3, 5, 12, 30])
def test_polygamma_matches_scipy(k: int) -> None:
    x = np.geomspace(1e-6, 1e6, 61)
    got = pg.np_polygamma(k, x)
    want = sc.polygamma(k, x) if k else sc.digamma(x)
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_polygamma_difference_is_stable_where_it_cancels() -> None:
    """ψ⁽ᵐ⁾(a) − ψ⁽ᵐ⁾(a+b) at a ≫ b in every backend against mpmath at 60 digits (the float
    difference of SciPy's values keeps only ~log10(b/a) + 16 digits there)."""
    tk = safe.torch_kernels()["lgamma_diff"]
    for m in (-1, 0, 1, 2, 3):
        for a in (1e-6, 0.3, 7.9, 8.1, 1e3, 1e6, 1e9):
            for b in (0.5, 2.0):
                with mpmath.workdps(60):
                    want = float(safe.MPMATH_KERNELS["lgamma_diff"](m, a, b))
                got = float(pg.np_lgamma_diff(m, np.array(a), b))
                got_t = tk(m, torch.tensor([a], dtype=torch.float64), b).item()
                assert got == pytest.approx(want, rel=1e-13), (m, a, b)
                assert got_t == pytest.approx(want, rel=1e-13), (m, a, b)
    # what the Taylor branch avoids: the float difference keeps 8 of 16 digits here
    naive = sc.polygamma(2, 1e9) - sc.polygamma(2, 1e9 + 2.0)
    exact = float(pg.np_lgamma_diff(2, np.array(1e9), 2.0))
    assert abs(naive - exact) > 1e-9 * abs(exact)


# --- exact-expectation routes built from moments -----------------------------------------------


@pytest.mark.parametrize("h", [-1e-6, -0.7, -300.0])
def test_inverse_gaussian_rule_reproduces_density_moments(h: float) -> None:
    """The Gauss rule of the inverse Gaussian (built from its Bessel-K moments in mpmath) against
    E[yᵏ], k ≤ 2n − 1, by mpmath quadrature of the density (SciPy's invgauss gives k ≤ 4 in
    closed form, higher ones by a quadrature that does not converge at h = −1e-6), near the
    boundary h → 0⁻ and far from it."""
    lam = 2.0
    fam = fv.family("inverse_gaussian", shape=lam)
    mu = math.sqrt(lam / (-2 * h))
    dist = ss.invgauss(mu / lam, scale=lam)
    t, w, bound = fam.expectation_nodes(np.array([h]), degree=8)
    assert bound == 0.0 and t.shape == (5, 1)
    assert float(np.sum(w * t[..., 0])) == pytest.approx(dist.mean(), rel=1e-12)
    assert float(np.sum(w * (t[..., 0] - mu) ** 2)) == pytest.approx(dist.var(), rel=1e-10)
    with mpmath.workdps(30):
        m, lm = mpmath.mpf(mu), mpmath.mpf(lam)

        def density(y: mpmath.mpf) -> mpmath.mpf:
            return mpmath.sqrt(lm / (2 * mpmath.pi * y**3)) * mpmath.exp(
                -lm * (y - m) ** 2 / (2 * m**2 * y))

        breaks = [0, m / 100, m / 10, m, 10 * m, 100 * m, 10**4 * m, mpmath.inf]
        for k in range(10):
            want = mpmath.quad(lambda y, k=k: density(y) * (y / m) ** k, breaks)
            got = float(np.sum(w * (t[..., 0] / mu) ** k))
            assert got == pytest.approx(float(want), rel=1e-10), k


def test_inverse_gaussian_moments_formula_against_quadrature() -> None:
    """The closed-form moments the rule is built from against mpmath quadrature of the density."""
    mu, lam = mpmath.mpf(3), mpmath.mpf(2)

    def density(y: mpmath.mpf) -> mpmath.mpf:
        return mpmath.sqrt(lam / (2 * mpmath.pi * y**3)) * mpmath.exp(-lam * (y - mu) ** 2 / (2 * mu**2 * y))

    with mpmath.workdps(30):
        moments = inverse_gaussian_moments(mu / lam, 6)
        for k in range(7):
            quad = mpmath.quad(lambda y, k=k: density(y) * (y / mu) ** k,
                               [0, 1, mu, 10 * mu, mpmath.inf])
            assert abs(quad - moments[k]) < mpmath.mpf(10) ** -20 * moments[k]


@pytest.mark.parametrize("alpha", [0.3, 5.0, 2e3])
def test_beta_rule_reproduces_density_moments(alpha: float) -> None:
    """The Gauss rule in t = −log y of beta(b) against mpmath quadrature of the beta density."""
    b = 2.0
    fam = fv.family("beta", b=b)
    t, w, _ = fam.expectation_nodes(np.array([-alpha]), degree=8)
    with mpmath.workdps(40):
        a, bb = mpmath.mpf(alpha), mpmath.mpf(b)
        norm = mpmath.beta(a, bb)
        for k in range(10):
            want = mpmath.quad(lambda s, k=k: s**k * mpmath.exp(-a * s) * (1 - mpmath.exp(-s)) ** (bb - 1),
                               [0, 1 / a, 5 / a, 20 / a, 100 / a, mpmath.inf]) / norm
            got = float(np.sum(w * t[..., 0] ** k))
            assert got == pytest.approx(float(want), rel=1e-9, abs=1e-300), k
    assert 10 ** -VERIFY_DIGITS < 1e-25


def test_beta_rule_refuses_nodes_below_float64() -> None:
    with pytest.raises(DomainError, match="e\\^\\(−700\\)"):
        fv.family("beta", b=2.0).expectation_nodes(np.array([-1e-6]), degree=4)


# --- the new families against SciPy's distributions -------------------------------------------


CASES = [
    # (family, params, h, frozen SciPy law of t(y))
    ("chi_square", {"k": 3}, -1e-6, lambda h: ss.chi2(3, scale=-0.5 / h)),
    ("chi_square", {"k": 1}, -300.0, lambda h: ss.chi2(1, scale=-0.5 / h)),
    ("inverse_gaussian", {"shape": 2.0}, -1e-6,
     lambda h: ss.invgauss(math.sqrt(2.0 / (-2 * h)) / 2.0, scale=2.0)),
    ("inverse_gaussian", {"shape": 0.5}, -40.0,
     lambda h: ss.invgauss(math.sqrt(0.5 / (-2 * h)) / 0.5, scale=0.5)),
    ("logarithmic", {}, -1e-3, lambda h: ss.logser(math.exp(h))),
    ("logarithmic", {}, -0.6931, lambda h: ss.logser(math.exp(h))),
    ("logarithmic", {}, -25.0, lambda h: ss.logser(math.exp(h))),
]


@pytest.mark.parametrize(("name", "params", "h", "law"), CASES,
                         ids=[f"{c[0]}{c[1]}@{c[2]}" for c in CASES])
def test_mean_and_variance_match_scipy(name, params, h, law) -> None:
    fam = fv.family(name, **params)
    dist = law(h)
    hv = np.array([h])
    assert fam.mean(hv)[0] == pytest.approx(dist.mean(), rel=1e-12)
    assert fam.fisher(hv)[0, 0] == pytest.approx(dist.var(), rel=1e-9)


def test_logarithmic_small_theta_keeps_relative_accuracy() -> None:
    """At h = −40 (θ = 4e-18) the variance θ/2 + O(θ²) is kept to full relative accuracy (the
    closed form would give 0 or noise: it cancels terms of order 1)."""
    fam = fv.family("logarithmic")
    theta = math.exp(-40.0)
    var = fam.fisher(np.array([-40.0]))[0, 0]
    assert var == pytest.approx(theta / 2 + theta**2 * (1 / 3 - 1 / 4), rel=1e-14)
    k4 = fam.kappa4(np.array([-40.0]))[0, 0, 0, 0]
    assert k4 == pytest.approx(theta / 2, rel=1e-12)


def test_multinomial_against_scipy() -> None:
    fam = fv.family("multinomial", n=7, K=3)
    h = np.array([0.3, -1.2, 0.5])
    p = np.exp(h) / np.exp(h).sum()
    dist = ss.multinomial(7, p)
    np.testing.assert_allclose(fam.mean(h), 7 * p, rtol=1e-13)
    np.testing.assert_allclose(fam.fisher(h), dist.cov(), rtol=1e-12, atol=1e-14)
    ys = np.array([[7, 0, 0], [2, 3, 2], [0, 0, 7]], dtype=float)
    logp = fam.log_density(ys, h)
    np.testing.assert_allclose(logp, dist.logpmf(ys), rtol=1e-12)


def test_multivariate_normal_against_scipy() -> None:
    cov = [[2.0, 0.6], [0.6, 1.0]]
    fam = fv.family("multivariate_normal", cov=cov)
    h = np.array([0.3, -0.4])
    mean = np.array(cov) @ h
    np.testing.assert_allclose(fam.mean(h), mean, rtol=1e-14)
    np.testing.assert_allclose(fam.fisher(h), cov, rtol=1e-14)
    assert np.all(fam.kappa4(h) == 0.0)  # F is quadratic: its fourth derivative is the zero polynomial
    ys = np.array([[0.0, 0.0], [1.5, -2.0]])
    np.testing.assert_allclose(fam.log_density(ys, h), ss.multivariate_normal(mean, cov).logpdf(ys),
                               rtol=1e-13)


# --- vector y: its input checks --------------------------------------------------------------


def test_vector_labels_are_checked() -> None:
    fam = fv.family("multinomial", n=3, K=3)
    fam.check_labels(np.array([[1, 2, 0], [0, 0, 3]]))
    with pytest.raises(DomainError, match="Σ y = 3"):
        fam.check_labels(np.array([[1, 1, 0]]))
    with pytest.raises(DomainError, match="integers"):
        fam.check_labels(np.array([[1.5, 1.5, 0]]))
    with pytest.raises(ShapeError, match="last axis of size 3"):
        fam.statistic(np.array([1, 2]))
    mvn = fv.family("multivariate_normal")
    with pytest.raises(DomainError, match="not a value"):
        mvn.check_labels(np.array([[np.nan, 0.0]]))


def test_matrix_parameter_given_as_list_array_or_json_is_the_same_family() -> None:
    a = fv.family("multivariate_normal", cov=[[2.0, 0.6], [0.6, 1.0]])
    b = fv.family("multivariate_normal", cov=np.array([[2.0, 0.6], [0.6, 1.0]]))
    c = fv.family("multivariate_normal", cov="[[2.0, 0.6], [0.6, 1.0]]")
    assert a is b is c
    assert a.params["cov"] == ((2.0, 0.6), (0.6, 1.0))  # kept as given


@pytest.mark.parametrize(("cov", "fragment"), [
    ([[1.0, 0.5], [0.4, 1.0]], "not symmetric"),
    ([[1.0, 2.0], [2.0, 1.0]], "not positive definite"),
    ([[1.0, 0.0]], "square"),
    ([[1.0, float("nan")], [float("nan"), 1.0]], "finite"),
    ("[[1, 0], [0", "not a matrix"),
    (np.eye(9), "at most 8"),
])
def test_bad_covariance_is_refused(cov, fragment) -> None:
    with pytest.raises(ParameterError, match=fragment):
        fv.family("multivariate_normal", cov=cov)


@pytest.mark.parametrize(("params", "fragment"), [
    ({"n": 0, "K": 3}, "n=0"), ({"n": 3, "K": 1}, "K=1"), ({"n": 3, "K": 9}, "<= 8"),
    ({"n": 2**53 + 1, "K": 2}, "2\\*\\*53"),
])
def test_bad_multinomial_parameters_are_refused(params, fragment) -> None:
    with pytest.raises(ParameterError, match=fragment):
        fv.family("multinomial", **params)


def test_domains_are_refused_by_name() -> None:
    for name, params in (("chi_square", {}), ("inverse_gaussian", {}), ("logarithmic", {}),
                         ("beta", {})):
        with pytest.raises(DomainError, match="must be < 0"):
            fv.family(name, **params).mean(np.array([0.0]))
    with pytest.raises(ParameterError):
        fv.family("chi_square", k=2.5)
    with pytest.raises(ParameterError):
        fv.family("beta", b=0)


def test_torch_kernels_with_irrational_constants() -> None:
    """shape = 5 makes the inverse Gaussian's F(h) = −sqrt(10)·sqrt(−h): an exact constant
    that the torch printer once emitted as ``torch.sqrt(10)`` (a TypeError). The torch kernels
    must agree with the NumPy ones."""
    import torch

    fam = fv.family("inverse_gaussian", shape=5)
    h = np.array([[-0.0182], [-0.042], [-3.5]])
    for quantity in ("log_partition", "mean", "fisher", "kappa3", "kappa4"):
        want = getattr(fam, quantity)(h)
        got = getattr(fam, quantity)(torch.tensor(h), "torch").numpy()
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
