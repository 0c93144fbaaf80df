"""thm-10: the probability that Î₂ is positive semi-definite.

The construction is deterministic (only the draws of y are random, from ``ctx.rng``):

* a tanh network ``1 → 1 → 1`` with fixed weights (P = 4) and six inputs spread evenly over
  [−3, 3], so ``I(θ) = (1/M) Σ_m J_mᵀ I(h_L) J_m`` has full rank (one input gives rank n_L = 1);
* a normal output. With ``I(h_L) = σ²``, ``λ_min(I(θ)) ∝ σ²`` and ``λ_max(I(h_L)) = σ²``
  while ρ does not depend on σ, so the bound's constant ``c`` in ``1 − c/N`` is ``c₁/σ²``
  exactly (c₁ at σ = 1). Choosing ``σ = √(c₁/4)`` gives ``c = 4``: the bound is 1/2 at N = 8,
  3/4 at N = 16, 7/8 at N = 32 — informative at a few draws.

Also the unscaled network (σ = 1, c₁ ≈ 136) at ``N = ⌈2c₁⌉`` (bound ≈ 1/2), where Î₂ is far
from always p.s.d. at small N (the frequency at N = 1 is recorded to show the event is not
trivial). Each frequency is tested against the bound with the exact binomial tail at
``ctx.alpha``.
"""

import math

import numpy as np

from fisher_verify.proofs import statement
from fisher_verify.proofs.support import record_calibrated

WEIGHTS = (np.array([[1.0, 0.0]]), np.array([[2.0, 0.1]]))
INPUTS = np.linspace(-3.0, 3.0, 6)[:, None]
TARGET_C = 4.0


def _network(sigma):
    import fisher_verify as fv

    return fv.Network.from_weights([W.copy() for W in WEIGHTS], "tanh",
                                   fv.family("normal", sigma=sigma))


def _constant_from_definition(net, xs):
    """c = n_L ‖ρ‖² Σ_m λ_max(I_m) / (M² λ_min(I(θ))²), with I(θ) from exact_fisher (eq-6)."""
    import fisher_verify as fv

    H = np.asarray(net.output_hessians(xs))
    rho = np.max(np.abs(np.linalg.eigvalsh(H)), axis=-1)  # (M, n_L)
    I_out = np.asarray(net.family.fisher(net.forward(xs)))
    lam_min = float(np.linalg.eigvalsh(np.asarray(fv.exact_fisher(net, xs)))[0])
    M, n_l = rho.shape
    c = n_l * float(np.sum(rho**2)) * float(np.sum(np.linalg.eigvalsh(I_out)[:, -1]))
    return c / (M * M * lam_min**2), lam_min


@statement(
    "thm-10",
    title="Theorem 10",
    claim=r"\Pr(\hat I_2 \succeq 0) \ge 1 - \frac{n_L \lVert\rho\rVert_2^2\,"
    r" \lambda_{\max}(I(h_L))}"
    r"{N\, \lambda_{\min}(I(\theta))^2}",
    hypotheses=[r"\lambda_{\min}(I(\theta)) > 0", r"\sigma \in C^2(\mathbb{R})"],
    method="calibrated Monte Carlo",
)
def check(ctx):
    """Deterministic networks with λ_min(I(θ)) > 0 and an informative bound; the bound from
    the library (bounds().psd_probability) against the formula; the p.s.d. frequency of Î₂
    (estimators from sampled y) over R replicates tested by the exact binomial tail."""
    import fisher_verify as fv
    from fisher_verify.testing.calibrated import assert_frequency_at_least

    xs = INPUTS
    base = _network(1.0)
    c1, lam1 = _constant_from_definition(base, xs)
    ctx.true("lambda_min(I(theta)) > 0 (hypothesis), sigma = 1", lam1 > 1e-8)
    sigma = math.sqrt(c1 / TARGET_C)
    scaled = _network(sigma)
    c_s, lam_s = _constant_from_definition(scaled, xs)
    ctx.record("P", base.num_params)
    ctx.record("inputs M", xs.shape[0])
    ctx.record("c at sigma = 1", c1)
    ctx.record("lambda_min(I(theta)) at sigma = 1", lam1)
    ctx.record("sigma (c = 4)", sigma)
    ctx.close("c scales as 1/sigma^2", c_s, TARGET_C, rtol=1e-9)
    ctx.close("lambda_min(I(theta)) scales as sigma^2", lam_s, lam1 * sigma**2, rtol=1e-9)

    reps = ctx.pick(1000, 5000)
    cases = [(f"sigma = {sigma:.4g}", scaled, c_s, n) for n in ctx.pick((8, 16, 32),
                                                                        (8, 16, 32, 64))]
    cases.append(("sigma = 1", base, c1, int(math.ceil(2 * c1))))
    rows = []
    for label, net, c, n in cases:
        b = fv.bounds(net, xs, n=n).psd_probability
        ctx.true(f"{label}: thm-10 applies (bounds())", b.details["applicable"])
        ctx.close(f"{label}: bounds() constant = formula", b.details["constant"], c, rtol=1e-9)
        bound = float(b)  # the rhs: 1 - c/N
        ctx.close(f"{label}, N = {n}: bound = 1 - c/N", bound, 1.0 - c / n, rtol=1e-12)
        hits = sum(
            bool(np.linalg.eigvalsh(fv.sample_estimators(net, xs, n, ctx.rng).i2)[0] >= 0)
            for _ in range(reps)
        )
        record_calibrated(ctx, assert_frequency_at_least(
            hits, reps, bound, alpha=ctx.alpha, what=f"{label}, N = {n}: P(I2 psd) >= {bound:.4g}",
            raise_on_fail=False))
        rows.append({"network": label, "N": n, "bound": bound, "psd": hits, "reps": reps,
                     "frequency": hits / reps})
    ctx.record("frequency vs bound", rows)
    hits1 = sum(
        bool(np.linalg.eigvalsh(fv.sample_estimators(base, xs, 1, ctx.rng).i2)[0] >= 0)
        for _ in range(ctx.pick(200, 1000))
    )
    ctx.record("sigma = 1, N = 1 (bound vacuous): psd frequency", hits1 / ctx.pick(200, 1000))
    worst = min(rows, key=lambda r: r["frequency"] - r["bound"])
    return ctx.conclude(
        f"p.s.d. frequency >= 1 - c/N in {len(rows)} settings (e.g. {worst['psd']}/{reps} vs "
        f"bound {worst['bound']:.3g} at N = {worst['N']}, {worst['network']})"
    )
