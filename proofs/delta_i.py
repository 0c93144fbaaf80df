"""delta-i: the deviation of a target-label estimator from Î."""

from fisher_verify._src.proofs.support import random_networks
from fisher_verify.proofs import statement


@statement(
    "delta-i",
    title="End of Section 4",
    claim=r"\Delta\hat I_1 = \partial h^a\big[(t_a(\tilde y)-\eta_a)(t_b(\tilde y)-\eta_b) - "
    r"\tfrac1N\sum_i (t_a(y_i)-\eta_a)(t_b(y_i)-\eta_b)\big]\partial h^{b\top},\ "
    r"\Delta\hat I_2 = \big[\tfrac1N\sum_i t_a(y_i) - t_a(\tilde y)\big]\partial^2 h^a",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})"],
    method="property over random networks",
)
def check(ctx):
    """The closed forms vs differentiating l̃ and the draws' ℓ directly (autodiff)."""
    import fisher_verify as fv
    from fisher_verify._src.fisher.estimators import delta_estimators

    for k, (net, x) in enumerate(random_networks(ctx)):
        est = fv.sample_estimators(net, x, 8, ctx.rng)
        target = net.family.sample(net.forward(x), 1, ctx.rng)[0]
        s1, s2 = delta_estimators(net, x, target, est)
        g1, g2 = delta_estimators(net, x, target, est, route="generic")
        ctx.close(f"net {k}: Delta I1", s1, g1, net=k)
        ctx.close(f"net {k}: Delta I2", s2, g2, net=k)
    return ctx.conclude()
