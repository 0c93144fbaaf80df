"""remark-6.1: Cov(Î₂) scales with Cov(t)."""

import numpy as np

from fisher_verify.proofs import statement


@statement(
    "remark-6.1",
    title="Remark (after Theorem 6)",
    claim=r"\operatorname{Cov}(\hat I_2) \text{ scales with } \operatorname{Cov}(t):\ "
    r"t \text{ nearly deterministic} \Rightarrow \hat I_2 \text{ nearly exact}",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})"],
    method="property over random networks",
)
def check(ctx):
    """Shift the last bias of a Bernoulli network: ∂²h_L does not change, so ‖Cov(Î₂)‖ must
    follow I(h_L) = p(1−p) exactly, and vanish as p → 0 or 1."""
    import fisher_verify as fv

    net = fv.Network.random([3, 4, 1], "tanh", fv.family("bernoulli"), 1.0, ctx.rng)
    x = ctx.rng.normal(size=3)
    base = net.forward(x)[0]
    norms, infos = [], []
    for shift in (0.0, 4.0, 10.0, 20.0):
        w = [W.copy() for W in net.weights]
        w[-1][0, -1] += shift - base  # h_L = shift
        moved = fv.Network.from_weights(w, "tanh", fv.family("bernoulli"))
        norms.append(fv.covariance_norm(moved, x, which="I2", n=1))
        infos.append(fv.family("bernoulli").fisher(moved.forward(x))[0, 0])
    ratio = np.array(norms) / np.array(infos)
    ctx.record("h_L", [0, 4, 10, 20])
    ctx.record("||Cov(I2)||_F", norms)
    ctx.record("I(h_L)", infos)
    ctx.close("||Cov(I2)||_F / I(h_L) constant under the bias shift", ratio, ratio[0], rtol=1e-8)
    ctx.leq("||Cov(I2)||_F tiny when t nearly deterministic (h_L = 20)", norms[-1],
            1e-6 * norms[0])
    return ctx.conclude()
