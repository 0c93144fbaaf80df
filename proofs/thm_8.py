"""thm-8: the Frobenius bound on Cov(Î₂).

Both sides from the definition, independently of the library: the left side is the Frobenius
norm of the dense P⁴ covariance tensor of ``−∂²ℓ`` (autodiff Hessians of ℓ at the family's
exact-expectation nodes), the right side ``(1/N) ‖∂²h_L‖_F² ‖I(h_L)‖_F`` with ``∂²h_L`` by
torch.func and ``I = Cov(t)`` at the nodes. Random networks with several outputs (and inputs,
tanh / softplus / sigmoid, several families); with M inputs ``(1/(M²N)) Σ_m`` of both (the
paper's at M = 1). Attainment: with one output and one input the bound is an equality.
"""

import numpy as np

from fisher_verify._src.proofs.support import (
    bound_cases,
    definition_route,
    dense_derivatives,
    exact_covariance,
    output_moments,
)
from fisher_verify.proofs import statement


def sides(net, X, n):
    """(‖Cov(Î₂)‖_F from the dense tensor, the bound) for M inputs (rows of X)."""
    cov, rhs = 0.0, 0.0
    _, H = dense_derivatives(net, X)
    I, _ = output_moments(net.family, net.forward(X))
    for m, x in enumerate(X):
        route = definition_route(net, x)
        cov = cov + exact_covariance(route, route["neg_hessian"])
        rhs += np.linalg.norm(H[m]) ** 2 * np.linalg.norm(I[m])
    M = X.shape[0]
    return float(np.linalg.norm(cov)) / (M * M * n), rhs / (M * M * n)


@statement(
    "thm-8",
    title="Theorem 8",
    claim=r"\lVert\operatorname{Cov}(\hat I_2)\rVert_F \le \tfrac1N \Big\lVert\frac{\partial^2 h_L}"
    r"{\partial\theta\partial\theta^\top}\Big\rVert_F^2\, \lVert I(h_L)\rVert_F",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})"],
    method="exact expectation",
)
def check(ctx):
    """The norm of the dense covariance tensor against the bound from ∂²h_L and I; the
    library's ``covariance_norm`` and ``bounds().thm8`` against both; equality at n_L = M = 1."""
    import fisher_verify as fv

    n = 10
    ratios = []
    for k, (label, net, X) in enumerate(bound_cases(ctx, "bernoulli")):
        lhs, rhs = sides(net, X, n)
        ctx.leq(f"{label}: ||Cov(I2)||_F <= bound", lhs, rhs, net=k)
        xs = X[0] if X.shape[0] == 1 else X
        ctx.close(f"{label}: covariance_norm = dense tensor's norm",
                  fv.covariance_norm(net, xs, which="I2", n=n), lhs, rtol=1e-8)
        lib = fv.bounds(net, xs, n=n).thm8
        ctx.close(f"{label}: bounds() lhs = dense tensor's norm", lib.lhs, lhs, rtol=1e-8)
        ctx.close(f"{label}: bounds() rhs = (1/(M^2 N)) sum_m ||d2 h_L(x_m)||^2 ||I_m||",
                  lib.rhs, rhs, rtol=1e-8)
        if net.widths[-1] == 1 and X.shape[0] == 1:
            ctx.close(f"{label}: equality for one output and one input (attained)", lhs, rhs,
                      rtol=1e-8)
        ratios.append(lhs / rhs)
    ctx.record("tightness (lhs/bound)", {"min": min(ratios), "max": max(ratios)})
    return ctx.conclude(f"tightness in [{min(ratios):.3g}, {max(ratios):.3g}] (1 = attained)")
