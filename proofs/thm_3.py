"""thm-3: for C² activations the Fisher is the expected negative Hessian."""

import numpy as np

from fisher_verify._src.proofs.support import c2_activations, definition_route, expect, random_networks
from fisher_verify.proofs import statement


@statement(
    "thm-3",
    title="Theorem 3",
    claim=r"I(\theta) = \mathbb{E}_p\!\left[-\frac{\partial^2 \ell}"
    r"{\partial\theta\partial\theta^\top}"
    r"\right]",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})"],
    method="exact expectation",
)
def check(ctx):
    """E[−∂²ℓ] and E[∂ℓ∂ℓᵀ] by autodiff at the exact-expectation nodes, against each other."""
    for act in c2_activations(ctx):
        for k, (net, x) in enumerate(random_networks(ctx, activation=act)):
            route = definition_route(net, x)
            outer = expect(route, np.einsum("si,sj->sij", route["score"], route["score"]))
            ctx.close(f"{act} net {k} {net.family.label}: E[-Hessian] = E[score score^T]",
                      expect(route, route["neg_hessian"]), outer,
                      activation=act, net=k)
    return ctx.conclude()
