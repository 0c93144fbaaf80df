"""eq-4: the score is Jᵀ(t − η)."""


from fisher_verify._src.proofs.support import definition_route, random_networks
from fisher_verify.proofs import statement


@statement(
    "eq-4",
    title="Eq. 4 (score)",
    claim=r"\frac{\partial \ell}{\partial\theta} = J^\top (t(y) - \eta(h_L))",
    hypotheses=[r"\sigma \text{ differentiable}"],
    method="property over random networks",
)
def check(ctx):
    """Autodiff of ℓ = tᵀh_L − F(h_L) at every support node vs the lemma-13 Jacobian."""
    for k, (net, x) in enumerate(random_networks(ctx)):
        route = definition_route(net, x)
        eta = net.family.mean(net.forward(x))
        rhs = (route["t"] - eta) @ net.jacobian(x)
        ctx.close(f"net {k} {net.family.label}: score", route["score"], rhs, net=k)
    ctx.record("networks", k + 1)
    return ctx.conclude()
