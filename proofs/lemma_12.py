"""lemma-12: Chebyshev-type accuracy of both estimators."""

import numpy as np

from fisher_verify.proofs import statement
from fisher_verify.proofs.support import random_networks, record_calibrated


@statement(
    "lemma-12",
    title="Lemma 12",
    claim=r"\Pr\Big(\lVert\hat I_1 - I(\theta)\rVert_F \le (\varepsilon N)^{-1/2}"
    r"\big(\textstyle\sum_{ij}\operatorname{Var}(\partial_i\ell\,\partial_j\ell)\big)^{1/2}\Big)"
    r"\ge 1-\varepsilon \text{ (and likewise for } \hat I_2)",
    hypotheses=[r"0 < \varepsilon < 1"],
    method="calibrated Monte Carlo",
)
def check(ctx):
    """Sample R replicates of both estimators; the frequency inside the radius must be at
    least 1 − ε (exact binomial tail at ctx.alpha). Per-sample variances from the library."""
    import fisher_verify as fv
    from fisher_verify.testing.calibrated import assert_frequency_at_least

    eps, n, reps = 0.2, 20, ctx.pick(200, 2000)
    for k, (net, x) in enumerate(random_networks(ctx, widths=[(3, 4, 1)])):
        exact = fv.exact_fisher(net, x)
        radius = [np.sqrt(fv.variance(net, x, estimator=e, n=1).sum() / (eps * n)) for e in (1, 2)]
        lib = fv.bounds(net, x, n=n, eps=eps)
        for e, bd in ((0, lib.lemma12_1), (1, lib.lemma12_2)):
            ctx.close(f"net {k}: bounds() lemma-12 radius of I{e + 1} = (eps N)^-1/2 "
                      "(sum Var)^1/2", bd.rhs, radius[e], net=k)
            ctx.close(f"net {k}: bounds() lemma-12 lhs of I{e + 1} = (sum Var / N)^1/2", bd.lhs,
                      radius[e] * np.sqrt(eps), net=k)
        hits = [0, 0]
        for _ in range(reps):
            est = fv.sample_estimators(net, x, n, ctx.rng)
            hits[0] += np.linalg.norm(est.i1 - exact) <= radius[0]
            hits[1] += np.linalg.norm(est.i2 - exact) <= radius[1]
        for e in (0, 1):
            record_calibrated(ctx, assert_frequency_at_least(
                hits[e], reps, 1 - eps, alpha=ctx.alpha, raise_on_fail=False,
                what=f"net {k}: P(||I{e + 1} - I|| <= radius) >= 1 - eps"))
        ctx.record(f"net {k} coverage", {"I1": hits[0] / reps, "I2": hits[1] / reps})
    return ctx.conclude()
