"""d24-var: the element-wise variances of diag Î₁ and diag Î₂ in closed form (beyond the paper:
Soen & Sun, NeurIPS 2024, arXiv 2402.05379; the i = j = k = l case of thm-4 and thm-6)."""

import numpy as np

from fisher_verify.proofs import statement


@statement(
    "d24-var",
    title="Beyond the paper: element-wise variances of the diagonal estimators",
    claim=r"\operatorname{Var}(\hat I_1(\theta_i)) = \tfrac1N\big(\kappa_4[u,u,u,u] + "
    r"2(u^\top I u)^2\big),\ \operatorname{Var}(\hat I_2(\theta_i)) = \tfrac1N\, w^\top I w,\ "
    r"u = \partial_i h_L,\ w = \partial^2_{ii} h_L",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})", r"y_i \text{ i.i.d.}"],
    method="exact expectation",
)
def check(ctx):
    """fisher.diagonal (κ₄ from ∂⁴F, lemma-13 derivatives) against two independent routes, for
    a network of every family of the registry at depths 1–3 with two inputs: the diagonal of
    the dense thm-4/thm-6 tensors (K from the 4th central moment, autodiff J and H), and the
    exact variance over the labels of ∂_iℓ² and −∂²_iiℓ from autodiff of ℓ at the family's
    exact-expectation nodes (compared at the scale of E[g²], the term that cancels)."""
    from fisher_verify._src.fisher import diagonal as dg
    from fisher_verify._src.fisher.covariance import cov1_tensor, cov1_variance, cov2_tensor, cov2_variance
    from fisher_verify._src.proofs.beyond import family_cases, label_route, node_moments

    n, rtol = 3, 1e-9
    cases = family_cases(ctx)
    for k, c in enumerate(cases):
        net, X, fam = c.net, c.X, c.net.family
        h = net.forward(X)
        I, K, k4 = fam.fisher(h), fam.central_moment4(h), fam.kappa4(h)
        Hd = np.diagonal(net.output_hessians(X), axis1=-2, axis2=-1)
        v1, v2 = dg.diagonal_variances(net.jacobian(X), Hd, I, k4, n)
        Ja, Ha = net.jacobian(X, method="autodiff"), net.output_hessians(X, method="autodiff")
        if net.num_params <= 20:  # the P⁴ tensors themselves
            d1 = np.einsum("iiii->i", cov1_tensor(Ja, K, I, n))
            d2 = np.einsum("iiii->i", cov2_tensor(Ha, I, n))
        else:
            d1 = cov1_variance(Ja, K, I, n, diagonal=True)
            d2 = cov2_variance(Ha, I, n, diagonal=True)
        ctx.close(f"{c.where}: Var(I1_ii) = diag of thm-4", v1, d1, rtol, net=k)
        ctx.close(f"{c.where}: Var(I2_ii) = diag of thm-6", v2, d2, rtol, net=k)
        M = X.shape[0]
        e1, e2, s1, s2 = (np.zeros(net.num_params) for _ in range(4))
        for m in range(M):
            r = label_route(net, X[m])
            m1, q1 = node_moments(r, r["score"] ** 2)
            m2, q2 = node_moments(r, r["neg_hessian_diag"])
            e1 += q1 - m1**2
            e2 += q2 - m2**2
            s1 += q1
            s2 += q2
        scale = M * M * n
        ctx.close(f"{c.where}: Var(I1_ii) = exact variance over labels", v1, e1 / scale, 1e-8,
                  scale=float(np.max(s1)) / scale, net=k)
        ctx.close(f"{c.where}: Var(I2_ii) = exact variance over labels", v2, e2 / scale, 1e-8,
                  scale=float(np.max(s2)) / scale, net=k)
    ctx.record("networks", len(cases))
    ctx.record("families", sorted({c.name for c in cases}))
    return ctx.conclude(f"{len(cases)} networks (every family of the registry, depths 1-3, two "
                        "inputs): the closed forms equal the thm-4/thm-6 diagonals and the exact "
                        "label variances")
