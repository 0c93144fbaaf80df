"""thm-4: the closed-form covariance of Î₁."""

import numpy as np

from fisher_verify.proofs import statement
from fisher_verify.proofs.support import QUICK_WIDTHS, definition_route, expect, random_networks


@statement(
    "thm-4",
    title="Theorem 4",
    claim=r"\operatorname{Cov}(\hat I_1)^{ijkl} = \tfrac1N\, \partial_i h^a \partial_j h^b "
    r"\partial_k h^c \partial_l h^d (K_{abcd} - I_{ab} I_{cd})",
    hypotheses=[r"\sigma \text{ differentiable}", r"y_i \text{ i.i.d.}"],
    method="exact expectation",
)
def check(ctx):
    """Library closed form (Theorem 4) vs the exact covariance of ∂ℓ∂ℓᵀ from the definition."""
    import fisher_verify as fv

    n = 3
    for k, (net, x) in enumerate(random_networks(ctx, widths=QUICK_WIDTHS)):  # P <= 40
        route = definition_route(net, x)
        s = route["score"]
        outer = np.einsum("si,sj->sij", s, s)
        dev = outer - expect(route, outer)
        ref = expect(route, np.einsum("sij,skl->sijkl", dev, dev)) / n
        ctx.close(f"net {k} {net.family.label}: Cov(I1)", fv.covariance(net, x, estimator=1, n=n),
                  ref, atol=1e-12, net=k)
    return ctx.conclude()
