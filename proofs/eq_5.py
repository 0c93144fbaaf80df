"""eq-5: the Hessian of the log-likelihood."""

import numpy as np

from fisher_verify._src.proofs.support import definition_route, random_networks
from fisher_verify.proofs import statement


@statement(
    "eq-5",
    title="Eq. 5 (Hessian)",
    claim=r"\frac{\partial^2 \ell}{\partial\theta\partial\theta^\top} = (t_a - \eta_a)"
    r"\frac{\partial^2 h^a_L}{\partial\theta\partial\theta^\top} - \frac{\partial h^a_L}"
    r"{\partial\theta} I_{ab}(h_L) \frac{\partial h^b_L}{\partial\theta^\top}",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})"],
    method="property over random networks",
)
def check(ctx):
    """Autodiff Hessian of ℓ at every support node vs the analytic output Hessians."""
    for k, (net, x) in enumerate(random_networks(ctx)):
        route = definition_route(net, x)
        h = net.forward(x)
        J, H = net.jacobian(x), net.output_hessians(x)
        gn = J.T @ net.family.fisher(h) @ J
        rhs = np.einsum("sa,apq->spq", route["t"] - net.family.mean(h), H) - gn
        ctx.close(f"net {k} {net.family.label}: Hessian", -route["neg_hessian"], rhs,
                  scale=float(np.max(np.abs(gn))), net=k)  # the terms that cancel
    return ctx.conclude()
