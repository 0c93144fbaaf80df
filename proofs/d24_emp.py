"""d24-emp: the bias of the empirical Fisher (labels from the data instead of the model) in
closed form, zero in expectation when the labels come from the model (beyond the paper: Soen &
Sun, NeurIPS 2024, arXiv 2402.05379)."""

import numpy as np

from fisher_verify.proofs import statement


def _empirical_fisher(net, X, T):
    """(1/M) Σ_m ∇ℓ_m ∇ℓ_mᵀ with ℓ_m = t_mᵀ h_L(x_m) − F(h_L(x_m)) differentiated by autograd
    (the definition, not eq-4)."""
    import torch

    log_partition = net.family.kernel("log_partition", "torch")
    out = np.zeros((net.num_params, net.num_params))
    for x, t in zip(X, T, strict=True):
        theta = torch.tensor(net.theta, requires_grad=True)
        hl = net.torch_forward(theta, torch.as_tensor(x))
        ll = (torch.as_tensor(t) * hl).sum() - log_partition(hl[None, :]).reshape(-1)[0]
        (g,) = torch.autograd.grad(ll, theta)
        gn = g.detach().numpy()
        out += np.outer(gn, gn)
    return out / len(X)


@statement(
    "d24-emp",
    title="Beyond the paper: the bias of the empirical Fisher",
    claim=r"\hat I_1^{\mathrm{emp}} - I(\theta) = \tfrac1M\sum_m J_m^\top\big(r_m r_m^\top - "
    r"I(h_m)\big)J_m,\ r_m = t(y_m) - \eta(h_m);\ \ \mathbb E_{y_m\sim p(y|x_m,\theta)}[\cdot] = 0",
    hypotheses=[r"\text{labels } y_m \text{ given (one per input)}"],
    method="exact expectation",
)
def check(ctx):
    """fisher.diagonal.empirical_bias (lemma-13 J, the family's η and I) against the empirical
    Fisher computed directly (autograd score of log p(y_m|x_m) at data labels drawn from another
    network, so they do not follow the model) minus I(θ) from eq-6, every entry of the P×P
    matrix, on a network of every family at depths 1–3 with three inputs; and its exact
    expectation over model labels (the family's nodes, input by input) against 0 at the scale of
    E[J rrᵀ Jᵀ], the terms that cancel."""
    import fisher_verify as fv
    from fisher_verify._src.fisher import diagonal as dg
    from fisher_verify._src.proofs.beyond import family_cases

    cases = family_cases(ctx, inputs=3)
    for k, c in enumerate(cases):
        net, X, fam = c.net, c.X, c.net.family
        h = net.forward(X)
        # data labels: drawn from a perturbed network, so E[bias] over them is not 0
        other = net.with_theta(net.theta + 0.5 * ctx.rng.normal(size=net.num_params))
        h_other = other.forward(X)
        try:
            fam.check_natural(h_other)
        except fv.FisherVerifyError:
            h_other = h
        y = np.stack([fam.sample(h_other[m], 1, ctx.rng)[0] for m in range(len(X))])
        T = fam.statistic(y).reshape(len(X), fam.dim)
        J = net.jacobian(X)
        I = fam.fisher(h)
        bias = dg.empirical_bias(J, T - fam.mean(h), I)
        direct = _empirical_fisher(net, X, T) - np.asarray(fv.exact_fisher(net, X))
        emp_scale = float(np.max(np.abs(direct + np.asarray(fv.exact_fisher(net, X)))))
        ctx.close(f"{c.where}: bias = direct empirical Fisher - I(theta)", bias, direct, 1e-9,
                  scale=emp_scale, net=k)
        # exact expectation over model labels, one input at a time
        expected = np.zeros_like(bias)
        size = np.zeros_like(bias)
        for m in range(len(X)):
            t, w, _ = fam.expectation_nodes(h[m], 2)
            t = np.asarray(t).reshape(-1, fam.dim)
            w = np.asarray(w).reshape(-1)
            r = t - fam.mean(h[m:m + 1])
            for s in range(len(w)):
                b = dg.empirical_bias(J[m:m + 1], r[s:s + 1], I[m:m + 1])
                expected += w[s] * b / len(X)
                size += w[s] * np.abs(b + np.einsum("ai,ab,bj->ij", J[m], I[m], J[m])) / len(X)
        ctx.close(f"{c.where}: E[bias] = 0 under model labels", expected, 0.0, 1e-9,
                  scale=float(np.max(size)), net=k)
    ctx.record("networks", len(cases))
    return ctx.conclude(f"{len(cases)} networks: the closed-form bias equals the direct "
                        "empirical Fisher minus I(theta), and vanishes in expectation under "
                        "the model's labels")
