"""remark-3.1: ReLU is not C², so Theorem 3 does not cover it."""

import numpy as np

from fisher_verify.proofs import statement


@statement(
    "remark-3.1",
    title="Remark (after Theorem 3)",
    claim=r"\mathrm{ReLU} \notin C^1(\mathbb{R})"
    r" \text{, so Theorem 3 does not cover ReLU networks}",
    hypotheses=[],
    method="property over random networks",
)
def check(ctx):
    """ReLU's one-sided derivatives at 0 differ; the library marks ReLU networks non-C² and
    refuses thm-3-based computations where they are undefined (an input at a kink, or no input
    to decide on), while computing them at inputs away from the kinks (thm-3-ae)."""
    import fisher_verify as fv
    from fisher_verify._src.networks.activations import get_activation
    from fisher_verify.errors import UnsupportedError

    relu = get_activation("relu")
    eps = 1e-9
    left = (relu.np_f(np.array([0.0])) - relu.np_f(np.array([-eps]))) / eps
    right = (relu.np_f(np.array([eps])) - relu.np_f(np.array([0.0]))) / eps
    ctx.record("one-sided derivatives at 0", {"left": left[0], "right": right[0]})
    ctx.true("ReLU's one-sided derivatives at 0 differ (not differentiable)", left[0] != right[0])
    net = fv.Network.random([2, 3, 1], "relu", fv.family("bernoulli"), 1.0, ctx.rng)
    ctx.true("Network reports ReLU as not C^2", not net.is_c2)
    x = ctx.rng.normal(size=2)
    weights = [W.copy() for W in net.weights]
    weights[0][0, -1] = -float(weights[0][0, :-1] @ x)  # unit 0 of layer 1 at its kink
    kinked = fv.Network(weights, "relu", net.family)
    for label, subject, at in (("without inputs", net, None), ("at an input on a kink", kinked, x)):
        try:
            subject.require_c2("the expected negative Hessian (thm-3)", at)
            ctx.true(f"ReLU network refused where C^2 is needed, {label}", False)
        except UnsupportedError as exc:
            ctx.true(f"ReLU network refused where C^2 is needed, {label}", True)
            ctx.record(f"message {label}", str(exc))
    ok = not net.kinks(x)
    if ok:
        net.require_c2("the expected negative Hessian (thm-3)", x)
    ctx.true("ReLU network accepted at an input away from its kinks (thm-3-ae)", ok)
    tanh = fv.Network.random([2, 3, 1], "tanh", fv.family("bernoulli"), 1.0, ctx.rng)
    ctx.true("tanh network is C^2", tanh.is_c2)
    return ctx.conclude()
