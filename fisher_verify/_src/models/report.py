"""``analyze`` for any torch model: the paper's quantities for any torch model over a data set, per tensor and layer.

Per parameter tensor and per layer (the module that owns the tensors): the sums of
``diag I(θ)`` (eq-6), ``Var(Î₁)`` (thm-4, exact) and ``Var(Î₂)`` (thm-6: exact, an estimate
with its standard error, or refused with the reason for a non-C² model), the better estimator,
and the number of draws each needs from lemma-12 (on the diagonals). Where the ``(M n_L)²``
Gram matrix of the Jacobians fits, also ``‖Cov(Î₁)‖_F`` and both sides of thm-7, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import FisherVerifyError
from ..fisher.sample_size import samples_needed
from ..fisher.tradeoff import reason_for, tradeoff
from ..validation import check_flag, check_fraction
from .contract import excess_pairs
from .decision import UNDECIDED, compare, interval, spans_zero
from .diagonals import check_second_order_options, model_diagonals
from .prepared import second_order
from .result import Analysis, Row
from .workspace import Diagonals, Workspace, open_workspace, plan

__all__ = ["analyze_module"]

#: why a norm whose terms are finite was left out
OVERFLOW_NOTE = ("not computed: its sum of squares overflowed the working precision (the "
                 "variances themselves are finite and reported)")
#: Largest ``(M n_L)²`` Gram matrix (entries) formed for ‖Cov(Î₁)‖_F and thm-7.
GRAM_LIMIT = 1 << 24
#: thm-8 on a model that is not an Eq. 3 MLP: the dense ``(M, n_L, P, P)`` output Hessians
#: (torch.func) are formed only up to these P, entries and M (the pairs are ``O(M² n_L² P²)``)
DENSE_HESSIAN_P = 2000
DENSE_HESSIAN_ELEMENTS = 1 << 24
DENSE_HESSIAN_INPUTS = 256
#: a forward-over-reverse Hessian whose asymmetry exceeds this (relative) is a wrong derivative
SYMMETRY_RTOL = 1e-8
#: the plain-autograd fallback for such a model: at most this many backward passes (M n_L P)
AUTOGRAD_HESSIAN_PASSES = 20_000
#: seconds the planned cost of the Eq. 3 closed form of thm-8 may take (else n/a with the plan)
THM8_TIME_BUDGET = 120.0


def _better(v1: float, v2: float | None, v2_exact: bool, se2: float = 0.0,
            confidence: float = 0.95) -> str:
    """The estimator with the smaller summed variance, or ``undecided`` when ``Var(Î₂)`` is
    an estimate whose interval holds 0 or ``Var(Î₁)`` (:func:`.decision.compare`)."""
    if v2 is None:
        return "I1 (I2 refused)"
    return compare(v1, v2, se2, v2_exact, confidence)


def _row(name: str, names: list[str], d: dict[str, Diagonals | None],
         confidence: float = 0.95) -> Row:
    f, v1, v2 = d["f"], d["v1"], d["v2"]
    assert f is not None and v1 is not None
    params = sum(int(f[k].numel()) for k in names)
    fs = float(sum(float(f[k].sum()) for k in names))
    s1 = float(sum(float(v1[k].sum()) for k in names))
    if v2 is None:
        return Row(name, params, fs, s1, None, 0.0, False, "refused", _better(s1, None, False),
                   diag_var_1=s1)
    s2, se, exact = v2.sum_over(names)
    methods = {v2.methods[k] for k in names}
    method = methods.pop() if len(methods) == 1 else "mixed"
    return Row(name, params, fs, s1, s2, se, exact, method,
               _better(s1, s2, exact, se, confidence), diag_var_1=s1, diag_var_2=s2)


def _explain(ws: Workspace, rows: list[Row], layers: dict[str, list[str]]) -> None:
    """Fill each layer row's ratio and reason, the reason from the structure of ``θ ↦ h_L``
    (:func:`.structure.model_structure`), never from the numbers."""
    from .structure import model_structure

    prep = ws.prep
    x = next(iter(ws.stream.batches(1)), None)
    if x is None:  # an empty shard of a distributed run: nothing to trace here
        return
    st = model_structure(prep.module, prep.params, prep.fixed, x, output=prep.output)
    for r in rows:
        ks = layers[r.name]
        why = reason_for(last=all(k in st.affine for k in ks),
                         piecewise_linear=st.piecewise_linear,
                         before_last_smooth=bool(st.before_last) and set(ks) == st.before_last)
        assert r.var_2 is not None
        t = tradeoff(r.var_1, r.var_2, why)
        r.lower, r.ratio, r.reason, r.why = t.lower, t.ratio, t.reason, t.why


def _gram(ws: Workspace) -> tuple[Any, Any] | str:
    """``h`` (M, n_L) and ``J_m J_{m'}ᵀ`` (M, M, n_L, n_L) over all inputs, or why not."""
    import torch

    prep = ws.prep
    if ws.world > 1:
        return "not computed across processes (the Gram matrix pairs inputs of every shard)"
    count = ws.stream.local_count()
    if count is None:
        count = sum(int(X.shape[0]) for X in ws.stream.batches(1 << 16))
    if (count * prep.n_L) ** 2 > GRAM_LIMIT:
        return (f"not computed: the (M n_L)^2 = {(count * prep.n_L) ** 2} Gram matrix is above "
                f"GRAM_LIMIT = {GRAM_LIMIT}")
    groups, batch = plan(ws, 4)
    batches = list(ws.stream.batches(batch))

    def rows(X: Any) -> Any:
        out = []
        for g in groups:
            jac = prep.jacobian(X, g)
            out += [jac[k].reshape(X.shape[0], prep.n_L, -1) for k in g]
        return out  # per tensor (B, n_L, p)

    sizes = [int(X.shape[0]) for X in batches]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    G = torch.zeros(count, count, prep.n_L, prep.n_L, dtype=prep.dtype, device=prep.device)
    for i, Xi in enumerate(batches):
        Ji = rows(Xi)
        for j in range(i, len(batches)):
            Jj = Ji if j == i else rows(batches[j])
            block = torch.stack([torch.einsum("map,nbp->mnab", a, b) for a, b in zip(Ji, Jj)]).sum(0)
            si, sj = slice(starts[i], starts[i] + sizes[i]), slice(starts[j], starts[j] + sizes[j])
            G[si, sj] = block
            G[sj, si] = block.permute(1, 0, 3, 2)
    h = torch.cat([prep.forward(X) for X in batches])
    return h, G


def thm7_model(ws: Workspace, n: int) -> tuple[float, float, float] | str:
    """``(‖Cov(Î₁)‖_F, thm-7 bound, spectral variant)`` exactly, or why it was not computed.

    ``‖Cov(Î₁)‖_F² = (1/(M²N))² Σ_{m,m'} ⟨C_m, C_{m'} ×₄ J_m J_{m'}ᵀ⟩`` (thm-4) and
    ``thm-7``: ``≤ (1/(M²N)) Σ_m ‖J_m‖_F⁴ ‖C_m‖_F``, with the contractions of
    :func:`.contract.excess_pairs` (O(K²) per pair for the categorical family).
    """
    import torch

    got = _gram(ws)
    if isinstance(got, str):
        return got
    h, G = got
    prep = ws.prep
    M = G.shape[0]
    pair, cnorm = excess_pairs(prep.family, h, G)
    scale = M * M * n
    lhs = math.sqrt(max(float(pair.sum()), 0.0)) / scale
    self_gram = torch.stack([G[m, m] for m in range(M)])
    jf2 = torch.diagonal(self_gram, dim1=-2, dim2=-1).sum(-1)
    j2 = torch.linalg.eigvalsh(self_gram)[:, -1].clamp(min=0)
    return lhs, float((jf2**2 * cnorm).sum()) / scale, float((j2**2 * cnorm).sum()) / scale


def _all_inputs(ws: Workspace) -> Any:
    import torch

    return torch.cat(list(ws.stream.batches(1 << 16)))


def _dense_output_hessians(ws: Workspace, X: Any) -> Any:
    """``∂²h_L^α(x_m)/∂θ²`` over the flat θ (``named_parameters`` order): ``(M, n_L, P, P)``."""
    import torch
    from torch.func import jacfwd, jacrev, vmap

    prep = ws.prep
    names = list(prep.params)
    shapes = [prep.params[k].shape for k in names]
    sizes = [int(prep.params[k].numel()) for k in names]
    flat = torch.cat([prep.params[k].reshape(-1) for k in names])

    def one(theta: Any, x: Any) -> Any:
        parts = torch.split(theta, sizes)
        return prep._h({k: t.reshape(sh) for k, t, sh in zip(names, parts, shapes)}, x)

    hess = vmap(jacfwd(jacrev(one)), in_dims=(None, 0))
    with second_order():  # a few inputs at a time: forward-over-reverse holds P tangents each
        return torch.cat([hess(flat, chunk) for chunk in X.split(8)])


def _symmetric(H: Any) -> bool:
    """Whether ``H[..., i, j] = H[..., j, i]`` up to rounding (relative to the largest entry)."""
    scale = float(H.abs().max()) if H.numel() else 0.0
    return float((H - H.transpose(-1, -2)).abs().max()) <= SYMMETRY_RTOL * max(scale, 1e-300)


def _autograd_output_hessians(ws: Workspace, X: Any) -> Any:
    """The same ``(M, n_L, P, P)`` by plain autograd double backward: one backward pass per
    input, output and parameter (the route when torch.func's second derivatives are wrong)."""
    import torch

    prep = ws.prep
    P = prep.num_params
    out = []
    with second_order():
        for x in X:
            theta = {k: v.detach().clone().requires_grad_(True) for k, v in prep.params.items()}
            leaves = list(theta.values())
            h = prep._h(theta, x)
            per_output = []
            for a in range(h.shape[0]):
                grads = torch.autograd.grad(h[a], leaves, create_graph=True, allow_unused=True)
                flat = torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                  for g, p in zip(grads, leaves)])
                rows = torch.zeros(P, P, dtype=prep.dtype, device=prep.device)
                for i in range(P):
                    if flat[i].requires_grad:  # else ∂h/∂θ_i does not depend on θ: a zero row
                        second = torch.autograd.grad(flat[i], leaves, retain_graph=True,
                                                     allow_unused=True)
                        rows[i] = torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                             for g, p in zip(second, leaves)])
                per_output.append(rows)
            out.append(torch.stack(per_output))
    return torch.stack(out)


def thm8_model(ws: Workspace, n: int) -> tuple[float, float, str] | str:
    """``(‖Cov(Î₂)‖_F, thm-8 bound, how)`` exactly, or why it was not computed.

    thm-8: ``‖Cov(Î₂)‖_F ≤ (1/(M²N)) Σ_m ‖∂²h_L(x_m)‖_F² ‖I(h_L(x_m))‖_F``, the lhs from thm-6.
    An Eq. 3 MLP goes through the closed form of :func:`fisher_verify._src.models.mlp_bounds.thm8_large`
    (any P, streamed within the memory budget); any other model through its dense output
    Hessians (torch.func) and :func:`fisher_verify._src.fisher.bounds.thm8_sides`, up to
    ``DENSE_HESSIAN_P`` parameters. The caller refuses non-C² models first.
    """
    import numpy as np
    import torch

    from ..fisher.bounds import thm8_sides
    from .mlp_bounds import thm8_large
    from .mlp_route import mlp_network

    prep = ws.prep
    if ws.world > 1:
        return "not computed across processes (the norm pairs inputs of every shard)"
    X = _all_inputs(ws)
    M, P = int(X.shape[0]), prep.num_params
    found = mlp_network(ws)
    # a Linear(bias=False) layer gets a zero bias column in the Eq. 3 network: its closed form
    # would sum over parameters the model does not have, so such a model goes the dense way
    if found is not None and found[0].num_params == P:
        try:
            b = thm8_large(found[0], X.reshape(M, -1).cpu().numpy(), n, method="exact",
                           device=str(prep.device), dtype=prep.dtype, memory_budget=ws.memory,
                           time_budget=THM8_TIME_BUDGET)
        except FisherVerifyError as exc:
            return f"not computed exactly (Eq. 3 closed form): {exc}"
        assert b.lhs is not None and b.rhs is not None  # method="exact" gives both or raises
        return float(b.lhs), float(b.rhs), "exact, Eq. 3 closed form (models.mlp_bounds.thm8_large)"
    why = ("the model is not an Eq. 3 MLP, so thm-8 needs its dense (M, n_L, P, P) output "
           "Hessians")
    if P > DENSE_HESSIAN_P:
        return f"not computed: {why}, formed only for P <= DENSE_HESSIAN_P = {DENSE_HESSIAN_P} " \
               f"(P = {P})"
    if M > DENSE_HESSIAN_INPUTS or M * prep.n_L * P * P > DENSE_HESSIAN_ELEMENTS:
        return (f"not computed: {why}, formed only for M <= {DENSE_HESSIAN_INPUTS} and "
                f"M n_L P^2 <= DENSE_HESSIAN_ELEMENTS = {DENSE_HESSIAN_ELEMENTS} (M = {M}, "
                f"n_L = {prep.n_L}, P = {P})")
    H = _dense_output_hessians(ws, X)
    how = "dense torch.func Hessians"
    if not _symmetric(H):
        # torch.func's forward-over-reverse (and reverse-over-reverse) through layer_norm and
        # multi-head attention gives wrong, asymmetric second derivatives in torch 2.x, where
        # plain autograd's double backward is right
        passes = M * prep.n_L * P
        if passes > AUTOGRAD_HESSIAN_PASSES:
            return (f"not computed: torch.func's output Hessians of this model are not "
                    f"symmetric (wrong second derivatives in torch {torch.__version__}, seen "
                    "through layer_norm and multi-head attention), and plain autograd needs "
                    f"M n_L P = {passes} backward passes, above AUTOGRAD_HESSIAN_PASSES = "
                    f"{AUTOGRAD_HESSIAN_PASSES}")
        H = _autograd_output_hessians(ws, X)
        how = "dense autograd Hessians (torch.func's were not symmetric)"
    Hn = H.detach().to("cpu", torch.float64).numpy()
    h = prep.forward(X).detach().to("cpu", torch.float64).numpy()
    lhs, rhs = thm8_sides(Hn, np.asarray(prep.family.fisher(h), dtype=float), n)
    return lhs, rhs, f"exact, {how} (P = {P})"


def analyze_module(
    model: Any, data: Any, family: Any, n: int = 1, *, target: float = 0.1,
    confidence: float = 0.95, output: Callable[[Any], Any] | None = None, dtype: Any = None,
    device: Any = None, eval_mode: bool = False, smooth: bool | None = None,
    memory: int | None = None, distributed: bool | None = None, progress: bool = True,
    method: str = "auto", probes: int | str = 16, seed: int = 0, norms: bool = True,
    rel_precision: float = 0.1,
) -> Analysis:
    """Both Fisher estimators of any torch model over a data set (eq-6, thm-4, thm-6, thm-7, lemma-12).

    Arguments as :func:`fisher_verify.variance`; ``target`` and
    ``confidence`` set lemma-12's ``‖Î − I‖ ≤ target ‖I‖`` with probability ``confidence`` (on
    the diagonals); ``norms=False`` skips ‖Cov(Î₁)‖_F and thm-7. A non-C² model gets every
    first-order quantity and ``Var(Î₂)`` refused with the reason. ``probes="auto"`` picks the
    Hutchinson probes for a relative standard error ``rel_precision`` of the summed Var(Î₂)
    (:mod:`.decision`). An estimated Var(Î₂) whose ``confidence`` interval holds 0 or
    Var(Î₁) decides nothing: ``better`` is ``"undecided"`` and ``samples_needed_2`` is None
    with the reason in ``samples_needed_2_note``.
    """
    from .decision import check_probes, check_rel_precision

    check_probes(probes)
    if probes == "auto":
        check_rel_precision(rel_precision)
    from ..errors import UnsupportedError

    target = check_fraction(target, "target")
    confidence = check_fraction(confidence, "confidence")
    norms = bool(check_flag(norms, "norms"))
    check_second_order_options(method, probes, seed)
    ws = open_workspace(model, data, family, output=output, dtype=dtype, device=device,
                        eval_mode=eval_mode, smooth=smooth, memory=memory,
                        distributed=distributed, progress=progress)
    refused = None
    try:
        ws.prep.require_smooth("Var(Î₂)", ws.stream.batches(256))
    except UnsupportedError as exc:
        refused = str(exc)
    d = model_diagonals(ws, n, fisher=True, variance_1=True, variance_2=refused is None,
                        method=method, probes=probes, seed=seed, rel_precision=rel_precision)
    parts: dict[str, Diagonals | None] = {"f": d.fisher, "v1": d.variance_1, "v2": d.variance_2}
    names = list(ws.prep.params)
    layers: dict[str, list[str]] = {}
    for k in names:
        layers.setdefault(k.rsplit(".", 1)[0] if "." in k else "<root>", []).append(k)
    total = _row("total", names, parts, confidence)
    tensor_rows = [_row(k, [k], parts, confidence) for k in names]
    layer_rows = [_row(lay, ks, parts, confidence) for lay, ks in layers.items()]
    degenerate = _degenerate(ws, d.fisher or {}, total, d.variance_1 or {})
    if any(w.startswith("every entry") for w in degenerate):  # comparing zeros decides nothing
        for row in (total, *tensor_rows, *layer_rows):
            row.better = "undetermined"
    if d.variance_2 is not None:
        _explain(ws, layer_rows, layers)
    if any(w.startswith("every entry") for w in degenerate):
        for row in layer_rows:  # a ratio of zeros says nothing either
            row.ratio, row.lower = None, "undetermined"
    fnorm = _frobenius(d.fisher or {})
    need2: int | None = None
    need2_note = ""
    if total.var_2 is not None:
        if spans_zero(total.var_2, total.var_2_stderr, total.var_2_exact, confidence):
            lo, hi = interval(total.var_2, total.var_2_stderr, confidence)
            need2_note = (f"{UNDECIDED}: the estimate of sum Var(I2), {total.var_2:.4g} +- "
                          f"{total.var_2_stderr:.2g}, has a {confidence:g} interval "
                          f"[{lo:.4g}, {hi:.4g}] that contains 0")
        else:
            need2 = samples_needed(total.var_2 * d.n, fnorm, target, confidence)
            if not total.var_2_exact:
                need2_note = "from the estimate of Var(I2)"
    note, lhs, rhs, spec = "", None, None, None
    if norms:
        got = thm7_model(ws, d.n)
        if isinstance(got, str):
            note = got
        else:
            lhs, rhs, spec = got
    else:
        note = "not requested"
    if any(v is not None and not math.isfinite(v) for v in (lhs, rhs, spec)):
        note, lhs, rhs, spec = OVERFLOW_NOTE, None, None, None
        degenerate.append(f"||Cov(I1)||_F and thm-7: {OVERFLOW_NOTE}")
    lhs2, rhs2 = None, None
    if refused is not None:
        note2 = f"refused: {refused}"
    elif not norms:
        note2 = "not requested"
    else:
        got8 = thm8_model(ws, d.n)
        if isinstance(got8, str):
            note2 = got8
        else:
            lhs2, rhs2, note2 = got8
            if not (math.isfinite(lhs2) and math.isfinite(rhs2)):
                lhs2, rhs2, note2 = None, None, OVERFLOW_NOTE
                degenerate.append(f"||Cov(I2)||_F and thm-8: {OVERFLOW_NOTE}")
    return Analysis(
        model=f"{type(model).__name__} (torch module)", family=ws.prep.family.label,
        num_inputs=d.num_inputs, n=d.n, num_params=ws.prep.num_params,
        tensors=tensor_rows, layers=layer_rows, total=total,
        fisher=d.fisher, variance_1=d.variance_1, variance_2=d.variance_2, diagonal_only=True,
        var_2_refused=refused,
        samples_needed_1=samples_needed(total.var_1 * d.n, fnorm, target, confidence),
        samples_needed_2=need2, samples_needed_2_note=need2_note,
        probes=d.variance_2.probes if d.variance_2 is not None else 0,
        probe_note=d.variance_2.probe_note if d.variance_2 is not None else "",
        target_rel_accuracy=target, confidence=confidence, covariance_norm_1=lhs, bound_1=rhs,
        bound_1_spectral=spec, bound_1_note=note, covariance_norm_2=lhs2, bound_2=rhs2,
        bound_2_note=note2, degenerate=degenerate,
        psd_note="thm-10 not computed for a torch module (it needs lambda_min of the P x P Fisher)",
    )


def _frobenius(diagonals: dict[str, Any]) -> float:
    """‖diag I(θ)‖_F without overflow or underflow of the squares (scaled by the largest)."""
    scale = max((float(v.abs().max()) for v in diagonals.values() if v.numel()), default=0.0)
    if scale == 0.0 or not math.isfinite(scale):
        return scale
    return scale * math.sqrt(sum(float(((v / scale) ** 2).sum()) for v in diagonals.values()))


def _family_scale(ws: Workspace) -> tuple[float, float, int | None]:
    """Over all inputs: max |h_L|, max |Cov(t(y))| = max |∇²F(h_L)|, and the first input
    row where ∇²F(h_L) is not finite (``None`` when it is finite everywhere)."""
    import torch

    hmax, cmax, bad, seen = 0.0, 0.0, None, 0
    for X in ws.stream.batches(1 << 12):
        h = ws.prep.forward(X).detach().to("cpu", torch.float64).numpy()
        cov = np.asarray(ws.prep.family.fisher(h), dtype=float).reshape(h.shape[0], -1)
        hmax = max(hmax, float(np.max(np.abs(h))))
        finite = np.all(np.isfinite(cov), axis=1)
        if bad is None and not np.all(finite):
            bad = seen + int(np.argmin(finite))
        if np.any(finite):
            cmax = max(cmax, float(np.max(np.abs(cov[finite]))))
        seen += int(h.shape[0])
    return hmax, cmax, bad


def _var1_underflow(ws: Workspace, variance_1: dict[str, Any], tiny: float,
                    fmax: float) -> list[str]:
    """Var(Î₁) (thm-4) that is 0 only because the family's fourth central moment underflowed
    (μ₄ ≥ Cov(t)² > 0, so a μ₄ below the smallest normal number has); a true zero (a
    Bernoulli at h = 0, μ₄ = 1/16) is not flagged. Families wider than MOMENT4_DIM_LIMIT skip
    the check (μ₄ is an n_L⁴ array per input)."""
    import torch

    from ..fisher.degenerate import MOMENT4_DIM_LIMIT

    vmax = max((float(v.abs().max()) for v in variance_1.values() if v.numel()), default=0.0)
    if vmax >= tiny or int(ws.prep.family.dim) > MOMENT4_DIM_LIMIT:
        return []
    mu4 = 0.0
    for X in ws.stream.batches(1 << 10):
        h = ws.prep.forward(X).detach().to("cpu", torch.float64).numpy()
        mu4 = max(mu4, float(np.max(np.abs(ws.prep.family.central_moment4(h)))))
    if mu4 >= tiny:
        return []
    return [f"Var(I1) underflowed: the family's fourth central moment E(t - eta)^4 is below the "
            f"smallest normal {ws.prep.dtype} {tiny:.3g} at every input (max diag I = "
            f"{fmax:.3g}), so Var(I1), its bound (thm-7) and the sample sizes are 0 or "
            "meaningless to working precision"]


def _degenerate(ws: Workspace, fisher: dict[str, Any], total: Row,
                variance_1: dict[str, Any]) -> list[str]:
    """Why the result carries no information, or ``[]``; overflow is refused.

    ``Cov(t(y))`` is positive definite, so the true diag I(θ) is not all 0 unless every
    parameter's Jacobian is 0: an all-zero (below the dtype's smallest normal) diag I(θ)
    with a family variance in the same range has underflowed.

    Raises:
        UnsupportedError: diag I(θ) or a variance that is not finite (overflow).
    """
    import torch

    from ..errors import UnsupportedError

    tiny = float(torch.finfo(ws.prep.dtype).tiny)
    sums = {"diag I(θ)": total.fisher, "Var(Î₁) (thm-4)": total.var_1,
            "Var(Î₂) (thm-6)": total.var_2}
    over = [k for k, v in sums.items() if v is not None and not math.isfinite(v)]
    if over:
        hmax, cmax, bad = _family_scale(ws)
        cause = (f"the output family's variance Cov(t(y)) = ∇²F(h_L) is not finite at input "
                 f"row {bad}" if bad is not None else
                 f"its terms exceed the {ws.prep.dtype} range although Cov(t(y)) is finite "
                 f"(largest |entry| {cmax:.3g})")
        raise UnsupportedError(
            f"overflow: {over[0]} is not finite for family {ws.prep.family.label} (largest "
            f"|h_L| = {hmax:.3g}): {cause}; no finite answer exists in {ws.prep.dtype}: scale "
            "the model's outputs or the family parameter into range")
    fmax = max((float(v.abs().max()) for v in fisher.values() if v.numel()), default=0.0)
    if fmax >= tiny:
        return _var1_underflow(ws, variance_1, tiny, fmax)
    hmax, cmax, _ = _family_scale(ws)
    if cmax >= tiny:
        return []  # the family's variance is in range: the zeros come from the Jacobians
    return [f"every entry of diag I(θ) underflowed (max {fmax:.3g}, below the smallest normal "
            f"{ws.prep.dtype} {tiny:.3g}): the output family's variance Cov(t(y)) = ∇²F(h_L) "
            f"is at most {cmax:.3g} at every input (largest |h_L| = {hmax:.3g}), so the Fisher, "
            "both variances, the bounds and the sample sizes are 0 or meaningless to working "
            "precision, not their true tiny positive values"]

