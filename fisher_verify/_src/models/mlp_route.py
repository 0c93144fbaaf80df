"""The ``"mlp"`` rule at the engine's door: an Eq. 3 MLP recognised in a prepared model.

An ``nn.Sequential`` of ``Linear`` layers and one smooth elementwise activation (what
:func:`fisher_verify._src.networks.torch_import.weights_from_sequential` accepts), with every
parameter trainable and no ``output=`` map, is the Eq. 3 network of the paper: its quantities go
through the analytic factors of :mod:`.mlp` (exact, no factor ``n_L`` at depth, chunked within
the workspace's memory budget) instead of the generic rule, and are handed back per parameter
tensor of the user's module.

The same rule gives ``diag I(θ)`` (eq-6) and the ``Var(Î₁)`` diagonal (thm-4) of such a model
(:func:`sequential_layers`, :func:`mlp_first_sums`), straight from the module's own tensors (no
Eq. 3 ``Network``, no NumPy): one forward pass per batch and lemma-13's recursion
``G_l = (G_{l+1} W_{l+1}) ⊙ σ'(a_l)`` as batched matrix products, where the layer route of
:mod:`.taps` takes ``n_L`` reverse passes and a self-check. It applies to a model whose forward
is exactly that composition: a plain ``nn.Sequential`` of stock ``nn.Linear`` layers separated by
stock element-wise activations (σ' comes from autograd on the activation modules themselves, so
it is autograd's derivative, ReLU's value at 0 included), every parameter trainable, no buffer,
no ``output=`` map, no hook, and no rule of :mod:`.rules` with its own forward for any of its
modules (a kind the user registered is run by the routes that call forwards).

The ``Var(Î₂)`` diagonal (thm-6) of such a model with one Eq. 3 activation between its layers
(:func:`eq3_chain`, :func:`mlp_second_sums`) comes from the module's tensors too: one forward
pass with ``σ'``, ``σ''``, the backward products ``β_k = ∂h_L/∂h_{k+1}`` and the pre-activation
Hessian diagonals of :mod:`.mlp`, summed per parameter tensor with no bias column and no sums
for the last layer, where ``Γ_{L-1} = 0``. :func:`mlp_network` (the Eq. 3 ``Network`` of the
model) remains for the closed-form thm-8 of :mod:`.report`.
"""

from __future__ import annotations

from typing import Any

from .rules import rule_for
from .workspace import MAX_BATCH, Workspace

__all__: list[str] = []  # nothing for other rooms

#: Stock ``torch.nn`` activation classes that act element by element (parameter-free): the
#: ``mlp`` rule's σ between two Linear layers. Compared by identity with ``torch.nn``'s class.
ELEMENTWISE = ("Tanh", "Sigmoid", "Softplus", "GELU", "ReLU", "LeakyReLU", "ELU", "SELU", "CELU",
               "SiLU", "Mish", "Identity", "Hardtanh", "ReLU6", "Softsign", "Tanhshrink",
               "LogSigmoid", "Hardswish", "Hardsigmoid", "Softshrink", "Hardshrink")

#: A Linear layer of the chain: its parameter names and the element-wise modules after it.
Layer = tuple[str, str | None, Any, list[Any]]


def _slope(acts: list[Any], a: Any) -> tuple[Any, Any]:
    """``(σ(a), σ'(a))`` of the element-wise chain ``acts``: autograd's own formula where it is
    one line (Tanh ``1 − y²``, Sigmoid ``(1 − y) y``, ReLU ``[a > 0]``, as torch's backward
    computes them), else by autograd on the modules themselves."""
    import torch
    import torch.nn as nn

    if len(acts) == 1:
        kind = type(acts[0])
        if kind is nn.Tanh:
            y = torch.tanh(a)
            return y, 1.0 - y * y
        if kind is nn.Sigmoid:
            y = torch.sigmoid(a)
            return y, (1.0 - y) * y
        if kind is nn.ReLU:
            return torch.relu(a), (a > 0).to(a.dtype)
    with torch.enable_grad():
        z = a.detach().requires_grad_(True)
        y = z.clone()  # an in-place activation must not write into the leaf
        for act in acts:
            y = act(y)
        (slope,) = torch.autograd.grad(y.sum(), z)
    return y.detach(), slope


def _forward_is_changed(mod: Any, ours: set[int]) -> bool:
    """A hook (other than the engine's own, ``ours``), an instance ``forward`` (a registered
    rule installed on the working copy, a user's patch) or a registered rule with its own
    forward for the module's kind."""
    if (set(mod._forward_hooks) - ours or mod._forward_pre_hooks or mod._backward_hooks
            or getattr(mod, "_backward_pre_hooks", None) or "forward" in vars(mod)):
        return True
    rule = rule_for(mod)
    return rule is not None and rule.forward is not None


def _global_hooks() -> bool:
    from torch.nn.modules import module as m

    names = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
             "_global_backward_pre_hooks")
    return any(getattr(m, n, None) for n in names)


def sequential_layers(ws: Workspace) -> list[Layer] | None:
    """``[(weight name, bias name or None, Linear, [element-wise modules after it])]`` of a model
    the ``mlp`` rule computes exactly (module docstring), else ``None``."""
    import torch.nn as nn

    prep = ws.prep
    mod = prep.module
    if prep.output is not None or type(mod) is not nn.Sequential or prep.fixed:
        return None
    example = ws.example if ws.example is not None else ws.stream.example()
    if example.ndim != 2 or not example.is_floating_point() or _global_hooks():
        return None
    children = list(mod._modules.items())
    if len({id(c) for _, c in children}) != len(children):
        return None  # a module used twice: its parameters enter twice
    ours = set(getattr(ws.taps, "hook_ids", ()))  # LinearTaps' hooks on a working copy
    if _forward_is_changed(mod, ours) or any(_forward_is_changed(c, ours) for _, c in children):
        return None
    layers: list[Layer] = []
    for name, sub in children:
        kind = type(sub).__name__
        if type(sub) is nn.Linear:
            layers.append((f"{name}.weight", f"{name}.bias" if sub.bias is not None else None,
                           sub, []))
        elif layers and kind in ELEMENTWISE and type(sub) is getattr(nn, kind, None):
            layers[-1][3].append(sub)
        else:
            return None
    if not layers or layers[-1][3] or int(example.shape[1]) != layers[0][2].in_features:
        return None
    names = [k for w, b, _, _ in layers for k in (w, b) if k is not None]
    if sorted(names) != sorted(prep.params) or len(set(names)) != len(names):
        return None
    return layers


def _batch(ws: Workspace, layers: list[Layer], factor: int) -> int:
    """Inputs per batch that keep one batch's arrays within the workspace's budget: the
    layers' inputs and pre-activations, and two ``n_L × width`` derivative arrays with the
    family's temporaries (``factor`` numbers per entry)."""
    import torch

    itemsize = 8 if ws.prep.dtype == torch.float64 else 4
    ins = [int(lin.in_features) for _, _, lin, _ in layers]
    outs = [int(lin.out_features) for _, _, lin, _ in layers]
    per_input = 3 * (sum(ins) + sum(outs)) + ws.prep.n_L * max(ins + outs) * (2 + factor)
    return int(max(1, min(MAX_BATCH, (ws.memory // itemsize) // max(1, per_input))))


def mlp_first_sums(ws: Workspace, layers: list[Layer], fisher: bool,
                   variance_1: bool) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Unscaled ``Σ_m uᵀIu`` (eq-6) and ``Σ_m C[u⁴]`` (thm-4) per parameter (flat) and the local
    input count, as :func:`~.diagonals._jacobian_sums`, by lemma-13's factors: with
    ``u = ∂h_L/∂W_l[r,c] = G_l[:, r] x_l[c]``, ``uᵀIu = (g_rᵀ I g_r) x_c²`` and
    ``C[u⁴] = C[g_r⁴] x_c⁴``; for eq-6 alone the rows of ``G_{L-1}`` are those of the family's
    square root ``RᵀR = I(h)`` (``fisher_rows``), so ``g_rᵀ I g_r`` is a sum of squares, as in
    :mod:`.taps`."""
    import torch
    import torch.nn.functional as F

    from .contract import per_parameter_factor

    prep = ws.prep
    n = prep.n_L
    weights = [(prep.params[w], prep.params[b] if b else None) for w, b, _, _ in layers]
    batch = _batch(ws, layers, per_parameter_factor(prep.family, n, variance_1))
    f_sum: dict[str, Any] = {}  # the first batch's sums start them (no zeros to add to)
    v_sum: dict[str, Any] = {}
    count = 0
    last = len(layers) - 1
    for X in ws.batches(batch, "Jacobian rows"):
        xs, slopes = [], []
        h = X
        with torch.no_grad():
            for i, ((W, b), (_, _, _, acts)) in enumerate(zip(weights, layers)):
                xs.append(h)
                h = F.linear(h, W, b)
                if i == last:
                    break
                slope = None
                if acts:
                    h, slope = _slope(acts, h)
                slopes.append(slope)
        prep.family.check_natural(h)
        B = int(X.shape[0])
        quads, excesses = _unit_sums(prep.family, h, weights, slopes, variance_1)
        for i in range(last, -1, -1):
            w_name, b_name = layers[i][0], layers[i][1]
            x2 = xs[i] * xs[i]
            for acc, on, val, xp in ((f_sum, fisher, quads[i], x2),
                                     (v_sum, variance_1, excesses[i],
                                      x2 * x2 if variance_1 else None)):
                if on:  # Σ_m over the batch in one product per layer
                    _add(acc, w_name, (val.T @ xp).reshape(-1))
                    if b_name:
                        _add(acc, b_name, val.sum(0))
        count += B
    zero = prep.flat_zero  # for a process whose shard holds no input (all-reduced after)
    f_sum = {k: f_sum[k] if k in f_sum else zero(k) for k in prep.params} if fisher else {}
    v_sum = {k: v_sum[k] if k in v_sum else zero(k) for k in prep.params} if variance_1 else {}
    return f_sum, v_sum, count


#: Numbers of one chunk's derivative array ``G_l`` (inputs × n_L × width): about 1 MiB in float64,
#: so that the recursion's products and squares stay in cache (a whole batch's ``G_l`` would
#: stream through memory several times, slower than the layer route's n_L reverse passes).
CHUNK_NUMBERS = 1 << 17


def _unit_sums(family: Any, h: Any, weights: list[tuple[Any, Any]], slopes: list[Any],
               variance_1: bool) -> tuple[list[Any], list[Any]]:
    """Per layer ``l``, ``g_rᵀ I g_r`` and (``variance_1``) ``C[g_r⁴]`` for every input and unit
    ``r`` (B, n_{l+1}), with ``g_r = G_l[:, r]`` from ``G_l = (G_{l+1} W_{l+1}) ⊙ σ'(a_l)``
    (lemma-13), computed over chunks of inputs."""
    import torch

    B, n = int(h.shape[0]), int(h.shape[1])
    outs = [int(W.shape[0]) for W, _ in weights]
    quads = [torch.empty(B, o, dtype=h.dtype, device=h.device) for o in outs]
    excesses: list[Any] = [torch.empty_like(q) for q in quads] if variance_1 else [None] * len(outs)
    step = max(1, CHUNK_NUMBERS // (n * max(outs)))
    eye = torch.eye(n, dtype=h.dtype, device=h.device)
    for start in range(0, B, step):
        part = slice(start, start + step)
        mom = family.contractions(h[part])
        b = int(mom.h.shape[0])
        # thm-4 needs the rows of J (one-hot directions); eq-6 alone the rows r_k of the
        # family's square root RᵀR = I(h), so that uᵀIu = Σ_k (r_kᵀ u)² is a sum of squares
        G = eye.expand(b, n, n) if variance_1 else mom.fisher_rows()
        for i in range(len(weights) - 1, -1, -1):
            if variance_1:
                quads[i][part], excesses[i][part] = mom.fisher_and_excess(G, True)
            else:
                torch.sum(G * G, 1, out=quads[i][part])
            if i > 0:  # one (b·n_L, out) × (out, in) product, not b small ones
                W = weights[i][0]
                G = (G.reshape(-1, G.shape[-1]) @ W).reshape(b, n, W.shape[1])
                slope = slopes[i - 1]
                if slope is not None:
                    G.mul_(slope[part, None, :])
    return quads, excesses


def _add(acc: dict[str, Any], key: str, value: Any) -> None:
    """``acc[key] += value``, ``value`` (a tensor of its own) starting the sum."""
    if key in acc:
        acc[key].add_(value)
    else:
        acc[key] = value


def eq3_chain(ws: Workspace) -> tuple[list[Layer], str] | None:
    """The layers of a model that is the Eq. 3 network of one activation (one activation
    module between consecutive Linear layers, all of one Eq. 3 kind: Softplus with
    ``beta = 1``, exact GELU) and that activation's name; ``None`` otherwise. Exactly the models
    :func:`mlp_network` imports, without importing them."""
    from ..networks.torch_import import eq3_activation

    layers = sequential_layers(ws)
    if layers is None:
        return None
    kinds = set()
    for _, _, _, acts in layers[:-1]:
        name = eq3_activation(acts[0]) if len(acts) == 1 else None
        if name is None:
            return None
        kinds.add(name)
    if len(kinds) > 1:
        return None
    return layers, (kinds.pop() if kinds else "identity")


def mlp_second_sums(ws: Workspace, chain: tuple[list[Layer], str]) -> tuple[dict[str, Any], int]:
    """Unscaled ``Σ_m γ_rᵀ I γ_r x_c⁴`` (thm-6's diagonal, module docstring of :mod:`.mlp`) per
    parameter tensor of an Eq. 3 model (:func:`eq3_chain`), and the local input count.

    Straight from the module's own tensors, as :func:`mlp_first_sums`: one forward pass per
    batch with σ', σ'' (:func:`~.mlp.activation_derivatives`), then per chunk of inputs (as many
    as the memory budget holds) the backward products ``β_k = ∂h_L/∂h_{k+1}`` and the pre-activation Hessian
    diagonals of :func:`~.mlp._gamma_diagonals` (no full Hessian, no factor ``n_L`` on the
    width³ terms). The last layer's entries are 0 (``Γ_{L-1} = 0``: ``h_L`` is linear there).
    """
    import torch
    import torch.nn.functional as F

    from ..networks.activations import get_activation
    from .mlp import WeightChain, _gamma_diagonals, _Pass, activation_derivatives, gamma_elements

    layers, name = chain
    prep = ws.prep
    n = prep.n_L
    act = get_activation(name)
    weights = [(prep.params[w], prep.params[b] if b else None) for w, b, _, _ in layers]
    L = len(weights)
    wires = WeightChain([W for W, _ in weights], n)
    widths = [int(weights[0][0].shape[1])] + [int(W.shape[0]) for W, _ in weights]
    per_gamma = gamma_elements(widths, n)
    itemsize = 8 if prep.dtype == torch.float64 else 4
    # inputs per chunk whose β, λ, diag Γ and the route's J or Γ (with temporaries) fit the
    # budget; not cache-sized as mlp_first_sums: here two GEMMs per layer dominate, and larger
    # chunks run them faster (784-1000-1000-10, M = 32: 1.73× diag I at cache-sized chunks,
    # 1.41× at one chunk)
    step = max(1, (ws.memory // itemsize) // max(1, 2 * per_gamma))
    batch = _batch(ws, layers, 2)
    sums: dict[str, Any] = {}
    count = 0
    for X in ws.batches(batch, "Hessian diagonals"):
        xs, d1s, d2s = [], [], []
        h = X
        with torch.no_grad():
            for i, (W, b) in enumerate(weights):
                xs.append(h)
                h = F.linear(h, W, b)
                if i < L - 1:
                    h, e1, e2 = activation_derivatives(name, act.torch_f, h)
                    d1s.append(e1)
                    d2s.append(e2)
            prep.family.check_natural(h)
            B = int(X.shape[0])
            quads = [torch.empty(B, int(W.shape[0]), dtype=h.dtype, device=h.device)
                     for W, _ in weights[:-1]]
            for start in range(0, B if L > 1 else 0, step):  # one layer: h_L linear in θ
                part = slice(start, start + step)
                hp = h[part]
                b_ = int(hp.shape[0])
                d1 = [d[part] for d in d1s]
                beta: list[Any] = [None] * (L - 1)  # β_k (b, n_L, n_{k+1})
                beta[L - 2] = weights[L - 1][0].expand(b_, n, -1)
                for k in range(L - 3, -1, -1):  # one (b·n_L, out) × (out, in) product
                    G = beta[k + 1] * d1[k + 1][:, None, :]
                    Wk = weights[k + 1][0]
                    beta[k] = (G.reshape(-1, G.shape[-1]) @ Wk).reshape(b_, n, Wk.shape[1])
                q = _Pass(h=hp, hbar=[], pre=[], d1=d1, d2=[d[part] for d in d2s], G=[],
                          beta=beta)
                gam = _gamma_diagonals(wires, q)
                mom = prep.family.contractions(hp)
                for i in range(L - 1):
                    quads[i][part] = mom.quad(gam[i], gam[i])
            for i in range(L - 1):
                w_name, b_name = layers[i][0], layers[i][1]
                x2 = xs[i] * xs[i]
                _add(sums, w_name, (quads[i].T @ (x2 * x2)).reshape(-1))
                if b_name:
                    _add(sums, b_name, quads[i].sum(0))
        count += B
    # the last layer (Γ_{L-1} = 0), and every tensor of a shard with no input
    return {k: sums[k] if k in sums else prep.flat_zero(k) for k in prep.params}, count


def mlp_network(ws: Workspace) -> tuple[Any, dict[str, tuple[int, int]]] | None:
    """The Eq. 3 :class:`~fisher_verify.Network` of the working copy and, per parameter name,
    its ``(layer, column slice start)``; ``None`` when the model is not a plain MLP."""
    import torch

    from ..errors import FisherVerifyError
    from ..networks.network import Network
    from ..networks.torch_import import weights_from_sequential

    prep = ws.prep
    mod = prep.module
    if prep.output is not None or not isinstance(mod, torch.nn.Sequential) or prep.fixed:
        return None
    if sequential_layers(ws) is None:  # a hook, a registered rule, a subclass's own forward
        return None
    try:
        # zero bias columns for Linear(bias=False): only the model's own parameters are read
        # back through ``where`` below, and the weights' derivatives do not depend on them
        weights, activation = weights_from_sequential(mod, zero_bias=True)
        # the prepared model's weights are finite and its widths chain (prepare_model): the
        # network is built on them without Network's copy and scan of every weight
        net = Network._from_checked(weights, activation, prep.family)
    except FisherVerifyError:
        return None
    where: dict[str, tuple[int, int]] = {}
    layer = 0
    for i, sub in enumerate(mod):
        if isinstance(sub, torch.nn.Linear):
            where[f"{i}.weight"] = (layer, 0)
            if sub.bias is not None:
                where[f"{i}.bias"] = (layer, -1)
            layer += 1
    if set(where) != set(prep.params):
        return None
    return net, where
