"""ext-ggn-noncanonical: the Gauss–Newton matrix of a non-canonical head is not the Fisher at
data labels, and is in expectation under the model's labels (issue 18; beyond the paper).

For a head ``f`` with a link ``h = g(f)`` and ``ℓ(y) = log p(y | g(f))``, the generalized
Gauss–Newton matrix split at ``f`` with a label ``y`` is ``G(y) = J_fᵀ (−∂²ℓ(y)/∂f²) J_f``.
Since ``−∂²ℓ/∂f² = g′ᵀ I(h) g′ − Σ_k (t(y) − η)_k g″_k``, claims, per input:

1. ``G(y) − I(θ|x) = −Σ_k (t(y) − η)_k J_fᵀ g″_k J_f`` at every label (the exact gap), and the
   gap is not zero for these heads (a residual times ``∂²h/∂f²``): with the data's labels the
   GGN is not the Fisher;
2. ``E_{y∼p(y|x,θ)}[G(y)] = I(θ|x)``: with labels drawn from the model it is unbiased;
3. its covariance under model labels is thm-6's with ``∂²h`` replaced by ``J_fᵀ g″ J_f``:
   ``Cov(Ĝ)^{ijkl} = (1/N) (J_fᵀ g″_a J_f)_ij (J_fᵀ g″_b J_f)_kl I_ab``.

(For a canonical head, ``g″ = 0`` and the gap vanishes: ``−∂²ℓ/∂h² = ∂²F = I(h)``, lemma-2.)

**Independent route** (:mod:`fisher_verify._src.proofs.head_route`): ``−∂²ℓ/∂f²`` and ``J_f`` by
``torch.func`` from the head's own density; exact expectations over Gauss–Hermite nodes,
both Bernoulli labels, or the Poisson sum with its tail bound. The library side is
``fv.exact_fisher``, the family's η and the link's printed ``g″``.
"""

import numpy as np

from fisher_verify.proofs import statement

RTOL = 1e-9
#: a gap that rounding cannot produce
GAP = 1e-4


@statement(
    "ext-ggn-noncanonical",
    title="Beyond the paper: the data-label GGN of a non-canonical head is not the Fisher",
    claim=r"J_f^\top(-\partial^2_f\ell(y))J_f-I(\theta|x)=-\textstyle\sum_k(t(y)-\eta)_k"
    r"J_f^\top g''_kJ_f;\ \ \mathbb E_{y\sim p}[\cdot]=0",
    hypotheses=[r"h=g(f),\ g\in C^2", r"y\ \text{a data label, or}\ y\sim p(y|x,\theta)"],
    method="head densities by autodiff, exact expectation over labels",
)
def check(ctx):
    """The data-label GGN against the Fisher, with the gap's exact value."""
    import fisher_verify as fv
    from fisher_verify._src.fisher.covariance import cov2_tensor
    from fisher_verify._src.proofs.head_route import head_nodes, head_terms, linked_example

    n = 2
    cases = [("mean-logstd", "tanh"), ("mean-var", "sigmoid"), ("softplus-rate", "tanh"),
             ("logit", "sigmoid")]
    if ctx.thorough:
        cases += [("softplus-rate", "softplus"), ("mean-logstd", "gelu")]
    gaps = {}
    for name, act in cases:
        net = linked_example(name, act, ctx.rng)
        X = ctx.rng.normal(size=(2, 2))
        tag = f"{name} head, {act}"
        where = dict(link=name, activation=act)
        f = net.base.forward(X)
        h = net.forward(X)
        eta = net.family.mean(h)
        I_h = net.family.fisher(h)
        curv = net.link_curvature(X)  # (M, d, P, P): J_fᵀ g″_k J_f
        per = fv.exact_fisher(net, X, per_input=True)
        largest = 0.0
        for m in range(X.shape[0]):
            ys, w, _ = head_nodes(name, f[m])
            r = head_terms(net, X[m], ys)
            G = np.einsum("ap,sab,bq->spq", r["J_f"], r["head_curvature"], r["J_f"])
            t = net.family.statistic(ys)
            gap = -np.einsum("sk,kpq->spq", t - eta[m], curv[m])
            size = float(np.max(np.abs(per[m])))
            ctx.close(f"{tag}, input {m}: G(y) − I(θ|x) = −Σ (t − η)_k J_fᵀ g″_k J_f, every label",
                      G - per[m], gap, rtol=RTOL, scale=size, **where)
            rel = float(np.max(np.abs(G - per[m])) / size)
            largest = max(largest, rel)
            mean = np.tensordot(w, G, axes=(0, 0))
            ctx.close(f"{tag}, input {m}: E_(y∼p) G(y) = I(θ|x)", mean, per[m], rtol=RTOL, **where)
            dev = (G - mean).reshape(len(w), -1)
            P = G.shape[-1]
            cov = ((dev * w[:, None]).T @ dev).reshape((P,) * 4) / n
            ctx.close(f"{tag}, input {m}: Cov(Ĝ) = thm-6 with J_fᵀ g″ J_f",
                      cov2_tensor(curv[m], I_h[m], n), cov, rtol=RTOL, **where)
        gaps[tag] = largest
        ctx.true(f"{tag}: the data-label GGN differs from I(θ) (relative gap > {GAP:g})",
                 largest > GAP, f"largest relative gap {largest:.3g}", **where)
    ctx.record("relative_gap_at_labels", gaps)
    return ctx.conclude()
