"""The gate's estimator kinds beyond Î₁ / Î₂ (``ext-gnb``, ``ext-hutchinson``): the exact laws
against enumeration (every label set; every Rademacher probe; Gauss–Hermite nodes exact for the
degrees involved), correct estimators pass, the public faults are rejected and named, and the
false-alarm rate at a measurable alpha."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify import check_estimator
from fisher_verify._src.testing.calibrated import assert_frequency_at_least
from fisher_verify._src.testing.gate_exact import combination_variance, statistics_covariance
from fisher_verify._src.testing.gate_kinds import gnb_statistics, hutchinson_statistics, sum_moments
from fisher_verify.errors import FisherVerifyError


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    try:
        import torch
    except ImportError:
        yield None
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(before)


def _net(name: str, M: int = 3, widths: tuple[int, ...] = (2, 3), **params: object) -> tuple[fv.Network, np.ndarray]:
    fam = fv.family(name, **params)
    net = fv.Network.random((*widths, fam.dim), "tanh", fam, rng=1)
    x = np.random.default_rng(2).normal(size=(M, widths[0]))
    return net, x


def _unit_rows(P: int, D: int, seed: int = 0) -> np.ndarray:
    V = np.random.default_rng(seed).normal(size=(D, P))
    return V / np.linalg.norm(V, axis=1, keepdims=True)


def _law(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, covariance, fourth central moments) of statistics given at weighted points."""
    w = weights / weights.sum()
    mean = w @ points
    cen = points - mean
    return mean, (cen * w[:, None]).T @ cen, w @ cen**4


def _gnb_enumerated(net: fv.Network, x: np.ndarray, V: np.ndarray, diagonal: bool):  # type: ignore[no-untyped-def]
    """The GNB statistics at every label set (labels independent across inputs)."""
    fam = net.family
    X, _ = net.inputs(x)
    M = X.shape[0]
    h, J = net.forward(X), net.jacobian(X)
    eta = np.asarray(fam.mean(h))
    t, w, _ = fam.expectation_nodes(h, degree=2)  # every support point of a finite family
    pts, wts = [], []
    for combo in itertools.product(range(t.shape[1]), repeat=M):
        p = float(np.prod([w[m, q] for m, q in enumerate(combo)]))
        r = np.stack([t[m, q] - eta[m] for m, q in enumerate(combo)])
        g = np.einsum("ma,map->p", r, J) / M  # the batch-mean gradient
        G = M * np.outer(g, g)
        dirs = (V * V) @ np.diag(G) if diagonal else np.einsum("kp,pq,kq->k", V, G, V)
        pts.append(np.concatenate([np.diag(G), dirs]))
        wts.append(p)
    return _law(np.array(pts), np.array(wts))


@pytest.mark.parametrize(("name", "params"), [("bernoulli", {}), ("categorical", {"K": 3})])
@pytest.mark.parametrize("diagonal", [False, True])
def test_gnb_law_matches_enumeration_over_label_sets(name: str, params: dict, diagonal: bool) -> None:
    net, x = _net(name, **params)
    V = _unit_rows(net.num_params, 2)
    mean, cov, m4 = _gnb_enumerated(net, x, V, diagonal)
    for n in (1, 3):
        ex = gnb_statistics(net, net.inputs(x)[0], n, V, diagonal)
        scale = float(np.max(np.abs(mean)))
        np.testing.assert_allclose(ex.expected, mean, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(ex.variance, np.diag(cov) / n, rtol=1e-10)
        fam = net.family
        np.testing.assert_allclose(statistics_covariance(ex, fam), cov / n, rtol=0,
                                   atol=1e-10 * float(np.max(np.abs(cov))))
        a = np.random.default_rng(5).normal(size=(3, mean.size))
        np.testing.assert_allclose(combination_variance(ex, fam, a),
                                   np.einsum("ks,st,kt->k", a, cov, a) / n, rtol=1e-10)
        # fourth moment of a mean of n i.i.d. copies: (μ₄ + 3(n−1)σ⁴)/n³
        rank_one = slice(None) if not diagonal else slice(0, net.num_params)
        want = (m4 + 3 * (n - 1) * np.diag(cov) ** 2) / n**3
        np.testing.assert_allclose(ex.fourth[rank_one], want[rank_one], rtol=1e-9)
        if diagonal:
            assert np.all(np.isnan(ex.fourth[net.num_params:]))


def test_sum_moments_is_the_convolution_of_independent_laws() -> None:
    """Central moments of a scaled sum of two independent two-point laws, enumerated."""
    a = np.array([-1.0, 3.0]), np.array([0.75, 0.25])
    b = np.array([-0.5, 2.0]), np.array([0.8, 0.2])
    laws = [(v - p @ v, p) for v, p in (a, b)]
    central = np.array([[[p @ v**k for k in range(9)]] for v, p in laws])  # (2, 1, 9)
    s = 0.7
    vals = np.array([s * (u + v) for u in laws[0][0] for v in laws[1][0]])
    prob = np.array([p * q for p in laws[0][1] for q in laws[1][1]])
    want = [prob @ vals**k for k in range(9)]
    np.testing.assert_allclose(sum_moments(central, s)[0], want, rtol=1e-12, atol=1e-15)


def _hutchinson_law(F: np.ndarray, V: np.ndarray, probe: str):  # type: ignore[no-untyped-def]
    P = F.shape[0]
    if probe == "rademacher":
        pts = np.array(list(itertools.product([-1.0, 1.0], repeat=P)))
        wts = np.ones(len(pts))
    else:  # 5 Gauss–Hermite nodes per coordinate: exact to degree 9, the fourth moment is 8
        z, wz = np.polynomial.hermite_e.hermegauss(5)
        pts = np.array(list(itertools.product(z, repeat=P)))
        wts = np.prod(np.array(list(itertools.product(wz, repeat=P))), axis=1)
    D = pts * (pts @ F)
    return _law(np.concatenate([D, D @ (V * V).T], axis=1), wts)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_law_matches_enumeration_over_probes(probe: str) -> None:
    net, x = _net("bernoulli", widths=(1, 2))  # P = 7
    X, _ = net.inputs(x)
    F = fv.exact_fisher(net, X)
    V = _unit_rows(net.num_params, 2)
    mean, cov, m4 = _hutchinson_law(F, V, probe)
    P = net.num_params
    # the closed forms of the issue, independently
    off = np.sum(F * F, axis=1) - np.diag(F) ** 2
    closed = off if probe == "rademacher" else np.diag(F) ** 2 + np.sum(F * F, axis=1)
    np.testing.assert_allclose(np.diag(cov)[:P], closed, rtol=1e-10)
    for n in (1, 4):
        ex = hutchinson_statistics(net, X, f"hutchinson-{probe}", n, V)
        np.testing.assert_allclose(ex.expected, mean, rtol=0, atol=1e-12 * float(np.max(mean)))
        np.testing.assert_allclose(ex.variance, np.diag(cov) / n, rtol=1e-10)
        np.testing.assert_allclose(statistics_covariance(ex, net.family), cov / n, rtol=0,
                                   atol=1e-10 * float(np.max(np.abs(cov))))
        a = np.random.default_rng(5).normal(size=(3, mean.size))
        np.testing.assert_allclose(combination_variance(ex, net.family, a),
                                   np.einsum("ks,st,kt->k", a, cov, a) / n, rtol=1e-10)
        want = (m4 + 3 * (n - 1) * np.diag(cov) ** 2) / n**3
        np.testing.assert_allclose(ex.fourth[:P], want[:P], rtol=1e-9)


# --- the gate --------------------------------------------------------------------------------


class _Gnb:
    """Sophia's GNB in NumPy from the network's Jacobians, and its public faults."""

    def __init__(self, name: str, M: int = 8, **params: object) -> None:
        self.net, self.x = _net(name, M=M, widths=(3, 4), **params)
        X, _ = self.net.inputs(self.x)
        self.fam = self.net.family
        self.M = X.shape[0]
        self.J = self.net.jacobian(X)
        self.h = self.net.forward(X)
        self.eta = np.asarray(self.fam.mean(self.h))

    def make(self, scale: float = 1.0, t: np.ndarray | None = None, full: bool = False,
             clip: float | None = None) -> Callable[[np.random.Generator], np.ndarray]:
        def est(g: np.random.Generator) -> np.ndarray:
            tt = self.fam.sample_statistic(self.h, 1, g)[0] if t is None else t
            gbar = np.einsum("ma,map->p", tt - self.eta, self.J) / self.M
            if clip is not None:
                gbar = gbar * min(1.0, clip / float(np.linalg.norm(gbar)))
            return scale * self.M * (np.outer(gbar, gbar) if full else gbar * gbar)

        return est


@pytest.mark.parametrize(("name", "params"), [("categorical", {"K": 3}), ("bernoulli", {})])
def test_gnb_passes_and_its_faults_are_named(name: str, params: dict) -> None:
    f = _Gnb(name, **params)

    def gate(est, diag=True, **kw):  # type: ignore[no-untyped-def]
        return check_estimator(est, f.net, f.x, n=1, which="gnb", diagonal_only=diag, rng=0, **kw)

    for rep in (gate(f.make()), gate(f.make(full=True), diag=False),
                gate(f.make(), variance="exact")):
        assert rep.passed, rep.message()
        assert rep.which == "gnb" and "Gauss–Newton–Bartlett" in rep.message()
    missing_b = gate(f.make(1.0 / f.M))
    assert not missing_b.passed and missing_b.factor == "1/M" and "batch size B" in missing_b.diagnosis
    accumulation = gate(f.make(1.0 / 4))  # loss divided by 2 accumulation steps
    assert not accumulation.passed and accumulation.factor == "1/4"
    assert "accumulation" in accumulation.diagnosis
    per_rank = gate(f.make(1.0 / 2))  # mean over 2 ranks, scaled by the per-rank B = M/2
    assert not per_rank.passed and per_rank.factor == "1/2"
    y = np.random.default_rng(3).integers(0, f.fam.dim if name == "categorical" else 2, size=f.M)
    t_data = np.asarray(f.fam.statistic(y), dtype=float)
    data = gate(f.make(t=t_data), labels=y)
    assert not data.passed and data.cause == "data_labels", data.message()
    assert "training gradient" in data.diagnosis
    clipped = gate(f.make(clip=0.5 * float(np.sqrt(np.trace(fv.exact_fisher(f.net, f.x)) / f.M))))
    assert not clipped.passed and clipped.cause == "clipped" and "clipped gradient" in clipped.diagnosis
    # the Î₁ calibration calls the correct GNB noisier, not unbiased with Î₁'s spread
    assert check_estimator(f.make(), f.net, f.x, n=1, which="I1", diagonal_only=True, rng=0).cause == "noisier"


def test_gnb_with_torch_autograd_passes_and_through_check_torch_fisher() -> None:
    """A Sophia-style PyTorch step: labels sampled per example, cross-entropy mean, backward,
    B·grad²; gated with which="gnb" through the module route (float64 and float32)."""
    import torch

    from fisher_verify import check_estimator

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    fam = fv.family("categorical", K=3)
    x = np.random.default_rng(2).normal(size=(6, 3))

    def gnb(model, xt, generator, scale=1.0):  # type: ignore[no-untyped-def]
        logits = model(xt)
        with torch.no_grad():
            y = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
        loss = torch.nn.functional.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        return scale * xt.shape[0] * torch.cat([g.reshape(-1) ** 2 for g in grads])

    rep = check_estimator(lambda m, d, generator: gnb(m, d, generator), model, torch.as_tensor(x),
                          family=fam, n=1, which="gnb", randomness="generator", rng=0)
    assert rep.passed, rep.message()
    bad = check_estimator(lambda m, d, generator: gnb(m, d, generator, 1 / 6), model,
                          torch.as_tensor(x), family=fam, n=1, which="gnb",
                          randomness="generator", rng=0)
    assert not bad.passed and bad.factor == "1/M"
    xt = torch.as_tensor(x)
    via = check_estimator(lambda m, d, generator: gnb(m, d, generator), model.float(), xt.float(),
                             family=fam, n=1, which="gnb", randomness="generator", rng=0)
    assert via.passed and getattr(via, "which", None) == "gnb", via.message()


@pytest.mark.parametrize(("name", "params"), [("categorical", {"K": 3}), ("bernoulli", {})])
def test_hutchinson_passes_and_wrong_probes_fail(name: str, params: dict) -> None:
    net, x = _net(name, M=8, widths=(3, 4), **params)
    F = fv.exact_fisher(net, x)
    P = net.num_params

    def hut(draw: Callable[[np.random.Generator], np.ndarray], scale: float = 1.0):  # type: ignore[no-untyped-def]
        return lambda g: scale * (lambda v: v * (F @ v))(draw(g))

    rad = lambda g: g.choice([-1.0, 1.0], size=P)  # noqa: E731
    gauss = lambda g: g.normal(size=P)  # noqa: E731

    def gate(est, kind):  # type: ignore[no-untyped-def]
        return check_estimator(est, net, x, n=1, which=kind, diagonal_only=True, rng=0)

    assert gate(hut(rad), "hutchinson-rademacher").passed
    assert gate(hut(gauss), "hutchinson-gaussian").passed
    wrong = gate(hut(gauss), "hutchinson-rademacher")  # Gaussian probes, declared Rademacher
    assert not wrong.passed and wrong.cause == "noisier"
    unif = gate(hut(lambda g: g.uniform(-1, 1, size=P)), "hutchinson-gaussian")  # variance 1/3
    assert not unif.passed and unif.cause == "scale" and unif.factor == "1/3"
    unit = gate(hut(lambda g: (lambda v: v / np.linalg.norm(v))(g.normal(size=P))), "hutchinson-gaussian")
    assert not unit.passed and unit.cause == "scale" and "probes need" in unit.diagnosis
    # n probes summed instead of averaged: the factor n; n probes declared as one: quieter
    def probes(k: int, scale: float):  # type: ignore[no-untyped-def]
        return lambda g: scale * (lambda v: (v * (v @ F)).mean(axis=0))(g.choice([-1.0, 1.0], size=(k, P)))

    summed = check_estimator(probes(4, 4.0), net, x, n=4, which="hutchinson-rademacher",
                                    diagonal_only=True, rng=0)
    assert not summed.passed and summed.factor == "n"
    quiet = check_estimator(probes(4, 1.0), net, x, n=1, which="hutchinson-rademacher",
                                   diagonal_only=True, rng=0, variance="exact")
    assert not quiet.passed and quiet.cause == "quieter"


def test_bad_kinds_are_refused() -> None:
    net, x = _net("bernoulli")
    with pytest.raises(FisherVerifyError, match="which must be one of"):
        check_estimator(lambda g: np.zeros(net.num_params), net, x, n=1, which="sophia",  # type: ignore[arg-type]
                               diagonal_only=True)
    with pytest.raises(FisherVerifyError, match="diagonal_only=True"):
        check_estimator(lambda g: np.zeros((net.num_params,) * 2), net, x, n=1,
                               which="hutchinson-rademacher")


@pytest.mark.parametrize("kind", ["gnb", "hutchinson-rademacher", "hutchinson-gaussian"])
def test_false_alarm_rate_at_a_measurable_alpha(kind: str) -> None:
    """100 gates at alpha = 0.2 on the true estimator (variance='exact', means, spreads and
    pooled tests) alarm no more often than Bin(100, 0.2) allows at level 1e-6."""
    f = _Gnb("categorical", M=4, K=3)
    F = fv.exact_fisher(f.net, f.x)
    P = f.net.num_params
    if kind == "gnb":
        est = f.make()
    else:
        draw = (lambda g: g.choice([-1.0, 1.0], size=P)) if kind.endswith("rademacher") else (
            lambda g: g.normal(size=P))
        est = lambda g: (lambda v: v * (F @ v))(draw(g))  # noqa: E731
    rng = np.random.default_rng(11)
    gates, alpha = 100, 0.2
    alarms = sum(
        not check_estimator(est, f.net, f.x, n=1, which=kind, diagonal_only=True,  # type: ignore[arg-type]
                                   replications=60, rng=rng, alpha=alpha, directions=2,
                                   variance="exact").passed
        for _ in range(gates)
    )
    assert_frequency_at_least(gates - alarms, gates, 1 - alpha, alpha=1e-6, what="1 - alarms")


@pytest.mark.parametrize("kind", ["I1", "I2", "gnb", "hutchinson-rademacher"])
def test_diagonal_gate_without_directions_runs(kind: object) -> None:
    """directions=0 with a diagonal estimate (no Diag(v²) forms to stack) is a valid gate."""
    net, x = _net("bernoulli")
    F = fv.exact_fisher(net, x)
    rep = check_estimator(lambda g: np.diag(F), net, x, n=2, which=kind,  # type: ignore[arg-type]
                                 diagonal_only=True, directions=0)
    assert rep.passed and rep.cause == "exact" and len(rep.statistics) == net.num_params


# --- subsampled inputs (ext-subsampled) -------------------------------------------------------


@pytest.mark.parametrize(("base", "replace"), [("I1", False), ("I1", True), ("exact", False), ("exact", True)])
def test_subsampled_law_matches_enumeration_over_subsets(base: object, replace: bool) -> None:
    from fisher_verify._src.testing.gate_kinds import Subsampled, subsampled_statistics

    net, x = _net("bernoulli", M=4)
    X, _ = net.inputs(x)
    fam = net.family
    M, m, P = 4, 2, net.num_params
    V = _unit_rows(P, 2)
    h, J = net.forward(X), net.jacobian(X)
    eta = np.asarray(fam.mean(h))
    t, w, _ = fam.expectation_nodes(h, degree=2)
    subsets = list(itertools.product(range(M), repeat=m)) if replace else list(itertools.combinations(range(M), m))
    pts, wts = [], []
    for S in subsets:
        labels = [()] if base == "exact" else list(itertools.product(range(t.shape[1]), repeat=m))
        for combo in labels:
            if base == "exact":  # every label weighted by its probability
                G = sum(J[s].T @ np.einsum("q,qa,qb->ab", w[s], t[s] - eta[s], t[s] - eta[s]) @ J[s]
                        for s in S) / m
                p = 1.0
            else:
                sc = [J[s].T @ (t[s, q] - eta[s]) for s, q in zip(S, combo)]
                G = sum(np.outer(g, g) for g in sc) / m
                p = float(np.prod([w[s, q] for s, q in zip(S, combo)]))
            pts.append(np.concatenate([np.diag(G), np.einsum("kp,pq,kq->k", V, G, V)]))
            wts.append(p / len(subsets))
    mean, cov, _ = _law(np.array(pts), np.array(wts))
    ex = subsampled_statistics(Subsampled(m, base, replace), net, X, 1, V, False)  # type: ignore[arg-type]
    np.testing.assert_allclose(ex.expected, mean, rtol=1e-12)
    np.testing.assert_allclose(ex.variance, np.diag(cov), rtol=1e-10)
    np.testing.assert_allclose(statistics_covariance(ex, fam), cov, rtol=0, atol=1e-10 * float(np.max(np.abs(cov))))
    a = np.random.default_rng(5).normal(size=(3, mean.size))
    np.testing.assert_allclose(combination_variance(ex, fam, a), np.einsum("ks,st,kt->k", a, cov, a), rtol=1e-10)
    assert np.all(np.isnan(ex.fourth))  # the spread is not tested for this kind


def test_subsampled_estimators_pass_and_faults_fail() -> None:
    from fisher_verify._src.testing.gate_kinds import Subsampled

    net, x = _net("categorical", M=8, widths=(3, 4), K=3)
    X, _ = net.inputs(x)
    M, m = 8, 4
    per = [fv.exact_fisher(net, X[s : s + 1]) for s in range(M)]

    def ewc(norm: int, redraw: bool = True):  # type: ignore[no-untyped-def]
        fixed = np.arange(m)

        def est(g: np.random.Generator) -> np.ndarray:
            S = g.choice(M, size=m, replace=False) if redraw else fixed
            return np.diag(sum(per[s] for s in S)) / norm

        return est

    def gate(est, kind):  # type: ignore[no-untyped-def]
        return check_estimator(est, net, x, n=1, which=kind, diagonal_only=True, rng=0)

    kind = Subsampled(m, "exact")
    ok = gate(ewc(m), kind)
    assert ok.passed and "4 inputs drawn without replacement" in ok.message(), ok.message()
    wrong_norm = gate(ewc(M), kind)  # divided by M, not by the m inputs used
    assert not wrong_norm.passed and wrong_norm.factor == "1/2"
    assert not gate(ewc(m, redraw=False), kind).passed  # one subset for every call
    # Î₁ with 4 draws on a subset of 4 inputs
    J, h = net.jacobian(X), net.forward(X)
    eta = np.asarray(net.family.mean(h))

    def i1_sub(g: np.random.Generator) -> np.ndarray:
        S = g.choice(M, size=m, replace=False)
        t = net.family.sample_statistic(h[S], 4, g)  # (4, m, d)
        sc = np.einsum("nma,map->nmp", t - eta[S], J[S])
        return (sc * sc).sum(axis=(0, 1)) / (4 * m)

    rep = check_estimator(i1_sub, net, x, n=4, which=Subsampled(m, "I1"), diagonal_only=True, rng=0)
    assert rep.passed, rep.message()
    with pytest.raises(FisherVerifyError, match="Subsampled.inputs"):
        gate(ewc(m), Subsampled(M + 1, "exact"))


@pytest.mark.parametrize(("name", "params"), [("poisson", {}), ("normal", {}), ("categorical", {"K": 5})])
def test_gnb_on_other_families(name: str, params: dict) -> None:
    """Unbounded and continuous outputs (κ₄ from the family): the correct GNB passes, declared
    exact, over 3 seeds; a missing B is named."""
    f = _Gnb(name, M=6, **params)
    for seed in range(3):
        rep = check_estimator(f.make(), f.net, f.x, n=1, which="gnb", diagonal_only=True,
                                     rng=seed, variance="exact")
        assert rep.passed, rep.message()
    bad = check_estimator(f.make(1.0 / f.M), f.net, f.x, n=1, which="gnb", diagonal_only=True, rng=0)
    assert not bad.passed and bad.factor == "1/M"
