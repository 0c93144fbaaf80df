"""d24-pwl: piecewise-linear networks at inputs away from their kinks have ∂²_ii h_L = 0 for
every parameter, so diag Î₂ = diag I(θ) exactly with zero variance in every layer (beyond the
paper: Soen & Sun, NeurIPS 2024, arXiv 2402.05379)."""

import numpy as np

from fisher_verify.proofs import statement


@statement(
    "d24-pwl",
    title="Beyond the paper: piecewise-linear networks",
    claim=r"\partial^2_{ii} h_L = 0\ \forall i \ \Rightarrow\ \operatorname{diag}\hat I_2 = "
    r"\operatorname{diag} I(\theta),\ \operatorname{Var}(\hat I_2(\theta_i)) = 0",
    hypotheses=[r"\sigma \text{ piecewise linear, no pre-activation at a kink}",
                r"\text{no weight tied across layers}"],
    method="exact expectation",
)
def check(ctx):
    """For a ReLU network of every family at depths 1–3 (two random inputs each): every
    pre-activation is farther from the kink than the rounding of its computation
    (n·eps·Σ_k |W_jk h̄_k|); the diagonal of ∂²h_L/∂θ∂θᵀ from torch.func (ReLU'' = 0 away from
    the kink) is 0 at the scale of the cross-layer blocks (not 0 for most networks of depth ≥ 2; one
    with every hidden unit inactive at its inputs is affine there, and counted apart); −∂²_iiℓ
    by autodiff at every label node equals fisher.diagonal.pwl_hessian_estimate_diagonal (diag
    I(θ|x) from J and I(h_L)), so its variance over the labels is 0 at the scale of E[g²]; and the
    full Î₂ still varies (thm-6 off the diagonal)."""
    from fisher_verify._src.fisher import diagonal as dg
    from fisher_verify._src.fisher.covariance import cov2_variance
    from fisher_verify._src.networks.activations import ACTIVATIONS
    from fisher_verify._src.proofs.beyond import family_cases, label_route, node_moments

    pwl = [k for k, a in ACTIVATIONS.items() if not a.is_c2]
    cases = family_cases(ctx, activations=pwl)
    eps = np.finfo(float).eps
    cross = 0  # networks whose cross-layer Hessian blocks are not 0 (the claim is not vacuous)
    for k, c in enumerate(cases):
        net, X, fam = c.net, c.X, c.net.family
        lm = net.lemma13(X)
        for layer in range(net.depth - 1):  # hidden pre-activations only: the last layer is linear
            z = lm.pre[layer]
            rounding = net.widths[layer] * eps * np.abs(lm.hbar[layer]) @ np.abs(
                net.weights[layer]).T
            ctx.true(f"{c.where}: layer {layer} pre-activations away from the kink",
                     np.all(np.abs(z) > rounding), net=k, layer=layer,
                     margin=float(np.min(np.abs(z))))
        H = net.output_hessians(X, method="autodiff")
        Hd = np.diagonal(H, axis1=-2, axis2=-1)
        J = net.jacobian(X, method="autodiff")
        scale = float(np.max(np.abs(H)))
        # every hidden unit inactive at these inputs makes h_L affine near θ: H is then 0
        # structurally, and the first derivatives give the scale
        curved = scale > 0
        ctx.close(f"{c.where}: d2 h_L / d theta_i^2 = 0 (torch.func)", Hd, 0.0, 1e-12,
                  scale=scale if curved else float(np.max(np.abs(J))), net=k)
        if net.depth >= 2 and curved:
            cross += 1
        h = net.forward(X)
        I = fam.fisher(h)
        for m in range(X.shape[0]):
            r = label_route(net, X[m])
            g = r["neg_hessian_diag"]
            want = dg.pwl_hessian_estimate_diagonal(J[m:m + 1], I[m:m + 1])
            ctx.close(f"{c.where} input {m}: -d2_ii l at every label = diag I(theta|x)",
                      g, np.broadcast_to(want, g.shape), 1e-9, net=k)
            mean, sq = node_moments(r, g)
            ctx.close(f"{c.where} input {m}: Var(I2_ii) over the labels = 0", sq - mean**2, 0.0,
                      1e-9, scale=float(np.max(sq)), net=k)
        if net.depth >= 2 and curved:
            full = cov2_variance(H, I, 1)
            ctx.true(f"{c.where}: the full I2 still varies (thm-6 off the diagonal)",
                     np.max(full) > 1e-6 * scale**2 * np.max(np.abs(I)), net=k)
    ctx.true("cross-layer blocks of d2 h_L are not 0 for most deeper networks",
             cross >= sum(c.depth >= 2 for c in cases) // 2, cross=cross)
    ctx.record("networks", len(cases))
    ctx.record("networks_with_cross_layer_curvature", cross)
    ctx.record("activations", pwl)
    return ctx.conclude(f"{len(cases)} networks ({', '.join(pwl)}): diag I2 = diag I(theta) at "
                        "every label, zero variance in every layer")
