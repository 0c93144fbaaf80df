"""cov-n: both covariances are the per-sample covariance over N."""

import numpy as np

from fisher_verify.proofs import statement
from fisher_verify.proofs.support import definition_route, expect, random_networks


@statement(
    "cov-n",
    title="Section 3.1",
    claim=r"\operatorname{Cov}(\hat I_1) = \tfrac1N \operatorname{Cov}"
    r"(\partial\ell\,\partial\ell^\top),"
    r"\ \operatorname{Cov}(\hat I_2) = \tfrac1N \operatorname{Cov}(\partial^2\ell)",
    hypotheses=[r"y_i \text{ i.i.d.}"],
    method="exact expectation",
)
def check(ctx):
    """The library's variance at N vs the exact per-sample variance (definition route) / N."""
    import fisher_verify as fv

    for k, (net, x) in enumerate(random_networks(ctx, widths=[(3, 4, 1)])):
        route = definition_route(net, x)
        s = route["score"]
        outer = np.einsum("si,sj->sij", s, s)
        for est, per in ((1, outer), (2, route["neg_hessian"])):
            mean = expect(route, per)
            var1 = expect(route, (per - mean) ** 2)
            for n in (1, 7, 100):
                ctx.close(f"net {k}: Var(I{est}) at N={n} = per-sample variance / N",
                          fv.variance(net, x, estimator=est, n=n), var1 / n, atol=1e-12, net=k)
    return ctx.conclude()
