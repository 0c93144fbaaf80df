"""d24-last-layer: the last layer's diagonal variances (beyond the paper: Remark 4.4 of Soen &
Sun, NeurIPS 2024, arXiv 2402.05379). h_L is linear in W_{L−1}, so Var(Î₂) is zero there for
every activation and family, and Var(Î₁) has a closed form per family."""

import numpy as np

from fisher_verify.proofs import statement


@statement(
    "d24-last-layer",
    title="Beyond the paper: the last layer",
    claim=r"\operatorname{Var}(\hat I_2(W_{L-1}[a,b])) = 0,\ "
    r"\operatorname{Var}(\hat I_1(W_{L-1}[a,b])) = \tfrac1N\,\bar h_b^4\,(K - I\otimes I)_{aaaa}",
    hypotheses=[r"h_L = W_{L-1}\bar h_{L-1}", r"\text{any activation (ReLU away from kinks)}"],
    method="exact expectation",
)
def check(ctx):
    """fisher.diagonal.last_layer_variances (from lemma-13's h̄_{L−1} and K − I⊗I) against the
    exact variance over the labels of ∂_iℓ² and −∂²_iiℓ (autodiff of ℓ at the family's
    exact-expectation nodes) and the diagonal of the dense thm-4/thm-6 route, on a network of
    every family at depths 1–3, activations cycling through the whole registry (ReLU included,
    at random inputs, away from its kink). Var(Î₂) = 0 is compared at the scale of E[(∂²_iiℓ)²],
    the term that cancels in E[g²] − E[g]², never as an exact 0.0."""
    from fisher_verify._src.fisher import diagonal as dg
    from fisher_verify._src.fisher.covariance import cov1_variance, cov2_variance, moment_excess
    from fisher_verify._src.proofs.beyond import all_activations, family_cases, label_route, node_moments

    n = 2
    cases = family_cases(ctx, activations=all_activations())
    acts = set()
    for k, c in enumerate(cases):
        net, X, fam = c.net, c.X, c.net.family
        acts.add(net.activation)
        h = net.forward(X)
        I, K = fam.fisher(h), fam.central_moment4(h)
        L = net.depth
        v1, v2 = dg.last_layer_variances(net.lemma13(X).hbar[L - 1], moment_excess(K, I), n)
        lo, hi = net.offsets[L - 1], net.offsets[L]
        M = X.shape[0]
        e1, e2, s2 = (np.zeros(hi - lo) for _ in range(3))
        for m in range(M):
            r = label_route(net, X[m])
            m1, q1 = node_moments(r, r["score"][:, lo:hi] ** 2)
            m2, q2 = node_moments(r, r["neg_hessian_diag"][:, lo:hi])
            e1 += q1 - m1**2
            e2 += q2 - m2**2
            s2 += q2
        scale = M * M * n
        ctx.close(f"{c.where}: Var(I1) of W_L-1 = hbar_b^4 C_aaaa / N (exact over labels)",
                  v1.ravel(), e1 / scale, 1e-8, net=k)
        ctx.close(f"{c.where}: Var(I2) of W_L-1 = 0 (exact over labels, at the scale of "
                  "E[g^2])", v2.ravel(), e2 / scale, 1e-8, scale=float(np.max(s2)) / scale,
                  net=k)
        Ja, Ha = net.jacobian(X, method="autodiff"), net.output_hessians(X, method="autodiff")
        d1 = cov1_variance(Ja, K, I, n, diagonal=True)[lo:hi]
        d2 = cov2_variance(Ha, I, n, diagonal=True)[lo:hi]
        ctx.close(f"{c.where}: Var(I1) of W_L-1 = diag of thm-4", v1.ravel(), d1, 1e-9, net=k)
        # thm-6's diagonal is a sum of squares of second derivatives: its scale is that of the
        # same form with the layer's squared first derivatives, (1/N) Σ (uᵀ I u)
        quad = np.einsum("mai,mab,mbi->i", Ja, I, Ja)[lo:hi] / scale
        ctx.close(f"{c.where}: Var(I2) of W_L-1 = 0 = diag of thm-6", v2.ravel(), d2, 1e-9,
                  scale=float(np.max(quad)), net=k)
    ctx.record("networks", len(cases))
    ctx.record("activations", sorted(acts))
    return ctx.conclude(f"{len(cases)} networks, activations {', '.join(sorted(acts))}: the last "
                        "layer's Var(I2) is 0 and its Var(I1) the closed form")
