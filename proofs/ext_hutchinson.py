"""ext-hutchinson: the exact law of Hutchinson's diagonal estimator ``v ⊙ (I(θ) v)`` (beyond the
paper: the estimator gate's ``which="hutchinson-rademacher"`` / ``"hutchinson-gaussian"``).

With probes of i.i.d. entries (mean 0, variance 1, fourth cumulant ``κ``: −2 Rademacher, 0
Gaussian) and ``F = I(θ)`` exact, the claim (:mod:`fisher_verify._src.testing.gate_kinds`):

* ``E v_i (Fv)_i = F_ii``;
* ``Cov(⟨a, D̂⟩, ⟨b, D̂⟩) = aᵀ C b``, ``C = F∘F + Diag(Σ_j F_ij² + κ F_ii²)``: so
  ``Var D̂_i = Σ_{j≠i} F_ij²`` (Rademacher) and ``F_ii² + Σ_j F_ij²`` (Gaussian);
* the fourth central moment of ``D̂_i``: ``3τ⁴ − 2 Σ_{j≠i} F_ij⁴`` (Rademacher) and
  ``60F_ii⁴ + 60F_ii²τ² + 9τ⁴`` (Gaussian), ``τ² = Σ_{j≠i} F_ij²``; a mean of ``n`` probes.

**Independent route.** Rademacher: all ``2^P`` probe vectors (P = 7: 128). Gaussian: the tensor
product of 5-node Gauss–Hermite rules, exact for polynomials of degree ≤ 9 in each coordinate,
so exact for the fourth moment (degree 8) (5⁷ = 78125 nodes). ``F`` is the exact Fisher of a
Bernoulli and of a categorical network (``P = 7`` and ``P = 10`` under thorough: 1024 and
5¹⁰ would be slow, so thorough adds only the Rademacher case at P = 10). Compared at ``1e-9``
relative to the largest compared value.
"""

import itertools

import numpy as np

from fisher_verify._src.proofs.support import close_statistics_law, weighted_moments
from fisher_verify.proofs import statement

RTOL = 1e-9


def _law(F, V, probe):
    P = F.shape[0]
    if probe == "rademacher":
        pts = np.array(list(itertools.product([-1.0, 1.0], repeat=P)))
        wts = np.full(len(pts), 1.0 / len(pts))
    else:
        z, wz = np.polynomial.hermite_e.hermegauss(5)
        pts = np.array(list(itertools.product(z, repeat=P)))
        wts = np.prod(np.array(list(itertools.product(wz / wz.sum(), repeat=P))), axis=1)
    D = pts * (pts @ F)
    st = np.concatenate([D, D @ (V * V).T], axis=1)
    return weighted_moments(st, wts)


@statement(
    "ext-hutchinson",
    title="Beyond the paper: the exact law of Hutchinson's diagonal estimator v⊙(I(θ)v)",
    claim=r"\mathbb E\,v\odot Fv=\mathrm{diag}F,\ \mathrm{Var}(v_i(Fv)_i)=\sum_{j\ne i}F_{ij}^2"
    r"\ (\pm1),\ F_{ii}^2+\sum_jF_{ij}^2\ (\mathcal N(0,1))",
    hypotheses=[r"v_j\ \text{i.i.d.},\ \mathbb E v_j=0,\ \mathbb E v_j^2=1", r"F=I(\theta)\ \text{exact}"],
    method="exact enumeration over probe vectors / Gauss–Hermite nodes",
)
def check(ctx):
    """Mean, variance, covariance, combination variance and fourth moments of the Hutchinson
    statistics against enumeration over probes."""
    import fisher_verify as fv
    from fisher_verify._src.testing.gate_kinds import hutchinson_statistics

    nets = [("bernoulli", {}, (1, 2))]
    if ctx.thorough:
        nets.append(("categorical", {"K": 3}, (1, 2)))
    for name, params, widths in nets:
        fam = fv.family(name, **params)
        net = fv.Network.random((*widths, fam.dim), "tanh", fam, 1.0, ctx.rng)
        X = ctx.rng.normal(size=(3, widths[0]))
        F = fv.exact_fisher(net, X)
        P = net.num_params
        V = ctx.rng.normal(size=(2, P))
        V /= np.linalg.norm(V, axis=1, keepdims=True)
        probes = ["rademacher"] if P > 8 else ["rademacher", "gaussian"]
        for probe in probes:
            mean, cov, m4 = _law(F, V, probe)
            off = np.sum(F * F, axis=1) - np.diag(F) ** 2
            closed = off if probe == "rademacher" else np.diag(F) ** 2 + np.sum(F * F, axis=1)
            where = dict(family=name, probe=probe)
            ctx.close(f"{name}, {probe}: Var D̂_i enumerated = the closed form", np.diag(cov)[:P],
                      closed, rtol=RTOL, **where)
            for n in (1, 4):
                ex = hutchinson_statistics(net, X, f"hutchinson-{probe}", n, V)
                tag = f"{name}, {probe}, n = {n}"
                close_statistics_law(ctx, tag, ex, fam, mean, cov, n, RTOL, **where)
                want = (m4 + 3 * (n - 1) * np.diag(cov) ** 2) / n**3
                ctx.close(f"{tag}: fourth central moments", ex.fourth[:P], want[:P], rtol=RTOL,
                          **where)
