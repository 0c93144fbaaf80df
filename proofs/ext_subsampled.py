"""ext-subsampled: the exact law of a Fisher estimator that uses a random subset of the inputs
(beyond the paper: the estimator gate's ``which=Subsampled(m, base, replace)``; per statistic
the law of total variance of ``d24-xy``, extended here to covariances and combinations).

An estimator that, per call, draws ``m`` of the ``M`` inputs (uniformly without replacement, or
``m`` independent uniform picks) and returns ``Î_base`` on them (``Î₁`` with ``n`` draws per
chosen input, or the exact Fisher of the chosen inputs, as mini-batch EWC does) has, by the
law of total variance (:func:`fisher_verify._src.testing.gate_kinds.subsampled_statistics`),

    E⟨W, Î⟩ = ⟨W, I(θ)⟩,
    Var⟨W, Î⟩ = (1/(mM)) Σ_s v_s + c/m · (1/M) Σ_s (f_s − f̄)²,

``f_s`` the statistic of input ``s``'s Fisher, ``v_s`` the per-input variance (thm-4 at
``M = 1``; 0 for the exact base), ``c = (M − m)/(M − 1)`` without replacement (the
finite-population correction) and 1 with; covariances and combinations by the same form.

**Independent route.** Every subset (ordered picks with replacement) and, for ``Î₁``, every
label set of the chosen inputs is enumerated with its probability; the statistics are computed
from the subset and labels directly. Bernoulli network, ``M = 4``, ``m = 2`` (``M = 5``,
``m = 3`` under thorough). Compared at ``1e-9`` relative to the largest compared value.
"""

import itertools

import numpy as np

from fisher_verify._src.proofs.support import close_statistics_law, weighted_moments
from fisher_verify.proofs import statement

RTOL = 1e-9


@statement(
    "ext-subsampled",
    title="Beyond the paper: the exact law of an estimator on a random subset of the inputs",
    claim=r"\mathrm{Var}=\tfrac{1}{mM}\sum_s v_s+\tfrac{c}{m}\,\tfrac1M\sum_s(f_s-\bar f)^2,"
    r"\ c=\tfrac{M-m}{M-1}\ \text{(without replacement)},\ 1\ \text{(with)}",
    hypotheses=[r"\text{subset uniform, independent of the labels}", r"\text{finite support}"],
    method="exact enumeration over subsets and label sets",
)
def check(ctx):
    """Mean, variance, covariance and combination variance against enumeration."""
    import fisher_verify as fv
    from fisher_verify._src.testing.gate_kinds import Subsampled, subsampled_statistics

    M, m = ctx.pick((4, 2), (5, 3))
    fam = fv.family("bernoulli")
    net = fv.Network.random((2, 3, 1), "tanh", fam, 1.0, ctx.rng)
    X = ctx.rng.normal(size=(M, 2))
    P = net.num_params
    V = ctx.rng.normal(size=(2, P))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    h, J = net.forward(X), net.jacobian(X)
    eta = np.asarray(fam.mean(h))
    t, w, _ = fam.expectation_nodes(h, degree=2)
    for base in ("I1", "exact"):
        for replace in (False, True):
            subsets = (list(itertools.product(range(M), repeat=m)) if replace
                       else list(itertools.combinations(range(M), m)))
            pts, wts = [], []
            for S in subsets:
                sets = [()] if base == "exact" else list(itertools.product(range(t.shape[1]), repeat=m))
                for combo in sets:
                    if base == "exact":
                        G = sum(J[s].T @ np.einsum("q,qa,qb->ab", w[s], t[s] - eta[s], t[s] - eta[s])
                                @ J[s] for s in S) / m
                        p = 1.0
                    else:
                        sc = [J[s].T @ (t[s, q] - eta[s]) for s, q in zip(S, combo)]
                        G = sum(np.outer(g, g) for g in sc) / m
                        p = float(np.prod([w[s, q] for s, q in zip(S, combo)]))
                    pts.append(np.concatenate([np.diag(G), np.einsum("kp,pq,kq->k", V, G, V)]))
                    wts.append(p / len(subsets))
            mean, cov, _ = weighted_moments(np.array(pts), np.array(wts))
            ex = subsampled_statistics(Subsampled(m, base, replace), net, X, 1, V, False)
            tag = f"Î_{base} on {m} of {M} inputs {'with' if replace else 'without'} replacement"
            where = dict(base=str(base), replace=replace)
            close_statistics_law(ctx, tag, ex, fam, mean, cov, 1, RTOL, **where)
