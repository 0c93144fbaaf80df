"""thm-11: λ_min(Î₂) lower bound and the variance of the bias coefficients."""

import numpy as np

from fisher_verify.proofs import statement
from fisher_verify.proofs.support import random_networks


@statement(
    "thm-11",
    title="Theorem 11",
    claim=r"\lambda_{\min}(\hat I_2) \ge -\sum_a \rho(\partial^2 h^a_L)\,\Big|\eta_a - \frac1N"
    r"\sum_i t_a(y_i)\Big|,\quad \operatorname{Var}\Big(\eta_a - \frac1N\sum_i t_a(y_i)\Big)"
    r" = \frac{I_{aa}(h_L)}{N}",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})"],
    method="property over random networks",
)
def check(ctx):
    """The eigenvalue bound on every sampled Î₂ (it holds surely), and the variance identity
    by the exact-expectation route."""
    import fisher_verify as fv

    n = 5
    for k, (net, x) in enumerate(random_networks(ctx)):
        H = net.output_hessians(x)
        rho = np.array([np.abs(np.linalg.eigvalsh(Ha)).max() for Ha in H])
        h = net.forward(x)
        eta = net.family.mean(h)
        lows, bounds = [], []
        for _ in range(ctx.pick(20, 200)):
            est = fv.sample_estimators(net, x, n, ctx.rng)
            lows.append(np.linalg.eigvalsh(est.i2).min())
            bounds.append(-np.sum(rho * np.abs(eta - est.t.mean(axis=0))))
        ctx.leq(f"net {k}: -lambda_min(I2) <= sum rho |eta - mean t|", -np.array(lows),
                -np.array(bounds), rtol=1e-9, net=k)
        var = net.family.expect(lambda t, e=eta: (t - e) ** 2, h[None])[0]
        ctx.close(f"net {k}: Var(t_a) = I_aa", var, np.diag(net.family.fisher(h)), rtol=1e-9)
    return ctx.conclude()
