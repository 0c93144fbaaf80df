"""prop-1: both estimators are unbiased and consistent."""

import numpy as np

from fisher_verify._src.proofs.support import (
    QUICK_WIDTHS,
    definition_route,
    expect,
    random_networks,
    record_calibrated,
)
from fisher_verify.proofs import statement

#: Networks whose output family has more exact-expectation nodes than this (a product of
#: Poisson outputs: ~1400) are left out: one estimator call per node.
MAX_NODES = 200


def _draw_of(fam, t):
    """The observation y whose statistic is the node t (one-hot → class, (y, y²) → y)."""
    if fam.name == "categorical":
        return np.argmax(t)
    if fam.name == "normal_unknown_variance":
        return t[0]
    return t[0] if fam.dim == 1 else t


@statement(
    "prop-1",
    title="Proposition 1",
    claim=r"\mathbb{E}[\hat I_1] = \mathbb{E}[\hat I_2] = I(\theta),\quad "
    r"\Pr(\lVert \hat I - I(\theta)\rVert_F > \varepsilon) \to 0 \ (N\to\infty)",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})", r"y_i \overset{iid}{\sim} p(y\mid x,\theta)"],
    method="exact expectation",
)
def check(ctx):
    """Unbiasedness, exactly: the library's Î₁ and Î₂ at each exact-expectation node (N = 1),
    weighted by p(y), equal I(θ).

    Consistency, for both estimators, as a calibrated statement: fix ε per estimator. By
    Chebyshev, P(‖Î − I‖_F > ε) ≤ b_N = E‖term − I‖_F² / (N ε²), with the per-sample mean
    square from the exact-expectation route; ε is set so that b_N = 1/2 at the smallest N,
    and b_N → 0 as N grows (×1/4 per step). At each N, R replicates of the library's
    estimator must fall within ε with frequency ≥ 1 − b_N (exact binomial tail, false-alarm
    rate ctx.alpha per check). A biased or non-convergent estimator fails at the larger N."""
    import fisher_verify as fv
    from fisher_verify._src.fisher.estimators import estimators_from_draws
    from fisher_verify._src.testing.calibrated import assert_frequency_at_least

    ns = ctx.pick((16, 64, 256), (16, 64, 256, 1024))
    reps = ctx.pick(150, 1000)
    nets = random_networks(ctx, widths=QUICK_WIDTHS)
    skipped = []
    for k, (net, x) in enumerate(nets):
        fam = net.family
        exact = fv.exact_fisher(net, x)
        if len(fam.expectation_nodes(net.forward(x))[1]) > MAX_NODES:
            skipped.append(fam.label)
            continue
        route = definition_route(net, x)
        draws = [_draw_of(fam, t) for t in route["t"]]
        ctx.close(f"net {k}: nodes are statistics of draws", fam.statistic(np.array(draws)),
                  route["t"], net=k)
        per = [estimators_from_draws(net, x, np.array([y])) for y in draws]
        terms = {1: np.array([e.i1 for e in per]), 2: np.array([e.i2 for e in per])}
        for e, g in terms.items():
            ctx.close(f"net {k} {fam.label}: E[I{e}] = I(theta)", expect(route, g), exact, net=k)
        if not ctx.thorough and k > 0 and fam.name != "categorical":
            continue  # quick: the Monte Carlo part on one single- and one multi-output network
        mse = {e: float(expect(route, np.sum((g - exact) ** 2, axis=(1, 2))))
               for e, g in terms.items()}
        eps = {e: np.sqrt(m / (0.5 * ns[0])) for e, m in mse.items()}
        rows = []
        for n in ns:
            hits = {1: 0, 2: 0}
            for _ in range(reps):
                est = fv.sample_estimators(net, x, n, ctx.rng)
                hits[1] += int(np.linalg.norm(est.i1 - exact) <= eps[1])
                hits[2] += int(np.linalg.norm(est.i2 - exact) <= eps[2])
            for e in (1, 2):
                bound = mse[e] / (n * eps[e] ** 2)
                record_calibrated(ctx, assert_frequency_at_least(
                    hits[e], reps, 1.0 - bound, alpha=ctx.alpha, raise_on_fail=False,
                    what=f"net {k} {fam.label}: P(||I{e} - I||_F <= eps_{e}) >= {1 - bound:.4g} "
                         f"at N={n}"))
                rows.append({"estimator": e, "N": n, "eps": eps[e], "P(outside) bound": bound,
                             "outside": 1 - hits[e] / reps})
        ctx.record(f"net {k} {fam.label}: consistency", rows)
    ctx.record("skipped (more than MAX_NODES support points)", skipped)
    return ctx.conclude("unbiased exactly; P(||I - I(theta)|| > eps) within the Chebyshev "
                        "bound, which tends to 0, for both estimators")
