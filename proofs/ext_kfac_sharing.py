"""ext-kfac-sharing: K-FAC-expand and K-FAC-reduce are exact for deep linear networks with
weight sharing in their own setting (beyond the paper; Eschenhagen et al. 2023, "Kronecker-
Factored Approximate Curvature for Modern Neural Network Architectures"; ``fisher.kfac``).

A linear layer ``z_(n,r) = W a_(n,r)`` is shared over R positions of each input n (a sequence,
image patches). With ``Jz_r = ∂f_n/∂z_(n,r)`` and the output Fisher ``I_n``, the layer's block
of I(θ) is ``(1/N) Σ_n J_nᵀ I_n J_n``, ``J_n = Σ_r Jz_r ⊗ a_rᵀ`` (``W`` row-major). The two
flavours:

* expand (positions treated like inputs): ``A = (1/(NR)) Σ_(n,r) a aᵀ``,
  ``G = (1/N) Σ_(n,r) Jz_rᵀ I Jz_r``;
* reduce (positions summed first): ``A = (1/(NR²)) Σ_n (Σ_r a)(Σ_r a)ᵀ``,
  ``G = (1/N) Σ_n (Σ_r Jz_r)ᵀ I (Σ_r Jz_r)``.

Claims: in a deep linear network with a Gaussian output of fixed covariance (``I = Σ⁻¹``, the
same for every input), (1) in the **expand setting** (one output per position, the positions
independent given θ) ``G ⊗ A`` of K-FAC-expand is the block, at rounding, for every layer; (2)
in the **reduce setting** (outputs averaged over the positions before the likelihood) K-FAC-reduce
is; (3) each flavour is not exact in the other's setting, a tanh network is not exact in either,
and the other Kronecker order ``A ⊗ G`` is not the block (the order convention: output index
major, ``G`` first); (4) with one position the two flavours coincide.

**Independent route.** The block from the dense Jacobian of the network's output in ``W_l``
(``torch.func.jacrev``, flattened row-major); the factors from the layer inputs of a forward
pass and ``∂f/∂z`` by ``jacrev`` through an additive perturbation of ``z``. Compared at
``1e-10`` relative to the block's largest entry.
"""

import numpy as np

from fisher_verify.proofs import statement

RTOL = 1e-10
GAP = 1e-6


def _model(rng, widths, R, N, act):
    import torch

    Ws = [torch.tensor(rng.normal(size=(o, i + 1)) / np.sqrt(i + 1)) for i, o in zip(widths, widths[1:])]
    X = torch.tensor(rng.normal(size=(N, R, widths[0])))
    f = (lambda z: z) if act == "linear" else torch.tanh

    def forward(Ws, x, layer=None, delta=None):
        """(outputs per position (R, d_L), inputs of ``layer`` with the 1 appended (R, c))."""
        h, a_l = x, None
        for k, W in enumerate(Ws):
            a = torch.cat([h, torch.ones(h.shape[0], 1, dtype=h.dtype)], dim=1)
            z = a @ W.T
            if k == layer:
                a_l = a
                if delta is not None:
                    z = z + delta
            h = z if k == len(Ws) - 1 else f(z)
        return h, a_l

    return Ws, X, forward


@statement(
    "ext-kfac-sharing",
    title="Beyond the paper: K-FAC-expand / K-FAC-reduce exact for deep linear networks with "
    "weight sharing in their settings",
    claim=r"\text{expand setting: } I(\theta)_{W_lW_l}=G^{\mathrm{exp}}_l\otimes A^{\mathrm{exp}}_l;"
    r"\ \text{reduce setting: } I(\theta)_{W_lW_l}=G^{\mathrm{red}}_l\otimes A^{\mathrm{red}}_l",
    hypotheses=[r"\text{deep linear network}", r"I(h_L)=\Sigma^{-1}\ \text{for every input}",
                r"W_l\ \text{row-major in}\ \theta"],
    method="dense Jacobians (torch.func), forward activations",
)
def check(ctx):
    """Both flavours against the exact block in both settings."""
    import torch
    from torch.func import jacrev

    from fisher_verify._src.fisher.kfac import kfac_expand_factors, kfac_reduce_factors, shared_layer_block

    widths = (2, 3, 3, 2)
    N = 3
    d = widths[-1]
    rng = ctx.rng
    Sinv = rng.normal(size=(d, d))
    Sinv = Sinv @ Sinv.T + d * np.eye(d)  # a fixed output precision Σ⁻¹
    gaps = {}
    # (activation, positions, layers checked): every layer of the deep linear network; one
    # hidden layer for the others (thorough: all)
    cases = [("linear", 4, (0, 1, 2)), ("tanh", 4, (0,)), ("linear", 1, (1,))]
    if ctx.thorough:
        cases = [(act, R, (0, 1, 2)) for act, R, _ in cases]
    for act, R, layers in cases:
        Ws, X, forward = _model(rng, widths, R, N, act)
        for setting in ("expand", "reduce"):
            def out(Ws, x, layer=None, delta=None, setting=setting, forward=forward):
                h, _ = forward(Ws, x, layer, delta)
                return h.reshape(-1) if setting == "expand" else h.mean(dim=0)

            D = R * d if setting == "expand" else d
            I = np.kron(np.eye(R), Sinv) if setting == "expand" else Sinv
            In = np.broadcast_to(I, (N, D, D))
            for layer in layers:
                where = dict(activation=act, positions=R, setting=setting, layer=layer)
                tag = f"{act}, R = {R}, {setting} setting, W_{layer}"
                blocks, a_all, Jz_all = [], [], []
                for n in range(N):
                    x = X[n]

                    def in_w(W, x=x, layer=layer, Ws=Ws):
                        Wl = list(Ws)
                        Wl[layer] = W
                        return out(Wl, x)

                    JW = jacrev(in_w)(Ws[layer]).reshape(D, -1).numpy()  # W row-major
                    blocks.append(JW.T @ I @ JW)
                    _, a = forward(Ws, x, layer)
                    q = Ws[layer].shape[0]
                    zero = torch.zeros(R, q, dtype=torch.float64)
                    Jz = jacrev(lambda dl, x=x, layer=layer, Ws=Ws: out(Ws, x, layer, dl))(zero)
                    a_all.append(a.numpy())
                    Jz_all.append(Jz.reshape(D, R, q).numpy())
                block = np.mean(blocks, axis=0)
                a_all, Jz_all = np.array(a_all), np.array(Jz_all)
                scale = float(np.max(np.abs(block)))
                ctx.close(f"{tag}: shared_layer_block = the dense-Jacobian block",
                          shared_layer_block(a_all, Jz_all, In), block, rtol=RTOL, **where)
                A_e, G_e = kfac_expand_factors(a_all, Jz_all, In)
                A_r, G_r = kfac_reduce_factors(a_all, Jz_all, In)
                exp_b, red_b = np.kron(G_e, A_e), np.kron(G_r, A_r)
                gap_e = float(np.max(np.abs(exp_b - block))) / scale
                gap_r = float(np.max(np.abs(red_b - block))) / scale
                gaps[f"{tag}: expand"] = gap_e
                gaps[f"{tag}: reduce"] = gap_r
                if R == 1:
                    ctx.close(f"{tag}: one position, expand = reduce", exp_b, red_b, rtol=RTOL, **where)
                if act == "linear":
                    own, other = (exp_b, gap_r) if setting == "expand" else (red_b, gap_e)
                    ctx.close(f"{tag}: K-FAC-{setting} = the block (exact)", own, block,
                              rtol=RTOL, scale=scale, **where)
                    if R > 1:
                        ctx.true(f"{tag}: the other flavour is not exact here", other > GAP,
                                 f"relative gap {other:.3g}", **where)
                    Ak, Gk = (A_e, G_e) if setting == "expand" else (A_r, G_r)
                    if Ak.shape == Gk.shape:
                        wrong = float(np.max(np.abs(np.kron(Ak, Gk) - block))) / scale
                        ctx.true(f"{tag}: the order A ⊗ G is not the block", wrong > GAP,
                                 f"relative gap {wrong:.3g}", **where)
                elif R > 1 and layer < len(Ws) - 1:
                    # the tanh after this layer makes ∂f/∂z depend on the input
                    own = gap_e if setting == "expand" else gap_r
                    ctx.true(f"{tag}: a tanh network is not exact", own > GAP,
                             f"relative gap {own:.3g}", **where)
    ctx.record("relative gap of each flavour to the block", gaps)
