"""d24-xy: the variance of a diagonal estimate with inputs drawn from a data set is the label
term plus the input term (law of total variance), with the finite-population factor
(M − m)/(M − 1) for inputs drawn without replacement (beyond the paper: Soen & Sun, NeurIPS
2024, arXiv 2402.05379)."""

import itertools

import numpy as np

from fisher_verify.proofs import statement

#: (m inputs drawn, n labels per input) of the enumerations over a data set of M = 3
DRAWS = ((1, 2), (2, 2), (3, 1))


def _tuples(M, m, replace):
    """Every ordered draw of m of M inputs, equally likely."""
    if replace:
        return list(itertools.product(range(M), repeat=m))
    return list(itertools.permutations(range(M), m))


def _direct(mu, q, m, n, replace):
    """Var of Î = (1/(mn)) Σ over the drawn inputs' n labels of g, from E[Î²] − E[Î]²
    enumerated over the input draws, with the labels' first two moments per input (mu, q);
    also the two parts E[Var(Î | inputs)] and Var(E[Î | inputs])."""
    first, second, condvar = 0.0, 0.0, 0.0
    tuples = _tuples(mu.shape[0], m, replace)
    means = []
    for S in tuples:
        d_mu = np.repeat(mu[list(S)], n, axis=0)  # one row per label draw
        d_q = np.repeat(q[list(S)], n, axis=0)
        tot = d_mu.sum(axis=0)
        e2 = (tot**2 - (d_mu**2).sum(axis=0) + d_q.sum(axis=0)) / (m * n) ** 2
        e1 = tot / (m * n)
        first = first + e1 / len(tuples)
        second = second + e2 / len(tuples)
        condvar = condvar + (e2 - e1**2) / len(tuples)
        means.append(e1)
    return second - first**2, condvar, np.var(np.array(means), axis=0)


def _joint(g, w, m, n, replace):
    """Var of Î by enumerating every input draw and every label of every draw (tiny cases):
    g[x] (S_x, P) per-node values, w[x] (S_x,) their probabilities."""
    M = len(g)
    first, second = 0.0, 0.0
    tuples = _tuples(M, m, replace)
    for S in tuples:
        draws = [x for x in S for _ in range(n)]
        for nodes in itertools.product(*[range(len(w[x])) for x in draws]):
            p = np.prod([w[x][s] for x, s in zip(draws, nodes, strict=True)]) / len(tuples)
            val = sum(g[x][s] for x, s in zip(draws, nodes, strict=True)) / (m * n)
            first = first + p * val
            second = second + p * val**2
    return second - first**2


@statement(
    "d24-xy",
    title="Beyond the paper: label and input sampling",
    claim=r"\operatorname{Var}(\hat I_{ii}) = \frac{\bar v}{m n} + \frac{s^2}{m} f,\ "
    r"f = 1 \text{ (with replacement)},\ f = \frac{M-m}{M-1} \text{ (without)}",
    hypotheses=[r"\text{inputs uniform from a data set of } M",
                r"n \text{ labels per drawn input, i.i.d. from the model}"],
    method="exact expectation",
)
def check(ctx):
    """fisher.diagonal.sampling_variance (label variances per input from the d24-var closed
    forms, per-input values diag I(θ|x) from eq-6) against E[Î²] − E[Î]² enumerated over every
    ordered draw of inputs with the labels' exact moments per input (autodiff of ℓ at the
    family's nodes), for both estimators, with and without replacement, on a network of every
    family (data set M = 3); and on tiny cases (Bernoulli, categorical K = 3) against the
    enumeration of every input draw and every label jointly."""
    from fisher_verify._src.fisher import diagonal as dg
    from fisher_verify._src.proofs.beyond import family_cases, label_route, node_moments

    rtol = 1e-9
    cases = family_cases(ctx, inputs=3)
    for k, c in enumerate(cases):
        net, X, fam = c.net, c.X, c.net.family
        h = net.forward(X)
        I, k4 = fam.fisher(h), fam.kappa4(h)
        J = net.jacobian(X)
        Hd = np.diagonal(net.output_hessians(X), axis1=-2, axis2=-1)
        values = np.einsum("mai,mab,mbi->mi", J, I, J)
        lab = {1: dg.score_variance_per_input(J, I, k4), 2: dg.hessian_variance_per_input(Hd, I)}
        routes = [label_route(net, x) for x in X]
        moments = {1: [node_moments(r, r["score"] ** 2) for r in routes],
                   2: [node_moments(r, r["neg_hessian_diag"]) for r in routes]}
        for est in (1, 2):
            mu = np.stack([a for a, _ in moments[est]])
            q = np.stack([b for _, b in moments[est]])
            for (m, n), replace in itertools.product(DRAWS, (True, False)):
                sv = dg.sampling_variance(lab[est], values, m, n, replace=replace)
                total, label, inp = _direct(mu, q, m, n, replace)
                what = f"{c.where}: I{est}, m={m}, n={n}, {'with' if replace else 'without'}"
                sc = float(np.max(q)) / (m * n)  # the size of the terms that cancel
                ctx.close(f"{what}: total", sv.total, total, rtol, scale=sc, net=k)
                ctx.close(f"{what}: label term", sv.label, label, rtol, scale=sc, net=k)
                ctx.close(f"{what}: input term", sv.input, inp, rtol, scale=sc, net=k)
    # tiny cases: every input draw and every label, jointly
    import fisher_verify as fv
    from fisher_verify._src.proofs.support import output_family

    tiny = ((output_family("bernoulli", 1), (2, 2)), (fv.family("categorical", K=3), (2, 1)))
    for fam, (m, n) in tiny:
        X = ctx.rng.normal(size=(3, 2))
        net = fv.Network.random([2, 2, fam.dim], "tanh", fam, 1.0, ctx.rng)
        h = net.forward(X)
        I, k4 = fam.fisher(h), fam.kappa4(h)
        J = net.jacobian(X)
        values = np.einsum("mai,mab,mbi->mi", J, I, J)
        lab = dg.score_variance_per_input(J, I, k4)
        routes = [label_route(net, x) for x in X]
        g = [r["score"] ** 2 for r in routes]
        w = [r["w"] for r in routes]
        for replace in (True, False):
            sv = dg.sampling_variance(lab, values, m, n, replace=replace)
            exact = _joint(g, w, m, n, replace)
            ctx.close(f"tiny {fam.label}: I1, m={m}, n={n}, "
                      f"{'with' if replace else 'without'}: joint enumeration", sv.total, exact,
                      rtol, scale=float(np.max([np.max(x**2) for x in g])))
    ctx.record("networks", len(cases))
    ctx.record("draws", [list(d) for d in DRAWS])
    return ctx.conclude(f"{len(cases)} networks (M = 3) and two tiny joint enumerations: "
                        "label term + input term, factor (M-m)/(M-1) without replacement")
