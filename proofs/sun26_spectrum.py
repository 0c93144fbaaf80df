"""sun26-spectrum: the categorical core's spectrum and matrix envelopes pulled back through J
(beyond the paper: Sun, ICLR 2026, arXiv 2505.13614; the two-largest-probabilities upper bound is
derived here, see fisher.diagonal.categorical_spectrum)."""

import numpy as np

from fisher_verify.proofs import statement

#: (widths, activation) of the categorical networks: K = 2, 3, 5 outputs, depths 1 to 3
NETWORKS = (((2, 3), "tanh"), ((3, 4, 2), "sigmoid"), ((2, 3, 3, 5), "softplus"),
            ((2, 4, 3), "gelu"))


@statement(
    "sun26-spectrum",
    title="Beyond the paper: the categorical core's spectrum",
    claim=r"I(h) = \operatorname{diag}(p) - pp^\top:\ I(h)\mathbf 1 = 0,\ "
    r"\max_k p_k(1-p_k) \le \lambda_{\max} \le 1 - \lVert p\rVert^2,\ "
    r"J^\top L J \preceq I(\theta) \preceq J^\top U J",
    hypotheses=[r"\text{categorical output}", r"L = p_{\min}(\mathrm{Id} - \mathbf 1\mathbf 1^\top/K),"
                r"\ U = \bar\lambda(\mathrm{Id} - \mathbf 1\mathbf 1^\top/K)"],
    method="property over random networks",
)
def check(ctx):
    """fisher.diagonal.categorical_spectrum and pulled_back_envelopes against eigen-decompositions:
    of the family's I(h) and of Cov(t) enumerated over the K labels, for random probability
    vectors (Dirichlet, concentrations 0.1 to 10, K = 2 to 7) and for categorical networks of
    depths 1–3 (K = 2, 3, 5, three inputs); the pulled-back envelopes by the eigenvalues of
    I(θ) − JᵀLJ and JᵀUJ − I(θ), I(θ) from eq-6. Also: the two-largest-probabilities bounds lie
    inside the simple ones and are exact at K = 2."""
    import fisher_verify as fv
    from fisher_verify._src.fisher import diagonal as dg

    rtol = 1e-10
    draws = ctx.pick(300, 3000)
    gaps = []
    for d in range(draws):
        K = int(ctx.rng.integers(2, 8))
        p = ctx.rng.dirichlet(np.full(K, ctx.rng.choice([0.1, 1.0, 10.0])))
        fam = fv.family("categorical", K=K)
        h = np.log(p)
        I = fam.fisher(h)
        t, w, _ = fam.expectation_nodes(h, 2)
        r = t - w @ t
        cov = (r * w[:, None]).T @ r  # Cov(t) over the labels (lemma-2), not the kernel
        lam = np.linalg.eigvalsh(I)
        lam_cov = np.linalg.eigvalsh(cov)
        spec = dg.categorical_spectrum(p)
        ctx.close(f"draw {d}: I(h) 1 = 0", I @ np.ones(K), 0.0, 1e-12, scale=float(lam[-1]))
        ctx.close(f"draw {d}: smallest eigenvalue 0", lam_cov[0], 0.0, 1e-12,
                  scale=float(lam_cov[-1]))
        for name, lam_max in (("I(h)", lam[-1]), ("Cov(t)", lam_cov[-1])):
            ctx.leq(f"draw {d}: max p(1-p) <= lam_max {name}", spec.lower_simple, lam_max, rtol)
            ctx.leq(f"draw {d}: lam_max {name} <= 1 - |p|^2", lam_max, spec.upper_simple, rtol)
            ctx.leq(f"draw {d}: two-largest lower <= lam_max {name}", spec.lower_two, lam_max,
                    rtol)
            ctx.leq(f"draw {d}: lam_max {name} <= two-largest upper", lam_max, spec.upper_two,
                    rtol)
        q = np.sort(p)[::-1]
        ctx.leq(f"draw {d}: p_2 <= two-largest lower", q[1], spec.lower_two, rtol)
        ctx.leq(f"draw {d}: two-largest upper <= min(p_1, 1 - |p|^2)", spec.upper_two,
                min(q[0], spec.upper_simple), rtol)
        # eigvalsh is accurate to about eps·λ_max in absolute terms, hence the scale
        ctx.leq(f"draw {d}: p_min <= smallest eigenvalue on 1-perp", spec.floor, lam_cov[1], rtol,
                scale=float(lam_cov[-1]))
        if K == 2:
            ctx.close(f"draw {d}: K = 2, two-largest bounds exact", [spec.lower_two,
                      spec.upper_two], [lam[-1], lam[-1]], 1e-9)
        gaps.append(float((spec.upper - lam[-1]) / lam[-1]))
    ctx.record("random_p", draws)
    ctx.record("upper_gap_median", float(np.median(gaps)))
    for k, (widths, act) in enumerate(NETWORKS):
        K = widths[-1]
        fam = fv.family("categorical", K=K)
        X = ctx.rng.normal(size=(3, widths[0]))
        net = fv.Network.random(list(widths), act, fam, 2.0, ctx.rng)
        h = net.forward(X)
        p = np.asarray(fam.mean(h))
        J = net.jacobian(X, method="autodiff")
        low, up = dg.pulled_back_envelopes(J, p)
        F = np.asarray(fv.exact_fisher(net, X))
        size = float(np.linalg.eigvalsh(up)[-1])
        where = f"net {k} {tuple(widths)} {act} K={K}"
        ctx.leq(f"{where}: J'LJ <= I(theta) (lambda_min of the difference >= 0)", 0.0,
                float(np.linalg.eigvalsh(F - low)[0]), rtol, scale=size, net=k)
        ctx.leq(f"{where}: I(theta) <= J'UJ (lambda_min of the difference >= 0)", 0.0,
                float(np.linalg.eigvalsh(up - F)[0]), rtol, scale=size, net=k)
        for m in range(len(X)):
            spec = dg.categorical_spectrum(p[m])
            Pm = np.eye(K) - np.ones((K, K)) / K
            Im = fam.fisher(h[m])
            ctx.leq(f"{where} input {m}: L <= I(h)", 0.0,
                    float(np.linalg.eigvalsh(Im - spec.floor * Pm)[0]), rtol,
                    scale=float(spec.upper), net=k)
            ctx.leq(f"{where} input {m}: I(h) <= U", 0.0,
                    float(np.linalg.eigvalsh(spec.upper * Pm - Im)[0]), rtol,
                    scale=float(spec.upper), net=k)
    ctx.record("paper_text", "Theorem 1 and Lemma 2 of arXiv 2505.13614 (spectrum and envelopes "
               "of the core space's FIM) could not be read here beyond the abstract; the "
               "two-largest-probabilities bounds and the envelopes p_min P <= I(h) <= lambda_bar P "
               "are derived in fisher.diagonal (interlacing and the secular equation); "
               "two-largest upper <= 1 - |p|^2 is verified on the random draws, not proved")
    ctx.record("networks", len(NETWORKS))
    return ctx.conclude(f"{draws} random p and {len(NETWORKS)} categorical networks: spectrum "
                        "bounds and pulled-back envelopes hold")
