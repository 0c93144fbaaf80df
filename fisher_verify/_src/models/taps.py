"""eq-6 and thm-4 sums through the model's Linear and Conv layers, by plain ``torch.autograd``.

For a layer ``a = W ⋆ x + b`` applied once per input, ``∂h^α/∂W = Σ_s g^α_s ⊗ U_s`` with
``g = ∂h_L/∂a`` at the output positions ``s`` and ``U`` the input patches (lemma-13's
factorisation; one position for a Linear layer on a vector, as in :mod:`.linear`). So one forward
pass of the whole batch and one reverse pass per output direction give every parameter's Jacobian
column, as BackPACK and nngeometry compute them: no per-input ``vmap``, no ``torch.func`` (whose
first use imports ``torch._dynamo``, most of a second), no copy of a model made of stock
``torch.nn`` modules (:func:`~.prepared.prepare_model` with ``borrow``).

* eq-6 only: the directions are the rows ``r_k`` of the family's square root ``RᵀR = I(h)``
  (``Family.contractions(h).fisher_rows()``; ``√p_k (e_k − p)`` for the categorical family), so
  ``uᵀIu = Σ_k (r_kᵀ u)²`` is a sum of squares (``n_L`` passes, nothing stacked).
* thm-4: the one-hot directions give the ``n_L`` rows of ``J`` and the family's contractions
  (``fisher_and_excess``) take them, as the generic route does.

The route applies when every trainable parameter belongs to such a layer (``nn.Linear``,
``nn.Conv1d``, ``nn.Conv2d`` with their stock ``forward``, weight and bias in θ and held by that
layer alone) and it checks itself on the data's first inputs before it is trusted: the rows of
the other inputs must receive exactly no derivative from the first (no coupling across the
batch), and the first input's gradient rebuilt from the layers must equal plain autograd's on
that input alone (a weight also used outside its layer, a layer that sees the batch in another
layout). Where it does not apply, :func:`tap_sums` answers None and the caller takes the generic
per-input route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__: list[str] = []  # nothing for other rooms

#: Largest batch of inputs processed at once, whatever the budget (as :mod:`.diagonals`).
MAX_BATCH = 4096
#: Relative agreement the self-check demands between the rebuilt and autograd's gradient.
CHECK_RTOL = 1e-9


class _NotApplicable(Exception):
    """The layer route does not apply to this model or batch (caller falls back)."""


@dataclass(frozen=True)
class TapSite:
    """One layer whose parameters go through the layer route."""

    module: Any
    weight: str
    bias: str | None
    kind: str  # "linear", "conv1d", "conv2d"

    @property
    def names(self) -> list[str]:
        return [self.weight] + ([self.bias] if self.bias else [])


def _kind(mod: Any) -> str | None:
    """The layer's kind where it computes its stock ``forward``: not where the working copy runs
    a rule the user registered for its kind (an instance ``forward``, :mod:`.rules`)."""
    import torch.nn as nn

    if "forward" in vars(mod):
        return None
    for cls, kind in ((nn.Linear, "linear"), (nn.Conv1d, "conv1d"), (nn.Conv2d, "conv2d")):
        if isinstance(mod, cls) and type(mod).forward is cls.forward:
            return kind
    return None


def find_sites(module: Any, params: dict[str, Any]) -> list[TapSite] | None:
    """The layers holding every trainable parameter, or None where one is held elsewhere or
    shared (tied weights go through the generic route)."""
    holders: dict[int, int] = {}
    for _, p in module.named_parameters(remove_duplicate=False):
        holders[id(p)] = holders.get(id(p), 0) + 1
    sites = []
    covered: set[str] = set()
    for name, mod in module.named_modules():
        kind = _kind(mod)
        if kind is None:
            continue
        prefix = f"{name}." if name else ""
        weight = f"{prefix}weight"
        bias = f"{prefix}bias" if mod.bias is not None else None
        if weight not in params or (bias is not None and bias not in params):
            continue
        if holders.get(id(mod.weight), 0) != 1 or (bias and holders.get(id(mod.bias), 0) != 1):
            continue
        sites.append(TapSite(mod, weight, bias, kind))
        covered.update(sites[-1].names)
    if not sites or covered != set(params):
        return None
    return sites


class _Recorder:
    """A global forward hook (nothing is registered on the user's modules) that keeps the input
    and output of every site call during one forward pass."""

    def __init__(self, sites: list[TapSite]) -> None:
        self.by_module = {id(s.module): s for s in sites}
        self.calls: dict[int, list[tuple[Any, Any]]] = {}

    def __enter__(self) -> _Recorder:
        from torch.nn.modules.module import register_module_forward_hook

        self.calls = {}

        def hook(module: Any, inputs: Any, output: Any) -> None:
            if id(module) in self.by_module:
                self.calls.setdefault(id(module), []).append((inputs[0].detach(), output))

        self.handle = register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()

    def per_site(self, sites: list[TapSite], B: int) -> list[tuple[Any, Any]]:
        """``(input, output)`` of each site: exactly one call, batch on the first axis."""
        out = []
        for s in sites:
            calls = self.calls.get(id(s.module), [])
            if len(calls) != 1:
                raise _NotApplicable
            x, a = calls[0]
            if x.ndim < 2 or x.shape[0] != B or a.shape[0] != B or not a.requires_grad:
                raise _NotApplicable
            out.append((x, a))
        return out


def _patches(site: TapSite, x: Any) -> Any:
    """``U`` (B, C·k, L): the input values multiplying each weight entry at each output position."""
    import torch.nn.functional as F

    mod = site.module
    B = x.shape[0]
    if site.kind == "linear":
        return x.reshape(B, -1, x.shape[-1]).transpose(1, 2)
    if isinstance(mod.padding, str) or mod.padding_mode != "zeros":
        mode = "constant" if mod.padding_mode == "zeros" else mod.padding_mode
        x = F.pad(x, mod._reversed_padding_repeated_twice, mode=mode)
        padding: Any = 0 if site.kind == "conv2d" else (0, 0)
    else:
        padding = mod.padding if site.kind == "conv2d" else (0, mod.padding[0])
    if site.kind == "conv1d":
        return F.unfold(x.unsqueeze(2), (1, mod.kernel_size[0]), dilation=(1, mod.dilation[0]),
                        padding=padding, stride=(1, mod.stride[0]))
    return F.unfold(x, mod.kernel_size, dilation=mod.dilation, padding=padding, stride=mod.stride)


def _groups(site: TapSite) -> int:
    return int(site.module.groups) if site.kind != "linear" else 1


def _weight_rows(site: TapSite, U: Any, G: Any) -> Any:
    """Per-input weight gradients (B, O·C/g·k) from patches U (B, C·k, L) and output
    derivatives G (B, O, L) (``Σ_s G_s U_sᵀ`` per group)."""
    B, O, L = G.shape
    g = _groups(site)
    if g == 1:
        return (G @ U.transpose(1, 2)).reshape(B, -1)
    Ug = U.reshape(B, g, -1, L)
    Gg = G.reshape(B, g, O // g, L)
    return (Gg @ Ug.transpose(2, 3)).reshape(B, -1)


def _flat_out(a_grad: Any, site: TapSite) -> Any:
    """Output derivatives as (B, O, L): channels second for convolutions, last for Linear."""
    B = a_grad.shape[0]
    if site.kind == "linear":
        return a_grad.reshape(B, -1, a_grad.shape[-1]).transpose(1, 2)
    return a_grad.reshape(B, a_grad.shape[1], -1)


def _forward(prep: Any, X: Any, sites: list[TapSite]) -> tuple[Any, list[tuple[Any, Any]]]:
    import torch

    rec = _Recorder(sites)
    with torch.enable_grad(), rec:
        out = prep.module(X)
        h = prep.output(out) if prep.output is not None else out
    if not isinstance(h, torch.Tensor) or h.ndim != 2 or h.shape[0] != X.shape[0]:
        raise _NotApplicable
    return h, rec.per_site(sites, int(X.shape[0]))


def _close(a: Any, b: Any) -> bool:
    """``‖a − b‖ ≤ CHECK_RTOL ‖b‖`` (both exactly zero passes)."""
    from torch.linalg import vector_norm

    return bool(vector_norm(a - b) <= CHECK_RTOL * vector_norm(b))


def _failing(prep: Any, X: Any, sites: list[TapSite]) -> tuple[set[str], Any]:
    """The parameters of ``sites`` whose first-input gradient rebuilt from the layers differs
    from plain autograd's on that input alone (module docstring), and the layers' inputs and
    outputs on ``X``. Every site fails where the inputs are coupled across the batch.

    Raises:
        _NotApplicable: a site not called exactly once on the batch.
    """
    import torch

    h, taps = _forward(prep, X, sites)
    every = {k for s in sites for k in s.names}
    n = h.shape[1]
    r = torch.zeros_like(h)
    # any fixed direction with no zero entry: all of the first input's outputs take part
    r[0] = torch.tensor([(1.0 + i / n) * (-1) ** i for i in range(n)], dtype=h.dtype)
    grads = torch.autograd.grad((h * r).sum(), [a for _, a in taps], materialize_grads=True)
    rebuilt: dict[str, Any] = {}
    for site, (x, _), g in zip(sites, taps, grads):
        if X.shape[0] > 1 and bool((g[1:] != 0).any()):
            return every, taps  # the first input's output reaches another input's layer
        G = _flat_out(g[:1], site)
        rebuilt[site.weight] = _weight_rows(site, _patches(site, x[:1]), G).reshape(-1)
        if site.bias:
            rebuilt[site.bias] = G.sum(-1).reshape(-1)
    names = sorted(every)
    tensors = dict(prep.module.named_parameters())
    with torch.enable_grad():
        out = prep.module(X[:1])
        h1 = prep.output(out) if prep.output is not None else out
        if not _close(h1.detach().reshape(-1), h[0].detach().reshape(-1)):
            return every, taps  # the output of an input depends on the batch around it
        truth = torch.autograd.grad((h1 * r[:1]).sum(), [tensors[k] for k in names],
                                    allow_unused=True)
    bad = {k for k, t in zip(names, truth) if t is None or not _close(rebuilt[k], t.reshape(-1))}
    return bad, taps


#: self-check verdicts of borrowed models (stock modules, the user's own object), so that a
#: repeated call on an unchanged model does not repeat it: model id -> (weak reference,
#: fingerprint, (failing parameters, layer sizes))
_VERDICTS: dict[int, tuple[Any, Any, Any]] = {}


def _fingerprint(prep: Any, X: Any) -> Any:
    """Everything the verdict depends on, by identity: every module, its type and attributes
    (hyper-parameters, parameters, buffers, submodules, hooks), the output map, the input shape."""
    parts = []
    for mod in prep.module.modules():
        attrs = tuple((k, id(v)) for k, v in vars(mod).items())
        inner = tuple((k, id(v)) for d in (mod._parameters, mod._buffers, mod._modules)
                      for k, v in d.items())
        parts.append((id(mod), type(mod), mod.training, attrs, inner))
    return (tuple(parts), id(prep.output), tuple(X.shape), X.dtype)


def _cached_failing(prep: Any, X: Any, sites: list[TapSite]) -> tuple[set[str], Any]:
    """:func:`_failing` with the layers' :func:`_sizes`, remembered for a borrowed model while
    it is unchanged."""
    import weakref

    if not prep.borrowed:
        bad, taps = _failing(prep, X, sites)
        return bad, _sizes(sites, taps)
    key = id(prep.module)
    print_ = _fingerprint(prep, X)
    entry = _VERDICTS.get(key)
    if entry is not None and entry[0]() is prep.module and entry[1] == print_:
        return set(entry[2][0]), entry[2][1]
    bad, taps = _failing(prep, X, sites)
    sizes = _sizes(sites, taps)
    if len(_VERDICTS) > 64:
        _VERDICTS.clear()
    _VERDICTS[key] = (weakref.ref(prep.module), print_, (set(bad), sizes))
    return bad, sizes


def verified_linear_sites(prep: Any, example: Any, sites: list[Any]) -> list[Any]:
    """The :class:`~.linear.LinearSite` s whose factorisation holds on the first input: a weight
    also used outside its layer, or inputs coupled across the batch, would make lemma-13's
    ``g ⊗ x`` miss terms (module docstring)."""
    if not sites:
        return sites
    modules = dict(prep.module.named_modules())
    taps = [TapSite(modules[s.module], s.weight, s.bias, "linear") for s in sites]
    try:
        bad, _ = _failing(prep, example, taps)
    except _NotApplicable:
        return []
    return [s for s in sites if not bad.intersection(s.names)]


def _sizes(sites: list[TapSite], taps: list[tuple[Any, Any]]) -> list[tuple[int, int, int]]:
    """Per input and layer: input numbers, output numbers, output positions (1 for a Linear
    layer on vectors, whose derivatives factorise)."""
    out = []
    for site, (x, a) in zip(sites, taps):
        xs, as_ = int(x[0].numel()), int(a[0].numel())
        if site.kind == "linear" and x.ndim == 2:
            out.append((xs, as_, 0))
        else:
            out.append((xs, as_, as_ // int(a.shape[1] if site.kind != "linear" else a.shape[-1])))
    return out


def _budget_batch(ws: Any, sites: list[TapSite], sizes: list[tuple[int, int, int]], n: int,
                  stacked: bool, factor: int) -> int:
    """Inputs per batch that keep the forward graph and one batch's derivatives in budget."""
    itemsize = 8 if ws.prep.dtype == __import__("torch").float64 else 4
    per_input = 0
    for site, (xs, as_, L) in zip(sites, sizes):
        per_input += 4 * (xs + as_)  # activations of the graph around the layer
        if L == 0:
            per_input += (n if stacked else 1) * as_ * factor
        else:
            patch = int(site.module.weight[0].numel()) * _groups(site) * L
            per_input += patch + (n if stacked else 1) * (as_ + int(site.module.weight.numel())
                                                          * factor)
    per_input = max(1, per_input)
    batch = (ws.memory // itemsize) // per_input
    if batch < 1:
        raise _NotApplicable  # one input alone exceeds the budget: the generic route says so
    return int(min(MAX_BATCH, batch))


def tap_sums(ws: Any, fisher: bool, variance_1: bool) -> tuple[dict[str, Any], dict[str, Any],
                                                              int] | None:
    """Unscaled ``Σ_m uᵀIu`` and ``Σ_m C[u⁴]`` per parameter (flat) and the local input count,
    as :func:`~.diagonals._jacobian_sums`; None where the layer route does not apply."""
    import torch

    from .contract import per_parameter_factor

    prep = ws.prep
    sites = find_sites(prep.module, prep.params)
    if sites is None:
        return None
    example = ws.example if ws.example is not None else ws.stream.example()
    try:
        bad, sizes = _cached_failing(prep, example, sites)
        if bad:
            return None
    except _NotApplicable:
        return None
    n = prep.n_L
    square_root = not variance_1
    factor = per_parameter_factor(prep.family, n, variance_1)
    try:
        batch = _budget_batch(ws, sites, sizes, n, not square_root, factor)
    except _NotApplicable:
        return None
    f_sum = prep.flat_zeros() if fisher else {}
    v_sum = prep.flat_zeros() if variance_1 else {}
    count = 0
    for X in ws.batches(batch, "Jacobian rows"):
        try:
            h, taps = _forward(prep, X, sites)
        except _NotApplicable:
            return None
        hd = h.detach()
        prep.family.check_natural(hd)
        outs = [a for _, a in taps]
        patches = [None if (s.kind == "linear" and x.ndim == 2) else _patches(s, x)
                   for s, (x, _) in zip(sites, taps)]
        if square_root:
            # the rows r_k of R with RᵀR = I(h), the family's own (Family.contractions)
            directions = prep.family.contractions(hd).fisher_rows().transpose(0, 1)
            # Σ_k g_k² of the Linear layers on vectors
            squares = [torch.zeros_like(a) if U is None else None
                       for a, U in zip(outs, patches)]
            for k in range(n):
                # a scalar output: a tensor grad_outputs imports torch.fx's symbolic shapes
                # (tens of ms) on the first call of a process
                grads = torch.autograd.grad((h * directions[k]).sum(), outs,
                                            retain_graph=k < n - 1, materialize_grads=True)
                for site, U, g, q in zip(sites, patches, grads, squares):
                    if q is not None:
                        q.addcmul_(g, g)
                    else:
                        _add_squares(f_sum, site, U, g)
            for site, (x, _), q in zip(sites, taps, squares):
                if q is not None:  # (c_kᵀ u)² = (c_kᵀ g_r)² x_c² summed over k, then inputs
                    f_sum[site.weight] += (q.T @ (x * x)).reshape(-1)
                    if site.bias:
                        f_sum[site.bias] += q.sum(0)
        else:
            rows = [[] for _ in sites]  # type: list[list[Any]]
            for k in range(n):
                e = torch.zeros_like(hd)
                e[:, k] = 1.0
                grads = torch.autograd.grad((h * e).sum(), outs, retain_graph=k < n - 1,
                                            materialize_grads=True)
                for acc, g in zip(rows, grads):
                    acc.append(g)
            mom = prep.family.contractions(hd)
            for site, (x, _), U, acc in zip(sites, taps, patches, rows):
                _add_contracted(f_sum, v_sum, mom, site, x, U, acc, variance_1)
            del rows
        del h, taps, outs, patches
        count += int(X.shape[0])
    return f_sum, v_sum, count


def _add_squares(f_sum: dict[str, Any], site: TapSite, U: Any, g: Any) -> None:
    """``Σ_m (c_kᵀ u)²`` of one direction into the sums (a layer with patches U)."""
    G = _flat_out(g, site)
    J = _weight_rows(site, U, G)
    f_sum[site.weight] += (J * J).sum(0)
    if site.bias:
        b = G.sum(-1)
        f_sum[site.bias] += (b * b).sum(0)


def _add_contracted(f_sum: dict[str, Any], v_sum: dict[str, Any], mom: Any, site: TapSite,
                    x: Any, U: Any, rows: list[Any], variance_1: bool) -> None:
    """``uᵀIu`` and ``C[u⁴]`` from the stacked rows ``∂h^α/∂a`` of one layer."""
    import torch

    if U is None:  # module docstring of .linear: u = g_r x_c
        G = torch.stack(rows, 1)  # (B, n_L, out)
        quad, excess = mom.fisher_and_excess(G, variance_1)
        x2 = x * x
        for acc, val, xp in ((f_sum, quad, x2), (v_sum, excess, x2 * x2 if variance_1 else None)):
            if val is None or not acc:
                continue
            acc[site.weight] += (val.T @ xp).reshape(-1)
            if site.bias:
                acc[site.bias] += val.sum(0)
        return
    Gs = [_flat_out(g, site) for g in rows]
    J = torch.stack([_weight_rows(site, U, G) for G in Gs], 1)  # (B, n_L, P_W)
    blocks = [(site.weight, J)]
    if site.bias:
        blocks.append((site.bias, torch.stack([G.sum(-1) for G in Gs], 1)))
    for name, rows_ in blocks:
        quad, excess = mom.fisher_and_excess(rows_, variance_1)
        if f_sum:
            f_sum[name] += quad.sum(0)
        if variance_1:
            v_sum[name] += excess.sum(0)
