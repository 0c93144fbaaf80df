"""ext-analyze-choice: ``analyze`` names the estimator with the smaller variance as the better.

The README promises that ``fisher-verify analyze`` / ``fv.analyze`` says which estimator is
better (overall and per layer): the one whose entries have the smaller summed variance
``Σ_ij Var(Î_ij)`` (the squared radius of lemma-12: the smaller one needs fewer draws). Here
both sums come from the definition, independently of ``fisher/covariance.py``: the variance of
each entry of ``∂ℓ∂ℓᵀ`` and of ``−∂²ℓ`` by autodiff at the family's exact-expectation nodes, per
input, ``Var(Î) = (1/(M² N)) Σ_m Var_m``. The networks include ones built so that each
estimator wins (a Bernoulli output near p = 1/2, where Var(Î₁) is small, fig-1; a Poisson output
at a large rate, where Var(Î₂) ∝ λ is much smaller than Var(Î₁) ∝ λ², fig-1), so a swapped
choice fails whichever way it is swapped.
"""

import numpy as np

from fisher_verify._src.proofs.support import definition_route, mixed_family
from fisher_verify.proofs import statement


def _variance_sums(net, X, n):
    """(Var(Î₁), Var(Î₂)) matrices (P, P) from the definition, N draws per input."""
    v = []
    for x in X:
        route = definition_route(net, x)
        w = route["w"] / np.sum(route["w"])
        s = route["score"]
        terms = (np.einsum("si,sj->sij", s, s), route["neg_hessian"])
        v.append([np.einsum("s,sij->ij", w, (g - np.einsum("s,sij->ij", w, g)) ** 2)
                  for g in terms])
    M = X.shape[0]
    return [sum(vm[e] for vm in v) / (M * M * n) for e in (0, 1)]


def _cases(ctx):
    import fisher_verify as fv

    out = []
    for widths, act, name in ctx.pick(
            [((2, 3, 2), "tanh", "poisson-bernoulli"), ((3, 2, 3), "softplus", "bernoulli"),
             ((2, 3, 2), "sigmoid", "categorical")],
            [((2, 3, 2), "tanh", "poisson-bernoulli"), ((3, 2, 3), "softplus", "bernoulli"),
             ((2, 3, 2), "sigmoid", "categorical"), ((2, 2, 2, 2), "tanh", "normal")]):
        net = fv.Network.random(list(widths), act, mixed_family(name, widths[-1]), 1.0, ctx.rng)
        out.append((f"random {act} {net.family.label}", net,
                    ctx.rng.normal(size=(2, widths[0]))))
    # built to make I1 win: one Bernoulli output, last bias moving h_L(x) to 0 (p = 1/2)
    X = ctx.rng.normal(size=(2, 2))
    net = fv.Network.random([2, 3, 1], "tanh", fv.family("bernoulli"), 1.0, ctx.rng)
    w = [W.copy() for W in net.weights]
    w[-1][0, -1] -= float(net.forward(X)[:, 0].mean())
    out.append(("bernoulli near p = 1/2", fv.Network.from_weights(w, "tanh", net.family), X))
    # built to make I2 win: a Poisson output at rate about e^3 (one output keeps the
    # exact-expectation nodes few)
    net = fv.Network.random([2, 3, 1], "softplus", fv.family("poisson"), 1.0, ctx.rng)
    w = [W.copy() for W in net.weights]
    w[-1][:, -1] += 3.0 - net.forward(X).mean(axis=0)
    out.append(("poisson at rate e^3", fv.Network.from_weights(w, "softplus", net.family), X))
    return out


@statement(
    "ext-analyze-choice",
    title="analyze: the better estimator",
    claim=r"\text{better} = \arg\min_{k \in \{1,2\}} \textstyle\sum_{ij}"
    r" \operatorname{Var}(\hat I_k)_{ij} \text{ (overall and per layer)}",
    hypotheses=[r"\sigma \in C^2(\mathbb{R})"],
    method="exact expectation",
)
def check(ctx):
    """fv.analyze's overall and per-layer choice against the summed variances from the
    definition, on random multi-output networks and on networks built for each outcome."""
    import fisher_verify as fv

    n = 3
    seen = set()
    for label, net, X in _cases(ctx):
        v1, v2 = _variance_sums(net, X, n)
        res = fv.analyze(net, X, n=n)
        ctx.close(f"{label}: analyze's Var(I1) = definition", res.variance_1, v1, rtol=1e-8)
        ctx.close(f"{label}: analyze's Var(I2) = definition", res.variance_2, v2, rtol=1e-8,
                  scale=float(np.max(np.abs(v1))))
        s1, s2 = float(v1.sum()), float(v2.sum())
        want = "I1" if s1 < s2 else "I2"
        ctx.true(f"{label}: better = {want} (sum Var I1 = {s1:.4g}, I2 = {s2:.4g})",
                 res.better == want, detail=f"analyze said {res.better}")
        seen.add(want)
        off = net.offsets
        for k, layer in enumerate(res.layers):
            sl = slice(off[k], off[k + 1])
            a, b = float(v1[sl, sl].sum()), float(v2[sl, sl].sum())
            if abs(a - b) <= 1e-6 * max(abs(a), abs(b)):
                continue  # a tie to rounding (e.g. Var(I2) = 0 in both): nothing to decide
            want_l = "I1" if a < b else "I2"
            ctx.true(f"{label}, layer {k}: better = {want_l}", layer.better == want_l,
                     detail=f"analyze said {layer.better}")
    ctx.true("both outcomes occur (a swapped choice cannot pass)", seen == {"I1", "I2"})
    return ctx.conclude(f"analyze picks the smaller summed variance in every case "
                        f"({', '.join(sorted(seen))} both seen)")
