"""The gate's K-FAC and one-backward kinds and its one-sided mode (``ext-kfac``,
``ext-one-backward``): the exact laws against enumeration over label sets / probes, the
one-sided threshold against its formula, refusals, the faults named, and the false-alarm rate
at a measurable alpha."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify import check_estimator
from fisher_verify._src.fisher.kfac import kfac_factors, preactivation_jacobian
from fisher_verify._src.testing.calibrated import assert_frequency_at_least
from fisher_verify._src.testing.gate_exact import combination_variance, statistics_covariance
from fisher_verify._src.testing.gate_kinds import KFAC, OneBackward, kind_statistics
from fisher_verify.errors import FisherVerifyError


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(before)


def _net(M: int = 3, widths: tuple[int, ...] = (2, 3, 3), scale: float = 1.0, seed: int = 1):  # type: ignore[no-untyped-def]
    fam = fv.family("categorical", K=3)
    net = fv.Network.random((*widths, fam.dim), "tanh", fam, scale, rng=seed)
    x = np.random.default_rng(2).normal(size=(M, widths[0]))
    return net, net.inputs(x)[0]


def _unit_rows(P: int, D: int, seed: int = 0) -> np.ndarray:
    V = np.random.default_rng(seed).normal(size=(D, P))
    return V / np.linalg.norm(V, axis=1, keepdims=True)


def _law(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = weights / weights.sum()
    mean = w @ points
    cen = points - mean
    return mean, (cen * w[:, None]).T @ cen, w @ cen**4


def _reduce(E: np.ndarray, V: np.ndarray, diagonal: bool) -> np.ndarray:
    if diagonal:
        d = np.diag(E)
        return np.concatenate([d, (V * V) @ d])
    return np.concatenate([np.diag(E), np.einsum("kp,pq,kq->k", V, E, V)])


@pytest.mark.parametrize("factor", ["G", "block"])
@pytest.mark.parametrize("diagonal", [False, True])
def test_kfac_law_matches_enumeration_over_label_sets(factor: str, diagonal: bool) -> None:
    """Ĝ (or Ĝ ⊗ A) of layer 1 at every label set of 3 inputs, weighted by p(y|x)."""
    net, X = _net()
    fam = net.family
    layer = 1
    h = net.forward(X)
    eta = np.asarray(fam.mean(h))
    Ja = preactivation_jacobian(net, X, layer)
    A, G = kfac_factors(net, X, layer)
    t, w, _ = fam.expectation_nodes(h, degree=2)
    size = G.shape[0] * (A.shape[0] if factor == "block" else 1)
    V = _unit_rows(size, 2)
    pts, wts = [], []
    for combo in itertools.product(range(t.shape[1]), repeat=len(X)):
        g = np.stack([Ja[m].T @ (t[m, q] - eta[m]) for m, q in enumerate(combo)])
        Gh = g.T @ g / len(X)
        pts.append(_reduce(np.kron(Gh, A) if factor == "block" else Gh, V, diagonal))
        wts.append(float(np.prod([w[m, q] for m, q in enumerate(combo)])))
    mean, cov, m4 = _law(np.array(pts), np.array(wts))
    for n in (1, 3):
        ex = kind_statistics(KFAC(layer, factor), net, X, n, V, diagonal)  # type: ignore[arg-type]
        top = float(np.max(np.abs(mean)))
        np.testing.assert_allclose(ex.expected, mean, rtol=0, atol=1e-12 * top)
        np.testing.assert_allclose(ex.variance, np.diag(cov) / n, rtol=1e-10)
        np.testing.assert_allclose(statistics_covariance(ex, fam), cov / n, rtol=0,
                                   atol=1e-10 * float(np.max(np.abs(cov))))
        a = np.random.default_rng(5).normal(size=(3, mean.size))
        np.testing.assert_allclose(combination_variance(ex, fam, a),
                                   np.einsum("ks,st,kt->k", a, cov, a) / n, rtol=1e-10)
        # the diagonal elements are rank one: their fourth moments are given and exact
        one = np.isfinite(ex.fourth)
        assert np.all(one[:size])
        want = (m4 + 3 * (n - 1) * np.diag(cov) ** 2) / n**3
        np.testing.assert_allclose(ex.fourth[one], want[one], rtol=1e-9)


def _kfac_estimator(net, X, layer, scale=1.0, lay=None, t=None, order="GA", factor="G"):  # type: ignore[no-untyped-def]
    fam = net.family
    h = net.forward(X)
    eta = np.asarray(fam.mean(h))
    Ja = preactivation_jacobian(net, X, layer if lay is None else lay)
    A = kfac_factors(net, X, layer)[0]

    def est(g: np.random.Generator) -> np.ndarray:
        tt = fam.sample_statistic(h, 1, g)[0] if t is None else t
        s = np.einsum("ma,mar->mr", tt - eta, Ja)
        Gh = scale * s.T @ s / len(X)
        if factor == "G":
            return Gh
        return np.kron(Gh, A) if order == "GA" else np.kron(A, Gh)

    return est


def test_kfac_gate_passes_and_names_its_faults() -> None:
    net, X = _net(M=8, widths=(3, 4, 4))
    M = len(X)

    def gate(est, kind, **kw):  # type: ignore[no-untyped-def]
        return check_estimator(est, net, X, n=1, which=kind, rng=0, **kw)

    for layer in range(net.depth):
        rep = gate(_kfac_estimator(net, X, layer), KFAC(layer))
        assert rep.passed and "gradient factor" in rep.message(), rep.message()
        assert len(rep.statistics) == net.shapes[layer][0] + 8
    assert gate(_kfac_estimator(net, X, 1, factor="block"), KFAC(1, "block")).passed
    summed = gate(_kfac_estimator(net, X, 1, scale=M), KFAC(1))
    assert not summed.passed and summed.factor == "M" and "1/M" in summed.diagnosis
    hooked = gate(_kfac_estimator(net, X, 1, scale=1 / M**2), KFAC(1))
    assert not hooked.passed and hooked.factor == "1/M²"
    wrong = gate(_kfac_estimator(net, X, 1, lay=0), KFAC(1))  # layer 0's pre-activations
    assert not wrong.passed and wrong.cause == "known_fault" and "layer 0" in wrong.diagnosis
    y = np.random.default_rng(3).integers(0, 3, size=M)
    data = gate(_kfac_estimator(net, X, 1, t=np.asarray(net.family.statistic(y), float)), KFAC(1),
                labels=y)
    assert not data.passed and data.cause == "data_labels" and "empirical G" in data.diagnosis
    order = gate(_kfac_estimator(net, X, 0, factor="block", order="AG"), KFAC(0, "block"))
    assert not order.passed and order.cause in ("permutation", "known_fault"), order.message()
    assert "A ⊗ G instead of G ⊗ A" in order.diagnosis
    net2, X2 = _net(M=8, widths=(3, 4, 4), scale=2.0)  # where the permutation check alone misses
    order = check_estimator(_kfac_estimator(net2, X2, 0, factor="block", order="AG"), net2, X2,
                                   n=1, which=KFAC(0, "block"), rng=0)
    assert not order.passed and "A ⊗ G instead of G ⊗ A" in order.diagnosis, order.message()
    # the Î₁ of θ is not what KFAC gates: a P x P estimate is refused by shape
    with pytest.raises(fv.errors.ShapeError, match="expected"):
        gate(lambda g: np.eye(net.num_params), KFAC(1))


def _one_backward(net, X, probe="rademacher", B=None):  # type: ignore[no-untyped-def]
    from fisher_verify._src.testing.gate_onebackward import one_backward_roots

    J = net.jacobian(X)
    B = one_backward_roots(net.family, net.forward(X)) if B is None else B
    a = np.einsum("mdk,mdp->mkp", B, J)

    def est(g: np.random.Generator) -> np.ndarray:
        xi = g.choice([-1.0, 1.0], size=a.shape[:2]) if probe == "rademacher" else g.normal(size=a.shape[:2])
        gh = np.einsum("mkp,mk->mp", a, xi)
        return (gh * gh).mean(axis=0)

    return est


def test_one_backward_gate_and_the_sqrt2_bound() -> None:
    net, X = _net(M=8, widths=(3, 4), scale=2.0)
    for probe in ("rademacher", "gaussian"):
        rep = check_estimator(_one_backward(net, X, probe), net, X, n=1, diagonal_only=True,
                                     which=OneBackward(probe), rng=0, variance="exact")  # type: ignore[arg-type]
        assert rep.passed, rep.message()
        # the claim: sd of the diagonal estimate at most √2 × the true diagonal
        assert all(s.sd <= math.sqrt(2) * s.expected * (1 + 1e-12) for s in rep.statistics[:net.num_params])


def test_one_sided_threshold_is_catonis_one_sided_radius() -> None:
    """r = σ sqrt(2L/(R − 2L)), L = log(2S/alpha) (half of alpha over the S statistics, half
    to the pooled test at L = log(2/alpha)): computed here from the formula."""
    net, X = _net(M=4, widths=(2, 3))
    est = _one_backward(net, X)
    R, alpha, D = 150, 1e-6, 3
    rep = check_estimator(est, net, X, n=1, diagonal_only=True, which=OneBackward(), rng=0,
                                 side="upper", replications=R, alpha=alpha, directions=D)
    S = net.num_params + D
    L = math.log(2 * S / alpha)
    assert rep.alpha_per_check == pytest.approx(alpha / (2 * S), rel=1e-15)
    for s in rep.statistics:
        assert s.radius == pytest.approx(s.sd * math.sqrt(2 * L / (R - 2 * L)), rel=1e-12)
        assert s.side == "upper"
    (pooled,) = rep.pooled
    Lp = math.log(2 / alpha)
    assert pooled.delta == pytest.approx(alpha / 2, rel=1e-15) and not pooled.two_sided
    assert pooled.radius == pytest.approx(pooled.sd * math.sqrt(2 * Lp / (R - 2 * Lp)), rel=1e-12)
    # its variance is the exact one of the precision-weighted combination, from the kind's law
    ok = np.array([s.expected > 0 for s in rep.statistics])
    e = np.array([s.expected for s in rep.statistics])
    v = np.array([s.sd**2 for s in rep.statistics])
    a = np.where(ok, e / v, 0.0)
    a /= a @ e
    from fisher_verify._src.testing.gate_onebackward import one_backward_statistics
    V = np.random.default_rng(0).normal(size=(D, net.num_params))  # the gate's directions
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    ex = one_backward_statistics(OneBackward(), net, X, 1, V, True)
    np.testing.assert_allclose(ex.expected, e, rtol=1e-12)
    assert pooled.sd**2 == pytest.approx(float(a @ ex.covariance() @ a), rel=1e-10)
    # below its range the one-sided gate refuses, naming the minimum ⌊2L⌋ + 1
    need = math.floor(2 * L) + 1
    with pytest.raises(FisherVerifyError, match=f"at least {need}"):
        check_estimator(est, net, X, n=1, diagonal_only=True, which=OneBackward(), rng=0,
                               side="upper", replications=need - 1, alpha=alpha, directions=D)


def test_one_sided_modes_accept_bounds_and_reject_the_wrong_side() -> None:
    from fisher_verify._src.testing.gate_onebackward import one_backward_roots

    net, X = _net(M=8, widths=(3, 4), scale=2.0)
    h = net.forward(X)
    unc = _one_backward(net, X, B=one_backward_roots(net.family, h, centered=False))

    def gate(est, kind, side):  # type: ignore[no-untyped-def]
        return check_estimator(est, net, X, n=1, diagonal_only=True, which=kind, rng=0, side=side)

    assert gate(unc, OneBackward(centered=False), "upper").passed
    low = gate(unc, OneBackward(centered=False), "lower")
    assert not low.passed and low.cause == "above_bound" and "not a lower bound" in low.diagnosis
    # the unbiased estimator satisfies both sides; half of Î₁ is a lower bound, not an upper one
    for side in ("upper", "lower"):
        assert gate(_one_backward(net, X), OneBackward(), side).passed
    fam = net.family
    J, eta = net.jacobian(X), np.asarray(fam.mean(h))

    def half(g: np.random.Generator) -> np.ndarray:
        s = np.einsum("ma,map->mp", fam.sample_statistic(h, 1, g)[0] - eta, J)
        return 0.5 * (s * s).mean(axis=0)

    assert gate(half, "I1", "lower").passed
    up = gate(half, "I1", "upper")
    assert not up.passed and up.cause == "below_bound"
    # no single statistic resolves the factor 1/2 at R = 200; the pooled one-sided test does
    (pooled,) = up.pooled
    assert not pooled.passed and "precision-weighted mean is 0.5" in up.diagnosis, up.diagnosis
    assert up.worst.observed < up.worst.expected


def test_refusals_name_the_argument() -> None:
    net, X = _net()
    P = net.num_params
    zero = lambda g: np.zeros(P)  # noqa: E731
    with pytest.raises(FisherVerifyError, match="side='upper'"):
        check_estimator(zero, net, X, n=1, diagonal_only=True, which=OneBackward(centered=False))
    with pytest.raises(FisherVerifyError, match="side must be"):
        check_estimator(zero, net, X, n=1, diagonal_only=True, side="above")  # type: ignore[arg-type]
    with pytest.raises(FisherVerifyError, match="OneBackward.probe"):
        check_estimator(zero, net, X, n=1, diagonal_only=True, which=OneBackward("uniform"))  # type: ignore[arg-type]
    with pytest.raises(FisherVerifyError, match="layer must be"):
        check_estimator(zero, net, X, n=1, which=KFAC(7))
    with pytest.raises(FisherVerifyError, match="KFAC.factor"):
        check_estimator(zero, net, X, n=1, which=KFAC(0, "A"))  # type: ignore[arg-type]
    with pytest.raises(fv.errors.UnsupportedError, match="categorical"):
        bern = fv.Network.random((2, 2, 1), "tanh", fv.family("bernoulli"), rng=0)
        check_estimator(lambda g: np.zeros(bern.num_params), bern, X, n=1, diagonal_only=True,
                               which=OneBackward(centered=False), side="upper")


@pytest.mark.parametrize(("kind", "side"), [(KFAC(1), "two-sided"), (OneBackward("rademacher"), "two-sided"),
                                            (OneBackward("gaussian"), "two-sided"),
                                            (OneBackward("rademacher"), "upper"),
                                            (OneBackward("gaussian"), "lower")])
def test_false_alarm_rate_at_a_measurable_alpha(kind: object, side: str) -> None:
    """100 gates at alpha = 0.2 on the true estimator (variance='exact': means, spreads and
    pooled tests; one-sided: an unbiased estimator is on the boundary of both nulls) alarm no
    more often than Bin(100, 0.2) allows at level 1e-6."""
    net, X = _net(M=4, widths=(2, 3, 3))
    if isinstance(kind, KFAC):
        est, diag = _kfac_estimator(net, X, 1), False
    else:
        est, diag = _one_backward(net, X, kind.probe), True  # type: ignore[attr-defined]
    rng = np.random.default_rng(11)
    gates, alpha = 100, 0.2
    alarms = sum(
        not check_estimator(est, net, X, n=1, which=kind, diagonal_only=diag,  # type: ignore[arg-type]
                                   replications=60, rng=rng, alpha=alpha, directions=2,
                                   variance="exact", side=side).passed  # type: ignore[arg-type]
        for _ in range(gates)
    )
    assert_frequency_at_least(gates - alarms, gates, 1 - alpha, alpha=1e-6, what="1 - alarms")


def test_gnb_clipping_bound_is_the_binomial_atom_bound() -> None:
    """C(R, k) π*^(k−1), π* = Π_m max_y p(y|x_m): computed here from the probabilities."""
    from fisher_verify._src.testing.gate_kinds import gnb_clipping

    net, X = _net(M=8, widths=(3, 4))
    h = net.forward(X)
    p = np.asarray(net.family.mean(h))
    pi = float(np.prod(p.max(axis=1)))
    R = 200
    for k in (2, 20, 60):
        traces = np.concatenate([np.full(k, 5.0), np.linspace(0.1, 4.0, R - k)])
        bound = math.comb(R, k) * pi ** (k - 1)
        text = gnb_clipping(traces, net.family, h)
        if bound <= 1e-6:
            assert f"{k} of {R}" in text and f"{bound:.2g}" in text
        else:
            assert text == ""
    assert gnb_clipping(np.linspace(0.1, 4.0, R), net.family, h) == ""  # no tie at the top
    # a continuous family has no atoms: two equal traces at the top are decisive
    normal = fv.Network.random((3, 4, 1), "tanh", fv.family("normal"), rng=0)
    assert "2 of 3" in gnb_clipping(np.array([1.0, 3.0, 3.0]), normal.family, normal.forward(X))


def test_kfac_block_order_permutation_maps_g_kron_a_to_a_kron_g() -> None:
    """The diagnosis' order: estimate[i] = (G ⊗ A)[π(i)] when the estimate is A ⊗ G."""
    from fisher_verify._src.testing.gate_kfac import kfac_target

    net, X = _net(widths=(2, 3, 3))
    for layer in range(net.depth):
        A, G = kfac_factors(net, X, layer)
        _, _, ((_, perm),) = kfac_target(KFAC(layer, "block"), net, X)
        np.testing.assert_array_equal(np.kron(A, G), np.kron(G, A)[np.ix_(perm, perm)])


def test_size_limits_are_refused_at_once_naming_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the entry limits of the per-input matrices the kinds refuse before computing."""
    from fisher_verify._src.testing import gate_kfac, gate_onebackward

    net, X = _net()
    monkeypatch.setattr(gate_onebackward, "ONE_BACKWARD_ENTRY_LIMIT", 100)
    with pytest.raises(fv.errors.UnsupportedError, match="exceed 100"):
        check_estimator(lambda g: np.zeros(net.num_params), net, X, n=1, diagonal_only=True,
                               which=OneBackward())
    monkeypatch.setattr(gate_kfac, "KFAC_ENTRY_LIMIT", 100)
    with pytest.raises(fv.errors.UnsupportedError, match="exceed 100"):
        check_estimator(lambda g: np.zeros((3, 3)), net, X, n=1, which=KFAC(1))
