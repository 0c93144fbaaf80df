"""lemma-2: the output-space Fisher is the covariance of t and the Jacobian of the mean."""

from fisher_verify._src.proofs.support import all_symbolic, identity_summary, prove_identity
from fisher_verify.proofs import statement


@statement(
    "lemma-2",
    title="Lemma 2",
    claim=r"I(h_L) = \operatorname{Cov}(t(y)) = \frac{\partial \eta}{\partial h_L}",
    hypotheses=[r"p(y\mid h) = \exp(t(y)^\top h - F(h))\,b(y)", r"h \text{ in the natural domain}"],
    method="symbolic identity / mpmath",
)
def check(ctx):
    """Cov(t) from the family's own density against ∂²F, for each family of the profile."""
    prove_identity(ctx, "lemma-2", ctx.families(("bernoulli", "normal", "poisson", "categorical")))
    return ctx.conclude(identity_summary(ctx), symbolic=all_symbolic(ctx))
