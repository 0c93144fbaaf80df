"""thm-10: the probability that Î₂ is positive semi-definite."""

import numpy as np

from fisher_verify.proofs import statement
from fisher_verify.proofs.support import field, record_calibrated


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
    """A network and inputs with λ_min(I(θ)) > 0; the library's bound (thm-10);
    the p.s.d. frequency over R replicates tested by the exact binomial tail at ctx.alpha."""
    import fisher_verify as fv
    from fisher_verify.testing.calibrated import assert_frequency_at_least

    # I(θ) = Jᵀ I(h_L) J has rank <= n_L for one input, so λ_min > 0 needs several inputs
    # (p(x) empirical, I(θ) their average). The bound ∝ λ_max(I(h))/λ_min(I(θ))² ∝ 1/I(h),
    # so a Poisson output at large rate λ = e^6 makes it informative at affordable N.
    fam = fv.family("poisson")
    net = fv.Network.random([2, 1, 1], "tanh", fam, 2.0, ctx.rng)  # P = 5
    xs = 1.5 * ctx.rng.normal(size=(6, 2))
    w = [W.copy() for W in net.weights]
    w[-1][0, -1] += 6.0 - net.forward(xs)[:, 0].mean()
    net = fv.Network.from_weights(w, "tanh", fam)
    lam_min = np.linalg.eigvalsh(fv.exact_fisher(net, xs)).min()
    ctx.record("P", net.num_params)
    ctx.record("lambda_min(I(theta)) over 6 inputs", lam_min)
    if lam_min <= 1e-10:
        return ctx.not_applicable("lambda_min(I(theta)) = 0 for the test network")
    c = 1.0 - float(field(fv.bounds(net, xs, n=1), "psd_probability", "thm10", "psd"))
    n = int(np.ceil(2 * c))  # the bound is 1 - c/N: N = 2c makes it 1/2
    ctx.record("N for a bound of 1/2", n)
    if n > 200_000:
        return ctx.not_applicable(f"the bound needs N = {n} draws to exceed 1/2 here")
    reps = ctx.pick(200, 2000)
    bound = float(field(fv.bounds(net, xs, n=n), "psd_probability", "thm10", "psd"))
    hits = sum(
        np.linalg.eigvalsh(fv.sample_estimators(net, xs, n, ctx.rng).i2).min() >= 0
        for _ in range(reps)
    )
    ctx.record("bound", bound)
    ctx.record("psd frequency", hits / reps)
    record_calibrated(ctx, assert_frequency_at_least(hits, reps, bound, alpha=ctx.alpha,
                                                     what="P(I2 psd) >= bound",
                                                     raise_on_fail=False))
    return ctx.conclude(f"frequency {hits}/{reps} vs bound {bound:.3g} at N = {n}")
