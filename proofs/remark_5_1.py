"""remark-5.1: the one-dimensional form of Lemma 5."""

from fisher_verify._src.proofs.support import all_symbolic, identity_summary, prove_identity
from fisher_verify.proofs import statement


@statement(
    "remark-5.1",
    title="Remark (after Lemma 5)",
    claim=r"K = F'''' + 3\,(F'')^2 \quad (n_L = 1)",
    hypotheses=[r"\dim t = 1"],
    method="symbolic identity / mpmath",
)
def check(ctx):
    """K from the density against F'''' + 3F''², for every univariate family of the profile."""
    fams = [f for f in ctx.families(("bernoulli", "normal", "poisson", "binomial")) if f.dim == 1]
    prove_identity(ctx, "remark-5.1", fams)
    return ctx.conclude(identity_summary(ctx), symbolic=all_symbolic(ctx))
