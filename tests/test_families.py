"""Every family of the catalog passes the same suite (issue 2).

Independent routes: moments computed in mpmath from the family's own density
(``Family.moment_mp`` sums or integrates t(y)·b(y)·e^{t·h}; it never touches F), SymPy's
own derivative of the textbook log-partition evaluated in mpmath at 60 digits (checks the
hand-written derivative rules of the stable functions at extreme h), SciPy's quadrature
nodes, and calibrated Monte Carlo tests of the samplers.
"""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fisher_verify as fv
from fisher_verify._src.families.registry import family_examples
from fisher_verify._src.symbolic.safe import to_naive
from fisher_verify._src.testing.calibrated import assert_mean_matches, bonferroni
from fisher_verify.errors import DomainError, FisherVerifyError, ParameterError, ShapeError, UnknownFamilyError

# (name, params, range of each natural-parameter component in which float64 values exist): every
# family of the registry at its example parameters (``family_examples``: a family registered once
# is tested here without editing this list), then other parameter values and a product
CATALOG = [(name, dict(ex.params), list(ex.ranges)) for name, ex in family_examples()] + [
    ("normal", {}, [(-1e6, 1e6)]),
    ("normal", {"sigma": 0.5}, [(-1e4, 1e4)]),
    ("categorical", {"K": 2}, [(-1000.0, 1000.0)] * 2),
    ("categorical", {"K": 4}, [(-1000.0, 1000.0)] * 4),
    ("gamma", {"shape": 3}, [(-1e6, -1e-6)]),
    ("weibull", {"shape": 40}, [(-1e6, -1e-6)]),
    ("inverse_gamma", {"shape": 0.5}, [(-1e6, -1e-6)]),
    ("lognormal", {"sigma": 2.0}, [(-1e4, 1e4)]),
    (
        "product",
        {"components": [fv.family("bernoulli"), fv.family("normal_unknown_variance")]},
        [(-700.0, 700.0), (-100.0, 100.0), (-100.0, -1e-3)],
    ),
]
POINTS = {name: list(ex.point) for name, ex in family_examples()}
IDS = [f"{n}{p or ''}" if n != "product" else "product(bernoulli,normal_uv)" for n, p, _ in CATALOG]
MODERATE = 3.0  # |h| range for comparisons against moments of the density


def _fam(name: str, params: dict) -> fv.Family:
    return fv.family(name, **params)


def _moderate(ranges: list[tuple[float, float]]) -> st.SearchStrategy[list[float]]:
    comps = []
    for lo, hi in ranges:
        lo_m, hi_m = max(lo, -MODERATE), min(hi, MODERATE)
        if hi < 0:
            hi_m = min(hi_m, -0.05)  # keep away from the boundary, where series converge slowly
        comps.append(st.floats(lo_m, hi_m, allow_nan=False))
    return st.tuples(*comps).map(list)


def _extreme(ranges: list[tuple[float, float]]) -> st.SearchStrategy[list[float]]:
    return st.tuples(*[st.floats(lo, hi, allow_nan=False) for lo, hi in ranges]).map(list)


def _density_moments(fam: fv.Family, h: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """E[t], Cov(t) and the 4th central moment, each from the density in mpmath."""
    d = fam.dim
    hs = [mpmath.mpf(v) for v in h]
    mean = np.zeros(d)
    cov = np.zeros((d, d))
    k4 = np.zeros((d,) * 4)
    for a in range(d):
        p = [0] * d
        p[a] = 1
        mean[a] = float(fam.moment_mp(tuple(p), hs, center=False))
    import itertools

    for idx in itertools.combinations_with_replacement(range(d), 2):
        p = [0] * d
        for i in idx:
            p[i] += 1
        cov[idx] = cov[idx[::-1]] = float(fam.moment_mp(tuple(p), hs))
    for idx in itertools.combinations_with_replacement(range(d), 4):
        p = [0] * d
        for i in idx:
            p[i] += 1
        v = float(fam.moment_mp(tuple(p), hs))
        for perm in set(itertools.permutations(idx)):
            k4[perm] = v
    return mean, cov, k4


def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol_rel: float = 1e-12) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(1.0, float(np.max(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol_rel * scale)


@pytest.mark.parametrize(("name", "params", "ranges"), CATALOG, ids=IDS)
# mpmath sums and integrals are slow: a quarter of the profile's examples (6 in "ci", 75 in "thorough")
@settings(
    max_examples=max(1, settings.default.max_examples // 4),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_kernels_match_density_moments_in_every_backend(name, params, ranges, data) -> None:
    """η, I and K from the generated kernels (NumPy, PyTorch, mpmath) equal the density's moments."""
    fam = _fam(name, params)
    h = data.draw(_moderate(ranges), label="h")
    with mpmath.workdps(30):
        mean, cov, k4 = _density_moments(fam, h)
    hn = np.asarray(h)
    ht = torch.tensor(h, dtype=torch.float64)
    hm = [mpmath.mpf(v) for v in h]
    for got_mean, got_cov, got_k4 in (
        (fam.mean(hn), fam.fisher(hn), fam.central_moment4(hn)),
        (fam.mean(ht).numpy(), fam.fisher(ht).numpy(), fam.central_moment4(ht).numpy()),
        (fam.mean(hm), fam.fisher(hm), fam.central_moment4(hm)),
    ):
        _close(np.asarray(got_mean, dtype=float), mean, 1e-9)
        _close(np.asarray(got_cov, dtype=float), cov, 1e-9)
        _close(np.asarray(got_k4, dtype=float), k4, 1e-8)


_NAIVE_CACHE: dict[str, list] = {}
ALL_QUANTITIES = ("log_partition", "mean", "fisher", "kappa3", "kappa4", "central_moment4")


def _naive_derivatives(fam: fv.Family) -> list[tuple[tuple[int, ...], object]]:
    """SymPy's derivatives of the textbook F (no stable functions), orders 0 to 4, for mpmath."""
    key = fam.label
    if key not in _NAIVE_CACHE:
        naive_f = to_naive(fam.definition.log_partition)
        out = []
        for order in range(5):
            for idx in itertools.combinations_with_replacement(range(fam.dim), order):
                expr = sp.diff(naive_f, *[fam.definition.h[i] for i in idx]) if idx else naive_f
                out.append((idx, sp.lambdify(fam.definition.h, expr, "mpmath")))
        _NAIVE_CACHE[key] = out
    return _NAIVE_CACHE[key]


def _expected_at(fam: fv.Family, h: list[float]) -> dict[str, dict[tuple[int, ...], float]]:
    """Every quantity's distinct entries from the textbook derivatives, K by lemma-5 from them."""
    # The textbook form cancels terms of size e^{4|h|}: carry that many digits and 30 more. Families
    # whose h reaches 10⁶ (normal, gamma, …) are rational in h and cancel nothing: 3000 suffice.
    digits = min(30 + int(4 * max(abs(v) for v in h) / 2.3), 3000)
    if not to_naive(fam.definition.log_partition).has(sp.exp):
        # no exponential of h in the textbook form (log ₀F₁, log Γ, polynomials): its
        # cancellations are powers of |h|, 5 digits per decade (₀F₁ at 3000 digits takes minutes)
        digits = 60 + int(5 * math.log10(1.0 + max(abs(v) for v in h)))
    names = {0: "log_partition", 1: "mean", 2: "fisher", 3: "kappa3", 4: "kappa4"}
    out: dict[str, dict[tuple[int, ...], float]] = {q: {} for q in ALL_QUANTITIES}
    with mpmath.workdps(digits):
        hm = [mpmath.mpf(v) for v in h]
        raw = {idx: fn(*hm) for idx, fn in _naive_derivatives(fam)}

        def i2(a: int, b: int) -> object:
            return raw[tuple(sorted((a, b)))]

        for idx, value in raw.items():
            out[names[len(idx)]][idx] = float(value)
            if len(idx) == 4:
                a, b, c, d = idx
                k = value + i2(a, b) * i2(c, d) + i2(a, c) * i2(b, d) + i2(a, d) * i2(b, c)
                out["central_moment4"][idx] = float(k)
    return out


@pytest.mark.parametrize(("name", "params", "ranges"), CATALOG, ids=IDS)
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_kernels_stable_at_extreme_parameters(name, params, ranges, data) -> None:
    """Finite and correct over the whole float64 range, every kernel in every backend: stable
    kernels vs SymPy's derivatives of the textbook F, evaluated in mpmath with enough digits to
    survive the textbook form's cancellations."""
    fam = _fam(name, params)
    h = data.draw(_extreme(ranges), label="h")
    expected = _expected_at(fam, h)
    inputs = {
        "numpy": np.asarray(h),
        "torch": torch.tensor(h, dtype=torch.float64),
        "mpmath": [mpmath.mpf(v) for v in h],
    }
    for backend, hb in inputs.items():
        got = {q: np.asarray(getattr(fam, q)(hb), dtype=float) for q in ALL_QUANTITIES}
        sd = np.sqrt(np.maximum(np.diagonal(got["fisher"]), 0.0))
        for q in ALL_QUANTITIES:
            for idx, exp_value in expected[q].items():
                value = float(got[q][idx])
                assert math.isfinite(value), f"{backend} {q}{idx} at h={h} is {value}"
                # An entry that cancels (κ₄ near a root, a cross-cumulant of a rare class) is
                # judged on its natural scale Π sd(t_i): a backward-stable formula errs by ε·that.
                natural = float(np.prod(sd[list(idx)])) if len(idx) >= 2 else 0.0
                ref = max(abs(exp_value), natural, 1e-300)
                assert abs(value - exp_value) <= 1e-9 * ref, f"{backend} {q}{idx} at h={h}: {value} vs {exp_value}"


def test_issue_extremes_bernoulli_and_categorical() -> None:
    """The two cases the issue names: Bernoulli at h = ±700, categorical logits ±1000."""
    b = fv.family("bernoulli")
    fisher = b.fisher(np.array([[700.0], [-700.0]]))[:, 0, 0]
    expected = float(mpmath.exp(-700) / (1 + mpmath.exp(-700)) ** 2)
    np.testing.assert_allclose(fisher, [expected, expected], rtol=1e-12)
    assert np.all(np.isfinite(b.kappa4(np.array([[700.0], [-700.0]]))))
    c = fv.family("categorical", K=3)
    h = np.array([1000.0, -1000.0, 999.0])
    with mpmath.workdps(50):
        z = mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in h)
        p = [float(mpmath.exp(mpmath.mpf(v)) / z) for v in h]
    expected_i = np.diag(p) - np.outer(p, p)
    np.testing.assert_allclose(c.fisher(h), expected_i, rtol=1e-12, atol=1e-300)
    assert np.all(np.isfinite(c.central_moment4(h)))
    np.testing.assert_allclose(c.log_partition(h), 1000.0 + math.log1p(math.exp(-1.0)), rtol=1e-15)


@pytest.mark.parametrize(("name", "params", "ranges"), CATALOG, ids=IDS)
def test_sampler_mean_and_variance_calibrated(name, params, ranges) -> None:
    """Sample mean of t and of (t-η)² match η and I; thresholds from the exact variances
    (Var t = I, Var (t-η)² = K - I²) at a false-alarm rate of 1e-6 per family."""
    fam = _fam(name, params)
    rng = np.random.default_rng(20211206)
    h = np.array(
        [
            min(max(0.3 * (i + 1) * (-1) ** i, lo + 0.5), hi - 0.1 if hi < 0 else hi)
            for i, (lo, hi) in enumerate(ranges)
        ]
    )
    if fam.definition.negative and name in POINTS:
        h = np.array(POINTS[name])  # the registry's point: inside the domain, not at its edge
    if name == "product":
        h = np.array([0.3, 0.4, -0.6])
    t = fam.sample_statistic(h, 40_000, rng)
    eta, fisher, k4 = fam.mean(h), fam.fisher(h), fam.central_moment4(h)
    alpha = bonferroni(1e-6, 2 * fam.dim)
    for a in range(fam.dim):
        assert_mean_matches(
            t[:, a], eta[a], fisher[a, a], alpha=alpha, what=f"{fam.label} E[t_{a}]"
        )
        dev2 = (t[:, a] - eta[a]) ** 2
        assert_mean_matches(
            dev2,
            fisher[a, a],
            k4[a, a, a, a] - fisher[a, a] ** 2,
            alpha=alpha,
            what=f"{fam.label} E[(t_{a}-η)²]",
        )


def test_calibrated_sampler_check_can_fail() -> None:
    """The sampler check rejects a sampler that is off by a little (a biased Poisson)."""
    fam = fv.family("poisson")
    rng = np.random.default_rng(1)
    t = fam.sample_statistic(np.array([np.log(5.0) + 0.05]), 40_000, rng)[:, 0]
    with pytest.raises(AssertionError):
        assert_mean_matches(t, 5.0, 5.0, alpha=1e-6)


@pytest.mark.parametrize(("name", "params", "ranges"), CATALOG, ids=IDS)
def test_identities_hold(name, params, ranges) -> None:
    """log-partition, lemma-2, lemma-5, remark-5.1, table-1, fig-1 and the stable kernels hold."""
    from fisher_verify._src.identities import prove_family

    results = prove_family(_fam(name, params), seconds=10)
    ids = {r.statement_id for r in results}
    assert {"log-partition", "lemma-2", "lemma-5", "stable-kernels"} <= ids
    for r in results:
        assert r.holds, f"{r.statement_id}: {r.detail}"
        assert r.method.startswith(("symbolic", "mpmath"))


def test_identity_prover_rejects_a_wrong_cumulant() -> None:
    """The prover is able to fail: a family whose F is off by a factor is refuted."""
    from dataclasses import replace

    from fisher_verify._src.families.family import Family
    from fisher_verify._src.identities import prove_family

    good = fv.family("poisson").definition
    bad = Family(
        replace(good, name="poisson_wrong", log_partition=sp.exp(good.h[0]) * sp.Rational(11, 10))
    )
    results = {r.statement_id: r for r in prove_family(bad, seconds=5)}
    assert not results["log-partition"].holds
    assert not results["lemma-2"].holds


def test_table_1_and_fig_1_claims() -> None:
    from fisher_verify._src.identities import prove_family

    for name in ("bernoulli", "normal", "poisson"):
        results = prove_family(fv.family(name))
        assert any(
            r.statement_id == "table-1" and "Table 1" in r.claim and r.holds for r in results
        )
        assert any(r.statement_id == "fig-1" and r.holds for r in results)


# --- shapes, batching, torch ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params", "ranges"), CATALOG, ids=IDS)
def test_batched_shapes_and_torch_equals_numpy(name, params, ranges) -> None:
    fam = _fam(name, params)
    rng = np.random.default_rng(0)
    lo = np.array([max(r[0], -2.0) for r in ranges])
    hi = np.array([min(r[1], 2.0) for r in ranges])
    h = rng.uniform(lo, hi, size=(2, 3, fam.dim))
    d = fam.dim
    assert fam.log_partition(h).shape == (2, 3)
    assert fam.mean(h).shape == (2, 3, d)
    assert fam.fisher(h).shape == (2, 3, d, d)
    assert fam.kappa4(h).shape == (2, 3, d, d, d, d)
    assert fam.central_moment4(h).shape == (2, 3, d, d, d, d)
    # a product's y and a vector family's y (multinomial counts) carry a last axis
    y_shape = ((len(params["components"]),) if name == "product"
               else (len(fam.definition.event),) if fam.definition.event else ())
    assert fam.sample(h, 5, rng).shape == (5, 2, 3, *y_shape)
    ht = torch.tensor(h)
    for q in ("log_partition", "mean", "fisher", "kappa3", "kappa4", "central_moment4"):
        np.testing.assert_allclose(
            getattr(fam, q)(ht).numpy(), getattr(fam, q)(h), rtol=1e-12, atol=1e-300
        )
    # torch kernels are differentiable: ∂F/∂h = η by autograd
    ht.requires_grad_(True)
    (grad,) = torch.autograd.grad(fam.log_partition(ht).sum(), ht)
    np.testing.assert_allclose(grad.numpy(), fam.mean(h), rtol=1e-12)


def test_categorical_onehot_route_matches_symbolic_route() -> None:
    from fisher_verify._src.families.onehot import onehot_cumulant_dense

    rng = np.random.default_rng(3)
    for k in range(2, 7):
        fam = fv.family("categorical", K=k)
        h = rng.normal(size=(4, k)) * 3
        p = fam.mean(h)
        for order, q in ((2, "fisher"), (3, "kappa3"), (4, "kappa4")):
            np.testing.assert_allclose(
                onehot_cumulant_dense(p, order), getattr(fam, q)(h), atol=1e-15
            )
        u, v, w, z = rng.normal(size=(4, 4, k))
        dense = np.einsum("...abcd,...a,...b,...c,...d->...", fam.kappa4(h), u, v, w, z)
        np.testing.assert_allclose(
            fam.kappa4_contract(h, u, v, w, z), dense, rtol=1e-12, atol=1e-14
        )


def test_categorical_large_k_contraction_is_linear_and_correct() -> None:
    """K = 40: the O(K) contraction equals brute force over the one-hot support."""
    k = 40
    fam = fv.family("categorical", K=k)
    rng = np.random.default_rng(5)
    h = rng.normal(size=k)
    p = np.exp(h - h.max())
    p /= p.sum()
    vecs = rng.normal(size=(4, k))
    # brute force: joint cumulant from E over the K outcomes of products of centred ⟨t, v⟩
    x = vecs.T - p @ vecs.T  # centred values of ⟨t, v_i⟩ at each outcome, shape (K, 4)
    m4 = np.sum(p * x[:, 0] * x[:, 1] * x[:, 2] * x[:, 3])
    c = [[np.sum(p * x[:, i] * x[:, j]) for j in range(4)] for i in range(4)]
    expected = m4 - c[0][1] * c[2][3] - c[0][2] * c[1][3] - c[0][3] * c[1][2]
    np.testing.assert_allclose(fam.kappa4_contract(h, *vecs), expected, rtol=1e-12)
    assert fam.fisher(h).shape == (k, k)
    np.testing.assert_allclose(fam.fisher(h), np.diag(p) - np.outer(p, p), atol=1e-15)


def test_categorical_very_large_k_needs_no_symbolic_derivation() -> None:
    """K = 1000 works without differentiating logsumexp symbolically (which would take hours);
    mpmath, whose kernels come only from the symbolic route, is refused with a message."""
    from fisher_verify.errors import UnsupportedError

    k = 1000
    fam = fv.family("categorical", K=k)
    h = np.random.default_rng(6).normal(size=(2, k))
    lse = np.log(np.sum(np.exp(h), axis=-1))
    np.testing.assert_allclose(fam.log_partition(h), lse, rtol=1e-13)
    np.testing.assert_allclose(fam.mean(h), np.exp(h - lse[:, None]), rtol=1e-12)
    assert "derivation" not in fam.__dict__
    with pytest.raises(UnsupportedError, match="K <= 8"):
        fam.fisher([mpmath.mpf(0)] * k)


def test_product_family_blocks_and_expectations() -> None:
    b, n2, po = fv.family("bernoulli"), fv.family("normal_unknown_variance"), fv.family("poisson")
    prod = fv.product(b, n2, po)
    assert prod.dim == 4
    h = np.array([0.3, 0.5, -0.7, 0.2])
    fisher = prod.fisher(h)
    np.testing.assert_allclose(fisher[0, 0], b.fisher(h[:1])[0, 0])
    np.testing.assert_allclose(fisher[1:3, 1:3], n2.fisher(h[1:3]))
    assert fisher[0, 1] == 0 and fisher[3, 1] == 0
    eta = prod.mean(h)
    t, w, _ = prod.expectation_nodes(h, 4)
    c = t - eta
    k_nodes = np.einsum("s,sa,sb,sc,sd->abcd", w, c, c, c, c)
    np.testing.assert_allclose(prod.central_moment4(h), k_nodes, atol=1e-12)
    y = prod.sample(h, 7, np.random.default_rng(0))
    assert y.shape == (7, 3) and prod.statistic(y).shape == (7, 4)
    assert fv.family("product", components=[b, po]).label == "product(bernoulli, poisson)"


def test_gauss_laguerre_against_scipy() -> None:
    from scipy.special import roots_genlaguerre

    from fisher_verify._src.families.quadrature import gauss_laguerre

    for m, alpha in ((3, 0.0), (5, 2.0), (4, 0.5)):
        x, w = gauss_laguerre(m, alpha)
        xs, ws = roots_genlaguerre(m, alpha)
        np.testing.assert_allclose(x, xs, rtol=1e-12)
        np.testing.assert_allclose(w, ws, rtol=1e-10)


@example(h=-1e-3)
@example(h=-700.0)
@given(h=st.floats(-50, -1e-3))
def test_series_tail_bound_is_an_upper_bound(h: float) -> None:
    """The truncated geometric series leaves at most the stated tail mass (exact mean q/(1-q))."""
    fam = fv.family("geometric")
    t, w, tail = fam.expectation_nodes(np.array([h]), degree=4)
    q = math.exp(h)
    true_mean = q / (1 - q)
    assert abs(float(np.sum(w)) - 1.0) <= 1e-9 + tail
    assert abs(float(np.sum(w * t[:, 0])) - true_mean) <= 1e-9 * max(1.0, true_mean) + tail


def test_series_refuses_a_distribution_too_spread_to_sum() -> None:
    """Mean 10⁶ would need ~10⁸ terms: refused with a message, not silently truncated."""
    with pytest.raises(DomainError, match="too spread out"):
        fv.family("geometric").expectation_nodes(np.array([-1e-6]), degree=4)


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (lambda: fv.family("gauss"), UnknownFamilyError, "known families: bernoulli"),
        (lambda: fv.family("binomial", n=0), ParameterError, "n=0"),
        (lambda: fv.family("binomial", n=2.5), ParameterError, "integer"),
        (lambda: fv.family("normal", sigma=-1), ParameterError, "sigma"),
        (lambda: fv.family("normal", sigma=float("nan")), ParameterError, "sigma"),
        (lambda: fv.family("categorical", K=1), ParameterError, "K=1"),
        (lambda: fv.family("negative_binomial", r=0), ParameterError, "r=0"),
        (lambda: fv.family("gamma", shape=-2), ParameterError, "shape"),
        (lambda: fv.family("bernoulli", p=0.3), ParameterError, "no parameter p"),
        (lambda: fv.family("geometric").fisher(np.array([0.5])), DomainError, "h < 0"),
        (
            lambda: fv.family("normal_unknown_variance").mean(np.array([0.0, 1.0])),
            DomainError,
            "h2",
        ),
        (lambda: fv.family("bernoulli").fisher(np.array([np.nan])), DomainError, "NaN"),
        (lambda: fv.family("categorical", K=3).fisher(np.zeros(2)), ShapeError, "size 3"),
        (lambda: fv.family("poisson").symbolic("kurtosis"), FisherVerifyError, "valid: log_partition"),
        (lambda: fv.family("poisson").kernel("fisher", "jax"), FisherVerifyError, "numpy, torch, mpmath"),
        (lambda: fv.family("poisson").sample(np.zeros(1), 0, np.random.default_rng()), ValueError, ">= 1"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, fragment) -> None:
    with pytest.raises(error, match=None) as info:
        call()
    assert fragment in str(info.value)


def test_parameters_are_not_changed() -> None:
    fam = fv.family("negative_binomial", r=2.5)
    assert fam.params == {"r": 2.5}
    assert fv.family("normal", sigma=0.5).params["sigma"] == 0.5


def test_derivation_is_cached_in_memory_and_on_disk(tmp_path, monkeypatch) -> None:
    from fisher_verify._src.families import family as cache

    monkeypatch.setenv("FISHER_VERIFY_CACHE", str(tmp_path))
    monkeypatch.setattr(cache, "_MEMO", {})
    definition = fv.family("binomial", n=3).definition
    first = cache.cached_derivation(definition)
    assert cache.cached_derivation(definition) is first
    files = list(tmp_path.glob("binomial-*.pkl"))
    assert len(files) == 1
    monkeypatch.setattr(cache, "_MEMO", {})
    again = cache.cached_derivation(definition)
    assert (
        again is not first
        and sp.simplify(again.kappa4[(0, 0, 0, 0)] - first.kappa4[(0, 0, 0, 0)]) == 0
    )
    files[0].write_bytes(b"not a pickle")
    monkeypatch.setattr(cache, "_MEMO", {})
    assert cache.cached_derivation(definition).fisher[(0, 0)] == first.fisher[(0, 0)]


def test_import_does_not_derive() -> None:
    import subprocess
    import sys

    code = "import fisher_verify, sys; print('fisher_verify._src.symbolic.derive' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- parameters at any size: proofs for every value, bounded time, refusals ----------------------


def test_generic_proof_is_not_borrowed_by_an_edited_definition() -> None:
    """A catalog name with a wrong F is proved as written, not through the generic proof."""
    from dataclasses import replace

    from fisher_verify._src.families.family import Family
    from fisher_verify._src.identities import prove_family

    good = fv.family("binomial", n=5)
    bad = Family(replace(good.definition, log_partition=good.definition.log_partition * 2))
    results = {r.statement_id: r for r in prove_family(bad, seconds=5)}
    assert not results["log-partition"].holds
    right = {r.statement_id: r for r in prove_family(good)}
    assert right["lemma-5"].holds and "for every n" in right["lemma-5"].detail


def test_categorical_lumping_argument_numerically() -> None:
    """The reduction behind the every-K proof: an entry of categorical(K) over classes 0..3 is
    categorical(5)'s (symbolic kernel) with h_4 = logsumexp(h_4..h_{K-1}); categorical(12) here
    comes from the one-hot moments, an independent route."""
    from fisher_verify._src.identities.generic import canonical_entries

    assert canonical_entries(4) == [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1), (0, 0, 1, 2), (0, 1, 2, 3)]
    assert canonical_entries(2) == [(0, 0), (0, 1)]
    rng = np.random.default_rng(3)
    h = rng.normal(size=12) * 2
    lumped = np.append(h[:4], np.logaddexp.reduce(h[4:]))
    big, carrier = fv.family("categorical", K=12), fv.family("categorical", K=5)
    for q in ("fisher", "kappa3", "kappa4", "central_moment4"):
        a, b = getattr(big, q)(h), getattr(carrier, q)(lumped)
        for idx in canonical_entries(a.ndim):
            assert abs(a[idx] - b[idx]) <= 1e-13 * max(1.0, abs(b[idx])), (q, idx)


def test_huge_parameters_build_and_compute_without_enumerating() -> None:
    from fisher_verify.errors import UnsupportedError

    fam = fv.family("binomial", n=10**9)
    np.testing.assert_allclose(fam.fisher(np.zeros((1, 1)))[0, 0, 0], 10**9 / 4, rtol=1e-15)
    with pytest.raises(UnsupportedError, match="limit is 1000000"):
        fam.expectation_nodes(np.zeros(1))
    with pytest.raises(ParameterError, match="2\\*\\*53"):
        fv.family("binomial", n=2**53 + 1)
    with pytest.raises(ParameterError, match="<= 100000"):
        fv.family("categorical", K=10**5 + 1)
    cat = fv.family("categorical", K=1000)
    with pytest.raises(UnsupportedError, match="K <= 8"):
        cat.derivation  # noqa: B018 - the property is what is refused
    h = np.linspace(-1, 1, 1000)
    p = np.exp(h) / np.exp(h).sum()
    np.testing.assert_allclose(cat.fisher(h)[3, 3], p[3] * (1 - p[3]), rtol=1e-12)
    gam = fv.family("gamma", shape=1e308)
    assert gam.mean(np.array([-2.0]))[0] == pytest.approx(5e307, rel=1e-15)
    # a quadrature rule that needs no Γ(shape) (which overflows past shape 171)
    t, w, _ = fv.family("gamma", shape=500.0).expectation_nodes(np.array([-1.0]), 2)
    assert np.sum(w) == pytest.approx(1.0, rel=1e-12)
    assert np.sum(w * t[..., 0]) == pytest.approx(500.0, rel=1e-12)


def _derive(capsys, *argv: str) -> tuple[int, str]:
    from fisher_verify.cli import main

    code = main(["derive", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_derive_answers_at_extreme_parameters(capsys) -> None:
    code, out = _derive(capsys, "binomial", "--param", "n=1000000000")
    assert code == 0 and "for every n a positive integer" in out and "Traceback" not in out
    code, out = _derive(capsys, "gamma", "--param", "shape=1e308", "--at", "-2")
    assert code == 0 and "5.e+307" in out and "Traceback" not in out
    code, out = _derive(capsys, "categorical", "--param", "K=100000")
    assert code == 2 and "K <= 8" in out and "every K" in out


def test_derive_refuses_a_repeated_parameter(capsys) -> None:
    code, out = _derive(capsys, "binomial", "--param", "n=5", "--param", "n=7")
    assert code == 2 and "--param n is given twice" in out


def test_derive_latex_is_valid(capsys) -> None:
    """Every printed name renders in matplotlib's mathtext, which rejects what LaTeX and KaTeX
    reject here (a double subscript such as \\kappa_4_{0000}, shown to fail first)."""
    import io
    import re

    from matplotlib.mathtext import math_to_image

    with pytest.raises(ValueError):
        math_to_image(r"$\kappa_4_{0000}$", io.BytesIO(), format="png")
    code, out = _derive(capsys, "categorical", "--param", "K=2", "--format", "latex", "--no-proofs")
    assert code == 0
    names = [line.split(" = ")[0] for line in out.splitlines() if " = " in line]
    assert any(n.startswith(r"\kappa_{4,") for n in names) and len(names) > 10
    for name in names:
        assert not re.search(r"_(\{[^{}]*\}|\w)_", name), name
        math_to_image(f"${name}$", io.BytesIO(), format="png")


@pytest.mark.parametrize("name", ["gamma", "binomial"])
def test_parameter_generic_prover_can_fail(name: str) -> None:
    """With the parameter a symbol there is no mpmath fallback: a wrong F is not proved."""
    from dataclasses import replace

    from fisher_verify._src.families.catalog import generic_definition
    from fisher_verify._src.families.family import Family
    from fisher_verify._src.identities.prover import _moment_identities, _Prover

    d = generic_definition(name)
    bad = Family(replace(d, name=f"{name}_wrong", log_partition=d.log_partition * sp.Rational(11, 10)))
    results = {r.statement_id: r for r in _moment_identities(_Prover(bad, 5, 0))}
    assert not results["log-partition"].holds
    assert not results["lemma-2"].holds


def test_dense_categorical_tensors_beyond_memory_are_refused_at_once() -> None:
    """Issue 8: an accepted input answers or is refused at once naming the limit. A dense
    (K, K, K, K) central moment at K = 10⁵ (8·10²⁰ bytes) is refused before NumPy allocates,
    with the O(K) contraction named; its mean, which fits, is still given."""
    from fisher_verify.errors import UnsupportedError

    fam = fv.family("categorical", K=100_000)
    h = np.zeros((1, 100_000))
    with pytest.raises(UnsupportedError, match=r"central_moment4 .*GiB.*kappa4_contract"):
        fam.central_moment4(h)
    with pytest.raises(UnsupportedError, match=r"kappa3 is a dense array of 1e\+15 entries"):
        fam.kappa3(h)
    np.testing.assert_allclose(fam.mean(h), np.full((1, 100_000), 1e-5), rtol=1e-12)


def test_a_float_parameter_is_kept_exactly_and_its_base_measure_evaluates() -> None:
    """sigma = √2 (the family of nn.MSELoss) was kept to 15 digits (1.4142135623731: I = σ² came
    out 2.0000000000000271) and its log b(y) raised a TypeError (log of a 26-digit integer).
    The expected values come from the float itself and from SciPy's normal density."""
    import scipy.stats as st
    import sympy as sp

    sigma = 2**0.5
    fam = fv.family("normal", sigma=sigma)
    exact_var = float(sp.Rational(repr(sigma)) ** 2)  # σ² of the float the user gave, rounded once
    assert fam.fisher(np.array([[0.7]]))[0, 0] == exact_var
    y = np.array([-2.0, 0.3, 5.0])
    np.testing.assert_allclose(fam.log_base(y), st.norm(0.0, sigma).logpdf(y), rtol=1e-14)
    h = np.array([[0.2]])
    np.testing.assert_allclose(fam.log_density(y, h), st.norm(sigma**2 * 0.2, sigma).logpdf(y),
                               rtol=1e-14)
