"""crlb: the Cramér–Rao bound, checked on unbiased estimators of the mean parameter."""

import numpy as np

from fisher_verify.proofs import statement


@statement(
    "crlb",
    title="Cramér–Rao lower bound (remark)",
    claim=r"\operatorname{Cov}(\hat\theta) \succeq I(\theta)^{-1} \text{ for unbiased } \hat\theta",
    hypotheses=[r"\hat\theta \text{ unbiased}", r"\text{regular exponential family}"],
    method="exact expectation",
)
def check(ctx):
    """Estimate the mean η from N draws. In the η-parametrization the Fisher of N draws is
    N·I(h)⁻¹, so the bound is I(h)/N. The sample mean attains it; a weighted mean (also
    unbiased) lies strictly above. Variances come from the exact-expectation route."""
    n = 5
    w = np.arange(1, n + 1, dtype=float)
    w /= w.sum()
    for fam in ctx.families(("bernoulli", "poisson", "normal")):
        if fam.dim != 1:
            continue
        h = ctx.rng.uniform(-1.0, 1.0, size=(3, 1))
        if fam.name in ("exponential", "gamma"):
            h = -np.abs(h) - 0.1
        if fam.name in ("geometric", "negative_binomial"):
            h = -np.abs(h) - 0.1
        eta = fam.mean(h)[:, 0]
        var_t = fam.expect(lambda t, e=eta: (t[..., 0] - e[:, None]) ** 2, h)
        crlb = 1.0 / (n / fam.fisher(h)[:, 0, 0])  # inverse Fisher of N draws, eta-param.
        ctx.close(f"{fam.label}: Var(sample mean) = CRLB", var_t / n, crlb, rtol=1e-9)
        ctx.leq(f"{fam.label}: CRLB <= Var(weighted mean)", crlb, var_t * np.sum(w**2))
    return ctx.conclude("the sample mean is efficient; other unbiased estimators are above")
