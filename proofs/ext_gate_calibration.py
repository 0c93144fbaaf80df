"""ext-gate-calibration: the estimator gate's own calibration (beyond the paper: the README's
"Gate your own Fisher estimator in CI", docs/estimator-gate.md).

The gate (:mod:`fisher_verify._src.testing.estimator_gate`) promises a false-alarm rate of at most
``alpha`` for the whole gate on an estimator distributed as ``Î₁`` with ``n`` draws, radii that
follow from the exact variances and fourth moments (Catoni's ``σ sqrt(2L/(R − 2L))``), pooled
tests calibrated by the exact variance of the combination, and power against the classic
faults. This statement checks each of those promises as written:

* **false alarms**: at a measurable ``alpha`` (0.1 for the whole gate, ``variance="exact"`` so
  that both spread sides, the means, the constant tests and the pooled tests all run) over
  many seeds, the number of alarms is at most what ``Bin(G, alpha)`` allows at ``ctx.alpha``
  (exact binomial tail);
* **radii**: each statistic's mean radius ``σ sqrt(2L/(R − 2L))`` and spread radius
  ``sqrt(μ₄ − σ⁴) sqrt(2L/(R − 2L))`` with ``L = log(2T/(0.9 alpha))``, ``σ²`` and ``μ₄`` from
  the exact law of the statistic enumerated over every label set (Bernoulli, ``n = 2``, four
  inputs: 2⁸ sets); the pooled scale test's weights ``K⁻¹e/(eᵀK⁻¹e)``, its sd
  ``sqrt(aᵀΣa)`` and radius at ``0.05 alpha/2``, with ``Σ`` from the thm-4 covariance tensor;
* **frequencies**: the exact binomial test behind the false-alarm check accepts exactly from
  the smallest count ``k*`` with ``P(Bin(G, p0) ≤ k*) ≥ alpha`` (computed here in exact
  rational arithmetic): ``k*`` passes, ``k* − 1`` fails;
* **power**: a planted ``1/n`` (a Monte Carlo Fisher scaled as 1/(number of samples)) and a
  planted variance-only fault (draws reused: unbiased, twice the variance) are rejected and
  named (``1/n``; ``noisier``).
"""

import math
from fractions import Fraction

import numpy as np

from fisher_verify._src.proofs.support import record_calibrated
from fisher_verify.proofs import statement


class _Cheap:
    """Î₁ with n draws per input, from the sufficient statistics (vectorised, no autodiff)."""

    def __init__(self, net, X, n):
        import fisher_verify as fv

        self.net, self.X, self.n = net, X, n
        self.fam = net.family
        self.M = X.shape[0]
        self.J = net.jacobian(X)
        self.h = net.forward(X)
        self.eta = np.asarray(self.fam.mean(self.h))
        self.I = np.asarray(fv.exact_fisher(net, X))

    def from_t(self, t):
        r = t - self.eta[None]  # (k, M, d)
        S = np.einsum("kma,kmb->mab", r, r) / r.shape[0]
        return np.einsum("map,mab,mbq->pq", self.J, S, self.J) / self.M

    def i1(self, g):
        return self.from_t(self.fam.sample_statistic(self.h, self.n, g))

    def reused(self, g):
        t = self.fam.sample_statistic(self.h, self.n // 2, g)
        return self.from_t(np.concatenate([t, t]))


def _law(cheap, W):
    """Exact law of ⟨W, Î₁⟩ (Bernoulli outputs): every label set of the M·n draws."""
    p = cheap.eta[:, 0]
    M, n = cheap.M, cheap.n
    vals, probs = [], []
    for bits in np.ndindex(*(2,) * (M * n)):
        t = np.asarray(bits, dtype=float).reshape(n, M, 1)
        probs.append(float(np.prod(np.where(t[..., 0] == 1, p[None], 1 - p[None]))))
        vals.append(float(np.sum(W * cheap.from_t(t))))
    return np.asarray(vals), np.asarray(probs)


def _smallest_accepted(trials, p0, alpha):
    """The smallest k with P(Bin(trials, p0) ≤ k) ≥ alpha, in exact rational arithmetic."""
    p = Fraction(p0)
    a = Fraction(alpha)
    total = Fraction(0)
    for k in range(trials + 1):
        total += math.comb(trials, k) * p**k * (1 - p) ** (trials - k)
        if total >= a:
            return k
    return trials


@statement(
    "ext-gate-calibration",
    title="Beyond the paper: the estimator gate's own calibration",
    claim=r"P(\text{gate alarms} \mid \hat I \sim \hat I_1(n)) \le \alpha;\ "
    r"r_j = \sigma_j\sqrt{2L/(R-2L)},\ r^{\mathrm{spread}}_j = \sqrt{\mu_{4,j}-\sigma_j^4}"
    r"\sqrt{2L/(R-2L)};\ \text{planted } 1/n \text{ and reused draws rejected}",
    hypotheses=[r"\text{replicates i.i.d.}", r"\text{float64}"],
    method="calibrated Monte Carlo",
)
def check(ctx):
    """False alarms of the whole gate at alpha = 0.1 over many seeds (exact binomial tail at
    ctx.alpha); per-statistic and pooled radii against their formulas from independently
    computed exact laws; a planted 1/n and reused draws rejected and named."""
    import fisher_verify as fv
    from fisher_verify import check_estimator
    from fisher_verify._src.fisher.covariance import network_covariance as covariance
    from fisher_verify._src.testing.calibrated import assert_frequency_at_least

    fam = fv.family("bernoulli")
    net = fv.Network.random((3, 4, 1), "tanh", fam, 1.0, ctx.rng)
    X = ctx.rng.normal(size=(4, 3))
    P = net.num_params

    # --- false alarms at a measurable alpha ------------------------------------------------
    gate_alpha, gates, R_fa = 0.1, ctx.pick(120, 400), 80
    cheap = _Cheap(net, X, 4)
    alarms = 0
    for _ in range(gates):
        rep = check_estimator(
            cheap.i1, net, X, n=4, replications=R_fa, rng=ctx.rng, alpha=gate_alpha,
            directions=2, variance="exact",
        )
        alarms += not rep.passed
    ran_pooled = {t.name for t in rep.pooled}
    ctx.true("the pooled tests run at R = 80", ran_pooled == {"scale", "omnibus A→B", "omnibus B→A"})
    ctx.record("false alarms", f"{alarms} of {gates} gates at alpha = {gate_alpha}")
    record_calibrated(ctx, assert_frequency_at_least(
        gates - alarms, gates, 1 - gate_alpha, alpha=ctx.alpha, raise_on_fail=False,
        what=f"1 - false-alarm rate of the whole gate at alpha = {gate_alpha}",
    ))

    for trials, p0, lvl in [(gates, 1 - gate_alpha, ctx.alpha), (200, 0.95, 1e-6), (57, 0.5, 0.01)]:
        k_star = _smallest_accepted(trials, p0, lvl)
        at = assert_frequency_at_least(k_star, trials, p0, alpha=lvl, raise_on_fail=False)
        below = (assert_frequency_at_least(k_star - 1, trials, p0, alpha=lvl, raise_on_fail=False)
                 if k_star > 0 else None)
        ctx.true(f"binomial test ({trials}, {p0:g}, {lvl:g}) accepts exactly from k* = {k_star}",
                 at.passed and (below is None or not below.passed))

    # --- radii against the enumerated law --------------------------------------------------
    small = _Cheap(net, X, 2)
    R, D, seed = 200, 2, int(ctx.rng.integers(2**31))
    seen = []

    def recording(g):
        out = small.i1(g)
        seen.append(out)
        return out

    rep = check_estimator(recording, net, X, n=2, replications=R, rng=seed, directions=D)
    V = np.random.default_rng(seed).normal(size=(D, P))  # the gate draws its directions first
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    S = P + D
    ctx.true("every spread is tested", rep.tests == 2 * S, f"T = {rep.tests}")
    L = math.log(2 * rep.tests / (0.9 * rep.alpha))
    factor = math.sqrt(2 * L / (R - 2 * L))
    Ws = [np.outer(np.eye(P)[i], np.eye(P)[i]) for i in range(P)] + [np.outer(v, v) for v in V]
    for j in sorted({0, P // 2, P - 1, P, P + 1}):
        vals, probs = _law(small, Ws[j])
        mu = float(np.sum(probs * vals))
        sig2 = float(np.sum(probs * (vals - mu) ** 2))
        mu4 = float(np.sum(probs * (vals - mu) ** 4))
        st = rep.statistics[j]
        ctx.close(f"mean radius of {st.label}", st.radius, math.sqrt(sig2) * factor, 1e-9)
        ctx.close(f"spread radius of {st.label}", st.spread_radius,
                  math.sqrt(mu4 - sig2 * sig2) * factor, 1e-8)
    cov = covariance(net, X, 1, 2)
    Wm = np.stack(Ws).reshape(S, -1)
    C = Wm @ cov.reshape(P * P, P * P) @ Wm.T
    e = Wm @ small.I.reshape(-1)
    a = np.linalg.solve(C + 0.01 * np.diag(np.diag(C)), e)
    a /= a @ e
    scale = rep.scale_test
    ctx.true("the scale test ran", scale is not None)
    if scale is not None:
        L_s = math.log(2 / (rep.alpha * 0.05 / 2))
        ctx.close("scale test: exact sd sqrt(aᵀΣa)", scale.sd, math.sqrt(a @ C @ a), 1e-9)
        ctx.close("scale test: Catoni radius at 0.05 alpha / 2", scale.radius,
                  scale.sd * math.sqrt(2 * L_s / (R - 2 * L_s)), 1e-12)
        values = np.array([[np.sum(W * m) for W in Ws] for m in seen])
        ctx.close("scale factor = the weighted mean", rep.scale, float(np.mean(values @ a)), 1e-10)

    # --- planted faults --------------------------------------------------------------------
    n = 16
    fault = _Cheap(net, X, n)
    rep = check_estimator(lambda g: fault.i1(g) / n, net, X, n=n, replications=200,
                                 rng=ctx.rng)
    ctx.true("a planted 1/n is rejected and named", (not rep.passed) and rep.factor == "1/n",
             rep.diagnosis)
    rep = check_estimator(fault.reused, net, X, n=n, replications=200, rng=ctx.rng)
    ctx.true("reused draws (variance only) are rejected as noisier",
             (not rep.passed) and rep.cause == "noisier", rep.diagnosis)
    return ctx.conclude(f"{alarms} false alarms in {gates} gates at alpha = {gate_alpha}")
