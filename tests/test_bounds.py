"""Bounds with both sides: thm-7, thm-8, lemma-9 (the √2 settled), remark-9.2, lemma-12,
lemma-14, lemma-15, crlb; tightness sweep."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fisher_verify as fv
from fisher_verify._src.fisher.bounds import (
    LEMMA9_CONSTANT,
    Bound,
    crlb_linear_gaussian,
    fit_rate,
    lemma9_sides,
    lemma12_coverage,
    thm7_sides,
    thm8_sides,
)
from fisher_verify._src.fisher.spectral import (
    layer_jacobian,
    layer_norms,
    rank_one_spectral_norm,
    tensor_spectral_norm,
)
from fisher_verify._src.fisher.tightness import moment_growth, tightness_sweep
from fisher_verify._src.testing.calibrated import assert_frequency_at_least, assert_variance_matches
from fisher_verify._src.testing.strategies import C2_ACTIVATIONS, small_networks
from fisher_verify.errors import UnsupportedError


@given(small_networks(activations=C2_ACTIVATIONS), st.integers(1, 50))
def test_every_bound_holds_on_random_networks(pair, n) -> None:
    """thm-7, thm-8, lemma-9, lemma-12, lemma-14, lemma-15 on depth 1-3, every family and C²
    activation; thm-10's rhs is a probability ≤ 1 or None."""
    net, x = pair
    b = fv.bounds(net, x, n=n)
    for bd in b:
        assert bd.holds is not False, (bd.id, bd.lhs, bd.rhs)
    assert b.all_hold()
    assert b.thm7.details["spectral_variant"] <= b.thm7.rhs * (1 + 1e-12)
    assert b.thm7.details["spectral_variant"] >= b.thm7.lhs * (1 - 1e-10)
    assert b.psd_probability.rhs is None or b.psd_probability.rhs <= 1.0
    assert float(b.thm7) == b.thm7.rhs and float(b.thm8) == b.thm8.rhs
    # the paper's literal lemma-14/15 bounds hold whenever |σ'| ≤ 1 (except lemma-14's last
    # layer with n_L > 1: see test_lemma14_last_layer_counterexample)
    if net.activation != "gelu":
        for bd in b.lemma15:
            assert bd.lhs <= bd.details["paper_rhs"] * (1 + 1e-10)
        for bd in b.lemma14[:-1]:
            assert bd.details["paper_form_holds"]
    for bd in b.lemma14:
        assert bd.lhs == pytest.approx(bd.details["factored"], rel=1e-10)


def test_thm7_thm8_are_equalities_for_one_output() -> None:
    """With n_L = 1 both Cov tensors are rank one, so thm-7 and thm-8 are tight."""
    rng = np.random.default_rng(0)
    J = rng.normal(size=(1, 6))
    A = rng.normal(size=(1, 6, 6))
    H = A + A.transpose(0, 2, 1)
    fam = fv.family("poisson")
    h = np.array([0.3])
    lhs, rhs, spec = thm7_sides(J, fam.central_moment4(h), fam.fisher(h), 3)
    assert lhs == pytest.approx(rhs, rel=1e-12) and spec == pytest.approx(rhs, rel=1e-12)
    lhs, rhs = thm8_sides(H, fam.fisher(h), 3)
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_lemma9_constant_one_is_right_and_sharp() -> None:
    """lemma-9 with constant 1 holds for every family (random h, incl. extreme), the sharper
    middle term too; the ratio approaches 1 (Bernoulli, p → 0), refuting a 1/√2 factor."""
    rng = np.random.default_rng(1)
    worst = 0.0
    cases = [
        (fv.family("bernoulli"), rng.uniform(-30, 30, size=(200, 1))),
        (fv.family("poisson"), rng.uniform(-8, 4, size=(200, 1))),
        (fv.family("categorical", K=4), rng.uniform(-6, 6, size=(200, 4))),
        (fv.family("binomial", n=5), rng.uniform(-6, 6, size=(200, 1))),
        (fv.family("geometric"), -rng.uniform(0.05, 5, size=(200, 1))),
        (fv.family("gamma", shape=0.5), -rng.uniform(0.05, 5, size=(200, 1))),
        (fv.family("normal_unknown_variance"),
         np.stack([rng.uniform(-3, 3, 200), -rng.uniform(0.05, 3, 200)], 1)),
        (fv.product(fv.family("bernoulli"), fv.family("poisson")),
         rng.uniform(-4, 4, size=(200, 2))),
    ]
    for fam, h in cases:
        s = lemma9_sides(fam.central_moment4(h), fam.fisher(h))
        assert np.all(s["moment_lhs"] <= s["moment_sharp"] * (1 + 1e-9) + 1e-300)
        assert np.all(s["moment_sharp"] <= s["moment_rhs"] * (1 + 1e-12))
        assert np.all(s["fisher_lhs"] <= s["fisher_rhs"] * (1 + 1e-12))
        worst = max(worst, float(np.max(s["moment_lhs"] / s["moment_rhs"])))
    assert LEMMA9_CONSTANT == 1.0
    assert worst > 1 / math.sqrt(2)
    fam = fv.family("bernoulli")
    h = np.array([[-20.0]])
    s = lemma9_sides(fam.central_moment4(h), fam.fisher(h))
    # p = e^-20: ratio = 1 - 2√p + O(p) -> 1
    assert s["moment_lhs"][0] / s["moment_rhs"][0] == pytest.approx(1.0, abs=3 * math.exp(-10))
    assert "constant 1" in fv.bounds(*_linear_normal(2)).lemma9_verdict


def test_remark_9_2_growth() -> None:
    """‖K − I⊗I‖_F's bound grows as n_L², ‖I‖_F's as n_L (bounded diagonal moments); the
    true values grow no faster."""
    g = moment_growth(lambda k: fv.product(*([fv.family("poisson")] * k)), [1, 2, 4, 8])
    assert float(g["moment_exponent"]) == pytest.approx(2.0, abs=1e-9)
    assert float(g["fisher_exponent"]) == pytest.approx(1.0, abs=1e-9)
    assert float(g["moment_lhs_exponent"]) <= 2.0 and float(g["fisher_lhs_exponent"]) <= 1.0
    g = moment_growth(lambda k: fv.family("categorical", K=k), [2, 4, 8, 16],
                      h_of=lambda k: np.linspace(-1, 1, k))
    assert float(g["moment_exponent"]) <= 2.0 and float(g["fisher_exponent"]) <= 1.0
    assert np.all(g["moment"] <= g["moment_bound"]) and np.all(g["fisher"] <= g["fisher_bound"])


def _linear_normal(n_out: int, M: int = 4, sigma: float = 1.3):
    rng = np.random.default_rng(n_out)
    fam = fv.family("normal", sigma=sigma) if n_out == 1 else fv.product(
        *([fv.family("normal", sigma=sigma)] * n_out))
    net = fv.Network.random([2, n_out], "tanh", fam, 1.0, rng)
    return net, rng.normal(size=(M, 2))


def test_lemma14_last_layer_counterexample() -> None:
    """lemma-14's literal empty product (= 1) fails at the last layer for n_L > 1:
    ‖∂h_L/∂W_{L-1}‖_F = √n_L ‖h̄_{L-1}‖. The library's rhs uses √n_L (equality)."""
    rng = np.random.default_rng(4)
    fam = fv.family("categorical", K=3)
    net = fv.Network.random([2, 3, 3], "tanh", fam, 1.0, rng)
    x = rng.normal(size=2)
    last = layer_norms(net, x)[0][-1]
    hb = np.linalg.norm(net.lemma13(x).hbar[-1][0])
    assert last.frobenius == pytest.approx(math.sqrt(3) * hb, rel=1e-12)
    assert last.frobenius_bound_paper == pytest.approx(hb, rel=1e-12)
    assert last.frobenius > last.frobenius_bound_paper
    b = fv.bounds(net, x).lemma14[-1]
    assert b.holds and not b.details["paper_form_holds"] and b.ratio == pytest.approx(1.0)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "gelu", "identity"])
def test_lemma15_spectral_norm_is_exact(act) -> None:
    """‖∂h_L/∂W_l‖_{2σ} = s_max(B_{l+1}D_l)‖h̄_l‖, certified: lower (attained) = upper
    (unfolding norm), and the generic certified routine on the full tensor agrees."""
    rng = np.random.default_rng(7)
    net = fv.Network.random([3, 4, 3, 2], act, fv.family("categorical", K=2), 2.0, rng)
    x = rng.normal(size=3)
    J = net.jacobian(x)
    off = net.offsets
    for layer, ln in enumerate(layer_norms(net, x)[0]):
        T = layer_jacobian(net, x, layer)[0]
        np.testing.assert_allclose(
            T, J[:, off[layer]:off[layer + 1]].reshape(2, *net.shapes[layer]), atol=1e-14)
        assert ln.spectral.exact
        generic = tensor_spectral_norm(T, rng=1)
        assert generic.exact
        assert generic.value == pytest.approx(ln.spectral.value, rel=1e-9)
        assert ln.frobenius == pytest.approx(np.linalg.norm(T), rel=1e-12)
        # bound with the activation factor always holds
        assert ln.spectral.value <= ln.spectral_bound * ln.derivative_factor * (1 + 1e-10)
    # a generic (not rank-one) tensor: a certified interval, lower <= upper
    G = rng.normal(size=(3, 4, 5))
    s = tensor_spectral_norm(G)
    assert s.lower <= s.upper * (1 + 1e-12)
    a, b, c = s.vectors
    assert np.einsum("ijk,i,j,k->", G, a, b, c) == pytest.approx(s.lower, rel=1e-12)
    r = rank_one_spectral_norm(np.eye(3), np.array([3.0, 4.0]))
    assert r.value == pytest.approx(5.0)


def test_crlb_linear_gaussian() -> None:
    """crlb: for a linear-Gaussian model the MLE (least squares) covariance equals
    (N M I(θ))⁻¹ exactly; Monte Carlo fits agree (calibrated, alpha = 1e-6)."""
    net, X = _linear_normal(2, M=4)
    N = 3
    b = crlb_linear_gaussian(net, X, N)
    assert b.holds and b.ratio == pytest.approx(1.0, rel=1e-12)
    assert b.details["max_abs_difference"] <= 1e-12 * np.max(np.abs(b.details["crlb"]))
    rng = np.random.default_rng(8)
    sigma = 1.3
    theta = net.theta
    h = net.forward(X)  # (M, 2)
    R = 3000
    y = rng.normal(sigma**2 * h, sigma, size=(R, N, *h.shape))  # (R, N, M, 2)
    Xb = np.concatenate([X, np.ones((4, 1))], 1)
    design = np.tile(Xb, (N, 1))  # (N M, 3)
    pinv = np.linalg.pinv(design)
    W_hat = np.einsum("cs,rsa->rac", pinv, y.reshape(R, N * 4, 2)) / sigma**2  # (R, 2, 3)
    theta_hat = W_hat.reshape(R, -1)
    u = rng.normal(size=theta.size)
    v = float(u @ b.details["crlb"] @ u)
    d = (theta_hat - theta) @ u  # Gaussian, mean 0, variance v: E[D^4] = 3 v^2
    assert_variance_matches(d, v, 3 * v * v, what="Var(u^T theta_hat) = u^T CRLB u")
    with pytest.raises(UnsupportedError, match="linear network"):
        crlb_linear_gaussian(fv.Network.random([2, 2, 1], "tanh", fv.family("normal")), X[0])


def test_lemma12_coverage_and_rate() -> None:
    """lemma-12: coverage ≥ 1 − ε (exact binomial tail, alpha = 1e-6), and the N^{-1/2} rate
    fitted from Monte Carlo RMS errors (exact RMS is √(ΣVar)/√N ∝ N^{-1/2})."""
    rng = np.random.default_rng(12)
    net = fv.Network.random([2, 2, 1], "tanh", fv.family("poisson"), 1.0, rng)
    x = rng.normal(size=2)
    eps = 0.2
    rms = []
    ns = [2, 8, 32, 128]
    for n in ns:
        cov = lemma12_coverage(net, x, n, eps, 300, rng)
        for e in (0, 1):
            assert_frequency_at_least(cov["hits"][e], cov["draws"], 1 - eps,
                                      what=f"lemma-12 coverage I{e + 1}, N={n}")
        rms.append(cov["rms"])
        b = fv.bounds(net, x, n=n, eps=eps)
        assert b.lemma12_1.lhs == pytest.approx(cov["rms_exact"][0], rel=1e-12)
        assert b.lemma12_1.ratio == pytest.approx(1 / math.sqrt(eps))
    rms_arr = np.asarray(rms)
    for e in (0, 1):
        slope = fit_rate(ns, rms_arr[:, e])
        assert -0.65 <= slope <= -0.35, slope


def test_tightness_sweep_arrays() -> None:
    s = tightness_sweep(count=12, rng=3)
    for k in ("thm7", "thm8", "lemma9_moment", "lemma9_fisher", "lemma14", "lemma15"):
        arr = getattr(s, k)
        assert arr.shape == (12,)
        ok = np.isfinite(arr)
        assert np.all(arr[ok] <= 1 + 1e-9) and np.all(arr[ok] >= 0)
        assert np.all(s.ratio(k)[ok] >= 1 - 1e-9)
    assert set(s.summary()) >= {"thm7", "thm8"}
    assert len(s.family) == 12 and s.num_params.shape == (12,)


def test_bound_dataclass() -> None:
    b = Bound("x", 2.0, 3.0, "<=")
    assert b.holds and b.ratio == 1.5 and float(b) == 3.0
    assert Bound("x", 3.0, 2.0, "<=").holds is False
    assert Bound("x", None, 0.5, ">=").holds is None
    assert Bound("x", 0.0, 1.0, "<=").ratio == math.inf
    with pytest.raises(TypeError):
        float(Bound("x", 0.0, None, ">="))


def test_lemma14_lemma15_cover_every_input() -> None:
    """With several inputs, each layer's lemma-14/15 bound is the input with the largest
    lhs/rhs, and every input's sides are those of layer_norms (not only the first input's)."""
    rng = np.random.default_rng(11)
    net = fv.Network.random([3, 4, 2], "tanh", fv.family("categorical", K=2), 2.0, rng)
    X = rng.normal(size=(4, 3)) * np.array([[0.1], [3.0], [1.0], [0.5]])
    b = fv.bounds(net, X)
    norms = layer_norms(net, X)
    for layer in range(net.depth):
        lhs14 = [row[layer].frobenius for row in norms]
        rhs14 = [row[layer].frobenius_bound * row[layer].derivative_factor for row in norms]
        lhs15 = [row[layer].spectral.value for row in norms]
        rhs15 = [row[layer].spectral_bound * row[layer].derivative_factor for row in norms]
        for bd, lhs, rhs in ((b.lemma14[layer], lhs14, rhs14), (b.lemma15[layer], lhs15, rhs15)):
            assert bd.details["lhs_per_input"] == lhs and bd.details["rhs_per_input"] == rhs
            m = int(np.argmax(np.asarray(lhs) / np.asarray(rhs)))
            assert bd.details["input"] == m and (bd.lhs, bd.rhs) == (lhs[m], rhs[m])
    assert any(bd.details["input"] != 0 for bd in (*b.lemma14, *b.lemma15))
    assert b.lemma14[-1].details["paper_form_holds"] is False  # n_L = 2 at the last layer
    assert b.lemma14[0].details["paper_form_holds"] is True


# --- every side of bounds() pinned to its formula, computed here from autodiff ---------------


def _pin_networks():
    """Networks for the pins: several inputs, n_L = 1, 2, 3, non-diagonal I(h_L), depth 1-3."""
    rng = np.random.default_rng(21)
    cases = [
        ([3, 4, 1], fv.family("poisson")),
        ([2, 3, 3, 2], fv.family("categorical", K=2)),
        ([2, 3, 2], fv.family("normal_unknown_variance")),
        ([3, 2, 3], fv.family("categorical", K=3)),
        ([2, 3], fv.product(fv.family("bernoulli"), fv.family("poisson"), fv.family("normal"))),
    ]
    for widths, fam in cases:
        X = rng.normal(size=(3, widths[0]))
        yield fv.Network.random(widths, "tanh", fam, 1.5, rng).into_domain(X), X


def _moments_by_expectation(fam, h):
    """I and K − I⊗I at each row of h from the exact-expectation nodes (no moment kernel)."""
    eta = fam.expect(lambda t: t, h)
    dev = lambda t: t - eta[:, None, :]  # noqa: E731
    I = fam.expect(lambda t: np.einsum("msa,msb->msab", dev(t), dev(t)), h)

    def excess(t):
        A = np.einsum("msa,msb->msab", dev(t), dev(t)) - I[:, None]
        return np.einsum("msab,mscd->msabcd", A, A)

    return I, fam.expect(excess, h)


def _hbar(net, x):
    """h̄_l = (h_l, 1) for l = 0..L-1 by a plain NumPy forward pass (tanh)."""
    out, h = [], np.asarray(x, dtype=float)
    for layer, W in enumerate(net.weights):
        hb = np.append(h, 1.0)
        out.append(hb)
        a = W @ hb
        h = a if layer == len(net.weights) - 1 else np.tanh(a)
    return out


def test_every_side_of_bounds_is_its_formula() -> None:
    """thm-7, thm-8, lemma-9 (both), lemma-12 (both), lemma-14, lemma-15: both sides of every
    bound from bounds() equal the statement's formula evaluated here from autodiff Jacobians
    and Hessians, moments by exact expectation and a plain forward pass, so that a doubled
    (or halved) side fails. Several inputs, n_L up to 3, non-diagonal I(h_L)."""
    from fisher_verify._src.fisher.covariance import covariance_by_expectation

    n, eps = 7, 0.2
    for net, X in _pin_networks():
        fam, M = net.family, X.shape[0]
        h = net.forward(X)
        J = net.jacobian(X, method="autodiff")  # (M, n_L, P)
        H = net.output_hessians(X, method="autodiff")  # (M, n_L, P, P)
        I, C = _moments_by_expectation(fam, h)
        b = fv.bounds(net, X, n=n, eps=eps)
        cov1 = covariance_by_expectation(fam, h, J=J, estimator=1, n=n)
        cov2 = covariance_by_expectation(fam, h, H=H, estimator=2, n=n)
        scale = M * M * n
        c_norm = np.linalg.norm(C.reshape(M, -1), axis=1)
        rhs7 = np.sum(np.linalg.norm(J, axis=(1, 2)) ** 4 * c_norm) / scale
        rhs8 = np.sum(np.linalg.norm(H.reshape(M, -1), axis=1) ** 2
                      * np.linalg.norm(I.reshape(M, -1), axis=1)) / scale
        spec7 = np.sum(np.linalg.norm(J, 2, axis=(1, 2)) ** 4 * c_norm) / scale
        assert b.thm7.lhs == pytest.approx(np.linalg.norm(cov1), rel=1e-9)
        assert b.thm7.rhs == pytest.approx(rhs7, rel=1e-9)
        assert b.thm7.details["spectral_variant"] == pytest.approx(spec7, rel=1e-9)
        assert b.thm8.lhs == pytest.approx(np.linalg.norm(cov2), rel=1e-9)
        assert b.thm8.rhs == pytest.approx(rhs8, rel=1e-9)
        # lemma-9 at the input with the largest lhs/rhs
        dk = np.sqrt(np.einsum("maaaa->ma", C + np.einsum("mab,mcd->mabcd", I, I)))
        di = np.einsum("maa->ma", I)
        rhs9 = np.sum(dk + di, axis=1) ** 2
        _assert_worst(b.lemma9_moment, c_norm, rhs9)
        _assert_worst(b.lemma9_fisher, np.linalg.norm(I.reshape(M, -1), axis=1), di.sum(1))
        # lemma-12: lhs sqrt(sum_ij Var(I_ij)), rhs that over sqrt(eps)
        P = J.shape[-1]
        for bd, cov in ((b.lemma12_1, cov1), (b.lemma12_2, cov2)):
            tv = np.trace(cov.reshape(P * P, P * P))
            assert (bd.lhs, bd.rhs) == pytest.approx((math.sqrt(tv), math.sqrt(tv / eps)),
                                                     rel=1e-9)
        # lemma-14 / lemma-15, per layer at the worst input
        off = net.offsets
        L, n_out = net.depth, net.widths[-1]
        for layer in range(L):
            rows14, rows15 = [], []
            for m in range(M):
                T = J[m][:, off[layer]:off[layer + 1]].reshape(n_out, *net.shapes[layer])
                hb = np.linalg.norm(_hbar(net, X[m])[layer])
                later = net.weights[layer + 1:]
                c = math.sqrt(n_out) if layer == L - 1 else 1.0
                rows14.append((np.linalg.norm(T),
                               c * np.prod([np.linalg.norm(W[:, :-1]) for W in later]) * hb))
                # T = A ⊗ h̄ is rank one in its last mode: the mode-1 unfolding's norm is exact
                rows15.append((np.linalg.norm(T.reshape(n_out, -1), 2),
                               np.prod([np.linalg.norm(W[:, :-1], 2) for W in later]) * hb))
            for bd, rows in ((b.lemma14[layer], rows14), (b.lemma15[layer], rows15)):
                lhs, rhs = np.array(rows).T
                _assert_worst(bd, lhs, rhs)
                np.testing.assert_allclose(bd.details["rhs_per_input"], rhs, rtol=1e-9)


def _assert_worst(bd, lhs, rhs) -> None:
    """bd reports the input with the largest lhs/rhs (ties to rounding allowed), both sides."""
    m = bd.details["input"]
    assert (bd.lhs, bd.rhs) == pytest.approx((lhs[m], rhs[m]), rel=1e-9), bd.id
    assert lhs[m] / rhs[m] >= np.max(lhs / rhs) * (1 - 1e-9), bd.id


def test_thm10_and_crlb_sides_are_their_formulas() -> None:
    """thm-10's rhs 1 − n_L‖ρ‖²Σ_m λ_max(I_m)/(N M² λ_min(I(θ))²) (the paper's at M = 1) and the
    crlb's rhs tr (N M I(θ))⁻¹, from autodiff Hessians and Jacobians."""
    net = fv.Network.from_weights([np.array([[1.0, 0.0]]), np.array([[2.0, 0.1]])], "tanh",
                                  fv.family("normal", sigma=6.0))
    X = np.linspace(-3.0, 3.0, 6)[:, None]
    n = 40
    H = net.output_hessians(X, method="autodiff")
    rho = np.max(np.abs(np.linalg.eigvalsh(H)), axis=-1)
    I_out = net.family.fisher(net.forward(X))
    fisher = np.mean([Jm.T @ Im @ Jm for Jm, Im in zip(net.jacobian(X, method="autodiff"),
                                                       I_out)], axis=0)
    lam = np.linalg.eigvalsh(fisher)[0]
    M, n_l = rho.shape
    c = n_l * np.sum(rho**2) * np.sum(np.linalg.eigvalsh(I_out)[:, -1]) / (M * M * lam**2)
    b = fv.bounds(net, X, n=n).psd_probability
    assert 0 < 1 - c / n < 1
    assert b.rhs == pytest.approx(1 - c / n, rel=1e-9)
    lin, X2 = _linear_normal(2, M=4)
    fisher2 = np.asarray(fv.exact_fisher(lin, X2, method="autodiff"))
    assert crlb_linear_gaussian(lin, X2, 3).rhs == pytest.approx(
        np.trace(np.linalg.inv(3 * 4 * fisher2)), rel=1e-9)


def test_certified_spectral_interval_contains_the_norm() -> None:
    """lemma-15's certified interval: lower <= upper always (both ends rounded outward), and
    it contains s_max(B_{l+1} D_l)·‖h̄_l‖ computed in mpmath at 40 digits."""
    import mpmath

    rng = np.random.default_rng(5)
    with mpmath.workdps(40):
        for _ in range(40):
            net = fv.Network.random([3, 4, 3], "tanh", fv.family("categorical", K=3), 1.0, rng)
            X = rng.normal(size=(2, 3))
            q = net.lemma13(X)
            for m, row in enumerate(layer_norms(net, X)):
                for ln in row:
                    lo, hi = ln.spectral.lower, ln.spectral.upper
                    assert lo <= hi
                    A = q.B[ln.layer + 1][m] * q.D[ln.layer][m][None, :]
                    s = max(mpmath.svd_r(mpmath.matrix(A.tolist()), compute_uv=False))
                    hb = mpmath.norm(mpmath.matrix(q.hbar[ln.layer][m].tolist()))
                    assert mpmath.mpf(lo) <= s * hb <= mpmath.mpf(hi)
            for bd in fv.bounds(net, X).lemma15:
                lo, hi = bd.details["certified_interval"]
                assert lo <= hi


def test_bounds_repr_is_readable() -> None:
    """repr(Bounds): one line per bound, the lemma-9 verdict once, no matrices; repr(Bound) is
    one short line."""
    net, X = _linear_normal(2, M=4)
    b = fv.bounds(net, X, n=5)
    text = repr(b)
    assert text.count("holds with constant 1") == 1
    assert "array(" not in text and len(text) < 3000
    lines = text.splitlines()
    assert all(len(line) < 200 for line in lines)
    for name in ("thm-7", "thm-8", "lemma-9 (K)", "lemma-9 (I)", "thm-10", "lemma-12 (I1)",
                 "lemma-14 W0", "lemma-15 W0"):
        assert sum(line.strip().startswith(name) for line in lines) == 1, name
    assert "verdict" not in b.lemma9_moment.details and b.lemma9_moment.details["constant"] == 1
    one = repr(b.thm7)
    assert "\n" not in one and "thm-7" in one and "holds" in one


def test_thm11_side_is_its_formula() -> None:
    """thm-11's lower bound −(1/M) Σ_{m,a} ρ(∂²h^a_L(x_m)) |η_ma − t̄_ma| (the paper's at M = 1),
    from autodiff Hessians: a doubled or halved bound fails (a doubled one would still
    "hold" on every draw)."""
    from fisher_verify._src.fisher.psd import thm11_lower_bound

    rng = np.random.default_rng(31)
    net = fv.Network.random([2, 3, 2], "tanh", fv.family("normal_unknown_variance"), 1.0, rng)
    X = rng.normal(size=(3, 2))
    net = net.into_domain(X)
    H = net.output_hessians(X, method="autodiff")
    rho = np.max(np.abs(np.linalg.eigvalsh(H)), axis=-1)  # (M, n_L)
    eta = net.family.mean(net.forward(X))
    t_mean = eta + rng.normal(size=(5, *eta.shape))  # five replicates of the sample means
    want = -np.einsum("ma,rma->r", rho, np.abs(eta - t_mean)) / X.shape[0]
    np.testing.assert_allclose(thm11_lower_bound(net.output_hessians(X), eta, t_mean), want,
                               rtol=1e-10)
