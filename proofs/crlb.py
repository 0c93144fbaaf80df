"""crlb: the Cramér–Rao bound Cov(θ̂) ⪰ I(θ)⁻¹ for unbiased estimators of a network's θ."""

import numpy as np

from fisher_verify._src.proofs.support import record_calibrated
from fisher_verify.proofs import statement


def _linear_gaussian(ctx, n_in, n_out, sigma):
    import fisher_verify as fv

    fam = fv.family("normal", sigma=sigma)
    fam = fam if n_out == 1 else fv.product(*([fam] * n_out))
    return fv.Network.random([n_in, n_out], "tanh", fam, 1.0, ctx.rng)


@statement(
    "crlb",
    title="Cramér–Rao lower bound (remark)",
    claim=r"\operatorname{Cov}(\hat\theta) \succeq I(\theta)^{-1} \text{ for unbiased } \hat\theta",
    hypotheses=[r"\hat\theta \text{ unbiased}", r"\text{regular exponential family}"],
    method="exact expectation",
)
def check(ctx):
    """The network's own θ, where unbiased estimators exist in closed form: a linear network
    (L = 1) with normal outputs, y ~ N(σ²h_L, σ²), M inputs and N draws each, so the bound is
    (N M I(θ))⁻¹ with I(θ) from eq-6 (exact_fisher).

    * Least squares (the MLE) and weighted least squares with random positive weights are
      unbiased (E θ̂ = θ, exactly from the design); their covariances, from the design alone,
      satisfy Cov − (N M I(θ))⁻¹ ⪰ 0 (smallest eigenvalue ≥ 0), with equality for least
      squares (efficient) and a strictly positive gap for the weighted one.
    * The covariances are not taken on trust: R sampled fits give the variance of uᵀθ̂ along a
      random direction, tested against uᵀCov u (calibrated, Gaussian 4th moment, ctx.alpha).
    * fisher_verify._src.fisher.bounds.crlb_linear_gaussian reports both sides as computed here.
    * In the mean parametrization of each exponential family, the sample mean of t attains
      the bound I(h)/N and a weighted mean lies above it (exact expectations)."""
    import fisher_verify as fv
    from fisher_verify._src.fisher.bounds import crlb_linear_gaussian
    from fisher_verify._src.testing.calibrated import assert_variance_matches

    reps = ctx.pick(4000, 20000)
    gaps = []
    for n_in, n_out, M, N, sigma in ((2, 2, 4, 3, 1.3), (3, 1, 5, 2, 0.7)):
        net = _linear_gaussian(ctx, n_in, n_out, sigma)
        X = ctx.rng.normal(size=(M, n_in))
        Xb = np.tile(np.concatenate([X, np.ones((M, 1))], axis=1), (N, 1))  # rows (draw, input)
        theta = net.theta  # W row-major: (output, input + bias)
        crlb = np.linalg.inv(N * M * np.asarray(fv.exact_fisher(net, X)))
        omega = ctx.rng.uniform(0.2, 3.0, size=Xb.shape[0])
        label = f"linear {n_in}->{n_out}, M={M}, N={N}, sigma={sigma}"
        fits = {}
        for name, wts in (("least squares", np.ones(Xb.shape[0])), ("weighted LS", omega)):
            A = np.linalg.solve(Xb.T @ (wts[:, None] * Xb), Xb.T * wts) / sigma**2  # θ̂_row = A y
            mean = np.kron(np.eye(n_out), A @ (sigma**2 * Xb)) @ theta  # E y = σ² X̄ w_row
            ctx.close(f"{label}, {name}: E theta_hat = theta", mean, theta)
            cov = np.kron(np.eye(n_out), sigma**2 * A @ A.T)  # Var(y) = σ² per row
            gap = float(np.linalg.eigvalsh(cov - crlb)[0])
            ctx.leq(f"{label}, {name}: Cov(theta_hat) - I^-1 is p.s.d. (-lambda_min <= 0)",
                    -gap, 0.0, scale=float(np.max(np.abs(crlb))))  # the terms that cancel
            fits[name] = (A, cov)
            gaps.append({"setting": label, "estimator": name, "lambda_min(Cov - CRLB)": gap})
        ctx.close(f"{label}: least squares attains the bound", fits["least squares"][1], crlb)
        ctx.true(f"{label}: weighted LS lies strictly above the bound",
                 np.linalg.eigvalsh(fits["weighted LS"][1] - crlb)[-1]
                 > 1e-6 * np.max(np.abs(crlb)))
        b = crlb_linear_gaussian(net, X, N)
        ctx.close(f"{label}: bounds.crlb_linear_gaussian rhs = tr (N M I)^-1", b.rhs,
                  np.trace(crlb))
        ctx.close(f"{label}: bounds.crlb_linear_gaussian lhs = tr Cov(least squares)", b.lhs,
                  np.trace(fits["least squares"][1]))
        h = net.forward(X)  # (M, n_out)
        y = ctx.rng.normal(sigma**2 * np.tile(h, (N, 1)), sigma, size=(reps, N * M, n_out))
        u = ctx.rng.normal(size=theta.size)
        u /= np.linalg.norm(u)
        for name, (A, cov) in fits.items():
            est = np.einsum("cs,rsa->rac", A, y).reshape(reps, -1)  # θ̂ per replicate
            v = float(u @ cov @ u)
            record_calibrated(ctx, assert_variance_matches(
                (est - theta) @ u, v, 3 * v * v, alpha=ctx.alpha, raise_on_fail=False,
                what=f"{label}, {name}: sampled Var(u^T theta_hat) = u^T Cov u"))
    ctx.record("lambda_min(Cov - CRLB)", gaps)

    n = 5
    w = np.arange(1, n + 1, dtype=float)
    w /= w.sum()
    for fam in ctx.families(("bernoulli", "poisson", "normal")):
        if fam.dim != 1:
            continue
        h = ctx.rng.uniform(-1.0, 1.0, size=(3, 1))
        for j in fam.definition.negative:  # the components the natural domain keeps < 0
            h[:, j] = -np.abs(h[:, j]) - 0.1
        eta = fam.mean(h)[:, 0]
        var_t = fam.expect(lambda t, e=eta: (t[..., 0] - e[:, None]) ** 2, h)
        bound = fam.fisher(h)[:, 0, 0] / n  # inverse of the eta-Fisher N / I(h)
        ctx.close(f"{fam.label} (mean parameter): Var(sample mean) = CRLB", var_t / n, bound)
        ctx.leq(f"{fam.label} (mean parameter): CRLB <= Var(weighted mean)", bound,
                var_t * np.sum(w**2))
    return ctx.conclude("least squares attains (N M I(theta))^-1, weighted least squares lies "
                        "above it; sampled covariances agree; the sample mean is efficient for "
                        "the mean parameter")
