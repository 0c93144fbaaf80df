"""thm-7: the Frobenius bound on Cov(Î₁).

Both sides from the definition, independently of the library: the left side is the Frobenius
norm of the dense P⁴ covariance tensor of ``∂ℓ∂ℓᵀ`` (autodiff scores at the family's
exact-expectation nodes), the right side ``(1/N) ‖J‖_F⁴ ‖K − I⊗I‖_F`` with J by torch.func and
K, I the central moments of t at the nodes. Random networks with several outputs (and inputs,
tanh / softplus / sigmoid, several families); with M inputs the covariance is
``(1/(M²N)) Σ_m Cov_m`` and the bound ``(1/(M²N)) Σ_m ‖J_m‖⁴ ‖C_m‖`` (triangle inequality; the
paper's at M = 1). Attainment: with one output and one input the bound is an equality, so a
looser right side fails.
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
    """(‖Cov(Î₁)‖_F from the dense tensor, the bound) for M inputs (rows of X)."""
    cov, rhs = 0.0, 0.0
    J, _ = dense_derivatives(net, X)
    I, K = output_moments(net.family, net.forward(X))
    for m, x in enumerate(X):
        route = definition_route(net, x)
        s = route["score"]
        cov = cov + exact_covariance(route, np.einsum("si,sj->sij", s, s))
        C = K[m] - np.einsum("ab,cd->abcd", I[m], I[m])
        rhs += np.linalg.norm(J[m]) ** 4 * np.linalg.norm(C)
    M = X.shape[0]
    return float(np.linalg.norm(cov)) / (M * M * n), rhs / (M * M * n)


@statement(
    "thm-7",
    title="Theorem 7",
    claim=r"\lVert\operatorname{Cov}(\hat I_1)\rVert_F \le \tfrac1N \lVert J\rVert_F^4\,"
    r"\lVert K - I\otimes I\rVert_F",
    hypotheses=[r"\sigma \text{ differentiable}"],
    method="exact expectation",
)
def check(ctx):
    """The norm of the dense covariance tensor against the bound from J, K and I; the library's
    ``covariance_norm`` and ``bounds().thm7`` against both; equality at n_L = M = 1."""
    import fisher_verify as fv

    n = 10
    ratios = []
    for k, (label, net, X) in enumerate(bound_cases(ctx, "poisson")):
        lhs, rhs = sides(net, X, n)
        ctx.leq(f"{label}: ||Cov(I1)||_F <= bound", lhs, rhs, net=k)
        xs = X[0] if X.shape[0] == 1 else X
        ctx.close(f"{label}: covariance_norm = dense tensor's norm",
                  fv.covariance_norm(net, xs, which="I1", n=n), lhs, rtol=1e-8)
        lib = fv.bounds(net, xs, n=n).thm7
        ctx.close(f"{label}: bounds() lhs = dense tensor's norm", lib.lhs, lhs, rtol=1e-8)
        ctx.close(f"{label}: bounds() rhs = (1/(M^2 N)) sum_m ||J_m||^4 ||K_m - I_m(x)I_m||",
                  lib.rhs, rhs, rtol=1e-8)
        if net.widths[-1] == 1 and X.shape[0] == 1:
            ctx.close(f"{label}: equality for one output and one input (attained)", lhs, rhs,
                      rtol=1e-8)
        ratios.append(lhs / rhs)
    ctx.record("tightness (lhs/bound)", {"min": min(ratios), "max": max(ratios)})
    return ctx.conclude(f"tightness in [{min(ratios):.3g}, {max(ratios):.3g}] (1 = attained)")
