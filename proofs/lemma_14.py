"""lemma-14: Frobenius norm of the per-layer Jacobian, and its weight-norm bound."""

import numpy as np

from fisher_verify.proofs import statement
from fisher_verify.proofs.support import random_networks


@statement(
    "lemma-14",
    title="Lemma 14",
    claim=r"\Big\lVert\frac{\partial h_L}{\partial W_l}\Big\rVert_F = \lVert B_{l+1} D_l\rVert_F"
    r"\lVert\bar h_l\rVert_2 \le \prod_{i=l+1}^{L-1}\lVert W_i^-\rVert_F\,\lVert\bar h_l\rVert_2",
    hypotheses=[r"|\sigma'| \le 1"],
    method="property over random networks",
)
def check(ctx):
    """Per layer, the autodiff Jacobian block's norm vs both sides (tanh, sigmoid, softplus)."""
    for act in ctx.pick(("tanh", "sigmoid"), ("tanh", "sigmoid", "softplus")):
        for k, (net, x) in enumerate(random_networks(ctx, activation=act, scale=2.0)):
            q = net.lemma13(x)
            J = net.jacobian(x, method="autodiff")
            off = net.offsets
            for l in range(net.depth):
                lhs = np.linalg.norm(J[:, off[l]:off[l + 1]])
                hb = np.linalg.norm(q.hbar[l][0])
                mid = np.linalg.norm(q.B[l + 1][0] * q.D[l][0][None, :]) * hb
                prod = np.prod([np.linalg.norm(W[:, :-1]) for W in net.weights[l + 1:]]) * hb
                ctx.close(f"{act} net {k} layer {l}: equality", lhs, mid, rtol=1e-10)
                ctx.leq(f"{act} net {k} layer {l}: bound", lhs, prod, activation=act, layer=l)
    return ctx.conclude()
