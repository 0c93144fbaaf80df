"""eq-6: the closed-form Fisher (a generalized Gauss–Newton matrix)."""

import numpy as np

from fisher_verify._src.proofs.support import definition_route, expect, random_networks
from fisher_verify.proofs import statement


@statement(
    "eq-6",
    title="Eq. 6 (closed form)",
    claim=r"I(\theta) = J^\top I(h_L) J = \frac{\partial h^a_L}{\partial\theta} I_{ab}(h_L)"
    r"\frac{\partial h^b_L}{\partial\theta^\top}",
    hypotheses=[r"\sigma \text{ differentiable}"],
    method="exact expectation",
)
def check(ctx):
    """exact_fisher (lemma-13 and torch.func Jacobians) vs E[∂ℓ∂ℓᵀ] from the definition."""
    import fisher_verify as fv

    for k, (net, x) in enumerate(random_networks(ctx)):
        route = definition_route(net, x)
        ref = expect(route, np.einsum("si,sj->sij", route["score"], route["score"]))
        ana = fv.exact_fisher(net, x)
        ctx.close(f"net {k}: exact_fisher = E[score score^T]", ana, ref, net=k)
        ctx.close(f"net {k}: analytic = autodiff Jacobian route",
                  ana, fv.exact_fisher(net, x, method="autodiff"), net=k)
        ctx.true(f"net {k}: p.s.d.", np.linalg.eigvalsh(ana).min() >= -1e-12 * np.abs(ana).max())
    return ctx.conclude()
