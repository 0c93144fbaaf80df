"""ext-models-engine: the any-model engine (beyond the paper: the README's "Any PyTorch model").

The README promises eq-6, thm-4 and thm-6 diagonals, and thm-7/thm-8 where exact, for any
torch model, not only the Eq. 3 MLPs of the paper (:mod:`fisher_verify._src.models`). This statement
checks the engine's public functions (``fv.exact_fisher(..., diagonal=True)``,
``fv.variance(..., which="I1"|"I2", diagonal=True)``) and its exact thm-7/thm-8 norms against a dense
reference that shares nothing with it:

* derivatives: full Jacobians ``J_m`` and output Hessians ``H_m`` of ``h_L(x_m)`` by plain
  ``torch.autograd`` (one backward pass per input and output, one more per parameter for the
  Hessian: double backward, never torch.func, whose second derivatives through layer_norm and
  multi-head attention are wrong off the diagonal in torch 2.x), on a float64 copy written here;
* moments: exact enumeration over the labels, never the family's kernels: the categorical's K
  classes, and for a Poisson × Bernoulli product the grid ``{0..Y} × {0, 1}`` with ``Y`` far in
  the Poisson tail (the truncated mass is checked to sum to one at 1e-14). Per input and label
  ``y`` the one-draw estimators are ``Î₁ = s sᵀ`` with ``s = J_mᵀ (t(y) − η)`` and ``Î₂ = J_mᵀ
  ∇²F J_m − Σ_α (t_α(y) − η_α) H^α_m``, so
  ``diag I = (1/M) Σ_m E_y[s_i²]``, ``Var(Î₁)_ii = (1/(M²N)) Σ_m Var_y(s_i²)``,
  ``Var(Î₂)_ii = (1/(M²N)) Σ_m Var_y(Σ_α t_α(y) H^α_{m,ii})``;
* thm-7 and thm-8: the dense formulas of :mod:`fisher_verify._src.fisher.bounds` (``thm7_sides``,
  ``thm8_sides``) fed with those ``J_m``, ``H_m`` and the enumerated ``I_m`` and ``K_m``.

Models: a CNN (Conv2d, SiLU, average pooling, a hidden Linear big enough for the engine's
Linear-output route, tanh), a LayerNorm model, and a token model with ``nn.MultiheadAttention``
and a residual LayerNorm; several inputs each. The Var(Î₂) routes taken are recorded and must
all be exact and include both the per-tensor Hessian block and the Linear-output route.

**Tolerance.** Relative 1e-10 of the largest entry of each array compared (the two routes
differ only by the order of float64 additions over at most a few hundred terms).
"""

from fisher_verify.proofs import statement

#: (model, family) pairs of the quick profile; the thorough profile adds the rest of the grid.
QUICK = (("cnn", "categorical"), ("layernorm", "product"), ("attention", "categorical"),
         ("cnn", "product"))
THOROUGH = (*QUICK, ("layernorm", "categorical"), ("attention", "product"))
#: inputs per model (quick, thorough)
INPUTS = {"cnn": (3, 5), "layernorm": (4, 6), "attention": (2, 4)}
RTOL = 1e-10
N_DRAWS = 3


def _family(name):
    import fisher_verify as fv

    if name == "categorical":
        return fv.family("categorical", K=3)
    return fv.product(fv.family("poisson"), fv.family("bernoulli"))


def _models(kind, n_out, rng, M):
    """``(model, inputs)``: parameters and inputs drawn from ``rng`` (no global torch RNG)."""
    import torch
    from torch import nn

    class Attention(nn.Module):
        """Embedding → self-attention → residual LayerNorm → mean over tokens → Linear."""

        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 4)
            self.att = nn.MultiheadAttention(4, 2, batch_first=True)
            self.ln = nn.LayerNorm(4)
            self.fc = nn.Linear(4, n_out)

        def forward(self, idx):
            e = self.emb(idx)
            a, _ = self.att(e, e, e, need_weights=False)
            return self.fc(self.ln(e + a).mean(1))

    with torch.random.fork_rng(devices=[]):  # construction draws from torch's RNG: keep it
        if kind == "cnn":
            model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.SiLU(), nn.AvgPool2d(2), nn.Flatten(),
                                  nn.Linear(8, 9), nn.Tanh(), nn.Linear(9, n_out))
            X = torch.as_tensor(rng.normal(size=(M, 1, 6, 6)))
        elif kind == "layernorm":
            model = nn.Sequential(nn.Linear(3, 5), nn.LayerNorm(5), nn.Softplus(),
                                  nn.Linear(5, n_out))
            X = torch.as_tensor(rng.normal(size=(M, 3)))
        else:
            model = Attention().eval()
            X = torch.as_tensor(rng.integers(0, 5, size=(M, 4)))
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():  # scale 0.5: natural parameters of moderate size
            p.copy_(torch.as_tensor(0.5 * rng.normal(size=tuple(p.shape))))
    return model, X


def _dense_derivatives(model, X):
    """``h`` (M, n_L), ``J`` (M, n_L, P), ``H`` (M, n_L, P, P) by plain autograd (module doc)."""
    import copy

    import numpy as np
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    m = copy.deepcopy(model).double()
    params = [p for p in m.parameters() if p.requires_grad]

    def flat(grads):
        return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                          for g, p in zip(grads, params)])

    hs, Js, Hs = [], [], []
    with sdpa_kernel([SDPBackend.MATH]), torch.enable_grad():  # the fused kernel: no 2nd derivative
        for x in X:
            x = x.double() if x.is_floating_point() else x
            h = m(x[None])[0]
            hs.append(h.detach().numpy())
            rows, hrows = [], []
            for a in range(h.shape[0]):
                g = flat(torch.autograd.grad(h[a], params, retain_graph=True, create_graph=True,
                                             allow_unused=True))
                rows.append(g.detach().numpy())
                H = np.zeros((g.numel(), g.numel()))
                for i in range(g.numel()):
                    if g[i].requires_grad:  # else ∂h/∂θ_i is constant: a zero row
                        H[i] = flat(torch.autograd.grad(g[i], params, retain_graph=True,
                                                        allow_unused=True)).detach().numpy()
                hrows.append(H)
            Js.append(np.stack(rows))
            Hs.append(np.stack(hrows))
    return np.stack(hs), np.stack(Js), np.stack(Hs)


def _support(name, h):
    """Labels' sufficient statistics ``t`` (S, n_L) and probabilities ``w`` (S,) at ``h``,
    from the densities themselves (exact enumeration; Poisson truncated far in its tail)."""
    import math

    import numpy as np

    if name == "categorical":
        z = np.exp(h - h.max())
        return np.eye(len(h)), z / z.sum()
    lam, logit = math.exp(h[0]), h[1]
    Y = int(lam + 40 * math.sqrt(lam) + 80)
    y = np.arange(Y + 1, dtype=float)
    pois = np.exp(y * h[0] - lam - np.array([math.lgamma(v + 1) for v in y]))
    q1 = 1.0 / (1.0 + math.exp(-logit))
    t = np.array([[a, b] for a in y for b in (0.0, 1.0)])
    w = np.array([pa * pb for pa in pois for pb in (1.0 - q1, q1)])
    return t, w


def _reference(name, h, J, H, n):
    """Every engine quantity by enumeration over the labels (module docstring)."""
    import numpy as np

    M, n_L, P = J.shape
    fisher, v1, v2 = np.zeros(P), np.zeros(P), np.zeros(P)
    Is, Ks, mass = [], [], []
    for m in range(M):
        t, w = _support(name, h[m])
        mass.append(w.sum())
        c = t - w @ t  # t(y) − η
        s = c @ J[m]  # scores (S, P)
        f = w @ s**2
        fisher += f
        v1 += w @ s**4 - f**2
        q = c @ np.diagonal(H[m], axis1=1, axis2=2)  # Σ_α (t_α − η_α) H^α_ii, (S, P)
        v2 += w @ q**2 - (w @ q) ** 2
        Is.append(np.einsum("s,sa,sb->ab", w, c, c))
        Ks.append(np.einsum("s,sa,sb,sc,sd->abcd", w, c, c, c, c))
    scale = M * M * n
    return {"fisher": fisher / M, "var1": v1 / scale, "var2": v2 / scale,
            "I": np.stack(Is), "K": np.stack(Ks), "mass": np.array(mass)}


class _OneThread:
    """torch's intra-op threads set to 1 for the block, then restored: the reference's
    thousands of tiny double-backward ops run ~25x slower in CPU time with 2 threads on a busy
    machine (thread hand-off per op), and the results do not depend on the thread count."""

    def __enter__(self):
        import torch

        self.torch, self.before = torch, torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        self.torch.set_num_threads(self.before)


def _flat(d, model):
    import torch

    names = [k for k, p in model.named_parameters() if p.requires_grad]
    return torch.cat([d[k].detach().reshape(-1).cpu() for k in names]).numpy(), list(d) == names


@statement(
    "ext-models-engine",
    title="Beyond the paper: the any-model engine",
    claim=r"\text{fisher\_verify.models on a CNN, LayerNorm and attention model} = "
    r"\text{dense route: } \operatorname{diag} I(\theta),\ \operatorname{diag}"
    r"\operatorname{Var}(\hat I_{1,2}),\ \text{thm-7 and thm-8 (both sides)}",
    hypotheses=[r"h_L \in C^2(\theta)", r"\text{float64, CPU}"],
    method="property over random models (plain-autograd Jacobians and Hessians, labels "
           "enumerated)",
)
def check(ctx):
    """Each engine quantity against the dense route with labels enumerated, at relative 1e-10
    of the array's largest entry: diag I(θ), the Var(Î₁) and Var(Î₂) diagonals (every
    Var(Î₂) tensor exact), ‖Cov(Î₁)‖_F with both thm-7 bounds, ‖Cov(Î₂)‖_F with thm-8."""
    import warnings

    import fisher_verify as fv
    from fisher_verify._src.fisher.bounds import thm7_sides, thm8_sides
    from fisher_verify._src.models.report import thm7_model, thm8_model
    from fisher_verify._src.models.workspace import open_workspace

    n = N_DRAWS
    cases = ctx.pick(QUICK, THOROUGH)
    routes, notes = set(), {}
    for k, (kind, fam_name) in enumerate(cases):
        fam = _family(fam_name)
        M = INPUTS[kind][1 if ctx.thorough else 0]
        model, X = _models(kind, fam.dim, ctx.rng, M)
        where = f"case {k} {kind} {fam.label} (M = {M})"
        with _OneThread():
            h, J, H = _dense_derivatives(model, X)
        ref = _reference(fam_name, h, J, H, n)
        ctx.close(f"{where}: enumerated label mass is 1", ref["mass"], 1.0, 1e-14, case=k)
        ctx.true(f"{where}: reference not vacuous", min(abs(ref[q]).max() for q in
                                                        ("fisher", "var1", "var2")) > 1e-8)
        with warnings.catch_warnings(), _OneThread():  # thm-8 may take plain autograd too
            warnings.filterwarnings("ignore", message=".*performance drop.*")
            got_f = fv.exact_fisher(model, X, fam, progress=False, diagonal=True)
            got_1 = fv.variance(model, X, fam, which="I1", n=n, progress=False, diagonal=True)
            got_2 = fv.variance(model, X, fam, which="I2", n=n, progress=False, diagonal=True)
            ws = open_workspace(model, X, fam, progress=False)
            b7 = thm7_model(ws, n)
            b8 = thm8_model(ws, n)
        for label, got, want in (("diag I(theta) (eq-6)", got_f, ref["fisher"]),
                                 ("diag Var(I1) (thm-4)", got_1, ref["var1"]),
                                 ("diag Var(I2) (thm-6)", got_2, ref["var2"])):
            flat, ordered = _flat(got, model)
            ctx.true(f"{where}: {label} keyed and ordered as named_parameters", ordered)
            ctx.close(f"{where}: {label}", flat, want, RTOL, case=k)
        ctx.true(f"{where}: every Var(I2) tensor exact", got_2.all_exact,
                 detail=str(got_2.methods))
        routes |= set(got_2.methods.values())
        lhs7, rhs7, spec7 = thm7_sides(J, ref["K"], ref["I"], n)
        lhs8, rhs8 = thm8_sides(H, ref["I"], n)
        ctx.true(f"{where}: thm-7 computed", not isinstance(b7, str), detail=str(b7))
        ctx.true(f"{where}: thm-8 computed exactly", not isinstance(b8, str), detail=str(b8))
        if not isinstance(b7, str):
            for label, got, want in zip(("||Cov(I1)||_F", "thm-7 rhs", "thm-7 spectral"),
                                        b7, (lhs7, rhs7, spec7)):
                ctx.close(f"{where}: {label}", got, want, RTOL, case=k)
        if not isinstance(b8, str):
            notes[where] = b8[2]
            ctx.close(f"{where}: ||Cov(I2)||_F", b8[0], lhs8, RTOL, case=k)
            ctx.close(f"{where}: thm-8 rhs", b8[1], rhs8, RTOL, case=k)
    ctx.true("Var(I2) routes include the Hessian block and the Linear-output route",
             {"hessian", "linear"} <= routes, detail=str(sorted(routes)))
    ctx.record("cases", len(cases))
    ctx.record("Var(I2) routes", sorted(routes))
    ctx.record("thm-8 routes", notes)
    return ctx.conclude(f"{len(cases)} models x families: the engine equals plain-autograd "
                        "derivatives with labels enumerated to 1e-10")
