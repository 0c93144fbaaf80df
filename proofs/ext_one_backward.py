"""ext-one-backward: the exact law of Sun's one-backward estimator (beyond the paper; the
estimator gate's ``kind=OneBackward(...)``; Sun, ICLR 2026, arXiv 2505.13614).

**Form derived** (its definition is not in STATEMENTS.md). For a categorical output with logits
``h`` and probabilities ``p`` held fixed (detached), draw ``ξ ∈ R^K`` with i.i.d. entries of mean
0, variance 1 and fourth cumulant ``κ`` (Rademacher −2, Gaussian 0), and take one backward pass
of ``s(θ) = Σ_k ξ_k √p_k (h_k − Σ_j p_j h_j)``. Since ``∂s/∂h_a = ξ_a √p_a − p_a Σ_k ξ_k √p_k``,

    ĝ = Jᵀ B ξ,   B = diag(√p) − p √pᵀ,   B Bᵀ = diag p − 2 p pᵀ + p (√pᵀ√p) pᵀ = diag p − p pᵀ = I(h),

so ``E ĝĝᵀ = Jᵀ I(h) J``: unbiased for one input's Fisher (eq-6); averaged over the inputs,
for I(θ). Every statistic ``⟨W, ĝĝᵀ⟩ = ξᵀQξ``, ``Q = BᵀJWJᵀB``, has ``E = tr Q`` and
``Cov(ξᵀQξ, ξᵀRξ) = 2 tr(QR) + κ Σ_k Q_kk R_kk``; a diagonal element (``Q = a aᵀ``,
``a_k = √p_k (Jᵀ(e_k − p))_i``) has ``Var = 2(Σ a_k²)² − 2 Σ a_k⁴`` (Rademacher) or
``2(Σ a_k²)²`` (Gaussian), so its sd is at most ``√2 ×`` its mean. Any family with a square
root ``B Bᵀ = I(h)`` works the same (the symmetric root for the others). Without the centring
(``B = diag √p``) the estimator is unbiased for ``Jᵀ diag(p) J ⪰ I(θ)`` (``diag p − I(h) = p pᵀ``).

Claims checked: ``B Bᵀ = I(h)`` (categorical, Sun's form; Bernoulli, the symmetric root); one
torch backward pass of ``s`` (autograd, detached p) is ``Jᵀ B ξ``; mean, variance, covariance,
combination variance and fourth moments of the gate's statistics
(:func:`~fisher_verify._src.testing.gate_onebackward.one_backward_statistics`) against enumeration
over the probes of M = 2 inputs (Rademacher: all ``2^{K M}`` sign vectors; Gaussian: the tensor
product of 5-node Gauss–Hermite rules, exact to degree 9 per coordinate, so for the eighth-degree
fourth moments); the diagonal closed forms and the ``√2`` bound; ``Jᵀ diag(p) J − I(θ) ⪰ 0``.
Compared at ``1e-9`` relative to the largest compared value.
"""

import itertools

import numpy as np

from fisher_verify._src.proofs.support import close_statistics_law, weighted_moments
from fisher_verify.proofs import statement

RTOL = 1e-9


def _probe_nodes(probe, count):
    if probe == "rademacher":
        pts = np.array(list(itertools.product([-1.0, 1.0], repeat=count)))
        return pts, np.full(len(pts), 1.0 / len(pts))
    z, wz = np.polynomial.hermite_e.hermegauss(5)
    pts = np.array(list(itertools.product(z, repeat=count)))
    wts = np.prod(np.array(list(itertools.product(wz / wz.sum(), repeat=count))), axis=1)
    return pts, wts


def _enumerated(net, X, B, V, probe, diagonal):
    """The gate's statistics of (1/M) Σ_m ĝ_m ĝ_mᵀ at every probe node (independent ξ_m)."""
    J = net.jacobian(X)
    M, _, K = B.shape
    pts, wts = _probe_nodes(probe, K * M)
    xi = pts.reshape(len(pts), M, K)
    g = np.einsum("mdp,mdk,qmk->qmp", J, B, xi)  # ĝ_m = J_mᵀ B_m ξ_m at each node
    diag = np.einsum("qmp,qmp->qp", g, g) / M
    if diagonal:
        dirs = diag @ (V * V).T
    else:
        dirs = np.einsum("qmp,kp->qmk", g, V)
        dirs = np.einsum("qmk,qmk->qk", dirs, dirs) / M
    return weighted_moments(np.concatenate([diag, dirs], axis=1), wts)


@statement(
    "ext-one-backward",
    title="Beyond the paper: the exact law of Sun's one-backward estimator (form derived)",
    claim=r"\hat g=J^\top(\mathrm{diag}\sqrt p-p\sqrt p^\top)\xi,\ \mathbb E\,\hat g\hat g^\top="
    r"J^\top(\mathrm{diag}\,p-pp^\top)J,\ \mathrm{Var}\,\hat g_i^2=2(\textstyle\sum_k a_k^2)^2"
    r"+\kappa\sum_k a_k^4\le 2(\mathbb E\hat g_i^2)^2",
    hypotheses=[r"\xi_k\ \text{i.i.d.},\ \mathbb E\xi_k=0,\ \mathbb E\xi_k^2=1,\ \kappa_4(\xi_k)=\kappa",
                r"p\ \text{detached}"],
    method="autograd of s(θ), enumeration over probes / Gauss–Hermite nodes",
)
def check(ctx):
    """Sun's form, its torch backward pass and the gate's law against enumeration."""
    import torch

    import fisher_verify as fv
    from fisher_verify._src.testing.gate_onebackward import (
        OneBackward,
        one_backward_roots,
        one_backward_statistics,
    )

    cases = [("categorical", {"K": 3}, True), ("bernoulli", {}, True), ("categorical", {"K": 3}, False)]
    probes = ["rademacher", "gaussian"]
    for name, params, centered in cases:
        fam = fv.family(name, **params)
        net = fv.Network.random((2, 2, fam.dim), "tanh", fam, 1.5, ctx.rng)
        X = ctx.rng.normal(size=(2, 2))
        h = net.forward(X)
        B = one_backward_roots(fam, h, centered)
        where = dict(family=fam.label, centered=centered)
        tag = f"{fam.label}{'' if centered else ', uncentred'}"
        Ih = np.asarray(fam.fisher(h))
        if centered:
            ctx.close(f"{tag}: B Bᵀ = I(h)", np.einsum("mak,mbk->mab", B, B), Ih, rtol=RTOL, **where)
        else:
            p = np.asarray(fam.mean(h))
            env = np.einsum("mak,mbk->mab", B, B)
            ctx.close(f"{tag}: B Bᵀ = diag p", env, p[:, :, None] * np.eye(p.shape[1]), rtol=RTOL,
                      **where)
            J = net.jacobian(X)
            gap = np.einsum("map,mab,mbq->pq", J, env - Ih, J) / len(X)
            low = float(np.min(np.linalg.eigvalsh(gap)))
            ctx.true(f"{tag}: Jᵀ diag(p) J − I(θ) ⪰ 0", low >= -1e-12 * float(np.max(np.abs(gap))),
                     f"smallest eigenvalue {low:.3g}", **where)
        if name == "categorical":
            # one backward pass of s(θ) with p detached is Jᵀ B ξ (autograd, independent of B)
            th = torch.tensor(net.theta, requires_grad=True)
            xi = torch.tensor(ctx.rng.choice([-1.0, 1.0], size=fam.dim))
            hx = net.torch_forward(th, torch.tensor(X[0]))
            pr = torch.softmax(hx, -1).detach()
            centre = (pr * hx).sum() if centered else 0.0
            s = (xi * pr.sqrt() * (hx - centre)).sum()
            (grad,) = torch.autograd.grad(s, th)
            want = net.jacobian(X[:1])[0].T @ B[0] @ xi.numpy()
            ctx.close(f"{tag}: autograd of s(θ) = Jᵀ B ξ", grad.numpy(), want, rtol=RTOL, **where)
        P = net.num_params
        V = ctx.rng.normal(size=(2, P))
        V /= np.linalg.norm(V, axis=1, keepdims=True)
        for probe in probes:
            for diagonal in (True, False):
                mean, cov, m4 = _enumerated(net, X, B, V, probe, diagonal)
                kind = OneBackward(probe, centered)
                for n in (1, 3):
                    ex = one_backward_statistics(kind, net, X, n, V, diagonal)
                    t = f"{tag}, {probe}, {'diagonal' if diagonal else 'full'}, n = {n}"
                    w = dict(where, probe=probe, diagonal=diagonal, n=n)
                    # a Bernoulli output with Rademacher ξ is deterministic (ξ² = 1): the
                    # variances vanish, so they are compared on the scale of the mean squared
                    top = float(np.max(np.abs(mean)))
                    close_statistics_law(ctx, t, ex, fam, mean, cov, n, RTOL, scale=top**2, **w)
                    one = slice(0, P) if diagonal else slice(None)
                    want = (m4 + 3 * (n - 1) * np.diag(cov) ** 2) / n**3
                    ctx.close(f"{t}: fourth central moments", ex.fourth[one], want[one],
                              rtol=RTOL, scale=top**4, **w)
                if diagonal and name == "categorical" and centered:
                    # the closed forms of the diagonal, per input (M = 1), and the √2 bound
                    for m in range(len(X)):
                        a_k = np.einsum("dk,dp->kp", B[m], net.jacobian(X[m : m + 1])[0])
                        s2, s4 = np.sum(a_k**2, axis=0), np.sum(a_k**4, axis=0)
                        closed = 2 * s2**2 - (2 * s4 if probe == "rademacher" else 0.0)
                        ex1 = one_backward_statistics(kind, net, X[m : m + 1], 1, V[:0], True)
                        ctx.close(f"{tag}, {probe}, input {m}: Var ĝ_i² = closed form",
                                  ex1.variance, closed, rtol=RTOL, **where)
                    ex = one_backward_statistics(kind, net, X, 1, V[:0], True)
                    worst = float(np.max(ex.variance / (2 * ex.expected**2)))
                    ctx.true(f"{tag}, {probe}: sd ≤ √2 × the true diagonal (M = 2 inputs)",
                             worst <= 1 + 1e-12, f"max Var/(2 I_ii²) = {worst:.4g}", **where)
