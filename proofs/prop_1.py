"""prop-1: both estimators are unbiased and consistent."""

import numpy as np

from fisher_verify.proofs import statement
from fisher_verify.proofs.support import definition_route, expect, random_networks


@statement(
    "prop-1",
    title="Proposition 1",
    claim=r"\mathbb{E}[\hat I_1] = \mathbb{E}[\hat I_2] = I(\theta),\quad "
    r"\Pr(\lVert \hat I - I(\theta)\rVert_F > \varepsilon) \to 0 \ (N\to\infty)",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})", r"y_i \overset{iid}{\sim} p(y\mid x,\theta)"],
    method="exact expectation",
)
def check(ctx):
    """Unbiasedness: the library's estimators on each support point (N = 1), weighted by p(y)
    (Bernoulli and Poisson have t(y) = y). Consistency: the exact E‖Î − I‖² shrinks as 1/N,
    and sampled errors stay inside the Markov radius at false-alarm rate ctx.alpha."""
    import fisher_verify as fv
    from fisher_verify.fisher.estimators import estimators_from_draws

    for k, (net, x) in enumerate(random_networks(ctx, families=("bernoulli", "poisson"),
                                                 widths=[(3, 4, 1)])):
        exact = fv.exact_fisher(net, x)
        route = definition_route(net, x)
        i1 = np.array([estimators_from_draws(net, x, np.array([y])).i1 for y in route["t"][:, 0]])
        i2 = np.array([estimators_from_draws(net, x, np.array([y])).i2 for y in route["t"][:, 0]])
        ctx.close(f"net {k}: E[I1] = I(theta)", expect(route, i1), exact, atol=1e-12, net=k)
        ctx.close(f"net {k}: E[I2] = I(theta)", expect(route, i2), exact, atol=1e-12, net=k)
        # consistency: E||I1 - I||^2 = E||s s^T - I||^2 / N (exact), Markov at rate alpha
        mse1 = float(expect(route, np.sum((i1 - exact) ** 2, axis=(1, 2))))
        for n in ctx.pick((10, 1000), (10, 100, 1000, 10000)):
            err = np.linalg.norm(fv.sample_estimators(net, x, n, ctx.rng).i1 - exact)
            radius = np.sqrt(mse1 / (n * ctx.alpha))
            ctx.leq(f"net {k}: ||I1 - I||_F within Markov radius at N={n}", err, radius, net=k)
            ctx.record(f"net {k} N={n}", {"error": err, "radius": radius,
                                          "rms_exact": np.sqrt(mse1 / n)})
    return ctx.conclude("unbiased exactly on the support; errors shrink as N^-1/2")
