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
    refuses thm-3-based computations on them, while accepting tanh."""
    import fisher_verify as fv
    from fisher_verify.errors import UnsupportedError
    from fisher_verify.networks.activations import get_activation

    relu = get_activation("relu")
    eps = 1e-9
    left = (relu.np_f(np.array([0.0])) - relu.np_f(np.array([-eps]))) / eps
    right = (relu.np_f(np.array([eps])) - relu.np_f(np.array([0.0]))) / eps
    ctx.record("one-sided derivatives at 0", {"left": left[0], "right": right[0]})
    ctx.true("ReLU's one-sided derivatives at 0 differ (not differentiable)", left[0] != right[0])
    net = fv.Network.random([2, 3, 1], "relu", fv.family("bernoulli"), 1.0, ctx.rng)
    ctx.true("Network reports ReLU as not C^2", not net.is_c2)
    try:
        net.require_c2("the expected negative Hessian (thm-3)")
        ctx.true("ReLU network refused where C^2 is needed", False)
    except UnsupportedError as exc:
        ctx.true("ReLU network refused where C^2 is needed", True)
        ctx.record("message", str(exc))
    tanh = fv.Network.random([2, 3, 1], "tanh", fv.family("bernoulli"), 1.0, ctx.rng)
    ctx.true("tanh network is C^2", tanh.is_c2)
    return ctx.conclude()
