"""The directional families (issue 18): von Mises on the circle, von Mises–Fisher on S².

Expected values come from routes that share nothing with the kernels: mpmath's Bessel
functions (I₀, I₁ and numerical derivatives of log I₀ at 60 digits), sinh in closed form,
mpmath's tanh-sinh quadrature with its error estimate, and the Taylor coefficients of log I₀
and log(sinh r/r) at h = 0.
"""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest
import torch

import fisher_verify as fv
from fisher_verify._src.families import von_mises as vm
from fisher_verify._src.symbolic import radial
from fisher_verify._src.testing.calibrated import assert_mean_matches, bonferroni
from fisher_verify.errors import DomainError, FisherVerifyError, ParameterError, ShapeError

# κ = 0, 1e-8, 1, 700, 1e4 (the issue's edge points), both sides of the kernels' switches
# (‖h‖ = 1 and 25), in directions along an axis and off it
RADII = (0.0, 1e-8, 0.3, 1.0 - 1e-9, 1.0 + 1e-9, 7.0, 25.0 - 1e-9, 25.0 + 1e-9, 700.0, 1e4)
QUANTITIES = ("log_partition", "eta", "fisher", "kappa3", "kappa4", "central_moment4")


def _log_norm(d: int, h: list) -> mpmath.mpf:
    """log ∫ e^{h·y} over S^{d−1} / |S^{d−1}| from mpmath's Bessel function or sinh."""
    r = mpmath.sqrt(mpmath.fsum(v * v for v in h))
    if d == 2:
        return mpmath.log(mpmath.besseli(0, r))
    return mpmath.log(mpmath.sinh(r) / r) if r else mpmath.mpf(0)


def _reference(d: int, h: tuple[float, ...]) -> dict[str, np.ndarray]:
    """F and its derivatives up to order 4 by mpmath's numerical differentiation of the Bessel
    (or sinh) form at 60 digits; at h = 0, where that form is 0/0 in its derivatives, the
    Taylor coefficients log I₀(r) = r²/4 − r⁴/64 + …, log(sinh r/r) = r²/6 − r⁴/180 + …"""
    const = math.log(2 * math.pi) if d == 2 else math.log(4 * math.pi)
    out: dict[str, np.ndarray] = {}
    if not any(h):
        c2, c4 = (mpmath.mpf(1) / 4, -mpmath.mpf(1) / 64) if d == 2 else \
            (mpmath.mpf(1) / 6, -mpmath.mpf(1) / 180)
        eye = np.eye(d)
        out["log_partition"] = np.array(const)
        out["eta"] = np.zeros(d)
        out["fisher"] = 2 * float(c2) * eye
        out["kappa3"] = np.zeros((d,) * 3)
        # ∂⁴ of c4 (Σ h²)² = 8 c4 (δ_ab δ_cd + δ_ac δ_bd + δ_ad δ_bc)
        sym = (np.einsum("ab,cd->abcd", eye, eye) + np.einsum("ac,bd->abcd", eye, eye)
               + np.einsum("ad,bc->abcd", eye, eye))
        out["kappa4"] = 8 * float(c4) * sym
    else:
        with mpmath.workdps(60):
            hm = [mpmath.mpf(v) for v in h]

            def f(*x: mpmath.mpf) -> mpmath.mpf:
                return _log_norm(d, list(x))

            out["log_partition"] = np.array(float(f(*hm)) + const)
            for order, name in ((1, "eta"), (2, "fisher"), (3, "kappa3"), (4, "kappa4")):
                arr = np.zeros((d,) * order)
                for idx in itertools.combinations_with_replacement(range(d), order):
                    counts = tuple(idx.count(a) for a in range(d))
                    value = float(mpmath.diff(f, hm, counts))
                    for perm in set(itertools.permutations(idx)):
                        arr[perm] = value
                out[name] = arr
    i = out["fisher"]
    out["central_moment4"] = (out["kappa4"] + np.einsum("ab,cd->abcd", i, i)
                              + np.einsum("ac,bd->abcd", i, i) + np.einsum("ad,bc->abcd", i, i))
    return out


def _points(d: int) -> list[tuple[float, ...]]:
    dirs = [(1.0, 0.0), (0.6, -0.8)] if d == 2 else [(0.0, 0.0, 1.0), (0.48, -0.6, 0.64)]
    return [tuple(r * c for c in u) for r in RADII for u in dirs]


@pytest.mark.parametrize(("name", "d"), [("von_mises", 2), ("von_mises_fisher", 3)])
def test_kernels_match_bessel_reference_in_every_backend(name: str, d: int) -> None:
    """Every quantity, NumPy, torch and mpmath kernels, at every radius of RADII against the
    Bessel/sinh reference: each entry within 1e-12 of itself (relative) or, for entries that
    are zero or tiny next to the tensor, within 1e-14 of the tensor's largest entry."""
    fam = fv.family(name)
    for h in _points(d):
        ref = _reference(d, h)
        hn = np.array([h])
        got = {
            "numpy": {q: getattr(fam, "mean" if q == "eta" else q)(hn)[0] for q in QUANTITIES},
            "torch": {q: getattr(fam, "mean" if q == "eta" else q)(
                torch.tensor(hn, dtype=torch.float64))[0].numpy() for q in QUANTITIES},
        }
        if np.hypot(*h[:2]) < 1e3:  # mpmath kernels at 40 digits (the proofs' precision)
            with mpmath.workdps(40):
                got["mpmath"] = {q: np.array(fam.kernel(q, "mpmath")([mpmath.mpf(v) for v in h]),
                                             dtype=float) for q in QUANTITIES}
        for backend, values in got.items():
            for q in QUANTITIES:
                want = np.asarray(ref[q], dtype=float)
                have = np.asarray(values[q], dtype=float)
                assert np.all(np.isfinite(have)), (name, backend, h, q)
                scale = float(np.max(np.abs(want)))
                np.testing.assert_allclose(have, want, rtol=1e-12, atol=1e-14 * scale,
                                           err_msg=f"{name} {backend} h={h} {q}")


def test_radial_entry_along_the_mean_keeps_relative_accuracy() -> None:
    """I along the mean direction is A′(κ) ≈ 1/(2κ²), a difference of terms of size 1/κ in the
    textbook form: at κ = 1e4 it is still right to 1e-12 of itself, against mpmath's I₀, I₁
    (A′ = 1 − A/κ − A², at 80 digits)."""
    fam = fv.family("von_mises")
    for kappa in (3.0, 24.0, 26.0, 700.0, 1e4):
        with mpmath.workdps(80):
            k = mpmath.mpf(kappa)
            a = mpmath.besseli(1, k) / mpmath.besseli(0, k)
            want = float(1 - a / k - a * a)
        got = fam.fisher(np.array([[kappa, 0.0]]))[0, 0, 0]
        assert abs(got - want) <= 1e-12 * want, (kappa, got, want)


def test_torch_gradients_are_finite_at_zero_and_at_the_switches() -> None:
    """The torch kernels are differentiable everywhere (each branch at a clamped argument)."""
    fam = fv.family("von_mises")
    for r in (0.0, 1.0, 25.0, 1e4):
        h = torch.tensor([[r, 0.0]], dtype=torch.float64, requires_grad=True)
        fam.kappa4(h).sum().backward()
        assert torch.all(torch.isfinite(h.grad)), r


# --- the trapezoid rule's error bound --------------------------------------------------------


def _bessel_tail(kappa: float, m: int) -> mpmath.mpf:
    """Σ_{|k|≥m} I_k(κ)/I₀(κ), from Σ_k I_k(κ) = e^κ at 120 digits."""
    with mpmath.workdps(120):
        k = mpmath.mpf(kappa)
        head = mpmath.besseli(0, k) + 2 * mpmath.fsum(mpmath.besseli(j, k) for j in range(1, m))
        return (mpmath.exp(k) - head) / mpmath.besseli(0, k)


@pytest.mark.parametrize(("kappa", "m"), [(0.5, 4), (5.0, 12), (5.0, 30), (100.0, 40), (100.0, 90)])
def test_trapezoid_tail_bound_formula_and_validity(kappa: float, m: int) -> None:
    """The bound equals its formula, 2 exp(−m asinh(m/κ) + √(κ²+m²) − κ) √(2πκ)/erf(π√(κ/2)),
    computed here in mpmath, and lies above the true Bessel tail, within a factor 10√(κ+m)
    of it (the Chernoff bound is tight up to a polynomial factor)."""
    with mpmath.workdps(50):
        k, mm = mpmath.mpf(kappa), mpmath.mpf(m)
        formula = (2 * mpmath.exp(-mm * mpmath.asinh(mm / k) + mpmath.sqrt(k * k + mm * mm) - k)
                   * mpmath.sqrt(2 * mpmath.pi * k) / mpmath.erf(mpmath.pi * mpmath.sqrt(k / 2)))
    bound = vm.trapezoid_tail_bound(kappa, m)
    assert abs(bound - float(formula)) <= 1e-12 * float(formula)
    tail = float(_bessel_tail(kappa, m))
    assert tail <= bound <= 10 * math.sqrt(kappa + m) * tail, (tail, bound)


def test_trapezoid_error_is_within_its_bound() -> None:
    """The N-point rule on E[cos(j(y − μ))] = I_j/I₀ errs by at most T(N − j) (degree j,
    ‖g‖ = 1), for rules deliberately too small to be exact."""
    for kappa, n, j in ((5.0, 10, 2), (20.0, 16, 3), (50.0, 30, 1)):
        with mpmath.workdps(60):
            k = mpmath.mpf(kappa)
            exact = mpmath.besseli(j, k) / mpmath.besseli(0, k)
            nodes = [2 * mpmath.pi * i / n for i in range(n)]
            weights = [mpmath.exp(k * mpmath.cos(t)) for t in nodes]
            rule = mpmath.fsum(w * mpmath.cos(j * t) for w, t in zip(weights, nodes)) / mpmath.fsum(weights)
        # the ratio of two rules: numerator and denominator each within T(N − j), T(N)
        bound = vm.trapezoid_tail_bound(kappa, n - j) + vm.trapezoid_tail_bound(kappa, n)
        assert 0 < abs(float(rule - exact)) <= bound * 1.0001


def test_circle_points_is_the_smallest_count_meeting_the_tolerance() -> None:
    """N from :func:`circle_points` meets 4^D·T(N − D) ≤ tol and N − 1 does not."""
    for kappa, degree in ((0.0, 4), (1e-8, 4), (1.0, 8), (700.0, 4), (1e4, 8)):
        n = vm.circle_points(kappa, degree, math.log(vm.FLOAT_TOL))
        target = math.log(vm.FLOAT_TOL) - degree * math.log(4.0)
        assert vm.log_tail_bound(kappa, n - degree) <= target
        if n - degree > 1:
            assert vm.log_tail_bound(kappa, n - degree - 1) > target


def test_legendre_bound_formula() -> None:
    """The Bernstein-ellipse bound equals (64/15) 4^D a^D e^{κ(a−1)} ρ^{−2n}/((ρ²−1) Z), and the
    n it chooses meets 1e-17 at κ = 40 while n − 1 does not."""
    kappa, n, degree, rho = 12.0, 20, 4, 1.7
    a = (rho + 1 / rho) / 2
    z = (1 - math.exp(-2 * kappa)) / kappa
    want = 64 / 15 * 4**degree * a**degree * math.exp(kappa * (a - 1)) * rho ** (-2 * n) / (
        (rho * rho - 1) * z)
    assert vm.legendre_bound(kappa, n, degree, rho) == pytest.approx(want, rel=1e-12)
    rhos = [1.0 + 0.01 * 1.15**k for k in range(60)]
    n = vm.legendre_points(degree)
    assert min(vm.legendre_bound(40.0, n, degree, r) for r in rhos) <= vm.FLOAT_TOL
    assert min(vm.legendre_bound(40.0, n - 1, degree, r) for r in rhos) > vm.FLOAT_TOL


def test_gauss_legendre_error_is_within_its_bound() -> None:
    """A too-small Gauss–Legendre rule for ∫ w² e^{κ(w−1)} dw errs within the bound."""
    kappa, n, degree = 10.0, 6, 2
    x, w = np.polynomial.legendre.leggauss(n)
    with mpmath.workdps(40):
        k = mpmath.mpf(kappa)
        z = -mpmath.expm1(-2 * k) / k
        exact = mpmath.quad(lambda t: t * t * mpmath.exp(k * (t - 1)), [-1, 1]) / z
    rule = float(np.sum(w * x * x * np.exp(kappa * (x - 1)))) / float(z)
    rhos = [1.0 + 0.01 * 1.15**k for k in range(60)]
    bound = min(vm.legendre_bound(kappa, n, degree, r) for r in rhos)
    assert 0 < abs(rule - float(exact)) <= bound


def test_series_and_asymptotic_truncations() -> None:
    """The kernels' cuts: the power series' first omitted term (k = 90 at s < 625) is below
    1e-60 of the function, the asymptotic series' (k = 50 at r = 25, largest in c_{4,0}
    relative to its value 3/r⁴) below 1e-16 of it and above 1e-18 (a cut at 40 terms or at
    r = 20 would fail); the asymptotic coefficients solve the Riccati equation
    (a₁ = −1/2, a₂ = −1/8, a₃ = −1/8 for d = 2; the series stops at 1 − 1/r for d = 3)."""
    a2 = radial.riccati_coefficients(2)
    assert [str(c) for c in a2[:5]] == ["1", "-1/2", "-1/8", "-1/8", "-25/128"]
    a3 = radial.riccati_coefficients(3)
    assert a3[1] == -1 and all(c == 0 for c in a3[2:])
    r, k = radial.ASYMPTOTIC_FROM, radial.ASYMPTOTIC_TERMS
    omitted = float(abs(a2[k]) * k * (k + 1) * (k + 2)) * r ** (-k - 3)
    assert 1e-18 * 3 / r**4 < omitted < 1e-16 * 3 / r**4
    s = radial.ASYMPTOTIC_FROM**2
    with mpmath.workdps(50):
        term = (mpmath.mpf(s) / 4) ** radial.SERIES_TERMS / mpmath.factorial(radial.SERIES_TERMS) ** 2
        assert term < mpmath.besseli(0, mpmath.sqrt(s)) * mpmath.mpf(10) ** -60
    # the ratio-series numerators: one sign after the constant term, and their last kept term
    # below 1e-40 of their largest at s = 625
    for d in (2, 3):
        for name, (_m, logs, signs) in radial.ratio_series(d).items():
            assert len(set(signs[1:])) == 1, (d, name)
            terms = np.array(logs) + np.arange(len(logs)) * math.log(s)
            assert terms[-1] - np.max(terms) < -40 * math.log(10), (d, name)


# --- the independent routes ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "h"), [
    ("von_mises", (0.0, 0.0)), ("von_mises", (0.8, -0.5)), ("von_mises", (30.0, 40.0)),
    ("von_mises", (1e4, 0.0)), ("von_mises_fisher", (0.0, 0.0, 0.0)),
    ("von_mises_fisher", (0.3, -0.5, 0.8)), ("von_mises_fisher", (20.0, 10.0, -5.0)),
    ("von_mises_fisher", (0.0, 0.0, 700.0)), ("von_mises_fisher", (-6e3, 0.0, 8e3)),
])
def test_cumulants_match_the_exact_expectation_route(name: str, h: tuple[float, ...]) -> None:
    """η, I and K from the kernels equal the float rule's moments of t (trapezoid / sphere
    rule), to 1e-13 of the largest entry of each tensor (plus float rounding of t − η)."""
    fam = fv.family(name)
    hv = np.array([h])
    t, w, tail = fam.expectation_nodes(hv, 4)
    assert tail == 0.0
    eta = fam.mean(hv)[0]
    c = t[0] - eta
    mean = np.einsum("sa,s->a", t[0], w[0])
    cov = np.einsum("sa,sb,s->ab", c, c, w[0])
    k4 = np.einsum("sa,sb,sc,sd,s->abcd", c, c, c, c, w[0])
    np.testing.assert_allclose(mean, eta, rtol=0, atol=1e-14)
    fisher, m4 = fam.fisher(hv)[0], fam.central_moment4(hv)[0]
    np.testing.assert_allclose(cov, fisher, rtol=0, atol=1e-13 * np.max(np.abs(fisher)) + 1e-16)
    np.testing.assert_allclose(k4, m4, rtol=0, atol=1e-12 * np.max(np.abs(m4)) + 1e-17)


@pytest.mark.parametrize(("name", "h"), [("von_mises", ("0.8", "-0.5")),
                                         ("von_mises_fisher", ("0.3", "-0.5", "0.8"))])
def test_mpmath_route_matches_tanh_sinh_with_its_error_estimate(name: str, h: tuple[str, ...]) -> None:
    """The family's mpmath integral (trapezoid / sphere) equals mpmath.quad over the angles
    (its own error estimate below 10^{5−dps}), for a fourth moment: at 40 digits on the
    circle, 25 on the sphere (a two-dimensional tanh-sinh rule at 40 digits takes minutes)."""
    fam = fv.family(name)
    dps = 40 if name == "von_mises" else 25
    with mpmath.workdps(dps):
        hs = [mpmath.mpf(v) for v in h]

        def g(tv: list) -> mpmath.mpf:
            return tv[0] ** 3 * tv[1] + 1

        ours = fam.integral_mp(hs, g)
        if name == "von_mises":
            def integrand(y: mpmath.mpf) -> mpmath.mpf:
                tv = [mpmath.cos(y), mpmath.sin(y)]
                return g(tv) * mpmath.exp(hs[0] * tv[0] + hs[1] * tv[1])

            ref, err = mpmath.quad(integrand, [-mpmath.pi, 0, mpmath.pi], error=True)
        else:
            def integrand(theta: mpmath.mpf, phi: mpmath.mpf) -> mpmath.mpf:
                tv = [mpmath.sin(theta) * mpmath.cos(phi), mpmath.sin(theta) * mpmath.sin(phi),
                      mpmath.cos(theta)]
                return g(tv) * mpmath.exp(mpmath.fsum(a * b for a, b in zip(hs, tv))) * mpmath.sin(theta)

            ref, err = mpmath.quad(integrand, [0, mpmath.pi], [0, mpmath.pi, 2 * mpmath.pi], error=True)
        assert err < mpmath.mpf(10) ** (5 - dps) * abs(ref)
        assert abs(ours - ref) < mpmath.mpf(10) ** (6 - dps) * abs(ref)


def test_identities_hold_by_the_stated_route() -> None:
    """lemma-2 and lemma-5 (and the log-partition) against the family's own density, by the
    mpmath route at 40 digits; the route text names the trapezoid bound."""
    from fisher_verify._src.identities.prover import MPMATH, prove_at_values

    fam = fv.family("von_mises")
    results = {r.statement_id: r for r in prove_at_values(fam, 2.0, 0)}
    for sid in ("log-partition", "stable-kernels", "lemma-2", "lemma-5"):
        assert results[sid].holds, (sid, results[sid].detail)
    assert results["lemma-2"].method == MPMATH
    assert "trapezoid" in fam.definition.expectation_route
    assert "Bessel tail" in fam.definition.expectation_route


# --- samplers -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "h"), [
    ("von_mises", (0.0, 0.0)), ("von_mises", (0.8, -0.5)), ("von_mises", (0.0, 700.0)),
    ("von_mises_fisher", (0.0, 0.0, 0.0)), ("von_mises_fisher", (0.3, -0.5, 0.8)),
    ("von_mises_fisher", (1e4, 0.0, 0.0)),
])
def test_sampler_moments(name: str, h: tuple[float, ...]) -> None:
    """E[t] and E[(t − η)²] per component of 200 000 draws match η and I (calibrated: false-alarm
    rate 1e-6 for the whole test, Bonferroni over its 2d checks)."""
    fam = fv.family(name)
    hv = np.array(h)
    t = fam.sample_statistic(hv, 200_000, np.random.default_rng(7))
    eta, fisher, m4 = fam.mean(hv), fam.fisher(hv), fam.central_moment4(hv)
    alpha = bonferroni(1e-6, 2 * fam.dim)
    for a in range(fam.dim):
        assert_mean_matches(t[:, a], eta[a], fisher[a, a], alpha=alpha, what=f"{name} E[t_{a}]")
        assert_mean_matches((t[:, a] - eta[a]) ** 2, fisher[a, a], m4[a, a, a, a] - fisher[a, a] ** 2,
                            alpha=alpha, what=f"{name} E[(t_{a} − η)²]")


def test_sampler_check_can_fail() -> None:
    """The same check rejects draws of a slightly different concentration (κ 2 % off)."""
    fam = fv.family("von_mises")
    t = fam.sample_statistic(np.array([2.04, 0.0]), 200_000, np.random.default_rng(7))
    eta, fisher = fam.mean(np.array([2.0, 0.0])), fam.fisher(np.array([2.0, 0.0]))
    with pytest.raises(AssertionError):
        assert_mean_matches(t[:, 0], eta[0], fisher[0, 0], alpha=1e-6)


def test_sphere_samples_are_unit_vectors_even_when_concentrated() -> None:
    """1 − w is drawn apart from w: at κ = 1e8 the spread about the mean is still resolved."""
    fam = fv.family("von_mises_fisher")
    y = fam.sample(np.array([0.0, 0.0, 1e8]), 10_000, np.random.default_rng(0))
    assert np.max(np.abs(np.linalg.norm(y, axis=-1) - 1)) < 1e-15
    transverse = np.mean(y[:, 0] ** 2 + y[:, 1] ** 2)
    assert transverse == pytest.approx(2e-8, rel=0.1)  # E[1 − w²] ≈ 2/κ


# --- refusals -----------------------------------------------------------------------------------


def test_bad_inputs_are_refused_by_name() -> None:
    """A parameter the family does not take, h of the wrong width or with NaN, labels off the
    circle or the sphere: each refused with a FisherVerifyError naming what is wrong."""
    with pytest.raises(ParameterError, match="kappa"):
        fv.family("von_mises", kappa=2.0)
    fam = fv.family("von_mises")
    with pytest.raises(ShapeError, match="size 2"):
        fam.mean(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(DomainError, match="NaN"):
        fam.mean(np.array([np.nan, 0.0]))
    with pytest.raises(DomainError, match="labels.*-π|labels.*pi"):
        fam.check_labels(np.array([0.5, 4.0]))
    sphere = fv.family("von_mises_fisher")
    with pytest.raises(DomainError, match="sphere"):
        sphere.check_labels(np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]))
    sphere.check_labels(np.array([[0.6, 0.0, 0.8]]) / np.linalg.norm([0.6, 0.0, 0.8]))
    for err in (ParameterError, ShapeError, DomainError):
        assert issubclass(err, FisherVerifyError)
