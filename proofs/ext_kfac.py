"""ext-kfac: the exact cases of K-FAC on Eq. 3 networks (beyond the paper; ``fisher.kfac``).

For ``W_l`` (``a_l = W_l h̄_l``, ``∂h_L/∂a_l = B_{l+1} D_l`` by lemma-13), K-FAC's factors are
``A_l = (1/M) Σ_m h̄_l h̄_lᵀ`` and ``G_l = (1/M) Σ_m (B_{l+1}D_l)ᵀ I(h_L) (B_{l+1}D_l)``. Claims:

1. one input (``M = 1``): ``G_l ⊗ A_l`` is the ``W_l`` block of I(θ) (eq-6) in the flat-θ
   order (``W_l`` row-major), and for any ``M`` that block is the mean of the per-input
   products ``G_m ⊗ A_m``;
2. ``M ≥ 2``: ``G_l ⊗ A_l`` differs from the block in general (the approximation; the relative
   gap is recorded), by exactly ``(1/M) Σ_m (G_m − Ḡ) ⊗ (A_m − Ā)``, so it equals the block
   when the inputs are identical (``A`` and ``G`` the same for every input) and, for the last
   layer, under a unit-variance normal output (``G = I(h_L) = 1`` for every input, ``A`` not);
3. the other Kronecker order ``A_l ⊗ G_l`` is not the block (the convention is pinned);
4. the Monte Carlo ``Ĝ_l`` (eq-11 at ``a_l``, labels drawn from the model) has mean ``G_l``:
   its expectation by enumeration over the labels of a Bernoulli and a categorical output;
   with a fixed data label instead, the mean is not ``G_l``; its element-wise variance is
   thm-4's with ``J = ∂h_L/∂a_l`` (the calibration of the Monte Carlo factor).

**Independent route.** The block of ``fv.exact_fisher`` (the network's Jacobian, eq-6), ``h̄_l``
by a plain forward pass, and the exact expectation as a finite sum over labels weighted by
``p(y|x)`` from the family's density (mean and variance of ``Ĝ``). Compared at ``1e-10`` relative to the largest entry.
"""

import numpy as np

from fisher_verify.proofs import statement

RTOL = 1e-10
#: A gap that rounding cannot produce: K-FAC at M >= 2 and the wrong order must differ by more.
GAP = 1e-6


def _hbar(net, X, layer):
    h = X
    for i in range(layer):
        W = net.weights[i]
        h = net.act.np_f(np.concatenate([h, np.ones((len(h), 1))], axis=1) @ W.T)
    return np.concatenate([h, np.ones((len(h), 1))], axis=1)


def _rel_gap(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _labels(fam):
    return [0.0, 1.0] if fam.name == "bernoulli" else [float(k) for k in range(fam.dim)]


@statement(
    "ext-kfac",
    title="Beyond the paper: the exact cases of K-FAC (one input: G⊗A is the layer's block)",
    claim=r"M=1:\ I(\theta)_{W_lW_l}=G_l\otimes A_l,\ A_l=\bar h_l\bar h_l^\top,\ "
    r"G_l=(B_{l+1}D_l)^\top I(h_L)(B_{l+1}D_l);\ \mathbb E\,\hat G_l=G_l",
    hypotheses=[r"W_l\ \text{row-major in}\ \theta", r"y\sim p(y|x)\ \text{for}\ \hat G_l"],
    method="exact Fisher block (eq-6), enumeration over labels",
)
def check(ctx):
    """K-FAC's factors against the exact Fisher block and the exact label expectation."""
    import fisher_verify as fv
    from fisher_verify._src.fisher.kfac import (
        gradient_factor_estimate,
        gradient_factor_variance,
        kfac_block,
        kfac_factors,
        layer_slice,
    )

    cases = [("bernoulli", {}, "tanh"), ("categorical", {"K": 3}, "sigmoid"),
             ("poisson", {}, "relu")]
    if ctx.thorough:
        cases += [("categorical", {"K": 4}, "gelu"), ("bernoulli", {}, "softplus")]
    gaps = {}
    for name, params, act in cases:
        fam = fv.family(name, **params)
        # n_{l+1} = n_l + 1 on the hidden layers, so both Kronecker orders have the same shape
        net = fv.Network.random((2, 3, 4, fam.dim), act, fam, 1.0, ctx.rng)
        X = ctx.rng.normal(size=(3, 2))
        F = fv.exact_fisher(net, X)
        Fm = fv.exact_fisher(net, X, per_input=True)
        for layer in range(net.depth):
            sl = layer_slice(net, layer)
            where = dict(family=fam.label, activation=act, layer=layer)
            tag = f"{fam.label}, {act}, W_{layer}"
            A, G = kfac_factors(net, X[:1], layer)
            hb = _hbar(net, X[:1], layer)
            ctx.close(f"{tag}: A = h̄ h̄ᵀ (plain forward pass)", A, hb.T @ hb, rtol=RTOL, **where)
            block = Fm[0][sl, sl]
            ctx.close(f"{tag}: M = 1, G ⊗ A = the block of I(θ)", kfac_block(net, X[:1], layer),
                      block, rtol=RTOL, **where)
            if A.shape == G.shape:
                wrong = _rel_gap(np.kron(A, G), block)
                ctx.true(f"{tag}: the order A ⊗ G is not the block", wrong > GAP,
                         f"relative gap {wrong:.3g}", **where)
            per = [np.kron(*kfac_factors(net, X[m], layer)[::-1]) for m in range(len(X))]
            ctx.close(f"{tag}: M = 3, the block = mean of per-input G_m ⊗ A_m",
                      np.mean(per, axis=0), F[sl, sl], rtol=RTOL, **where)
            kf = kfac_block(net, X, layer)
            parts = [kfac_factors(net, X[m], layer) for m in range(len(X))]
            Abar = np.mean([a for a, _ in parts], axis=0)
            Gbar = np.mean([g for _, g in parts], axis=0)
            cross = np.mean([np.kron(g - Gbar, a - Abar) for a, g in parts], axis=0)
            ctx.close(f"{tag}: M = 3, block − G ⊗ A = mean of (G_m − Ḡ) ⊗ (A_m − Ā)",
                      F[sl, sl] - kf, cross, rtol=RTOL, scale=float(np.max(np.abs(block))),
                      **where)
            gap = _rel_gap(kf, F[sl, sl])
            gaps[f"{tag}"] = gap
            if act != "relu":  # dead ReLU units can make A_m or G_m the same for every input
                ctx.true(f"{tag}: M = 3, G ⊗ A differs from the block (the approximation)",
                         gap > GAP, f"relative gap {gap:.3g}", **where)
            same = np.repeat(X[:1], 3, axis=0)
            ctx.close(f"{tag}: identical inputs, G ⊗ A = the block", kfac_block(net, same, layer),
                      fv.exact_fisher(net, same)[sl, sl], rtol=RTOL, **where)
            if name in ("bernoulli", "categorical"):
                mean = np.zeros_like(G)
                var = np.zeros_like(G)
                data = np.zeros_like(G)
                for m in range(len(X)):
                    h = net.forward(X[m])
                    ys = _labels(fam)
                    p = np.exp(fam.log_density(np.array(ys), np.broadcast_to(h, (len(ys), h.size))))
                    ctx.close(f"{tag}: Σ_y p(y|x) = 1", np.sum(p), 1.0, rtol=RTOL, **where)
                    one = [gradient_factor_estimate(net, X[m], fam.statistic(np.array([y])),
                                                    layer) for y in ys]
                    mu = np.einsum("y,yrs->rs", p, one)
                    mean += mu / len(X)
                    var += np.einsum("y,yrs->rs", p, (one - mu) ** 2) / len(X) ** 2
                    t_data = fam.statistic(np.array([ys[-1]]))
                    data += gradient_factor_estimate(net, X[m], t_data, layer) / len(X)
                ctx.close(f"{tag}: E Ĝ over labels from the model = G_l", mean,
                          kfac_factors(net, X, layer)[1], rtol=RTOL, **where)
                for n in (1, 5):
                    ctx.close(f"{tag}: Var Ĝ (n = {n} labels per input) over labels = thm-4 "
                              "with J = ∂h_L/∂a_l", gradient_factor_variance(net, X, layer, n),
                              var / n, rtol=RTOL, **where)
                off = _rel_gap(data, kfac_factors(net, X, layer)[1])
                ctx.true(f"{tag}: Ĝ from a fixed data label is not G_l", off > GAP,
                         f"relative gap {off:.3g}", **where)
    # G the same for every input, A not: a unit-variance normal output has I(h_L) = 1, so
    # G_{L-1} = 1 and K-FAC is exact for the last layer at distinct inputs
    fam = fv.family("normal")
    net = fv.Network.random((2, 3, 4, 1), "tanh", fam, 1.0, ctx.rng)
    X = ctx.rng.normal(size=(3, 2))
    F = fv.exact_fisher(net, X)
    last = net.depth - 1
    sl = layer_slice(net, last)
    ctx.close("normal(1), W_last: G_m = 1 for every input",
              np.array([kfac_factors(net, x, last)[1] for x in X]), np.ones((3, 1, 1)), rtol=RTOL)
    ctx.close("normal(1), W_last: M = 3 distinct inputs, G ⊗ A = the block",
              kfac_block(net, X, last), F[sl, sl], rtol=RTOL)
    sl = layer_slice(net, 0)
    gaps["normal, tanh, W_0"] = gap = _rel_gap(kfac_block(net, X, 0), F[sl, sl])
    ctx.true("normal(1), W_0: M = 3, G ⊗ A differs from the block", gap > GAP,
             f"relative gap {gap:.3g}")
    ctx.record("relative gap of K-FAC at M = 3", gaps)
