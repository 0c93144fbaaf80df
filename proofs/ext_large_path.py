"""ext-large-path: the large-network path (beyond the paper: the README's "Large networks").

The paper's statements are checked on small networks with P×P (and P⁴) arrays. For large P the
library promises the same numbers without any P×P array (:mod:`fisher_verify._src.models.mlp`):
the diagonals of I(θ), Var(Î₁), Var(Î₂) and of the output Hessians, the Var(Î₁) block of a
layer, both sides of thm-7 and thm-8, and the closed-form traces tr(H^α_m H^β_m') behind the
exact ‖Cov(Î₂)‖_F. This statement checks every one of them against the dense route evaluated
from torch.func Jacobians and Hessians, on networks deep enough (three hidden layers) that
every cross-layer term of the closed-form traces is non-zero, with several inputs and
categorical, normal_unknown_variance and product outputs.
"""

import numpy as np

from fisher_verify.proofs import statement

#: (widths, family name, activation) of the quick profile; the thorough profile adds more.
QUICK = (((2, 3, 4, 3, 3), "categorical", "tanh"),
         ((3, 4, 3, 2), "normal_unknown_variance", "softplus"),
         ((2, 4, 3, 2), "poisson", "sigmoid"))
THOROUGH = QUICK + (((3, 3, 3, 3, 3, 2), "bernoulli", "gelu"),
                    ((2, 5, 4, 4), "categorical", "tanh"))


def _dense(net, X, n):
    """Everything the large path computes, by the dense route from autodiff derivatives."""
    import fisher_verify as fv
    from fisher_verify._src.fisher.bounds import thm7_sides, thm8_sides
    from fisher_verify._src.fisher.covariance import cov1_variance, cov2_variance

    fam = net.family
    h = net.forward(X)
    J = net.jacobian(X, method="autodiff")  # (M, n_L, P)
    H = net.output_hessians(X, method="autodiff")  # (M, n_L, P, P)
    I, K = fam.fisher(h), fam.central_moment4(h)
    M, n_L, P = J.shape
    hs = H.reshape(M * n_L, P * P)
    return {
        "fisher": np.diag(np.asarray(fv.exact_fisher(net, X, method="autodiff"))),
        "var1": cov1_variance(J, K, I, n, diagonal=True),
        "var2": cov2_variance(H, I, n, diagonal=True),
        "var1_full": cov1_variance(J, K, I, n),
        "hess_diag": np.diagonal(H, axis1=-2, axis2=-1),
        "traces": hs @ hs.T,
        "thm7": thm7_sides(J, K, I, n),
        "thm8": thm8_sides(H, I, n),
    }


@statement(
    "ext-large-path",
    title="Beyond the paper: the large-network path",
    claim=r"\text{models.mlp (no } P\times P \text{ array) } = \text{dense route: }"
    r"\operatorname{diag} I(\theta),\ \operatorname{diag}\operatorname{Var}(\hat I_{1,2}),\ "
    r"\operatorname{diag}\partial^2 h_L,\ \operatorname{tr}(H^\alpha_m H^\beta_{m'}),\ "
    r"\text{thm-7 and thm-8 (both sides)}",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})", r"\text{float64, CPU}"],
    method="property over random networks",
)
def check(ctx):
    """Each large-path quantity (float64, CPU) against the dense route at relative 1e-10 of
    the array's largest entry: diagonals, output-Hessian diagonals, the Var(Î₁) block of every
    layer, the exact closed-form traces (and the HVP-basis traces) against ⟨H^α_m, H^β_m'⟩
    from autodiff Hessians, and both sides of thm-7 and thm-8."""
    import fisher_verify as fv
    from fisher_verify._src.models import mlp, mlp_bounds
    from fisher_verify._src.proofs.support import output_family

    n, rtol = 3, 1e-10
    cases = ctx.pick(QUICK, THOROUGH)
    for k, (widths, name, act) in enumerate(cases):
        fam = output_family(name, widths[-1])
        X = ctx.rng.normal(size=(3, widths[0]))
        net = fv.Network.random(list(widths), act, fam, 1.0, ctx.rng).into_domain(X)
        where = f"net {k} {tuple(widths)} {act} {fam.label}"
        dense = _dense(net, X, n)
        d = mlp.diagonals(net, X, n, device="cpu")
        ctx.close(f"{where}: diag I(theta)", d.fisher, dense["fisher"], rtol, net=k)
        ctx.close(f"{where}: diag Var(I1)", d.variance_1, dense["var1"], rtol, net=k)
        ctx.close(f"{where}: diag Var(I2)", d.variance_2, dense["var2"], rtol, net=k)
        ctx.close(f"{where}: output Hessian diagonals",
                  mlp.output_hessian_diagonals(net, X, device="cpu"), dense["hess_diag"],
                  rtol, net=k)
        off = net.offsets
        for layer in range(net.depth):
            blk = dense["var1_full"][off[layer]:off[layer + 1], off[layer]:off[layer + 1]]
            ctx.close(f"{where}: Var(I1) block of W_{layer}",
                      mlp.variance1_block(net, X, layer, n, device="cpu"), blk, rtol, net=k)
        for method in ("exact", "hvp"):
            tr = mlp_bounds.hessian_traces(net, X, method=method, device="cpu")
            ctx.true(f"{where}: {method} traces flagged exact", tr.exact)
            ctx.close(f"{where}: tr(H^a_m H^b_m') by {method}", tr.mean.cpu().numpy(),
                      dense["traces"], rtol, net=k)
        b7 = mlp_bounds.thm7_large(net, X, n, device="cpu")
        lhs7, rhs7, spec7 = dense["thm7"]
        ctx.close(f"{where}: thm-7 lhs ||Cov(I1)||_F", b7.lhs, lhs7, rtol, net=k)
        ctx.close(f"{where}: thm-7 rhs", b7.rhs, rhs7, rtol, net=k)
        ctx.close(f"{where}: thm-7 spectral variant", b7.details["spectral_variant"], spec7,
                  rtol, net=k)
        b8 = mlp_bounds.thm8_large(net, X, n, method="exact", device="cpu")
        lhs8, rhs8 = dense["thm8"]
        ctx.true(f"{where}: thm-8 exact (closed form), not an estimate", b8.details["exact"])
        ctx.close(f"{where}: thm-8 lhs ||Cov(I2)||_F", b8.lhs, lhs8, rtol, net=k)
        ctx.close(f"{where}: thm-8 rhs", b8.rhs, rhs8, rtol, net=k)
    ctx.record("networks", len(cases))
    return ctx.conclude(f"{len(cases)} networks (3 inputs, up to three hidden layers): the large "
                        "path equals the dense route to 1e-10")
