"""ext-links: networks whose head does not output the natural parameter (issue 18; beyond the paper).

With a link ``h = g(f)`` after the network's output ``f`` (a Gaussian head ``(μ, log σ)`` or
``(μ, σ²)``, a Poisson rate through softplus, a probability), ``θ ↦ g(f(θ))`` is a network whose
output is the natural parameter, so eq-6, eq-7/8, thm-4 and thm-6 hold for it with
``J_h = g′ J_f`` and ``∂²h_k = J_fᵀ g″_k J_f + Σ_j g′_kj ∂²f_j`` (``fisher_verify._src.networks.linked``).
Claims, per network (M = 2 inputs):

(Also a gamma head of shape 2 with rate ``e^u``; thorough: ``softplus(u)`` too.)

1. ``I(θ) = (1/M) Σ_m J_fᵀ g′ᵀ I(h) g′ J_f`` equals ``E[∂ℓ∂ℓᵀ]`` and ``E[−∂²ℓ]``;
2. ``Î₁`` and ``Î₂`` at given labels equal the means of the per-sample terms;
3. ``Cov(Î₁)`` (thm-4) and ``Cov(Î₂)`` (thm-6, with the ``g″`` term) equal the exact covariances
   of the per-sample terms, every entry; leaving ``g″`` out of ``∂²h`` gives a wrong ``Cov(Î₂)``;
4. thm-7, thm-8 and lemma-12 hold with the exact left sides;
5. each link's ``g, g′, g″`` equal mpmath's (40 digits, numerical differentiation of the
   link's textbook form);
6. ``fv.analyze`` of the LinkedNetwork reports these same quantities: I(θ), ``Var(Î₁)``,
   ``Var(Î₂)`` (every entry) and ``‖Cov(Î)‖_F`` equal the exact expectations of claims 1–3,
   the thm-7/thm-8 bounds equal claim 4's right sides, and its diagonal route (the base's
   lemma-13 factors through the link, ``diagonal=True``) gives the same diagonals, norms and
   bounds.

A Beta head (concentration ``α = softplus(u)``, second shape known) joins once the catalog has
the beta family: its terms are polynomials in ``log y``, whose moments come from mpmath
quadrature of the Beta density at 40 digits (error estimate recorded and bounded).

**Independent route** (:mod:`fisher_verify._src.proofs.head_route`): ℓ = log p(y | f) from the head's
own density (``torch.distributions``), ``torch.func`` scores and Hessians in θ, exact
expectations by Gauss–Hermite nodes in y (normal: polynomials of degree ≤ 8, exact to 23),
generalized Gauss–Laguerre nodes (gamma), the enumeration of both labels (Bernoulli) or the
Poisson sum with a proven tail bound (recorded).
"""

import numpy as np

from fisher_verify.proofs import statement

RTOL = 1e-9
#: what leaving g″ out of ∂²h must change Cov(Î₂) by, relative: far above rounding
GAP = 1e-4


@statement(
    "ext-links",
    title="Beyond the paper: heads through a link h = g(f) (exact I(θ), thm-4 and thm-6 again)",
    claim=r"h=g(f):\ J_h=g'J_f,\ \partial^2h_k=J_f^\top g''_kJ_f+\textstyle\sum_j g'_{kj}"
    r"\partial^2 f_j;\ I(\theta)=J_f^\top g'^\top I(h)g'J_f",
    hypotheses=[r"g\in C^2\ \text{on the head's domain}", r"y\sim p(y|x,\theta)"],
    method="head densities by autodiff, Gauss–Hermite / enumeration with tail bound, mpmath",
)
def check(ctx):
    """Linked networks against the head's own density, and each link against mpmath."""
    import fisher_verify as fv
    from fisher_verify._src.families.links import LINKS, link
    from fisher_verify._src.fisher.bounds import lemma12_radius, thm7_sides, thm8_sides
    from fisher_verify._src.fisher.covariance import cov2_tensor
    from fisher_verify._src.fisher.estimators import estimators_from_draws
    from fisher_verify._src.proofs.head_route import (
        head_nodes,
        head_terms,
        link_reference_mp,
        linked_example,
    )

    n = 3
    cases = [("mean-logstd", "tanh"), ("mean-var", "sigmoid"), ("softplus-rate", "tanh"),
             ("logit", "tanh"), ("exp-rate", "tanh")]
    if ctx.thorough:
        cases += [("mean-logstd", "softplus"), ("softplus-rate", "gelu"),
                  ("softplus-neg", "sigmoid")]
    if "beta" in fv.family_names():  # a Beta head, once the catalog has the beta family
        cases += [("softplus-neg:beta", "tanh")]
    tails = {}
    for name, act in cases:
        net = linked_example(name, act, ctx.rng)
        X = ctx.rng.normal(size=(2, 2))
        M, P = X.shape[0], net.num_params
        tag = f"{name} head, {act}"
        where = dict(link=name, activation=act)
        fisher1 = np.zeros((P, P))
        fisher2 = np.zeros((P, P))
        cov1 = np.zeros((P,) * 4)
        cov2 = np.zeros((P,) * 4)
        tail = 0.0
        f = net.base.forward(X)
        for m in range(M):
            ys, w, left = head_nodes(name, f[m])
            tail = max(tail, left)  # the Poisson tail bound, or the Beta moments' quadrature error
            r = head_terms(net, X[m], ys)
            outer = np.einsum("si,sj->sij", r["score"], r["score"])
            for terms, mean, cov in ((outer, fisher1, cov1), (r["neg_hessian"], fisher2, cov2)):
                mu = np.tensordot(w, terms, axes=(0, 0))
                mean += mu / M
                dev = (terms - mu).reshape(len(w), P * P)
                cov += ((dev * w[:, None]).T @ dev).reshape((P,) * 4) / (M * M * n)
        if name.endswith(":beta"):
            ctx.true(f"{tag}: the mpmath moments' quadrature error estimate below 1e-25",
                     tail <= 1e-25, f"{tail:.3g}", **where)
        else:
            tails[tag] = tail
        F = fv.exact_fisher(net, X)
        ctx.close(f"{tag}: I(θ) = E[∂ℓ∂ℓᵀ]", F, fisher1, rtol=RTOL, **where)
        ctx.close(f"{tag}: I(θ) = E[−∂²ℓ]", F, fisher2, rtol=RTOL, **where)
        ctx.close(f"{tag}: Cov(Î₁) = thm-4", fv.covariance(net, X, which="I1", n=n), cov1,
                  rtol=RTOL, **where)
        C2 = fv.covariance(net, X, which="I2", n=n)
        ctx.close(f"{tag}: Cov(Î₂) = thm-6 with g″", C2, cov2, rtol=RTOL, **where)
        # without g″: ∂²h = g′ ∂²f only (a Gauss–Newton split at f): not Cov(Î₂)
        fb = net.base.forward(X)
        H_wrong = np.einsum("mkj,mjpq->mkpq", net.link.jacobian(fb), net.base.output_hessians(X))
        I_h = net.family.fisher(net.forward(X))
        wrong = sum(cov2_tensor(H_wrong[m], I_h[m], n) for m in range(M)) / M**2
        gap = float(np.max(np.abs(wrong - cov2)) / np.max(np.abs(cov2)))
        ctx.true(f"{tag}: leaving g″ out of ∂²h changes Cov(Î₂)", gap > GAP,
                 f"relative gap {gap:.3g}", **where)
        # the estimators at given labels = the means of the per-sample terms
        fam = net.family
        y = fam.sample(net.forward(X), 4, ctx.rng)
        est = estimators_from_draws(net, X, y)
        s1 = np.zeros((P, P))
        s2 = np.zeros((P, P))
        for m in range(M):
            r = head_terms(net, X[m], y[:, m])
            s1 += np.einsum("si,sj->ij", r["score"], r["score"]) / (len(y) * M)
            s2 += r["neg_hessian"].mean(axis=0) / M
        ctx.close(f"{tag}: Î₁ at labels = mean ∂ℓ∂ℓᵀ", est.i1, s1, rtol=RTOL, **where)
        ctx.close(f"{tag}: Î₂ at labels = mean −∂²ℓ (g″ included)", est.i2, s2, rtol=RTOL, **where)
        # bounds with the exact left sides
        h = net.forward(X)
        J, H = net.jacobian(X), net.output_hessians(X)
        K, I = fam.central_moment4(h), fam.fisher(h)
        _, rhs7, _ = thm7_sides(J, K, I, n)
        _, rhs8 = thm8_sides(H, I, n)
        ctx.leq(f"{tag}: thm-7, ‖Cov(Î₁)‖_F ≤ rhs", float(np.linalg.norm(cov1)), rhs7, **where)
        ctx.leq(f"{tag}: thm-8, ‖Cov(Î₂)‖_F ≤ rhs", float(np.linalg.norm(cov2)), rhs8, **where)
        for e, cov in ((1, cov1), (2, cov2)):
            tv = float(np.einsum("ijij->", cov))
            ctx.leq(f"{tag}: lemma-12, RMS ‖Î{e} − I(θ)‖_F ≤ radius(ε = 0.1)", np.sqrt(tv),
                    lemma12_radius(tv, 0.1), **where)
        # fv.analyze of the LinkedNetwork: the same numbers, dense and diagonal routes
        a = fv.analyze(net, X, n=n)
        ad = fv.analyze(net, X, n=n, diagonal=True)
        ctx.close(f"{tag}: analyze's I(θ) = E[∂ℓ∂ℓᵀ]", a.fisher, fisher1, rtol=RTOL, **where)
        ctx.close(f"{tag}: analyze's diagonal route, diag I(θ)", ad.fisher, np.diagonal(fisher1),
                  rtol=RTOL, **where)
        for e, cov, rhs in ((1, cov1, rhs7), (2, cov2, rhs8)):
            var = np.einsum("ijij->ij", cov)
            ctx.close(f"{tag}: analyze's Var(Î{e}), every entry", getattr(a, f"variance_{e}"),
                      var, rtol=RTOL, **where)
            ctx.close(f"{tag}: analyze's diagonal route, diag Var(Î{e})",
                      getattr(ad, f"variance_{e}"), np.diagonal(var), rtol=RTOL, **where)
            for route, res in (("", a), ("diagonal route, ", ad)):
                ctx.close(f"{tag}: analyze's {route}‖Cov(Î{e})‖_F",
                          getattr(res, f"covariance_norm_{e}"), float(np.linalg.norm(cov)),
                          rtol=RTOL, **where)
                ctx.close(f"{tag}: analyze's {route}thm-{6 + e} bound", getattr(res, f"bound_{e}"),
                          rhs, rtol=RTOL, **where)
    ctx.true("every Poisson tail bound below 1e-300", max(tails.values()) <= 1e-300,
             f"largest {max(tails.values()):.3g}")
    ctx.record("tail_bounds", tails)
    # each link against mpmath
    points = {1: [[-2.3], [0.4], [3.1]], 2: [[0.7, -0.4], [-1.2, 0.9]]}
    positive = {"logit": [[0.13], [0.5], [0.91]], "rate": [[0.2], [1.7], [25.0]],
                # u = −30: the textbook g″ of log softplus cancels there (relative error 1e-3)
                "softplus-rate": [[-30.0], [-2.3], [0.4], [3.1]],
                "mean-var": [[0.7, 0.4], [-1.2, 2.9]],
                "mean-shared-var": [[0.7, 0.4], [-1.2, 2.9]]}
    for name in LINKS:
        L = link(name)
        for u in positive.get(name, points[L.n]):
            g, jac, hes = link_reference_mp(name, u)
            ctx.close(f"link {name} at {u}: g", L.natural(np.array(u)), g, rtol=1e-12, link=name)
            ctx.close(f"link {name} at {u}: g′", L.jacobian(np.array(u)), jac, rtol=1e-10,
                      link=name)
            # g″ may vanish by cancellation (logit at p = 1/2: −1/p² + 1/(1−p)²): judged
            # against the size of g′², the terms that cancel
            ctx.close(f"link {name} at {u}: g″", L.hessian(np.array(u)), hes, rtol=1e-9,
                      scale=float(np.max(np.abs(jac))) ** 2, link=name)
    return ctx.conclude()
