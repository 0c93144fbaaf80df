"""ext-gnb: the exact law of Sophia's Gauss–Newton–Bartlett estimator (beyond the paper: the
estimator gate's ``which="gnb"``, Liu et al. 2023, "Sophia").

One label ``ŷ_m ~ p(y|x_m, θ)`` per input, ``ĝ = (1/M) Σ_m J_mᵀ (t(ŷ_m) − η_m)`` (the gradient of
the batch-mean negative log-likelihood, up to sign), and ``Ĝ = M ĝ ĝᵀ`` (Sophia's ``B ĝ ⊙ ĝ`` is
its diagonal, ``B = M``). The claim (:mod:`fisher_verify._src.testing.gate_kinds`):

* ``E⟨W, Ĝ⟩ = ⟨W, I(θ)⟩`` (unbiased for ``I(θ)``, ``eq-6``);
* ``Var⟨W, Ĝ⟩ = (1/M²) Σ_m κ₄_m[J_m W J_mᵀ, J_m W J_mᵀ] + 2 tr(W I(θ) W I(θ))``; for a
  diagonal element ``(1/M²) Σ_m κ₄(u_mi⁴) + 2 I_ii²`` — it does not shrink with ``M``;
* the covariance of any two statistics and the variance of any linear combination (the gate's
  pooled tests) follow the same bilinear form;
* the fourth central moment of ``Ĝ_ii`` and of ``vᵀĜv``, from the added cumulants of
  ``√M vᵀĝ``, and the laws of a mean of ``n`` independent estimates.

**Independent route.** Every label set is enumerated (``Π_m |support|`` sets, each with its
probability): the statistics of ``Ĝ`` are computed from the labels directly, and their mean,
covariance and fourth central moments are the weighted sums. Bernoulli and categorical (K = 3)
networks with three inputs (8 and 27 label sets; four under thorough), full and diagonal
estimates, ``n = 1`` and ``3``. The variance of the diagonal is also checked against the
closed form of the issue, ``κ₄`` taken from the family's ``kappa4_contract`` and ``I(θ)`` from
``exact_fisher`` (not from the module under test). Compared at ``1e-9`` relative to the
largest compared value (float64 sums of a few dozen terms).
"""

import itertools

import numpy as np

from fisher_verify._src.proofs.support import close_statistics_law, weighted_moments
from fisher_verify.proofs import statement

RTOL = 1e-9


def _enumerated(net, X, V, diagonal):
    fam = net.family
    M = X.shape[0]
    h, J = net.forward(X), net.jacobian(X)
    eta = np.asarray(fam.mean(h))
    t, w, _ = fam.expectation_nodes(h, degree=2)  # every support point (finite families)
    pts, wts = [], []
    for combo in itertools.product(range(t.shape[1]), repeat=M):
        r = np.stack([t[m, q] - eta[m] for m, q in enumerate(combo)])
        g = np.einsum("ma,map->p", r, J) / M
        G = M * np.outer(g, g)
        dirs = (V * V) @ np.diag(G) if diagonal else np.einsum("kp,pq,kq->k", V, G, V)
        pts.append(np.concatenate([np.diag(G), dirs]))
        wts.append(float(np.prod([w[m, q] for m, q in enumerate(combo)])))
    return weighted_moments(np.array(pts), np.array(wts))


@statement(
    "ext-gnb",
    title="Beyond the paper: the exact law of Sophia's Gauss–Newton–Bartlett estimator",
    claim=r"\mathbb E[M\hat g\hat g^\top]=I(\theta),\ "
    r"\mathrm{Var}\langle W,M\hat g\hat g^\top\rangle=\tfrac1{M^2}\sum_m\kappa_4^{(m)}[J_mWJ_m^\top]^{2}"
    r"+2\,\mathrm{tr}(WI(\theta)WI(\theta))",
    hypotheses=[r"\hat y_m\sim p(y|x_m,\theta)\ \text{independent}", r"\text{finite support}"],
    method="exact enumeration over label sets",
)
def check(ctx):
    """Mean, variance, covariance, combination variance and fourth moments of the GNB
    statistics against enumeration over every label set."""
    import fisher_verify as fv
    from fisher_verify._src.testing.gate_kinds import gnb_statistics

    M = ctx.pick(3, 4)
    for name, params in [("bernoulli", {}), ("categorical", {"K": 3})]:
        fam = fv.family(name, **params)
        net = fv.Network.random((2, 3, fam.dim), "tanh", fam, 1.0, ctx.rng)
        X = ctx.rng.normal(size=(M, 2))
        P = net.num_params
        V = ctx.rng.normal(size=(2, P))
        V /= np.linalg.norm(V, axis=1, keepdims=True)
        # the closed form of Var Ĝ_ii, from kappa4_contract and exact_fisher alone
        h, J = net.forward(X), net.jacobian(X)
        U = np.swapaxes(J, 1, 2)  # (M, P, d): u_mi = J_m e_i
        k4 = np.asarray(fam.kappa4_contract(h[:, None, :], U, U, U, U), dtype=float)
        F = fv.exact_fisher(net, X)
        closed = k4.sum(axis=0) / M**2 + 2.0 * np.diag(F) ** 2
        for diagonal in (False, True):
            mean, cov, m4 = _enumerated(net, X, V, diagonal)
            where = dict(family=name, diagonal=diagonal)
            ctx.close(f"{name}: Var Ĝ_ii enumerated = (1/M²)Σκ₄ + 2I_ii²", np.diag(cov)[:P],
                      closed, rtol=RTOL, **where)
            for n in (1, 3):
                ex = gnb_statistics(net, X, n, V, diagonal)
                tag = f"{name}, {'diagonal' if diagonal else 'full'}, n = {n}"
                close_statistics_law(ctx, tag, ex, fam, mean, cov, n, RTOL, **where)
                rank_one = P if diagonal else mean.size
                want = (m4 + 3 * (n - 1) * np.diag(cov) ** 2) / n**3
                ctx.close(f"{tag}: fourth central moments", ex.fourth[:rank_one], want[:rank_one],
                          rtol=RTOL, **where)
