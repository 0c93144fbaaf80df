"""ext-standard-errors: every sampled or Hutchinson estimate's standard error against the exact
sampling variance of the estimate.

Every stochastic estimate of the library (sampled input pairs for the thm-7/thm-8 norms,
Hutchinson probes for ‖Cov(Î₂)‖_F and for the Var(Î₂) diagonal of any model) is an order-2
U-statistic ``U`` over S i.i.d. draws with its delete-one jackknife standard error
(``fisher/ustat.py``); sums over parameter tensors take the jackknife of the summed delete-one
values (``models/diagonals.py``, ``Diagonals.sum_over``).

Exact values by enumeration, on a small case with a real kernel: the draws are Rademacher
probes ``v ∈ {±1}^p`` over one parameter block of a random network's output Hessian ``H``
(p = 3, two outputs, a non-diagonal p.s.d. output weight), the Hutchinson kernel per entry i is
``f_i(v, v') = d(v)_iᵀ I d(v')_i`` with ``d(v)_i = v_i (H v)_i`` (the output-wise vector). All
``8^S`` probe tuples (S = 4) are enumerated (one ordering per multiset, weighted: the statistics
are symmetric); for each, the library's U and standard error.
Independently (Hoeffding decomposition, ``f = θ + g(v) + g(v') + ψ``, ``ζ₁ = Var g``,
``σ_ψ² = Var ψ`` by enumerating pairs):

    Var(U)  = 4ζ₁/S + 2σ_ψ²/(S(S−1)),      E[se²] = 4ζ₁/S + 4σ_ψ²/(S(S−2))

(the jackknife's linear part is exact, its degenerate part overstates by
``2σ_ψ²/((S−1)(S−2))``). So E[se²] is pinned to the exact sampling variance plus a known,
non-negative excess: an se √S too large (E[se²] S times too large), or a sum's se taken as the
sum of per-tensor se's, fails.

End to end through the any-model Hutchinson path (``fv.variance(..., diagonal=True)``): a torch
MLP with one trainable two-entry tensor, every S-tuple of its probes enumerated (S = 3), the
values' mean and variance and the mean stderr² against the same exact formulas with the kernel
from the model's dense Hessian; and through ``thm8_large``'s Hutchinson route for ‖Cov(Î₂)‖_F
(``models/mlp.py``): every multiset of S = 3 of the 16 probe values of a P = 4 network through
the library's combination, the squared norm's mean, variance and stderr² and the rhs's
stderr² against the exact values for the kernel ``I² ‖Hv‖² ‖Hv'‖²``.
The sampled input pairs of the thm-7/thm-8 norms (``mlp_norms.pair_norm``, inputs drawn
without replacement) share ``ustat``; their own combination is not enumerated here.
"""

import itertools

import numpy as np

from fisher_verify.proofs import statement

S = 4
S_MODEL = 3  # probes in the model and thm8_large checks (their kernels have 4 and 16 values)


def _kernel_case(ctx):
    """(probe values (V, p), per-entry d vectors (V, p, n_L), I (n_L, n_L))."""
    import fisher_verify as fv

    net = fv.Network.random([2, 3, 2], "tanh",
                            fv.product(fv.family("bernoulli"), fv.family("poisson")), 1.0, ctx.rng)
    x = ctx.rng.normal(size=2)
    H = np.asarray(net.output_hessians(x))[:, :3, :3]  # first three weights of layer 0
    i_out = np.asarray(net.family.fisher(net.forward(x)))
    # a non-diagonal p.s.d. weight (as a categorical I(h_L) is) so cross-output terms count
    i_out = i_out + 0.3 * np.array([[0.0, 1.0], [1.0, 0.0]]) * np.sqrt(np.prod(np.diag(i_out)))
    vals = np.array(list(itertools.product((-1.0, 1.0), repeat=3)))  # (8, 3)
    d = vals[:, None, :] * np.einsum("apq,vq->vap", H, vals)  # (V, n_L, p)
    return vals, np.transpose(d, (0, 2, 1)), i_out


def _pair_kernel(d, i_out):
    """f[v, v', i] = d(v)_iᵀ I d(v')_i, shape (V, V, p)."""
    return np.einsum("via,ab,wib->vwi", d, i_out, d)


def exact_moments(f, S=S):
    """θ, Var(U) and E[se²] of the order-2 U over S uniform draws from the Hoeffding
    decomposition of the kernel f (V, V, ...)."""
    theta = f.mean(axis=(0, 1))
    g = f.mean(axis=1) - theta
    zeta1 = np.mean(g**2, axis=0)
    psi = f - theta - g[:, None] - g[None, :]
    s_psi = np.mean(psi**2, axis=(0, 1))
    var_u = 4 * zeta1 / S + 2 * s_psi / (S * (S - 1))
    e_se2 = 4 * zeta1 / S + 4 * s_psi / (S * (S - 2))
    return theta, var_u, e_se2


def _multisets(V, k):
    """Every multiset of k draws out of V values with its probability under uniform i.i.d.
    draws (the statistics are symmetric, so one ordering per multiset suffices)."""
    import math

    for tup in itertools.combinations_with_replacement(range(V), k):
        counts = np.bincount(tup, minlength=V)
        yield tup, math.factorial(k) / np.prod([math.factorial(c) for c in counts]) / V**k


def library_over_tuples(f, split):
    """Enumerate all S-tuples of draws (as weighted multisets): the library's U, se per entry,
    and the se of the sum over two 'tensors' (entries[:split], entries[split:]) by
    Diagonals.sum_over. Returns the weights and the three arrays."""
    import torch

    from fisher_verify._src.fisher.ustat import jackknife_stderr, u_statistic_deleted
    from fisher_verify._src.models.workspace import Diagonals

    ft = torch.as_tensor(f)
    ws, us, ses, sums = [], [], [], []
    for tup, w in _multisets(f.shape[0], S):
        idx = torch.as_tensor(tup)
        F = ft[idx][:, idx]  # (S, S, p)
        total, self_t = F.sum((0, 1)), torch.diagonal(F).T  # (p,), (S, p)
        U, U_del = u_statistic_deleted(total, self_t, F.sum(1))
        ws.append(w)
        us.append(U.numpy())
        ses.append(jackknife_stderr(U_del).numpy())
        dg = Diagonals({"a": U[:split], "b": U[split:]}, {"a": False, "b": False})
        dg.jackknife = {"a": U_del[:, :split].sum(-1), "b": U_del[:, split:].sum(-1)}
        sums.append(dg.sum_over(["a", "b"])[1])
    return np.array(ws), np.array(us), np.array(ses), np.array(sums)


def model_hutchinson(ctx):
    """The any-model Hutchinson path (models/hessian.py): a torch MLP with one trainable tensor
    of two entries (a full 2 x 2 Hessian block); every S-tuple of its Rademacher probes is fed
    to ``fv.variance(..., diagonal=True, method="hutchinson")`` by substituting ``torch.randint`` for the
    call (restored after). Returns (values, stderrs) over the tuples and the kernel from the
    dense Hessian of the model (torch.func)."""
    import torch
    from torch.func import functional_call, hessian

    import fisher_verify as fv

    gen = torch.Generator().manual_seed(int(ctx.rng.integers(2**31)))
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Tanh(), torch.nn.Linear(1, 2))
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    params = dict(model.named_parameters())
    for name, p in params.items():
        p.requires_grad_(name == "0.weight")
    fam = fv.product(fv.family("bernoulli"), fv.family("poisson"))
    x = torch.as_tensor(ctx.rng.normal(size=(1, 2)))

    def out(w0):
        return functional_call(model, {**params, "0.weight": w0.reshape(1, 2)}, (x,))[0]

    w0 = params["0.weight"].detach().reshape(2)
    H = hessian(out)(w0).detach().numpy()
    i_out = np.asarray(fam.fisher(out(w0).detach().numpy()))
    vals = np.array(list(itertools.product((-1.0, 1.0), repeat=2)))
    d = np.transpose(vals[:, None, :] * np.einsum("apq,vq->vap", H, vals), (0, 2, 1))
    real = torch.randint
    weights, values, ses = [], [], []
    try:
        for tup, w in _multisets(len(vals), S_MODEL):
            bits = torch.as_tensor((vals[list(tup)] + 1) / 2, dtype=torch.int64)

            def fake(low, high, size, generator=None, _b=bits):
                if tuple(size[2:]) == (1, 2):
                    return _b.reshape(size)
                return real(low, high, size, generator=generator)

            torch.randint = fake
            res = fv.variance(model, x, fam, which="I2", n=1,
                                             method="hutchinson", probes=S_MODEL, progress=False, diagonal=True)
            torch.randint = real
            weights.append(w)
            values.append(res["0.weight"].detach().numpy().reshape(2))
            ses.append(res.stderr["0.weight"].detach().numpy().reshape(2))
    finally:
        torch.randint = real
    return np.array(weights), np.array(values), np.array(ses), _pair_kernel(d, i_out)


def thm8_hutchinson(ctx):
    """thm8_large's Hutchinson route (models/mlp.py) on a one-output network with P = 4: the
    trace samples ‖Hv‖² of all 16 Rademacher probes (torch.randint substituted for the one
    call, restored after), then every multiset of S_MODEL of them, weighted by its number of
    orderings, through the library's combination. Returns the exact-expectation moments
    (E[sq], E[sq²], E[se_sq²], E[rhs se²]) and the kernel / per-probe rhs terms."""
    import torch

    import fisher_verify as fv
    from fisher_verify._src.models import mlp, mlp_bounds
    from fisher_verify._src.proofs.support import dense_derivatives

    net = fv.Network.random([1, 1, 1], "tanh", fv.family("poisson"), 1.0, ctx.rng)
    x = ctx.rng.normal(size=(1, 1))
    vals = np.array(list(itertools.product((-1.0, 1.0), repeat=net.num_params)))
    bits = torch.as_tensor((vals + 1) / 2, dtype=torch.int64)
    real = torch.randint
    try:
        torch.randint = lambda low, high, size, generator=None, device=None: bits[: size[0]]
        tr = mlp_bounds.hessian_traces(net, x, method="hutchinson", probes=len(vals))
    finally:
        torch.randint = real
    _, H = dense_derivatives(net, x)
    i1 = float(np.asarray(net.family.fisher(net.forward(x))).reshape(-1)[0])
    hv2 = (np.einsum("pq,vq->vp", H[0, 0], vals) ** 2).sum(1)
    s = mlp._setup(net, x, None, None)
    acc = np.zeros(4)
    for tup, weight in _multisets(len(vals), S_MODEL):
        smp = tr.samples[list(tup)]
        lhs, rhs = mlp_bounds._thm8_parts(
            s, mlp_bounds.HessianTraces(smp.mean(0), smp, False, "hutchinson", S_MODEL), 1.0)
        sq, se = lhs.details["squared_norm"], lhs.details["squared_norm_stderr"]
        acc += weight * np.array([sq, sq * sq, se * se, rhs.stderr**2])
    return acc, i1 * i1 * np.outer(hv2, hv2), i1 * hv2, tr.samples.numpy().reshape(-1), hv2


@statement(
    "ext-standard-errors",
    title="Standard errors of sampled estimates",
    claim=r"\mathbb{E}[\widehat{\mathrm{se}}^2] = \operatorname{Var}(U) + "
    r"\tfrac{2\sigma_\psi^2}{(S-1)(S-2)},\quad \operatorname{Var}(U) = \tfrac{4\zeta_1}{S}"
    r" + \tfrac{2\sigma_\psi^2}{S(S-1)}",
    hypotheses=[r"S \ge 3 \text{ i.i.d. draws}", r"\text{order-2 U-statistic}"],
    method="exact expectation",
)
def check(ctx):
    """All 8^S Rademacher probe tuples of a Hutchinson kernel from a random two-output network:
    the library's U is unbiased with the exact variance, its jackknife se² and the se² of a sum
    over two tensors have exactly the expectation the Hoeffding decomposition gives."""
    vals, d, i_out = _kernel_case(ctx)
    f = _pair_kernel(d, i_out)  # (8, 8, 3)
    w, us, ses, sums = library_over_tuples(f, 1)
    ctx.close("the multisets' probabilities sum to 1", w.sum(), 1.0, rtol=1e-12)
    theta, var_u, e_se2 = exact_moments(f)
    mean_u = w @ us
    ctx.close("E[U] = E f(v, v') (unbiased)", mean_u, theta, rtol=1e-10)
    ctx.close("Var(U) = 4 zeta1/S + 2 sigma_psi^2/(S(S-1))", w @ us**2 - mean_u**2, var_u,
              rtol=1e-8)
    ctx.close("E[se^2] = 4 zeta1/S + 4 sigma_psi^2/(S(S-2)) (jackknife)", w @ ses**2, e_se2,
              rtol=1e-9)
    ctx.leq("Var(U) <= E[se^2] (the jackknife never understates)", var_u, w @ ses**2)
    ctx.leq("E[se^2] <= Var(U) (2S-2)/(S-2) (its excess is at most the degenerate part)",
            w @ ses**2, var_u * (2 * S - 2) / (S - 2))
    _, var_sum, e_sum = exact_moments(f.sum(-1))
    ctx.close("sum over tensors: E[se_sum^2] = exact value for the summed kernel",
              w @ sums**2, e_sum, rtol=1e-9)
    tot = us.sum(1)
    ctx.close("sum over tensors: Var(sum of U) = exact", w @ tot**2 - (w @ tot) ** 2, var_sum,
              rtol=1e-8)
    mw, mv, ms, mf = model_hutchinson(ctx)
    m_theta, m_var, m_se2 = exact_moments(mf, S_MODEL)
    ctx.true("model: the probes matter (Var(U) > 0)", np.all(m_var > 1e-6 * m_theta))
    ctx.close("model Hutchinson: E[value] = d^T I d (unbiased)", mw @ mv, m_theta, rtol=1e-9)
    ctx.close("model Hutchinson: Var(value) = exact Var(U)", mw @ mv**2 - (mw @ mv) ** 2, m_var,
              rtol=1e-8)
    ctx.close("model Hutchinson: E[stderr^2] = exact E[se^2]", mw @ ms**2, m_se2, rtol=1e-9)
    acc, f8, r8, samples8, hv2 = thm8_hutchinson(ctx)
    ctx.close("thm8_large Hutchinson: per-probe samples = ||H v||^2 (dense Hessian)", samples8,
              hv2, rtol=1e-10)
    t8, v8, e8 = exact_moments(f8, S_MODEL)
    ctx.close("thm8_large Hutchinson: E[squared norm] = exact", acc[0], t8, rtol=1e-9)
    ctx.close("thm8_large Hutchinson: Var(squared norm) = exact Var(U)", acc[1] - acc[0] ** 2, v8,
              rtol=1e-8)
    ctx.close("thm8_large Hutchinson: E[squared-norm stderr^2] = exact E[se^2]", acc[2], e8,
              rtol=1e-9)
    ctx.close("thm8_large Hutchinson: E[rhs stderr^2] = Var(per-probe rhs)/S", acc[3],
              r8.var() / S_MODEL, rtol=1e-9)
    ctx.record("S, multisets", [S, len(us)])
    ctx.record("Var(U), E[se^2] per entry", {"var": var_u, "e_se2": e_se2})
    ctx.record("sum: Var, E[se^2]", [var_sum, e_sum])
    return ctx.conclude(f"E[se^2]/Var(U) in [{np.min(e_se2 / var_u):.3g}, "
                        f"{np.max(e_se2 / var_u):.3g}] as derived, exact over all "
                        f"{8**S} probe tuples; model and thm8_large Hutchinson paths too")
