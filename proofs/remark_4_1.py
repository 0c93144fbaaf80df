"""remark-4.1: K − I⊗I is the covariance of (t − η)(t − η)ᵀ."""

import numpy as np

from fisher_verify.proofs import statement


@statement(
    "remark-4.1",
    title="Remark (after Theorem 4)",
    claim=r"K_{abcd} - I_{ab} I_{cd} = \operatorname{Cov}\big((t-\eta)_a(t-\eta)_b,\,"
    r"(t-\eta)_c(t-\eta)_d\big)",
    hypotheses=[r"\text{exponential family with finite 4th moments}"],
    method="exact expectation",
)
def check(ctx):
    """The kernels' K − I⊗I vs the covariance of (t−η)(t−η)ᵀ by the exact-expectation route."""
    import fisher_verify as fv

    fams = ctx.families(("bernoulli", "normal", "poisson", "categorical"))
    fams.append(fv.product(fv.family("bernoulli"), fv.family("poisson")))
    for fam in fams:
        h = _points(fam, ctx.rng)
        eta, i = fam.mean(h), fam.fisher(h)

        def cov(t, eta=eta, i=i):
            r = t - eta[:, None, :]
            outer = np.einsum("nsa,nsb->nsab", r, r) - i[:, None]
            return np.einsum("nsab,nscd->nsabcd", outer, outer)

        ref = fam.expect(cov, h)
        lhs = fam.central_moment4(h) - np.einsum("nab,ncd->nabcd", i, i)
        ctx.close(f"{fam.label}: K - I(x)I = Cov((t-eta)(t-eta)^T)", lhs, ref, rtol=1e-9,
                  family=fam.label)
    return ctx.conclude()


def _points(fam, rng):
    h = rng.uniform(-1.0, 1.0, size=(3, fam.dim))
    for j in fam.definition.negative:  # the components the natural domain keeps < 0
        h[:, j] = -np.abs(h[:, j]) - 0.1
    return h
