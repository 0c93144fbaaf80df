"""remark-9.2: the output-space factors grow as O(n_L²) and O(n_L)."""

import numpy as np

from fisher_verify.proofs import statement


@statement(
    "remark-9.2",
    title="Remark (after Lemma 9)",
    claim=r"\lVert K - I\otimes I\rVert_F = O(n_L^2),\quad \lVert I(h_L)\rVert_F = O(n_L)",
    hypotheses=[r"\text{bounded diagonal moments } K_{aaaa},\ I_{aa}"],
    method="property over random networks",
)
def check(ctx):
    """For n_L independent Bernoulli/Poisson outputs, ‖K−I⊗I‖_F/n_L² and ‖I‖_F/n_L stay
    below the per-unit constants max_a(√K_aaaa + I_aa)² and max_a I_aa."""
    import fisher_verify as fv

    rows = []
    for name in ("bernoulli", "poisson", "categorical"):
        for n_l in range(2 if name == "categorical" else 1, ctx.pick(6, 9)):
            fam = (fv.family("categorical", K=n_l) if name == "categorical"
                   else fv.product(*[fv.family(name)] * n_l))
            h = ctx.rng.uniform(-2.0, 2.0, size=(20, n_l))
            i, k = fam.fisher(h), fam.central_moment4(h)
            kmi = np.linalg.norm((k - np.einsum("nab,ncd->nabcd", i, i)).reshape(20, -1), axis=1)
            di, dk = np.einsum("naa->na", i), np.einsum("naaaa->na", k)
            ctx.leq(f"{fam.label}: ||K - I(x)I||_F / n_L^2 <= max (sqrt K_aaaa + I_aa)^2",
                    kmi / n_l**2, np.max((np.sqrt(dk) + di) ** 2, axis=1))
            ctx.leq(f"{fam.label}: ||I||_F / n_L <= max I_aa",
                    np.linalg.norm(i.reshape(20, -1), axis=1) / n_l, np.max(di, axis=1))
            rows.append({"family": name, "n_L": n_l, "max ||K-I(x)I||/n_L^2":
                         float(np.max(kmi)) / n_l**2})
    ctx.record("growth", rows)
    return ctx.conclude()
