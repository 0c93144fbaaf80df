"""ext-sequence: token-level outputs with a padding mask, and the coordinate audit (beyond the
paper: a causal transformer's Fisher information, :mod:`fisher_verify._src.families.sequence`,
:mod:`fisher_verify._src.testing.audit`).

The claim:

* ``family("sequence", K=V, T=T)`` with mask ``m``: ``η``, ``I``, ``κ₃``, ``κ₄`` and ``K`` are
  the moments of ``t(y) = (m_t e_{y_t})_t`` under ``Π_{t: m_t = 1} softmax(h_t)[y_t]`` (masked
  positions contribute nothing), and the ``O(T·V)`` contractions ``uᵀIu``,
  ``C[u⁴] = Σ_t m_t κ₄,t[u_t⁴] + 2(uᵀIu)²`` and the projected moments up to order 8 equal the
  dense ones;
* the audit's ``I_ii`` from one forward-mode pass (``J e_i`` by ``jvp``) is
  ``(1/M) Σ_m E_y[(u_mᵀ(t − η_m))²]`` (eq-6), and its laws of a Monte Carlo claim are those
  of ``Î₁`` (thm-4) and of Sophia's GNB (``ext-gnb``).

**Independent route.** Every label sequence of the real positions is enumerated, written here
from the definition (a product of softmaxes), never through the family's kernels; for the
audit the Jacobian comes from reverse mode (dense autograd of the raw logits) and the laws of
``Î₁_ii`` and ``GNB_ii`` from enumerating every label set of every input (``V^{Σ real}``
sets). Masks with padded positions; a tiny causal transformer (one block, tied head). Compared
at ``1e-9`` relative to the largest compared value (float64 sums of a few hundred terms).
"""

import itertools

import numpy as np

from fisher_verify._src.proofs.support import weighted_moments
from fisher_verify.proofs import statement

RTOL = 1e-9


def _law(h_row, V, T):
    """Support points t(y) and weights of one input's labels (real positions enumerated)."""
    hh = h_row.reshape(T, V + 1)
    p = np.exp(hh[:, :V] - hh[:, :V].max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    real = [t for t in range(T) if hh[t, V] == 1.0]
    pts, wts = [], []
    for labels in itertools.product(range(V), repeat=len(real)):
        tv = np.zeros(T * (V + 1))
        w = 1.0
        for t, y in zip(real, labels):
            tv[t * (V + 1) + y] = 1.0
            w *= p[t, y]
        pts.append(tv)
        wts.append(w)
    return np.array(pts), np.array(wts)


@statement(
    "ext-sequence",
    title="Beyond the paper: token-level outputs with a padding mask, and the coordinate audit",
    claim=r"I(h)=\bigoplus_t m_t\,(\mathrm{diag}\,p_t-p_tp_t^\top),\ "
    r"I_{ii}=\tfrac1M\sum_m (J_me_i)^\top I(h_m)(J_me_i)",
    hypotheses=[r"y_t\sim\mathrm{softmax}(h_t)\ \text{independent over real positions}",
                r"m_t\in\{0,1\}\ \text{independent of }\theta"],
    method="exact enumeration over label sequences; reverse-mode Jacobians",
)
def check(ctx):
    """The masked family's cumulants and contractions, and the audit's exact values and
    Monte Carlo laws, against enumeration."""
    import torch

    import fisher_verify as fv
    from fisher_verify._src.models.as_network import module_network
    from fisher_verify._src.models.sequence import with_padding_mask
    from fisher_verify._src.models.transformer import CausalTransformer
    from fisher_verify._src.testing.audit import audit_diagonal

    V, T = 3, 3
    fam = fv.family("sequence", K=V, T=T)
    masks = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=float)
    for scale in ctx.pick((1.0,), (1.0, 25.0)):
        h = fam.join(ctx.rng.normal(scale=scale, size=(4, T, V)), masks)
        U = ctx.rng.normal(size=(4, 2, fam.dim))
        I, k3, k4, K = fam.fisher(h), fam.kappa3(h), fam.kappa4(h), fam.central_moment4(h)
        quad = np.asarray(fam.fisher_bilinear(h, np.swapaxes(U, 1, 2), np.swapaxes(U, 1, 2), axis=1))
        excess, _ = fam.excess4_diagonal(h, np.swapaxes(U, 1, 2), axis=1)
        proj = fam.projected_central_moments(h, U, 8)
        for m in range(4):
            pts, w = _law(h[m], V, T)
            mean = w @ pts
            c = pts - mean
            cov = np.einsum("s,sa,sb->ab", w, c, c)
            m3 = np.einsum("s,sa,sb,sc->abc", w, c, c, c)
            m4 = np.einsum("s,sa,sb,sc,sd->abcd", w, c, c, c, c)
            kap4 = (m4 - np.einsum("ab,cd->abcd", cov, cov) - np.einsum("ac,bd->abcd", cov, cov)
                    - np.einsum("ad,bc->abcd", cov, cov))
            where = dict(input=m, mask=masks[m].tolist(), scale=scale)
            ctx.close("η = E t(y)", fam.mean(h)[m], mean, rtol=RTOL, **where)
            ctx.close("I = Cov t(y) (masked blocks 0)", I[m], cov, rtol=RTOL, **where)
            ctx.close("κ₃", k3[m], m3, rtol=RTOL, **where)
            ctx.close("κ₄", k4[m], kap4, rtol=RTOL, **where)
            ctx.close("K = E[(t − η)⊗4]", K[m], m4, rtol=RTOL, **where)
            s = np.einsum("sa,ka->ks", c, U[m])  # (2, S)
            ctx.close("uᵀIu in O(T·V)", quad[m], (w * s**2).sum(-1), rtol=RTOL, **where)
            e2 = (w * s**2).sum(-1)
            ctx.close("C[u⁴] in O(T·V)", np.asarray(excess)[m], (w * s**4).sum(-1) - e2**2,
                      rtol=RTOL, **where)
            ctx.close("moments 0..8 of uᵀ(t − η)", proj[m],
                      np.stack([(w * s**j).sum(-1) for j in range(9)], -1), rtol=RTOL, **where)

    # the audit on a tiny padded transformer: exact I_ii and the Monte Carlo laws
    torch.manual_seed(int(ctx.rng.integers(0, 2**31)))
    Vt, Tt, M = 2, 3, 3
    net = CausalTransformer(Vt, Tt, D=4, heads=2, blocks=1, tied=True).double()
    tokens = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 1]])  # 0 pads from the first 0 on
    model = with_padding_mask(net, mask=lambda x: torch.cumprod((x != 0).long(), 1).bool())
    sfam = fv.family("sequence", K=Vt, T=Tt)
    coords = [0, 7, 12, 19, 30, 45]
    mn = module_network(model, sfam, tokens)
    X = tokens.numpy().reshape(M, -1).astype(float)
    J, hs = mn.jacobian(X), mn.forward(X)
    laws = [_law(hs[m], Vt, Tt) for m in range(M)]
    s_of = []  # per input: (support values of u_mᵀ(t − η_m) for each coordinate, weights)
    for m, (pts, w) in enumerate(laws):
        c = pts - w @ pts
        s_of.append((c @ J[m][:, coords], w))
    exact = sum((w[:, None] * s**2).sum(0) for s, w in s_of) / M
    n = 2
    # Î₁_ii with n draws: Var = (1/(M²n)) Σ_m Var(s_m²)
    v1 = sum((w[:, None] * s**4).sum(0) - ((w[:, None] * s**2).sum(0)) ** 2 for s, w in s_of)
    claim = _at(exact, coords, mn.num_params)
    rep1 = audit_diagonal(model, tokens, sfam, claim, which="I1", n=n, coordinates=coords)
    ctx.close("audit (Î₁): I_ii by jvp = enumerated eq-6", rep1.exact, exact, rtol=RTOL)
    ctx.close("audit (Î₁): variance (thm-4)", rep1.variance, v1 / (M * M * n), rtol=RTOL)
    # GNB_ii = (Σ_m s_m)²/M over every label set of every input
    pts, wts = [], []
    for combo in itertools.product(*[range(len(w)) for _, w in s_of]):
        total = sum(s_of[m][0][q] for m, q in enumerate(combo))
        pts.append(total**2 / M)
        wts.append(np.prod([s_of[m][1][q] for m, q in enumerate(combo)]))
    mean, cov, m4 = weighted_moments(np.array(pts), np.array(wts))
    repg = audit_diagonal(model, tokens, sfam, claim, which="gnb", n=n, coordinates=coords)
    ctx.close("audit (GNB): I_ii by jvp = enumerated eq-6", repg.exact, exact, rtol=RTOL)
    ctx.close("audit (GNB): mean = I_ii", mean, exact, rtol=RTOL)
    ctx.close("audit (GNB): variance of a mean of n", repg.variance, np.diag(cov) / n, rtol=RTOL)
    ctx.close("audit (GNB): fourth central moment of a mean of n", repg.fourth,
              (m4 + 3 * (n - 1) * np.diag(cov) ** 2) / n**3, rtol=RTOL)
    wrong = claim.copy()
    big = int(np.argmax(exact))
    wrong[coords[big]] *= 1 + 1e-6
    rep_ok = audit_diagonal(model, tokens, sfam, claim, coordinates=coords)
    ctx.close("audit (exact): I_ii by jvp = enumerated eq-6", rep_ok.exact, exact, rtol=RTOL)
    rep_bad = audit_diagonal(model, tokens, sfam, wrong, coordinates=coords)
    ctx.true("audit: the exact values pass, a claim off by 1e-6 at one coordinate fails there",
             rep_ok.passed and rep_bad.failed == [rep_ok.labels[big]])
    return ctx.conclude("the masked product family and the coordinate audit match enumeration")


def _at(values, coords, P):
    """``values`` placed at ``coords`` in a zero vector of length P."""
    out = np.zeros(P)
    out[coords] = values
    return out
