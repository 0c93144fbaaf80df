"""lemma-13: back-propagation formulas for the score and the Jacobian."""

import numpy as np

from fisher_verify.proofs import statement
from fisher_verify.proofs.support import random_networks


@statement(
    "lemma-13",
    title="Lemma 13",
    claim=r"\frac{\partial h^a_L}{\partial W_l} = D_l B_{l+1}^\top e_a \bar h_l^\top,\ "
    r"\frac{\partial\ell}{\partial W_l} = D_l B_{l+1}^\top (t-\eta)\bar h_l^\top,\ "
    r"\frac{\partial\ell}{\partial h_l} = B_l^\top (t-\eta)",
    hypotheses=[r"B_L = I,\ B_l = B_{l+1} D_l W_l^-,\ D_{L-1} = I"],
    method="property over random networks",
)
def check(ctx):
    """The lemma-13 quantities (B_l, D_l, h̄_l) assembled per layer vs torch.func Jacobians."""
    for k, (net, x) in enumerate(random_networks(ctx, activation="tanh")):
        q = net.lemma13(x)
        auto = net.jacobian(x, method="autodiff")
        off = net.offsets
        for l, shape in enumerate(net.shapes):
            block = np.einsum("i,ai,j->aij", q.D[l][0], q.B[l + 1][0], q.hbar[l][0])
            ref = auto[:, off[l]:off[l + 1]].reshape(-1, *shape)
            ctx.close(f"net {k} layer {l}: dh_L/dW_l", block, ref, atol=1e-12, net=k, layer=l)
        # dl/dh_l = B_l^T (t - eta): through the chain rule dl/dh_L = t - eta and B_l = dh_L/dh_l
        t = net.family.statistic(net.family.sample(net.forward(x), 1, ctx.rng))[0]
        r = t - net.family.mean(net.forward(x))
        score = r @ auto
        for l in range(len(net.shapes)):
            blk = np.einsum("i,ai,a,j->ij", q.D[l][0], q.B[l + 1][0], r, q.hbar[l][0])
            ctx.close(f"net {k} layer {l}: dl/dW_l", blk.ravel(), score[off[l]:off[l + 1]],
                      atol=1e-12, net=k, layer=l)
    return ctx.conclude()
