"""lemma-15: tensor spectral norm of the per-layer Jacobian."""

import numpy as np

from fisher_verify._src.proofs.support import random_networks
from fisher_verify.proofs import statement


def _spectral_norm_lower(T, rng, starts=8, iters=200):
    """max ⟨T, α⊗β⊗γ⟩ over unit vectors by alternating maximization (a lower bound on
    ‖T‖_{2σ}; exact here because T is rank one in its last mode)."""
    best = 0.0
    for _ in range(starts):
        b = rng.normal(size=T.shape[1])
        c = rng.normal(size=T.shape[2])
        b /= np.linalg.norm(b)
        c /= np.linalg.norm(c)
        for _ in range(iters):
            a = np.einsum("aij,i,j->a", T, b, c)
            a /= np.linalg.norm(a) or 1.0
            b = np.einsum("aij,a,j->i", T, a, c)
            b /= np.linalg.norm(b) or 1.0
            c = np.einsum("aij,a,i->j", T, a, b)
            c /= np.linalg.norm(c) or 1.0
        best = max(best, abs(float(np.einsum("aij,a,i,j->", T, a, b, c))))
    return best


@statement(
    "lemma-15",
    title="Lemma 15",
    claim=r"\Big\lVert\frac{\partial h_L}{\partial W_l}\Big\rVert_{2\sigma} \le \prod_{i=l+1}^{L-1}"
    r"s_{\max}(W_i^-)\,\lVert\bar h_l\rVert_2",
    hypotheses=[r"|\sigma'| \le 1"],
    method="property over random networks",
)
def check(ctx):
    """The spectral norm by alternating maximization (T is rank one in its input mode, so it
    equals s_max(B_{l+1}D_l)·‖h̄_l‖, recorded too) against the bound."""
    for k, (net, x) in enumerate(random_networks(ctx, activation="tanh", scale=2.0)):
        q = net.lemma13(x)
        J = net.jacobian(x, method="autodiff")
        off = net.offsets
        for l, shape in enumerate(net.shapes):
            T = J[:, off[l]:off[l + 1]].reshape(-1, *shape)
            hb = np.linalg.norm(q.hbar[l][0])
            norm = _spectral_norm_lower(T, ctx.rng)
            exact = np.linalg.norm(q.B[l + 1][0] * q.D[l][0][None, :], 2) * hb
            bound = np.prod([np.linalg.norm(W[:, :-1], 2) for W in net.weights[l + 1:]]) * hb
            ctx.close(f"net {k} layer {l}: ALS = s_max(B D) |h_bar|", norm, exact, rtol=1e-6)
            ctx.leq(f"net {k} layer {l}: bound", exact, bound, net=k, layer=l)
    return ctx.conclude()
