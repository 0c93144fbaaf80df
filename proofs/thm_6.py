"""thm-6: the closed-form covariance of Î₂."""

from fisher_verify._src.proofs.support import (
    QUICK_WIDTHS,
    definition_route,
    exact_covariance,
    random_networks,
)
from fisher_verify.proofs import statement


@statement(
    "thm-6",
    title="Theorem 6",
    claim=r"\operatorname{Cov}(\hat I_2)^{ijkl} = \tfrac1N\, \partial^2_{ij} h^\alpha\, "
    r"\partial^2_{kl} h^\beta\, I_{\alpha\beta}(h_L)",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})", r"y_i \text{ i.i.d.}"],
    method="exact expectation",
)
def check(ctx):
    """Library closed form (Theorem 6) vs the exact covariance of −∂²ℓ from the definition
    (autodiff Hessians at the exact-expectation nodes), every entry of the P⁴ tensor."""
    import fisher_verify as fv

    n = 3
    for k, (net, x) in enumerate(random_networks(ctx, widths=QUICK_WIDTHS)):  # P <= 40
        route = definition_route(net, x)
        ref = exact_covariance(route, route["neg_hessian"]) / n
        ctx.close(f"net {k} {net.family.label}: Cov(I2)", fv.covariance(net, x, which="I2", n=n),
                  ref, net=k)
    ctx.record("networks", k + 1)
    return ctx.conclude()
