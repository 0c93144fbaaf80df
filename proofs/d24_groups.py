"""d24-groups: the trade-off by parameter group (beyond the paper: Soen & Sun, NeurIPS 2024,
arXiv 2402.05379). For the layer before the last, the ratio Var(Î₂)/Var(Î₁) of W_{L−2}[j,k]
depends on σ''(z_j)²/σ'(z_j)⁴ and the family's moments, not on the layer input h̄_k."""

import numpy as np

from fisher_verify.proofs import statement


@statement(
    "d24-groups",
    title="Beyond the paper: the trade-off by parameter group",
    claim=r"\frac{\operatorname{Var}(\hat I_2(W_{L-2}[j,k]))}{\operatorname{Var}(\hat I_1"
    r"(W_{L-2}[j,k]))} = \frac{\sigma''(z_j)^2\, w_j^\top I w_j}{\sigma'(z_j)^4\, "
    r"(K - I\otimes I)[w_j,w_j,w_j,w_j]}\ \text{for every } k",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})", r"L \ge 2", r"\text{one input}"],
    method="property over random networks",
)
def check(ctx):
    """fisher.diagonal.group_variances against the diagonal of the dense thm-4/thm-6 route
    (autodiff J and H) on the weights of W_{L−2}, for a network of every family at depths 2
    and 3 (one input each): both variances equal their closed forms, and the dense route's
    ratio Var(Î₂)/Var(Î₁) is the same for every column k (the input h̄_k differs) and equals
    the closed-form ratio."""
    from fisher_verify._src.fisher import diagonal as dg
    from fisher_verify._src.fisher.covariance import cov1_variance, cov2_variance, moment_excess
    from fisher_verify._src.proofs.beyond import family_cases

    n = 3
    cases = family_cases(ctx, depths=(2, 3), inputs=1)
    ratios = []
    for k, c in enumerate(cases):
        net, X, fam = c.net, c.X, c.net.family
        h = net.forward(X)
        I, K = fam.fisher(h), fam.central_moment4(h)
        L = net.depth
        lm = net.lemma13(X)
        z = lm.pre[L - 2]
        g = dg.group_variances(net.weights[L - 1], z, lm.hbar[L - 2], net.act.np_d1(z),
                               net.act.np_d2(z), I, moment_excess(K, I), n)
        lo, hi = net.offsets[L - 2], net.offsets[L - 1]
        shape = net.shapes[L - 2]
        Ja, Ha = net.jacobian(X, method="autodiff"), net.output_hessians(X, method="autodiff")
        d1 = cov1_variance(Ja, K, I, n, diagonal=True)[lo:hi].reshape(shape)
        d2 = cov2_variance(Ha, I, n, diagonal=True)[lo:hi].reshape(shape)
        ctx.close(f"{c.where}: Var(I1) of W_L-2 = closed form", g.var1, d1, 1e-9, net=k)
        ctx.close(f"{c.where}: Var(I2) of W_L-2 = closed form", g.var2, d2, 1e-9, net=k)
        dense_ratio = d2 / d1
        ctx.close(f"{c.where}: dense Var(I2)/Var(I1) the same for every k",
                  dense_ratio, dense_ratio[:, :1], 1e-9, net=k)
        ctx.close(f"{c.where}: dense ratio = sigma''^2 w'Iw / (sigma'^4 C[w,w,w,w])",
                  dense_ratio, np.broadcast_to(g.ratio[0][:, None], shape), 1e-9, net=k)
        hb = lm.hbar[L - 2][0]
        ctx.true(f"{c.where}: the inputs h_k differ (the claim is not vacuous)",
                 np.ptp(hb**4) > 1e-3 * np.max(hb**4), net=k)
        ratios.extend(g.ratio[0].tolist())
    ctx.record("networks", len(cases))
    ctx.record("ratio_range", [float(np.min(ratios)), float(np.max(ratios))])
    return ctx.conclude(f"{len(cases)} networks (depths 2 and 3): Var(I2)/Var(I1) of W_L-2 is "
                        "independent of the layer input")
