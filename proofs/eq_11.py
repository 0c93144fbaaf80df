"""eq-11: the back-propagated Fisher estimator of a hidden layer."""

from fisher_verify._src.proofs.support import random_networks
from fisher_verify.proofs import statement


@statement(
    "eq-11",
    title="Eq. 11 (back-propagated FIM)",
    claim=r"\hat I_1(h_l) = \frac1N\sum_i \frac{\partial\ell_i}{\partial h_l}\frac{\partial\ell_i}"
    r"{\partial h_l}^\top = B_l^\top\Big[\frac1N\sum_i (t(y_i)-\eta)(t(y_i)-\eta)^\top\Big] B_l",
    hypotheses=[r"\sigma \text{ differentiable}"],
    method="property over random networks",
)
def check(ctx):
    """The lemma-13 form vs per-sample autodiff gradients ∂ℓ/∂h_l, at every layer."""
    import fisher_verify as fv
    from fisher_verify._src.fisher.backprop import backprop_estimator, backprop_estimator_autodiff

    for k, (net, x) in enumerate(random_networks(ctx)):
        est = fv.sample_estimators(net, x, 8, ctx.rng)
        for layer in range(net.depth + 1):
            ctx.close(f"net {k} layer {layer}", backprop_estimator(net, x, est.t, layer),
                      backprop_estimator_autodiff(net, x, est.t, layer),
                      net=k, layer=layer)
    return ctx.conclude()
