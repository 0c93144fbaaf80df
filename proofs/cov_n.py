"""cov-n: both covariances are the per-sample covariance over N."""

import itertools

import numpy as np

from fisher_verify._src.proofs.support import (
    QUICK_WIDTHS,
    definition_route,
    exact_covariance,
    random_networks,
)
from fisher_verify.proofs import statement

#: Largest number of N-tuples of nodes enumerated for the exact covariance of the N-draw mean.
MAX_TUPLES = 20_000


def _mean_of_draws_covariance(route, values, n):
    """Cov((1/N) Σ_i g(y_i)) for N i.i.d. draws, by enumerating every N-tuple of nodes with
    weight Π w (the product measure): no use of the 1/N rule being checked. Exact for the
    finite supports, and for the Gauss nodes since each draw enters with degree <= 4."""
    w, S = route["w"], values.shape[0]
    P = values.shape[1]
    flat = values.reshape(S, P * P)
    tuples = np.array(list(itertools.product(range(S), repeat=n)))
    weight = np.prod(w[tuples], axis=1)
    means = flat[tuples].mean(axis=1)
    centre = weight @ means
    dev = means - centre
    return ((dev * weight[:, None]).T @ dev).reshape(P, P, P, P)


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
    """Every entry (i, j, k, l) of Cov(Î), off-diagonal ones included, on single- and
    multi-output networks (categorical and normal_unknown_variance outputs among them):

    * the exact covariance of the mean of N draws, by enumerating the N-fold product of the
      exact-expectation nodes (N = 2, 3 where the tuples are few), equals the per-sample
      covariance divided by N;
    * the library's Cov(Î) at N = 1, 7, 100 equals the per-sample covariance (definition
      route: autodiff at the nodes) divided by N.
    """
    import fisher_verify as fv

    enumerated = 0
    for k, (net, x) in enumerate(random_networks(ctx, widths=QUICK_WIDTHS)):
        route = definition_route(net, x)
        s = route["score"]
        terms = {1: np.einsum("si,sj->sij", s, s), 2: route["neg_hessian"]}
        S = len(route["w"])
        for est, per in terms.items():
            cov1 = exact_covariance(route, per)
            for n in (2, 3):
                if S**n <= MAX_TUPLES:
                    enumerated += 1
                    ctx.close(f"net {k} {net.family.label}: Cov of the mean of {n} draws of "
                              f"term {est} = per-sample Cov / {n}",
                              _mean_of_draws_covariance(route, per, n), cov1 / n, net=k)
            for n in (1, 7, 100):
                ctx.close(f"net {k} {net.family.label}: library Cov(I{est}) at N={n} = "
                          "per-sample Cov / N", fv.covariance(net, x, which=f"I{est}", n=n),
                          cov1 / n, net=k)
    ctx.record("networks", k + 1)
    ctx.record("N-fold enumerations", enumerated)
    ctx.true("the N-fold product was enumerated for some network", enumerated > 0)
    return ctx.conclude()
