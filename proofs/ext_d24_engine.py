"""ext-d24-engine: the follow-up's diagonal results on CNNs through the any-model engine (beyond
the paper: Soen & Sun, NeurIPS 2024, arXiv 2402.05379; issue 17). ``fv.variance(..., diagonal=True)``
gives the d24-var closed forms for a Conv2d + smooth activation + pooling + Linear network and
for a ReLU CNN with max pooling at inputs away from its kinks, the last Linear layer's Var(Î₂)
is 0 (d24-last-layer) and the ReLU CNN's whole Var(Î₂) diagonal is 0 (d24-pwl)."""

import numpy as np

from fisher_verify.proofs import statement


def _dense(model, X):
    """h (M, n_L), J (M, n_L, P) and the output-Hessian diagonals (M, n_L, P) by plain autograd
    double backward on the module (torch.func's second derivatives are not used: they are
    wrong through layer_norm and attention, and this route must not share code with the
    engine)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    hs, Js, Hs = [], [], []
    for x in X:
        h = model(x[None])[0]
        rows, hrows = [], []
        for a in range(h.shape[0]):
            g = torch.autograd.grad(h[a], params, create_graph=True, retain_graph=True)
            flat = torch.cat([gi.reshape(-1) for gi in g])
            P = flat.numel()
            # every row of ∂²h^a/∂θ² at once: one batched backward of e_iᵀ ∂h^a/∂θ (vmap over
            # the standard basis), still autograd's own double backward
            second = torch.autograd.grad(flat, params, grad_outputs=torch.eye(P, dtype=flat.dtype),
                                         retain_graph=True, allow_unused=True,
                                         is_grads_batched=True)
            H = torch.cat([(torch.zeros((P, *p.shape), dtype=flat.dtype) if t is None else t
                            ).reshape(P, -1) for t, p in zip(second, params)], dim=1)
            rows.append(flat.detach().numpy())
            hrows.append(torch.diagonal(H).detach().numpy())
        hs.append(h.detach().numpy())
        Js.append(np.stack(rows))
        Hs.append(np.stack(hrows))
    return np.stack(hs), np.stack(Js), np.stack(Hs)


@statement(
    "ext-d24-engine",
    title="Beyond the paper: the diagonal results on CNNs through the any-model engine",
    claim=r"\texttt{model\_variance\_diagonal} = \text{d24-var};\ "
    r"\operatorname{Var}(\hat I_2)_{ii} = 0 \text{ on the last Linear layer and, for a ReLU CNN "
    r"with max pooling, on every } i",
    hypotheses=[r"\text{CNN: Conv2d, activation, pooling, Linear}",
                r"\text{inputs away from the kinks (thm-3-ae)}"],
    method="property over random networks",
)
def check(ctx):
    """For a smooth CNN (Conv2d, tanh, average pooling, Linear, softplus, Linear) and a ReLU CNN
    (Conv2d, ReLU, 2×2 max pooling, Linear, ReLU, Linear), both exact Var(Î₂) routes of the
    engine ("auto", whose hidden Linear goes through the per-site closed form, and "hessian"),
    with categorical (K = 3) outputs (and normal × Bernoulli in the thorough profile) at three
    random inputs: the engine's exact Var(Î₁)_ii and Var(Î₂)_ii equal the
    d24-var closed forms from dense plain-autograd J and output-Hessian diagonals (κ₄ and I(h)
    from the family); the last Linear layer's Var(Î₂)_ii and, for the ReLU CNN, every
    Var(Î₂)_ii are 0 at the scale of (1/(M²N)) Σ uᵀIu (the same form with first derivatives:
    the size of the terms that cancel); models.structure names the last layer and the
    piecewise-linear model, so fv.analyze's reasons are those of the checks."""
    import torch

    # torch's RNG is forked (the construction draws from it) and its intra-op threads set to 1
    # for the block: the reference's many tiny double-backward ops are far slower with 2
    # threads on a busy machine, and the results do not depend on the thread count
    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)
        try:
            torch.manual_seed(int(ctx.rng.integers(2**31)))
            return _body(ctx)
        finally:
            torch.set_num_threads(before)


def _body(ctx):
    import torch
    from torch import nn

    import fisher_verify as fv
    from fisher_verify._src.fisher import diagonal as dg
    from fisher_verify._src.models.structure import model_structure

    n, rtol = 2, 1e-9
    fams = [("categorical", fv.family("categorical", K=3))]
    fams += ctx.pick([], [("normal x bernoulli",
                           fv.product(fv.family("normal"), fv.family("bernoulli")))])
    k = 0
    for fname, fam in fams:
        K = fam.dim
        models = [
            ("smooth cnn", False, nn.Sequential(
                nn.Conv2d(1, 2, 2), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 9),
                nn.Softplus(), nn.Linear(9, K)), 5),
            ("relu cnn", True, nn.Sequential(
                nn.Conv2d(1, 2, 2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 9),
                nn.ReLU(), nn.Linear(9, K)), 5),
        ]
        for mname, pwl, model, side in models:
            X = torch.as_tensor(ctx.rng.normal(size=(3, 1, side, side)), dtype=torch.float64)
            model = model.double()
            where = f"{mname}, {fname}"
            e1 = fv.variance(model, X, fam, which="I1", n=n, progress=False, diagonal=True)
            names = [nm for nm, p in model.named_parameters() if p.requires_grad]
            v1 = np.concatenate([e1[nm].reshape(-1).numpy() for nm in names])
            # both exact routes of the engine: "auto" (what users get: the 81 weights of the
            # hidden Linear go through its per-site closed form, above EXACT_TENSOR_LIMIT) and
            # "hessian" (per-tensor Hessian diagonals)
            v2s = {}
            for method in ("auto", "hessian"):
                e2 = fv.variance(model, X, fam, which="I2", n=n, progress=False,
                                                method=method, diagonal=True)
                ctx.true(f"{where}: engine Var(I2) ({method}) is exact", all(e2.exact.values()),
                         net=k)
                v2s[method] = np.concatenate([e2[nm].reshape(-1).numpy() for nm in names])
            h, J, Hd = _dense(model, X)
            I = np.asarray(fam.fisher(h))
            c1, c2 = dg.diagonal_variances(J, Hd, I, np.asarray(fam.kappa4(h)), n)
            M = X.shape[0]
            quad = np.einsum("mai,mab,mbi->i", J, I, J) / (M * M * n)
            ctx.close(f"{where}: engine Var(I1)_ii = d24-var closed form (dense J)", v1, c1,
                      rtol, net=k)
            for method, v2 in v2s.items():
                ctx.close(f"{where}: engine Var(I2)_ii ({method}) = d24-var closed form "
                          "(dense H)", v2, c2, rtol, scale=float(np.max(quad)), net=k)
            sizes = [int(dict(model.named_parameters())[nm].numel()) for nm in names]
            last = list(model.named_children())[-1][0]
            lo = sum(s for nm, s in zip(names, sizes) if not nm.startswith(last + "."))
            for method, v2 in v2s.items():
                ctx.close(f"{where}: last Linear layer Var(I2)_ii ({method}) = 0 "
                          "(d24-last-layer)", v2[lo:], 0.0, rtol,
                          scale=float(np.max(quad[lo:])), net=k)
                if pwl:
                    ctx.close(f"{where}: every Var(I2)_ii ({method}) = 0 (d24-pwl)", v2, 0.0,
                              rtol, scale=float(np.max(quad)), net=k)
            ctx.true(f"{where}: the last layer's Var(I1) is not 0 (the check is not vacuous)",
                     float(np.max(c1[lo:])) > 0, net=k)
            if not pwl:
                ctx.true(f"{where}: the smooth CNN's Var(I2) is not 0 before the last layer",
                         float(np.max(c2[:lo])) > 1e-6 * float(np.max(quad)), net=k)
            params = {nm: p.detach() for nm, p in model.named_parameters()}
            st = model_structure(model, params, {}, X[:1])
            ctx.true(f"{where}: structure: h_L is affine in exactly the last layer",
                     st.affine == {nm for nm in names if nm.startswith(last + ".")}, net=k)
            ctx.true(f"{where}: structure: piecewise linear iff the ReLU CNN",
                     st.piecewise_linear == pwl, net=k)
            k += 1
    ctx.record("models", k)
    return ctx.conclude(f"{k} CNNs (smooth and ReLU with max pooling, {len(fams)} families): the "
                        "engine "
                        "gives the d24-var closed forms, 0 on the last layer and, for ReLU, 0 "
                        "on the whole Var(I2) diagonal")
