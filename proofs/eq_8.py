"""eq-8: Î₂ is I(θ) plus a zero-mean bias term."""

import numpy as np

from fisher_verify._src.proofs.support import random_networks
from fisher_verify.proofs import statement


@statement(
    "eq-8",
    title="Eq. 8",
    claim=r"\hat I_2 = \Big(\eta_a - \frac1N\sum_i t_a(y_i)\Big)\frac{\partial^2 h^a_L}"
    r"{\partial\theta\partial\theta^\top} + \frac{\partial h^a_L}{\partial\theta} I_{ab}(h_L)"
    r"\frac{\partial h^b_L}{\partial\theta^\top}",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})"],
    method="property over random networks",
)
def check(ctx):
    """The structured Î₂ vs the autodiff Hessian on the same draws; Î₂ − I(θ) is the bias term."""
    import fisher_verify as fv
    from fisher_verify._src.fisher.estimators import estimators_from_draws

    n = ctx.pick(16, 64)
    for k, (net, x) in enumerate(random_networks(ctx)):
        est = fv.sample_estimators(net, x, n, ctx.rng)
        gen = estimators_from_draws(net, x, est.y, route="generic")
        ctx.close(f"net {k}: eq-8 = autodiff", est.i2, gen.i2, net=k)
        eta = net.family.mean(net.forward(x))
        bias = np.einsum("a,apq->pq", eta - est.t.mean(axis=0), net.output_hessians(x))
        fisher = fv.exact_fisher(net, x)
        ctx.close(f"net {k}: I2 - I(theta) = bias term", est.i2 - fisher, bias,
                  scale=float(np.max(np.abs(fisher))), net=k)  # the terms that cancel
    return ctx.conclude()
