"""The estimator gate (fisher_verify._src.testing.estimator_gate): correct estimators pass, the classic
bugs fail with a fixed seed, and the calibration rests on exact variances (thm-4, thm-6)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify import assert_estimator, check_estimator
from fisher_verify._src.fisher.covariance import network_covariance as covariance
from fisher_verify._src.fisher.estimators import estimators_from_draws
from fisher_verify._src.testing import estimator_gate as gate_mod
from fisher_verify._src.testing.calibrated import assert_frequency_at_least, median_of_means_plan
from fisher_verify._src.testing.estimator_gate import minimum_replications, torch_parameter_permutation


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids spin-wait contention on a busy 2-core box."""
    try:
        import torch
    except ImportError:
        yield None
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(before)


N = 50  # draws per input
R = 200  # replicates


def _setup(name: str, **params: object) -> tuple[fv.Network, np.ndarray]:
    fam = fv.family(name, **params)
    net = fv.Network.random((3, 4, fam.dim), "tanh", fam, rng=1)
    x = np.random.default_rng(2).normal(size=(4, 3))
    return net, x


FAMILIES = [("categorical", {"K": 3}), ("bernoulli", {}), ("poisson", {}), ("normal", {})]


# --- correct estimators pass ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), FAMILIES)
@pytest.mark.parametrize("kind", [1, 2])
def test_package_estimators_pass(name: str, params: dict, kind: int) -> None:
    net, x = _setup(name, **params)
    rep = assert_estimator(
        lambda g: getattr(fv.sample_estimators(net, x, N, g), f"i{kind}"),
        net, x, n=N, which=f"I{kind}", replications=R, rng=0,
    )
    assert rep.passed and abs(rep.scale - 1.0) < 0.1
    assert 0.7 < rep.sd_ratio < 1.3  # the exact variance is the real spread
    assert "consistent with an unbiased" in rep.diagnosis


def test_diagonal_estimator_passes() -> None:
    net, x = _setup("categorical", K=3)
    assert_estimator(
        lambda g: np.diagonal(fv.sample_estimators(net, x, N, g).i1),
        net, x, n=N, replications=R, rng=0, diagonal_only=True,
    )
    assert_estimator(
        lambda g: np.diagonal(fv.sample_estimators(net, x, N, g).i2),
        net, x, n=N, which="I2", replications=R, rng=0, diagonal_only=True,
    )


# --- deliberately wrong estimators fail ------------------------------------------------------


def test_scaled_estimator_fails_and_reports_the_factor() -> None:
    net, x = _setup("categorical", K=3)
    rep = check_estimator(
        lambda g: 1.5 * fv.sample_estimators(net, x, N, g).i1, net, x, n=N, replications=R, rng=0
    )
    assert not rep.passed
    assert rep.scale == pytest.approx(1.5, rel=0.05) and rep.scale_explains
    assert "3/2x too large (1.5x)" in rep.diagnosis and rep.factor == "3/2"
    with pytest.raises(AssertionError, match="too large"):
        assert_estimator(
            lambda g: 1.5 * fv.sample_estimators(net, x, N, g).i1, net, x, n=N, replications=R,
            rng=0,
        )


def test_empirical_fisher_fails() -> None:
    """Labels from "data" (a teacher network, drawn once), not from the model: deterministic."""
    net, x = _setup("categorical", K=3)
    teacher = fv.Network.random((3, 4, 3), "tanh", net.family, rng=7)
    y_data = net.family.sample(teacher.forward(x), N, np.random.default_rng(99))
    rep = check_estimator(
        lambda g: estimators_from_draws(net, x, y_data).i1, net, x, n=N, replications=R, rng=0
    )
    assert not rep.passed and rep.sd_ratio < 1e-6
    assert "empirical Fisher" in rep.diagnosis


def test_labels_from_perturbed_theta_fail() -> None:
    net, x = _setup("categorical", K=3)
    stale = net.with_theta(net.theta + 0.5 * np.random.default_rng(5).normal(size=net.num_params))

    def estimator(g: np.random.Generator) -> np.ndarray:
        y = net.family.sample(stale.forward(x), N, g)
        return estimators_from_draws(net, x, y).i1

    rep = check_estimator(estimator, net, x, n=N, replications=R, rng=0)
    assert not rep.passed and not rep.scale_explains and rep.cause == "distribution"
    assert "not by a constant factor" in rep.diagnosis
    assert abs(rep.worst.z) > rep.worst.threshold_z


def test_diagonal_missing_one_over_n_fails() -> None:
    net, x = _setup("bernoulli")
    rep = check_estimator(
        lambda g: N * np.diagonal(fv.sample_estimators(net, x, N, g).i1),
        net, x, n=N, replications=R, rng=0, diagonal_only=True,
    )
    assert not rep.passed and rep.scale == pytest.approx(N, rel=0.05)
    assert "missing 1/N" in rep.diagnosis


def test_shape_and_replication_errors() -> None:
    net, x = _setup("bernoulli")
    diag = lambda g: np.diagonal(fv.sample_estimators(net, x, 2, g).i1)  # noqa: E731
    with pytest.raises(fv.FisherVerifyError, match="diagonal_only"):
        check_estimator(diag, net, x, n=2, replications=R, diagonal_only=False)
    # undeclared (None), the shape of the first replicate decides, with no extra call: the
    # replicates and so the report are those of the declared diagonal gate
    inferred = check_estimator(diag, net, x, n=2, replications=R)
    declared = check_estimator(diag, net, x, n=2, replications=R, diagonal_only=True)
    assert inferred.diagonal_only and inferred.message() == declared.message()
    # below Catoni's range the gate falls back to a median of means; below that it refuses
    S = net.num_params + 8
    need = minimum_replications(1e-6, S)
    mom_ok = True
    try:
        median_of_means_plan(0.9e-6 / S, need - 1)
    except ValueError:
        mom_ok = False
    assert not mom_ok and median_of_means_plan(0.9e-6 / S, need)
    with pytest.raises(fv.FisherVerifyError, match=f"at least {need}"):
        check_estimator(
            lambda g: fv.sample_estimators(net, x, 2, g).i1, net, x, n=2, replications=need - 1
        )


@pytest.mark.parametrize(("R_", "method"), [(20, "median_of_means"), (37, "catoni"),
                                            (60, "catoni+spread")])
def test_small_replication_counts_choose_the_valid_test(R_: int, method: str) -> None:
    """R = 20 (an exact Fisher needs few calls): the median of means, no spread test; a
    deterministic estimator is still compared exactly, and a wrong one still fails."""
    f = _Fast("poisson", n=16)
    S = f.net.num_params + 8
    L_full = math.log(2 * 2 * S / 0.9e-6)
    L_means = math.log(2 * S / 0.9e-6)
    assert (R_ > 2 * L_full) == (method == "catoni+spread")
    assert (R_ > 2 * L_means) == (method != "median_of_means")
    ok = check_estimator(f.i1, f.net, f.x, n=16, replications=R_, rng=0)
    assert ok.passed and ok.method == method, ok.message()
    exact = check_estimator(lambda g: f.I, f.net, f.x, n=16, replications=R_, rng=0)
    assert exact.passed and exact.cause == "exact"
    # a constant 1.5 I(θ): off by ~3 sd of Î₁(16), which R = 20 equal values rule out; both
    # parts of the cause are named (deterministic, and rescaled)
    wrong = check_estimator(lambda g: 1.5 * f.I, f.net, f.x, n=16, replications=R_, rng=0)
    assert not wrong.passed and wrong.cause == "exact_scaled" and wrong.factor == "3/2"
    assert "deterministic and equal to I(θ) × 3/2" in wrong.diagnosis


# --- the calibration is honest ---------------------------------------------------------------


@pytest.mark.parametrize("kind", [1, 2])
@pytest.mark.parametrize("diagonal_only", [False, True])
def test_exact_variances_match_the_covariance_tensor(kind: int, diagonal_only: bool) -> None:
    """Var⟨W, Î⟩ = Σ W_ij W_kl Cov(Î)^{ijkl} with the thm-4 / thm-6 tensor (P ≤ 40)."""
    net, x = _setup("categorical", K=3)
    X, _ = net.inputs(x)
    V = np.random.default_rng(4).normal(size=(5, net.num_params))
    exp, var, _ = gate_mod._exact_statistics(net, X, kind, 7, V, diagonal_only)
    cov = covariance(net, X, kind, 7)  # type: ignore[arg-type]
    P = net.num_params
    Ws = [np.diag(np.eye(P)[i]) for i in range(P)]
    Ws += [np.diag(v * v) if diagonal_only else np.outer(v, v) for v in V]
    want = np.array([np.einsum("ij,ijkl,kl->", W, cov, W) for W in Ws])
    np.testing.assert_allclose(var, want, rtol=1e-9, atol=1e-14)
    I = fv.exact_fisher(net, X)
    np.testing.assert_allclose(exp, [np.sum(W * I) for W in Ws], rtol=1e-12, atol=1e-15)


def test_large_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401 - torch is a test dependency: a missing torch must fail, not skip

    from fisher_verify._src.testing import gate_exact
    net, x = _setup("categorical", K=3)
    X, _ = net.inputs(x)
    V = np.random.default_rng(4).normal(size=(3, net.num_params))
    for diag in (False, True):
        dense = gate_mod._exact_statistics(net, X, 2, 5, V, diag)
        monkeypatch.setattr(gate_exact, "DENSE_HESSIAN_LIMIT", 0)
        large = gate_mod._exact_statistics(net, X, 2, 5, V, diag)
        monkeypatch.undo()
        for a, b in zip(dense, large):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)
    dense = gate_mod._exact_statistics(net, X, 1, 5, V, False)
    monkeypatch.setattr(gate_exact, "LARGE_DIAGONAL_P", 0)
    large = gate_mod._exact_statistics(net, X, 1, 5, V, False)
    for a, b in zip(dense, large):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)


def test_threshold_is_the_bonferroni_catoni_radius() -> None:
    """No tuning: alpha/T per test, Catoni's radius sigma sqrt(2L/(R - 2L)) from the exact sd."""
    net, x = _setup("poisson")
    rep = check_estimator(
        lambda g: fv.sample_estimators(net, x, N, g).i1, net, x, n=N, replications=R, rng=0
    )
    S = len(rep.statistics)
    assert S == net.num_params + 8 and rep.tests == 2 * S
    assert rep.alpha == 1e-6 and rep.alpha_per_check * rep.tests <= 1e-6 * (1 + 1e-12)
    L = math.log(2 / rep.alpha_per_check)
    for s in rep.statistics:
        assert s.radius == pytest.approx(s.sd * math.sqrt(2 * L / (R - 2 * L)), rel=1e-12)
        assert s.slack < 1e-6 * s.radius  # the rounding tolerance is negligible


def test_radius_for_40_statistics_is_at_most_7_standard_errors() -> None:
    """The issue's target: alpha = 1e-6, R = 200, a gate of 40 statistics (and 40 spreads)."""
    net, x = _setup("bernoulli")
    rep = check_estimator(
        lambda g: fv.sample_estimators(net, x, N, g).i1, net, x, n=N, replications=R, rng=0,
        directions=40 - net.num_params,
    )
    assert len(rep.statistics) == 40 and rep.tests == 80
    z = {round(s.threshold_z, 9) for s in rep.statistics}
    assert len(z) == 1 and z.pop() <= 7.0
    # closed form with 0.9 alpha for the 80 mean and spread tests (0.1 alpha for constant
    # statistics): sqrt(200) sqrt(2L / (200 - 2L)), L = log(2*80/0.9e-6): 6.84
    L = math.log(2 * 80 / 0.9e-6)
    assert rep.worst.threshold_z == pytest.approx(math.sqrt(200 * 2 * L / (200 - 2 * L)))


class _Fast:
    """Cheap, vectorised estimators on one network from the draws' sufficient statistics t:
    the correct Î₁ and Î₂, and the variance-only mistakes of the issue."""

    def __init__(
        self, name: str = "bernoulli", n: int = 5, *, M: int = 4, bias_shift: float = 0.0,
        **params: object,
    ) -> None:
        self.net, self.x = _setup(name, **params)
        if M != 4:
            self.x = np.random.default_rng(2).normal(size=(M, 3))
        if bias_shift:
            theta = self.net.theta.copy()
            theta[-1] += bias_shift  # the last output's bias
            self.net = self.net.with_theta(theta)
        self.fam = self.net.family
        self.X, _ = self.net.inputs(self.x)
        self.M = self.X.shape[0]
        self.J = self.net.jacobian(self.X)
        self.h = self.net.forward(self.X)
        self.eta = np.asarray(self.fam.mean(self.h))
        self.I = fv.exact_fisher(self.net, self.X)
        self.n = n

    def i1_from(self, t: np.ndarray) -> np.ndarray:
        r = t - self.eta[None]  # (n, M, d)
        S = np.einsum("nma,nmb->mab", r, r) / r.shape[0]
        return np.einsum("map,mab,mbq->pq", self.J, S, self.J) / self.M

    def i1(self, g: np.random.Generator) -> np.ndarray:
        return self.i1_from(self.fam.sample_statistic(self.h, self.n, g))

    def i2(self, g: np.random.Generator) -> np.ndarray:
        H = self.net.output_hessians(self.X)
        r = (self.fam.sample_statistic(self.h, self.n, g) - self.eta[None]).mean(axis=0)
        return self.I - np.einsum("ma,mapq->pq", r, H) / self.M

    def shared_noise(self, g: np.random.Generator) -> np.ndarray:
        """Inverse-CDF labels with the same uniform for every input (categorical / Bernoulli)."""
        if self.fam.name == "categorical":
            cdf = np.cumsum(np.asarray(self.eta), axis=-1)  # (M, K)
            u = g.random(self.n)[:, None, None]  # (n, 1, 1): one uniform per draw, all inputs
            y = np.minimum((u > cdf[None]).sum(-1), cdf.shape[-1] - 1)
            t = np.eye(cdf.shape[-1])[y]
        else:
            u = g.random(self.n)[:, None, None]
            t = (u < self.eta[None]).astype(float)
        return self.i1_from(t)

    def reused_draws(self, g: np.random.Generator) -> np.ndarray:
        """Half the draws duplicated: n/2 fresh draws, each used twice."""
        t = self.fam.sample_statistic(self.h, self.n // 2, g)
        return self.i1_from(np.concatenate([t, t]))

    def minibatch(self, g: np.random.Generator) -> np.ndarray:
        """M · ĝ ĝᵀ per draw, ĝ the batch-mean gradient over the inputs (unbiased, noisier)."""
        r = self.fam.sample_statistic(self.h, self.n, g) - self.eta[None]  # (n, M, d)
        gbar = np.einsum("nma,map->np", r, self.J) / self.M
        return self.M * gbar.T @ gbar / self.n


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
def test_false_alarm_rate_at_a_measurable_alpha(alpha: float) -> None:
    """At a measurable alpha for the whole gate (means and spreads, variance='exact'), 150
    gates on the true Î₁ alarm no more often than Bin(150, alpha) allows at level 1e-6."""
    f = _Fast("bernoulli", n=5)
    rng = np.random.default_rng(123)
    gates = 150
    alarms = sum(
        not check_estimator(
            f.i1, f.net, f.x, n=5, replications=40, rng=rng, alpha=alpha, directions=2,
            variance="exact",
        ).passed
        for _ in range(gates)
    )
    assert_frequency_at_least(gates - alarms, gates, 1 - alpha, alpha=1e-6, what="1 - alarms")


# --- power ----------------------------------------------------------------------------------


def test_bessel_bias_at_n16_is_caught_at_r200() -> None:
    """An N/(N-1) = 16/15 bias (6.7%) at n = 16: missed at R = 1000 by the median-of-means
    radius (17 standard errors), caught at R = 200 with Catoni's (6.8) and named."""
    f = _Fast("categorical", n=16, K=3)
    for seed in range(3):
        rep = check_estimator(
            lambda g: 16 / 15 * f.i1(g), f.net, f.x, n=16, replications=R, rng=seed
        )
        assert not rep.passed and rep.factor == "N/(N-1)", rep.diagnosis
        assert "Bessel correction over the draws" in rep.diagnosis


@pytest.mark.parametrize("M", [32, 64])
def test_bessel_over_inputs_is_caught_by_the_pooled_scale_test(M: int) -> None:
    """A loop dividing by its last index: M/(M-1) (+3.2% at M = 32, +1.6% at M = 64), one label
    draw per input as in EWC. Every per-statistic test passes it at R = 200 (issue 15: "PASSED"
    next to the fitted scale); the pooled scale test rejects it and the factor is named, within
    its exact standard error."""
    f = _Fast("categorical", n=1, M=M, K=3)
    for seed in range(3):
        rep = check_estimator(
            lambda g: M / (M - 1) * f.i1(g), f.net, f.x, n=1, replications=R, rng=seed
        )
        assert not rep.failures and not rep.spread_failures  # the per-statistic tests miss it
        scale = rep.scale_test
        assert scale is not None and not scale.passed and not rep.passed, rep.message()
        assert rep.factor == "M/(M-1)" and "Bessel correction over the inputs" in rep.diagnosis
        assert abs(rep.scale - M / (M - 1)) <= 4 * rep.scale_se
        assert "pooled: scale: FAILED" in rep.message()


@pytest.mark.parametrize(("name", "params", "n"), [("categorical", {"K": 3}, 4), ("poisson", {}, 2)])
def test_pooled_tests_false_alarm_rate_at_a_measurable_level(
    name: str, params: dict, n: int
) -> None:
    """The pooled tests alone at a measurable level (0.2 in all: the scale test at 0.1, each
    omnibus at 0.05) over 300 runs of the true Î₁ (R = 60): each alarms no more often than
    Bin(300, its level) allows at 1e-6. Poisson with n = 2: skewed, heavy-tailed replicates."""
    from fisher_verify._src.testing.gate_exact import exact_statistics
    from fisher_verify._src.testing.pooled import pooled_tests

    f = _Fast(name, n=n, **params)
    rng = np.random.default_rng(31)
    V = rng.normal(size=(4, f.net.num_params))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    ex = exact_statistics(f.net, f.X, 1, n, V, False)
    S = ex.expected.size
    use = np.ones(S, dtype=bool)
    runs, level = 300, 0.2
    alarms = {"scale": 0, "omnibus A→B": 0, "omnibus B→A": 0}
    for _ in range(runs):
        est = np.stack([f.i1(rng) for _ in range(60)])
        values = np.concatenate(
            [np.diagonal(est, axis1=1, axis2=2), np.einsum("kp,rpq,kq->rk", V, est, V)], axis=1
        )
        tests = pooled_tests(values, ex, f.fam, np.zeros(S), use, level)
        assert {t.name for t in tests} == set(alarms)
        for t in tests:
            alarms[t.name] += not t.passed
    for key, share in [("scale", 0.5), ("omnibus A→B", 0.25), ("omnibus B→A", 0.25)]:
        assert_frequency_at_least(runs - alarms[key], runs, 1 - share * level, alpha=1e-6, what=key)


# --- the spread test ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), FAMILIES)
@pytest.mark.parametrize("kind", [1, 2])
def test_correct_estimators_pass_when_declared_exact(name: str, params: dict, kind: int) -> None:
    f = _Fast(name, n=N, **params)
    est = f.i1 if kind == 1 else f.i2
    rep = check_estimator(
        est, f.net, f.x, n=N, which=f"I{kind}", replications=R, rng=0, variance="exact"  # type: ignore[arg-type]
    )
    assert rep.passed, rep.message()
    assert not rep.spread_failures and 0.7 < rep.spread_ratio < 1.3


@pytest.mark.parametrize(("name", "params"), [("categorical", {"K": 3}), ("bernoulli", {})])
@pytest.mark.parametrize("mistake", ["shared_noise", "reused_draws", "minibatch"])
def test_variance_only_mistakes_are_caught(name: str, params: dict, mistake: str) -> None:
    """Unbiased, but noisier than Î₁ with n draws: caught at R = 200 and named."""
    f = _Fast(name, n=16, **params)
    est = getattr(f, mistake)
    rep = check_estimator(est, f.net, f.x, n=16, replications=R, rng=0)
    assert not rep.passed and rep.cause == "noisier", rep.message()
    if mistake != "minibatch":  # ~190x the variance: then the means' radius is too tight
        assert not rep.failures  # the means pass: only the spread is wrong
    assert rep.diagnosis.startswith("unbiased") and "noisier than Î1 with n = 16" in rep.diagnosis


def test_declared_exact_catches_a_quieter_estimator() -> None:
    """Î₁ with 4n draws declared as n: fine as 'at most', wrong as 'exact'."""
    f = _Fast("categorical", n=4 * 16, K=3)
    ok = check_estimator(f.i1, f.net, f.x, n=16, replications=R, rng=0)
    assert ok.passed
    rep = check_estimator(f.i1, f.net, f.x, n=16, replications=R, rng=0, variance="exact")
    assert not rep.passed and rep.cause == "quieter" and "less variable" in rep.diagnosis
    assert rep.spread_ratio == pytest.approx(0.25, rel=0.3)


def _statistic_law(f: _Fast, W: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact distribution of ⟨W, Î₁⟩ by enumerating every label configuration (Bernoulli)."""
    M = f.M
    p = np.asarray(f.eta)[:, 0]
    vals, probs = [], []
    for bits in np.ndindex(*(2,) * (M * n)):
        t = np.asarray(bits, dtype=float).reshape(n, M, 1)
        prob = float(np.prod(np.where(t[..., 0] == 1, p[None], 1 - p[None])))
        vals.append(float(np.sum(W * f.i1_from(t))))
        probs.append(prob)
    return np.asarray(vals), np.asarray(probs)


def test_fourth_moments_by_enumeration_and_the_variance_of_a_sample_variance() -> None:
    """μ₄ of each statistic against the exact law (all 2^(M n) label sets); then the variance of
    a sample variance of 3 replicates, by enumeration, against (μ₄ − (R−3)/(R−1) σ⁴)/R."""
    from fisher_verify._src.testing.gate_exact import exact_statistics

    f = _Fast("bernoulli", n=2)
    V = np.random.default_rng(4).normal(size=(2, f.net.num_params))
    ex = exact_statistics(f.net, f.X, 1, 2, V, False)
    P = f.net.num_params
    for j in [0, 3, P - 1, P, P + 1]:
        W = np.eye(P)[j][:, None] * np.eye(P)[j][None] if j < P else np.outer(V[j - P], V[j - P])
        vals, probs = _statistic_law(f, W, 2)
        mu = np.sum(probs * vals)
        sig2 = np.sum(probs * (vals - mu) ** 2)
        mu4 = np.sum(probs * (vals - mu) ** 4)
        assert ex.expected[j] == pytest.approx(mu, rel=1e-10)
        assert ex.variance[j] == pytest.approx(sig2, rel=1e-9)
        assert ex.fourth[j] == pytest.approx(mu4, rel=1e-9)
        if j == P:  # Var(s²) for R = 3 replicates: enumerate triples of the (compressed) law
            u, inv = np.unique(np.round(vals, 12), return_inverse=True)
            q = np.bincount(inv, weights=probs)
            x3 = np.stack(np.meshgrid(u, u, u, indexing="ij"), -1).reshape(-1, 3)
            w3 = np.einsum("i,j,k->ijk", q, q, q).reshape(-1)
            s2 = x3.var(axis=1, ddof=1)
            var_s2 = np.sum(w3 * s2 * s2) - np.sum(w3 * s2) ** 2
            Rr = 3
            formula = (ex.fourth[j] - (Rr - 3) / (Rr - 1) * ex.variance[j] ** 2) / Rr
            assert var_s2 == pytest.approx(formula, rel=1e-8)


def test_fourth_moments_of_a_product_family() -> None:
    """Two Poisson outputs (a product family): the convolution route against the components'
    tensor-product nodes (direct, exact) for the per-draw projected moments."""
    from fisher_verify._src.families.higher_moments import projected_central_moments

    prod = fv.product(fv.family("poisson"), fv.family("bernoulli"))
    h = np.array([[0.3, -0.4], [1.1, 0.7]])
    U = np.random.default_rng(0).normal(size=(2, 3, 2))
    got = projected_central_moments(prod, h, U, 8)
    t, w, _ = prod.expectation_nodes(h, degree=8)  # ProductFamily: tensor-product nodes
    w = w / w.sum(-1, keepdims=True)
    r = t - np.einsum("mq,mqd->md", w, t)[:, None]
    s = np.einsum("mqd,mkd->mkq", r, U)
    want = np.stack([np.einsum("mkq,mq->mk", s**k, w) for k in range(9)], -1)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# --- torch ------------------------------------------------------------------------------------


def _torch_model() -> object:
    import torch
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)
    )


def _torch_score_outer(n: int, fixed_labels: object = None):  # type: ignore[no-untyped-def]
    """A hand-written PyTorch loop: mean over inputs and n model-sampled labels of g gᵀ."""
    import torch

    def fn(model, x, generator):  # type: ignore[no-untyped-def]
        params = list(model.parameters())
        P = sum(p.numel() for p in params)
        total = torch.zeros(P, P, dtype=x.dtype)
        with torch.no_grad():
            probs = torch.softmax(model(x), dim=-1)
        for m in range(x.shape[0]):
            if fixed_labels is None:
                ys = torch.multinomial(probs[m], n, replacement=True, generator=generator)
            else:
                ys = fixed_labels[m]  # type: ignore[index]
            for y in ys:
                logp = torch.log_softmax(model(x[m]), dim=-1)[y]
                grads = torch.autograd.grad(logp, params)
                g = torch.cat([gr.reshape(-1) for gr in grads])
                total += torch.outer(g, g)
        return total / (x.shape[0] * n)

    return fn


def test_torch_loop_passes_and_empirical_torch_fails() -> None:
    import torch
    model = _torch_model().double()  # type: ignore[attr-defined]
    fam = fv.family("categorical", K=3)
    x = torch.as_tensor(np.random.default_rng(2).normal(size=(3, 3)))
    n = 8
    est = _torch_score_outer(n)
    rep = assert_estimator(lambda m, d, generator: est(m, d, generator), model, x, family=fam,
                           n=n, randomness="generator", replications=61, rng=0, directions=4)
    assert rep.passed
    labels = torch.zeros(3, n, dtype=torch.long)  # every "data" label is class 0
    bad = _torch_score_outer(n, labels)
    with pytest.raises(AssertionError, match="empirical Fisher"):
        assert_estimator(lambda m, d, generator: bad(m, d, generator), model, x, family=fam,
                         n=n, randomness="generator", replications=61, rng=0, directions=4)


def test_torch_parameter_permutation() -> None:
    import torch
    model = _torch_model()
    net = fv.Network.from_torch(model, fv.family("categorical", K=3))
    flat = torch.nn.utils.parameters_to_vector(model.parameters()).detach().double().numpy()
    perm = torch_parameter_permutation(model)
    np.testing.assert_array_equal(flat[perm], net.theta)
    no_bias = torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False))
    with pytest.raises(fv.FisherVerifyError, match="no bias"):
        torch_parameter_permutation(no_bias)


def test_report_message_mentions_the_numbers() -> None:
    net, x = _setup("bernoulli")
    rep = check_estimator(
        lambda g: 2.0 * fv.sample_estimators(net, x, N, g).i1, net, x, n=N, replications=R, rng=0
    )
    text = str(rep)
    assert "FAILED" in text and "alpha = 1.0e-06" in text and "exact standard errors" in text
    assert rep.scale == pytest.approx(2.0, rel=0.05) and "x too large" in rep.diagnosis
    assert math.isfinite(rep.worst.z)


def test_docs_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest example of docs/estimator-gate.md, with a stub ``my_project``."""
    import re
    import sys
    import types
    from pathlib import Path

    import torch
    from torch.func import functional_call, grad, vmap

    def fisher_matrix(model, x, generator, n):  # type: ignore[no-untyped-def]
        params = {k: v.detach() for k, v in model.named_parameters()}
        with torch.no_grad():
            probs = torch.softmax(model(x), dim=-1)
        y = torch.multinomial(probs, n, replacement=True, generator=generator).reshape(-1)
        y = torch.nn.functional.one_hot(y, probs.shape[-1]).to(x.dtype)
        xs = x.repeat_interleave(n, dim=0)

        def logp(p, xi, yi):  # type: ignore[no-untyped-def]
            logits = functional_call(model, p, (xi,))
            return (torch.log_softmax(logits, dim=-1) * yi).sum()

        G = vmap(grad(logp), in_dims=(None, 0, 0))(params, xs, y)
        flat = torch.cat([G[k].reshape(xs.shape[0], -1) for k in params], dim=1)
        return flat.T @ flat / xs.shape[0]

    stub = types.ModuleType("my_project")
    stub.mlp = _torch_model()  # type: ignore[attr-defined]
    stub.fisher_matrix = fisher_matrix  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_project", stub)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "estimator-gate.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S)
    assert code is not None and len(code.group(1).strip().splitlines()) <= 10
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "docs/estimator-gate.md", "exec"), namespace)
    namespace["test_fisher_matrix_is_unbiased"]()  # type: ignore[operator]
    # the same gate catches a scaled version of it
    stub.fisher_matrix = lambda *a, **k: 2.0 * fisher_matrix(*a, **k)  # type: ignore[attr-defined]
    namespace = {}
    exec(compile(code.group(1), "docs/estimator-gate.md", "exec"), namespace)
    with pytest.raises(AssertionError, match="too large"):
        namespace["test_fisher_matrix_is_unbiased"]()  # type: ignore[operator]


# --- diagnoses that name the cause ------------------------------------------------------------


@pytest.mark.parametrize(
    ("factor", "name", "text"),
    [
        (4 / 3, "4/3", "4/3x too large (1.333x)"),
        (1 / 16, "1/n", "16x too small (0.0625x = 1/n) | divided by the number of draws twice"),
        (16.0, "n", "a missing 1/N"),
        (1 / 5, "1/M", "divided by the number of inputs twice"),
        (5 / 4, "M/(M-1)", "Bessel correction over the inputs"),
        (15 / 16, "(N-1)/N", "1.067x too small (0.9375x = (N-1)/N) | sample mean subtracted"),
    ],
)
def test_scale_factors_are_named(factor: float, name: str, text: str) -> None:
    f = _Fast("categorical", n=16, M=5, K=3)  # M/(M-1) = 5/4 differs from 4/3
    rep = check_estimator(lambda g: factor * f.i1(g), f.net, f.x, n=16, replications=R, rng=0)
    assert not rep.passed and rep.cause == "scale" and rep.factor == name, rep.diagnosis
    for part in text.split(" | "):
        assert part in rep.diagnosis, rep.diagnosis
    assert rep.scale == pytest.approx(factor, rel=0.03)


@pytest.mark.parametrize("diagonal_only", [False, True])
def test_asdl_style_one_over_n_is_named_not_empirical(diagonal_only: bool) -> None:
    """A Monte Carlo Fisher scaled as 1/(number of samples) at n >= 20 (ASDL's fisher_mc): it
    samples from the model, so it is the 1/n factor, not 'the empirical Fisher'."""
    for n in (20, 100):
        f = _Fast("categorical", n=n, K=3)

        def est(g: np.random.Generator, f: _Fast = f, n: int = n) -> np.ndarray:
            out = f.i1(g) / n
            return np.diagonal(out).copy() if diagonal_only else out

        rep = check_estimator(
            est, f.net, f.x, n=n, replications=R, rng=0, diagonal_only=diagonal_only
        )
        assert not rep.passed and rep.factor == "1/n", rep.diagnosis
        assert "empirical" not in rep.diagnosis and "ASDL" in rep.diagnosis


def test_argmax_labels_are_named() -> None:
    f = _Fast("categorical", n=16, K=3)
    top = np.eye(3)[np.argmax(f.eta, axis=-1)][None]  # t at the most likely class
    rep = check_estimator(lambda g: f.i1_from(top), f.net, f.x, n=16, replications=R, rng=0)
    assert not rep.passed and rep.deterministic and rep.cause == "argmax_labels", rep.diagnosis
    assert "argmax" in rep.diagnosis


@pytest.mark.parametrize(("name", "params"), [("categorical", {"K": 3}), ("poisson", {})])
def test_data_labels_are_named_the_empirical_fisher(name: str, params: dict) -> None:
    """The empirical Fisher (labels from data): deterministic and wrong, with its relative
    error; named as the empirical Fisher when the labels are given. On a Poisson network it
    passed at R = 200 before the exact comparison of deterministic estimators."""
    f = _Fast(name, n=16, **params)
    teacher = fv.Network.random(f.net.widths, "tanh", f.fam, rng=7)
    y = f.fam.sample(teacher.forward(f.X), 1, np.random.default_rng(99))[0]  # one per input
    est = lambda g: estimators_from_draws(f.net, f.x, y[None]).i1  # noqa: E731
    rep = check_estimator(est, f.net, f.x, n=16, replications=R, rng=0)
    assert not rep.passed and rep.cause == "deterministic" and "relative error" in rep.diagnosis
    assert "labels=" in rep.diagnosis
    named = check_estimator(est, f.net, f.x, n=16, replications=R, rng=0, labels=y)
    assert not named.passed and named.cause == "data_labels"
    assert "empirical Fisher" in named.diagnosis


def test_exact_fisher_passes_as_exact() -> None:
    """EWC's "every label weighted by its probability": Σ_y p(y|x) g gᵀ, deterministic and
    equal to I(θ) at rounding tolerance. Declared as the Monte Carlo Î₁ it fails."""
    f = _Fast("categorical", n=16, K=3)
    t, w, _ = f.fam.expectation_nodes(f.h, degree=2)  # every class and its probability
    r = t - f.eta[:, None, :]
    g = np.einsum("mka,map->mkp", r, f.J)
    weighted = np.einsum("mk,mkp,mkq->pq", w, g, g) / f.M
    rep = check_estimator(lambda _: weighted, f.net, f.x, n=16, replications=R, rng=0)
    assert rep.passed and rep.cause == "exact" and rep.deterministic
    declared = check_estimator(
        lambda _: weighted, f.net, f.x, n=16, replications=R, rng=0, variance="exact"
    )
    assert not declared.passed and "does not sample" in declared.diagnosis


def test_rare_labels_constant_replicates_are_not_a_false_alarm() -> None:
    """A correct Î₁ whose replicates are often all equal (p(y=1) ≈ 1e-4): the deterministic
    verdict is calibrated, so it does not fire on an honest estimator that happened to be
    constant."""
    g = _Fast("bernoulli", n=5, bias_shift=-9.0)  # p(y=1) ≈ 1e-4
    constant = 0
    for seed in range(5):
        rep = check_estimator(g.i1, g.net, g.x, n=5, replications=R, rng=seed)
        assert rep.passed and rep.cause == "ok", rep.message()
        constant += rep.deterministic
    assert constant >= 1  # the case is exercised: some runs saw no label 1 at all


def test_parameter_order_is_named() -> None:
    """An estimate left in model.parameters() order (weight, then bias) instead of [W | b]."""
    from fisher_verify._src.testing.diagnose import layer_permutations

    f = _Fast("categorical", n=16, K=3)
    name, perm = layer_permutations(f.net)[0]
    rep = check_estimator(
        lambda g: f.i1(g)[np.ix_(perm, perm)], f.net, f.x, n=16, replications=R, rng=0
    )
    assert not rep.passed and rep.cause == "permutation" and "model.parameters()" in rep.diagnosis


def test_misspelt_keyword_names_the_function_called() -> None:
    f = _Fast("bernoulli", n=5)
    wrong = r"assert_estimator\(\) got an unexpected keyword argument 'replicatons'; valid: alpha, "
    with pytest.raises(TypeError, match=wrong):
        assert_estimator(f.i1, f.net, f.x, n=5, replicatons=50)
    with pytest.raises(TypeError, match=r"check_estimator\(\) got an unexpected keyword argument"):
        check_estimator(f.i1, f.net, f.x, n=5, replicatons=50)  # type: ignore[call-arg]


@pytest.mark.parametrize(("name", "params"), [("categorical", {"K": 3}), ("poisson", {}),
                                              ("normal_unknown_variance", {})])
@pytest.mark.parametrize("kind", [1, 2])
def test_variance_from_node_moments_matches_thm4_thm6(name: str, params: dict, kind: int) -> None:
    """Two routes to σ²: the per-draw moments of the spread test (exact-expectation nodes) and
    the κ₄ / Fisher contractions of thm-4 / thm-6 used by the mean test."""
    from fisher_verify._src.testing.gate_exact import _statistic_moments, exact_statistics

    net, x = _setup(name, **params)
    X, _ = net.inputs(x)
    V = np.random.default_rng(4).normal(size=(3, net.num_params))
    ex = exact_statistics(net, X, kind, 7, V, False)
    if kind == 1:
        proj = np.concatenate([np.swapaxes(ex.J, 1, 2), np.einsum("map,kp->mka", ex.J, V)], 1)
    else:
        assert ex.w is not None
        proj = np.swapaxes(ex.w, 1, 2)
    var, mu4 = _statistic_moments(net.family, ex.h, proj, kind, 7)
    np.testing.assert_allclose(var, ex.variance, rtol=1e-9, atol=1e-15)
    assert np.all(mu4 >= var * var * (1 - 1e-12))  # μ₄ ≥ σ⁴ (Jensen)
    np.testing.assert_array_equal(np.isfinite(ex.fourth), np.ones(len(var), bool))


def test_zero_variance_point_passes_in_both_modes() -> None:
    """fig-1: a Bernoulli output at h = 0 makes every draw of Î₁ equal I(θ); the correct
    estimator is then deterministic and passes, also when declared to be Î₁."""
    from fisher_verify._src.testing.strategies import bernoulli_half_network

    net, x = bernoulli_half_network()
    for variance in ("at_most", "exact"):
        rep = check_estimator(
            lambda g: fv.sample_estimators(net, x, 5, g).i1, net, x, n=5, replications=60,
            rng=0, variance=variance,  # type: ignore[arg-type]
        )
        assert rep.passed and rep.deterministic and rep.cause == "exact", rep.message()
        assert "fig-1" in rep.diagnosis


def test_nonfinite_values_are_named() -> None:
    f = _Fast("bernoulli", n=5)
    calls = iter(range(10**6))

    def est(g: np.random.Generator) -> np.ndarray:
        out = f.i1(g)
        if next(calls) == 7:
            out[0, 0] = np.nan
        return out

    rep = check_estimator(est, f.net, f.x, n=5, replications=60, rng=0)
    assert not rep.passed and rep.cause == "nonfinite" and "NaN" in rep.diagnosis
