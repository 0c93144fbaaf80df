"""lemma-5: the 4th central moment of t in terms of cumulants."""

from fisher_verify._src.proofs.support import all_symbolic, identity_summary, prove_identity
from fisher_verify.proofs import statement


@statement(
    "lemma-5",
    title="Lemma 5",
    claim=r"K_{abcd} = \kappa_{abcd} + I_{ab} I_{cd} + I_{ac} I_{bd} + I_{ad} I_{bc}",
    hypotheses=[r"\text{exponential family with } F \in C^4"],
    method="symbolic identity / mpmath",
)
def check(ctx):
    """K from the density against ∂⁴F plus the three I⊗I permutations."""
    prove_identity(ctx, "lemma-5", ctx.families(("bernoulli", "normal", "poisson", "categorical")))
    return ctx.conclude(identity_summary(ctx), symbolic=all_symbolic(ctx))
