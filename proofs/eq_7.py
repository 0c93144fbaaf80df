"""eq-7: Î₁ through the output-space sample covariance."""

from fisher_verify._src.proofs.support import random_networks
from fisher_verify.proofs import statement


@statement(
    "eq-7",
    title="Eq. 7",
    claim=r"\hat I_1 = \frac{\partial h^a_L}{\partial\theta}\Big[\frac1N\sum_i (t_a(y_i)-\eta_a)"
    r"(t_b(y_i)-\eta_b)\Big]\frac{\partial h^b_L}{\partial\theta^\top}",
    hypotheses=[r"\sigma \text{ differentiable}"],
    method="property over random networks",
)
def check(ctx):
    """The structured Î₁ (eq-7) vs per-sample autodiff scores on the same draws."""
    import fisher_verify as fv
    from fisher_verify._src.fisher.estimators import estimators_from_draws

    n = ctx.pick(16, 64)
    for k, (net, x) in enumerate(random_networks(ctx)):
        est = fv.sample_estimators(net, x, n, ctx.rng)
        gen = estimators_from_draws(net, x, est.y, route="generic")
        ctx.close(f"net {k} {net.family.label}: eq-7 = autodiff", est.i1, gen.i1, net=k)
    ctx.record("draws_per_network", n)
    return ctx.conclude()
