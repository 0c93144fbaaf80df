"""thm-4: the closed-form covariance of Î₁."""

import numpy as np

from fisher_verify._src.proofs.support import (
    QUICK_WIDTHS,
    definition_route,
    exact_covariance,
    random_networks,
)
from fisher_verify.proofs import statement


@statement(
    "thm-4",
    title="Theorem 4",
    claim=r"\operatorname{Cov}(\hat I_1)^{ijkl} = \tfrac1N\, \partial_i h^a \partial_j h^b "
    r"\partial_k h^c \partial_l h^d (K_{abcd} - I_{ab} I_{cd})",
    hypotheses=[r"\sigma \text{ differentiable}", r"y_i \text{ i.i.d.}"],
    method="exact expectation",
)
def check(ctx):
    """Library closed form (Theorem 4) vs the exact covariance of ∂ℓ∂ℓᵀ from the definition
    (autodiff scores at the exact-expectation nodes), every entry of the P⁴ tensor. The
    output families include categorical and normal_unknown_variance at n_L = 2, whose
    I(h_L) is not diagonal, so every pairing of the I⊗I terms is exercised."""
    import fisher_verify as fv

    n = 3
    offdiag = []
    for k, (net, x) in enumerate(random_networks(ctx, widths=QUICK_WIDTHS)):  # P <= 40
        route = definition_route(net, x)
        s = route["score"]
        ref = exact_covariance(route, np.einsum("si,sj->sij", s, s)) / n
        ctx.close(f"net {k} {net.family.label}: Cov(I1)", fv.covariance(net, x, which="I1", n=n),
                  ref, net=k)
        i_out = net.family.fisher(net.forward(x))
        offdiag.append(float(np.max(np.abs(i_out - np.diag(np.diag(i_out))))))
    ctx.true("some I(h_L) is not diagonal (the I(x)I pairings are visible)", max(offdiag) > 1e-3)
    ctx.record("networks", k + 1)
    return ctx.conclude()
