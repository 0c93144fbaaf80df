"""lemma-13: back-propagation formulas for the Jacobian, the score and ∂ℓ/∂h_l."""

import numpy as np

from fisher_verify._src.proofs.support import random_networks
from fisher_verify.proofs import statement


def _autodiff_gradients(net, x, t):
    """∂ℓ/∂θ and ∂ℓ/∂h_l (l = 0..L) of ℓ = tᵀh_L − F(h_L) by torch.func, from the definition
    of ℓ alone (forward pass and the family's log-partition): no B_l, D_l or h̄_l."""
    import torch
    from torch.func import grad

    fam = net.family
    log_partition = fam.kernel("log_partition", "torch")
    theta = torch.as_tensor(net.theta)
    ty = torch.as_tensor(np.asarray(t, dtype=float))
    q = net.lemma13(x)

    def loglik_from(th, h, layer):
        hl = net.torch_forward_from(th, h, layer)
        return (ty * hl).sum() - log_partition(hl[None, :]).reshape(-1)[0]

    d_theta = grad(loglik_from, argnums=0)(theta, torch.as_tensor(np.asarray(x, float)), 0)
    d_h = []
    for layer in range(net.depth + 1):
        h_l = torch.as_tensor(np.asarray(q.h(layer)[0], dtype=float))
        d_h.append(grad(loglik_from, argnums=1)(theta, h_l, layer).detach().numpy())
    return d_theta.detach().numpy(), d_h


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
    """All three formulas, each assembled from the lemma-13 quantities (B_l, D_l, h̄_l) and
    compared with torch.func derivatives from the definition: the Jacobian blocks
    ∂h^a_L/∂W_l against the autodiff Jacobian; ∂ℓ/∂W_l and ∂ℓ/∂h_l (every layer l = 0..L,
    h_0 = x) against autodiff gradients of ℓ = tᵀh_L − F(h_L) at sampled y."""
    draws = ctx.pick(2, 4)
    for k, (net, x) in enumerate(random_networks(ctx, activation="tanh")):
        q = net.lemma13(x)
        auto = net.jacobian(x, method="autodiff")
        off = net.offsets
        eta = net.family.mean(net.forward(x))
        for l, shape in enumerate(net.shapes):
            block = np.einsum("i,ai,j->aij", q.D[l][0], q.B[l + 1][0], q.hbar[l][0])
            ref = auto[:, off[l]:off[l + 1]].reshape(-1, *shape)
            ctx.close(f"net {k} layer {l}: dh_L/dW_l", block, ref, net=k, layer=l)
        ts = net.family.statistic(net.family.sample(net.forward(x), draws, ctx.rng))
        for t in ts:
            r = t - eta
            d_theta, d_h = _autodiff_gradients(net, x, t)
            for l in range(net.depth):
                blk = np.einsum("i,ai,a,j->ij", q.D[l][0], q.B[l + 1][0], r, q.hbar[l][0])
                ctx.close(f"net {k} {net.family.label} layer {l}: dl/dW_l", blk.ravel(),
                          d_theta[off[l]:off[l + 1]], net=k, layer=l)
            for l in range(net.depth + 1):
                ctx.close(f"net {k} {net.family.label} layer {l}: dl/dh_l = B_l^T (t - eta)",
                          q.B[l][0].T @ r, d_h[l], net=k, layer=l)
    return ctx.conclude()
