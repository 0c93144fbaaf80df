"""thm-8: the Frobenius bound on Cov(Î₂)."""

import numpy as np

from fisher_verify.proofs import statement
from fisher_verify.proofs.support import random_networks


@statement(
    "thm-8",
    title="Theorem 8",
    claim=r"\lVert\operatorname{Cov}(\hat I_2)\rVert_F \le \tfrac1N \Big\lVert\frac{\partial^2 h_L}"
    r"{\partial\theta\partial\theta^\top}\Big\rVert_F^2\, \lVert I(h_L)\rVert_F",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})"],
    method="property over random networks",
)
def check(ctx):
    """The library's exact ‖Cov(Î₂)‖_F against the bound (computed here from ∂²h_L and I), over
    random networks and families; bounds() must report both sides as computed here."""
    import fisher_verify as fv

    n = 10
    ratios = []
    for k, (net, x) in enumerate(random_networks(ctx, widths=ctx.pick(
            [(3, 4, 1), (2, 3, 3, 2)], [(3, 4, 1), (2, 3, 3, 2), (3, 5, 3)]))):
        i = net.family.fisher(net.forward(x))
        bound = np.linalg.norm(net.output_hessians(x)) ** 2 * np.linalg.norm(i) / n
        lhs = fv.covariance_norm(net, x, estimator=2, n=n)
        ctx.leq(f"net {k} {net.family.label}", lhs, bound, net=k)
        lib = fv.bounds(net, x, n=n).thm8
        ctx.close(f"net {k}: bounds() rhs = (1/N)||d2 h_L||_F^2 ||I(h_L)||_F", lib.rhs, bound)
        ctx.close(f"net {k}: bounds() lhs = ||Cov(I2)||_F", lib.lhs, lhs)
        ratios.append(lhs / bound)
    ctx.record("tightness (lhs/bound)", {"min": min(ratios), "max": max(ratios)})
    return ctx.conclude(f"tightness in [{min(ratios):.3g}, {max(ratios):.3g}]")
