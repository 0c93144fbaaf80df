"""table-1: F, h(mean), F'' and F'''' of the univariate families, rederived."""

import sympy as sp

from fisher_verify._src.proofs.support import all_symbolic, identity_summary, prove_identity
from fisher_verify.proofs import statement

PAPER = {
    "bernoulli": (r"\log(1+e^h)", r"\log\frac{p}{1-p}", r"p(1-p)", r"p(1-p)(6p^2-6p+1)"),
    "normal": (r"h^2/2", r"\mu", r"1", r"0"),
    "poisson": (r"e^h", r"\log\lambda", r"\lambda", r"\lambda"),
}


@statement(
    "table-1",
    title="Table 1",
    claim=r"F,\ h(\text{mean}),\ F'',\ F'''' \text{ of Bernoulli, Normal } (\sigma=1)"
    r"\text{, Poisson as in Table 1}",
    hypotheses=[r"\text{univariate families of Table 1}"],
    method="symbolic identity",
)
def check(ctx):
    """Table 1's rows against the symbolic derivation (and the catalog's other families)."""
    import fisher_verify as fv

    fams = [fv.family(n) for n in PAPER]
    prove_identity(ctx, "table-1", fams)
    for fam in fams:
        ctx.step(f"{fam.label} — derived F''", sp.latex(sp.simplify(fam.symbolic("fisher")[0, 0])))
        ctx.step(f"{fam.label} — derived F''''",
                 sp.latex(sp.factor(sp.simplify(fam.symbolic("kappa4")[0, 0, 0, 0]))))
    ctx.record("paper_rows", PAPER)
    return ctx.conclude(identity_summary(ctx), symbolic=all_symbolic(ctx))
