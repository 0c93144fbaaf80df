"""thm-7: the Frobenius bound on Cov(Î₁)."""

import numpy as np

from fisher_verify.proofs import statement
from fisher_verify.proofs.support import random_networks


@statement(
    "thm-7",
    title="Theorem 7",
    claim=r"\lVert\operatorname{Cov}(\hat I_1)\rVert_F \le \tfrac1N \lVert J\rVert_F^4\,"
    r"\lVert K - I\otimes I\rVert_F",
    hypotheses=[r"\sigma \text{ differentiable}"],
    method="property over random networks",
)
def check(ctx):
    """The library's exact ‖Cov(Î₁)‖_F against the bound (computed here from J, K and I), over
    random networks and families; bounds() must report both sides as computed here."""
    import fisher_verify as fv

    n = 10
    ratios = []
    for k, (net, x) in enumerate(random_networks(ctx, widths=ctx.pick(
            [(3, 4, 1), (2, 3, 3, 2), (4, 3)], [(3, 4, 1), (2, 3, 3, 2), (4, 3), (3, 5, 3)]))):
        h = net.forward(x)
        i = net.family.fisher(h)
        kmi = net.family.central_moment4(h) - np.einsum("ab,cd->abcd", i, i)
        bound = np.linalg.norm(net.jacobian(x)) ** 4 * np.linalg.norm(kmi) / n
        lhs = fv.covariance_norm(net, x, estimator=1, n=n)
        ctx.leq(f"net {k} {net.family.label}", lhs, bound, net=k)
        lib = fv.bounds(net, x, n=n).thm7
        ctx.close(f"net {k}: bounds() rhs = (1/N)||J||_F^4 ||K - I(x)I||_F", lib.rhs, bound)
        ctx.close(f"net {k}: bounds() lhs = ||Cov(I1)||_F", lib.lhs, lhs)
        ratios.append(lhs / bound)
    ctx.record("tightness (lhs/bound)", {"min": min(ratios), "max": max(ratios)})
    return ctx.conclude(f"tightness in [{min(ratios):.3g}, {max(ratios):.3g}]")
