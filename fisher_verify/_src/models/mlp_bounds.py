"""thm-7 and thm-8 for an Eq. 3 MLP at any P: ‖Cov(Î₁)‖_F, ‖Cov(Î₂)‖_F and the Hessian traces.

The norms are sums over pairs of inputs of the per-input factors of :mod:`.mlp` (lemma-13):
``‖Cov(Î₁)‖_F`` through the Gram matrices ``J_m J_{m'}ᵀ``, ``‖Cov(Î₂)‖_F`` through the
closed-form traces ``tr(H^α_m H^β_{m'})`` (both derived in :mod:`.mlp`'s docstring), streamed
over pairs of input blocks within a memory budget, planned by the cost model, or estimated from
sampled input pairs (:mod:`.mlp_norms`). Hessian-vector products over the canonical basis
(``method="hvp"``, P ≤ ``EXACT_TRACE_LIMIT``) and a Hutchinson estimate (Rademacher probes,
U-statistic for the quadratic norm, with its standard error, flagged ``exact=False``) remain
available, refused above the memory budget. No ``P×P`` array is formed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import ShapeError, UnsupportedError
from ..fisher.bounds import Bound
from ..fisher.ustat import jackknife_stderr, u_statistic_deleted
from ..validation import check_budget
from .mlp import (
    EXACT_TRACE_LIMIT,
    STRUCTURED_ELEMENTS,
    Estimate,
    NormMethod,
    Thm8Method,
    TraceMethod,
    _check_n,
    _forward_backward,
    _Setup,
    _setup,
)

__all__ = ["thm7_large", "thm8_large"]


def covariance1_norm(net: Any, x: Any, n: int = 1, **options: Any) -> float:
    """``‖Cov(Î₁)‖_F`` (``thm-4``; lhs of ``thm-7``), streamed over pairs of input blocks.

    Cost ``O(M² (Σ_l n_l + n_L² Σ_l n_{l+1}))`` multiply-adds plus ``O(M² K²)`` elementwise for
    the categorical family (``O(M² n_L⁶)`` for a dense ``K − I⊗I``); memory bounded by
    ``memory_budget`` (:mod:`.mlp_norms`). The lhs of :func:`thm7_large`, which takes the same
    ``options`` (device, dtype, method, budgets, sample_inputs, seed, distributed);
    ``method="sampled"`` (or ``"auto"`` above the budgets) returns an unbiased estimate: use
    :func:`thm7_large` to see its standard error (``details['lhs_estimate']``).
    """
    return thm7_large(net, x, n, **options).lhs or 0.0


def thm7_large(
    net: Any, x: Any, n: int = 1, *, device: str | None = None, dtype: Any = None,
    method: NormMethod = "auto", memory_budget: int | None = None,
    time_budget: float | None = None, sample_inputs: int | None = None, seed: int = 0,
    distributed: bool | None = None,
) -> Bound:
    """``thm-7`` with both sides: ``‖Cov(Î₁)‖_F ≤ (1/(M²N)) Σ_m ‖J_m‖_F⁴ ‖K_m − I_m⊗I_m‖_F``.

    The lhs is streamed over pairs of input blocks within ``memory_budget`` bytes (default
    1 GiB) and ``time_budget`` seconds (default 900), as planned by
    :func:`fisher_verify._src.models.mlp_norms.norm_cost` (``details['cost']``); ``method="exact"``
    refuses a call above either budget, ``"sampled"`` gives an unbiased U-statistic estimate
    over ``sample_inputs`` inputs (``details['exact']`` False, ``details['lhs_estimate']``
    with its standard error), ``"auto"`` picks exact when it fits. The rhs and
    ``details['spectral_variant']`` (``Σ_m ‖J_m‖₂⁴ ‖C_m‖_F / (M²N)``, as in
    :func:`fisher_verify._src.fisher.bounds.thm7_sides`) are per-input sums, always exact.
    ``distributed``: share the input pairs and the inputs over the ``torch.distributed`` group
    (default: when one is initialized; every process calls alike and gets the whole result).
    """
    from ..distributed import process_group
    from .mlp_norms import pair_norm, thm7_rhs

    est, cost = pair_norm(net, x, n, "thm-7", method=method, memory_budget=memory_budget,
                          time_budget=time_budget, sample_inputs=sample_inputs, seed=seed,
                          device=device, dtype=dtype, distributed=distributed)
    s = _setup(net, x, device, dtype)
    rhs, spec = thm7_rhs(s, _check_n(n), max(1, cost.block), *process_group(distributed))
    label = "" if est.exact else " [ESTIMATE: sampled input pairs, see details]"
    return Bound("thm-7", est.value, rhs, "<=",
                 "||Cov(I1)||_F <= (1/N)||J||_F^4 ||K - I(x)I||_F" + label,
                 {"spectral_variant": spec, "exact": est.exact, "method": est.method,
                  "lhs_estimate": est, "cost": cost, "device": str(s.device)})


# --- Hessian traces, ‖Cov(Î₂)‖_F and thm-8 ----------------------------------------------------


def _batched_forward(s: _Setup, theta: Any) -> Any:
    """h_L (M, n_L) as a torch function of flat θ."""
    torch = s.torch
    L = len(s.weights)
    h = s.X
    start = 0
    for layer, W in enumerate(s.weights):
        r, c = W.shape
        Wl = theta[start : start + r * c].reshape(r, c)
        start += r * c
        a = h @ Wl[:, :-1].T + Wl[:, -1]
        h = a if layer == L - 1 else s.act.torch_f(a)
    return torch.as_tensor(h)


def _hvp_rows(s: _Setup, theta: Any, V: Any) -> Any:
    """``H^α_m v`` for every probe v in V (c, P): shape (c, M·n_L, P)."""
    from torch.func import jacrev, jvp, vmap

    def one(v: Any) -> Any:
        return jvp(jacrev(lambda t: _batched_forward(s, t)), (theta,), (v,))[1]

    return vmap(one)(V).reshape(V.shape[0], s.M * s.n_L, -1)


@dataclass(frozen=True)
class HessianTraces:
    """``T[m, α, m', β] = tr(H^α_m H^β_{m'})`` (exact, or the per-probe Hutchinson samples)."""

    mean: Any  # (M·n_L, M·n_L)
    samples: Any | None  # (S, M·n_L, M·n_L) when stochastic
    exact: bool
    method: str
    probes: int


def structured_elements(net: Any, M: int) -> int:
    """Largest array (elements) the closed-form traces form for ``net`` and ``M`` inputs."""
    outs = list(net.widths[1:])  # n_{l+1}
    ins = list(net.widths[:-1])  # n_l
    L, nL = len(outs), int(net.widths[-1])
    big = (M * nL) ** 2
    for lo in range(L):
        for k in range(lo, L):
            big = max(big, M * nL * outs[lo] * outs[k], M * ins[k] * outs[lo],
                      M * M * nL * max(outs[k], outs[lo]))
    return int(big)


def _traces_structured(s: _Setup) -> Any:
    """``T[(m,α),(m',β)] = tr(H^α_m H^β_{m'})`` in closed form (module docstring), (M n_L)²."""
    from .mlp_norms import _gamma_compact, _trace_block

    q = _forward_backward(s, s.X)
    gam = _gamma_compact(s, q)
    return _trace_block(s, q, q, gam, gam)


def hessian_traces(
    net: Any,
    x: Any,
    *,
    method: TraceMethod = "auto",
    probes: int = 64,
    seed: int = 0,
    exact_limit: int = EXACT_TRACE_LIMIT,
    structured_limit: int = STRUCTURED_ELEMENTS,
    chunk: int | None = None,
    device: str | None = None,
    dtype: Any = None,
    memory_budget: int | None = None,
) -> HessianTraces:
    """``tr(H^α_m H^β_{m'})`` for all inputs/outputs (the traces of ``thm-6``/``thm-8``).

    ``method="exact"``: the closed form of the module docstring (Gram matrices of width-sized
    pre-activation Hessians and Jacobians; cost independent of ``P``); ``"hvp"``:
    ``Σ_j (H e_j)·(H' e_j)`` over the canonical basis, ``P`` HVPs per (input, output), chunked;
    ``"hutchinson"``: ``vᵀ H^α H^β v`` over ``probes`` Rademacher vectors (unbiased);
    ``"auto"``: ``"exact"`` when its largest array has at most ``structured_limit`` elements
    (:func:`structured_elements`), else ``"hvp"`` when ``P ≤ exact_limit``, else Hutchinson.
    The HVP routes are refused (UnsupportedError naming the need) when they would not fit
    ``memory_budget`` bytes (default :data:`DEFAULT_MEMORY_BUDGET`). The result holds all
    ``(M n_L)²`` traces: for the norms at many inputs use :func:`thm8_large`, which streams.
    """
    s = _setup(net, x, device, dtype)
    net.require_c2("output Hessians (thm-3)", x)
    torch = s.torch
    P = s.offsets[-1]
    if method not in ("auto", "exact", "hvp", "hutchinson"):
        raise ShapeError(f"method must be 'auto', 'exact', 'hvp' or 'hutchinson', got {method!r}")
    if method == "auto":
        if structured_elements(net, s.M) <= structured_limit:
            method = "exact"
        else:
            method = "hvp" if P <= exact_limit else "hutchinson"
    theta = torch.cat([W.reshape(-1) for W in s.weights])
    s.family.check_natural(_batched_forward(s, theta))
    if method == "exact":
        return HessianTraces(_traces_structured(s), None, True, "exact", 0)
    mn = s.M * s.n_L
    budget = check_budget(memory_budget)
    item = 8 if s.dtype == torch.float64 else 4
    # per probe: the HVP rows (M n_L × P), jacrev's Jacobian and the tangent (about 4×), and
    # for Hutchinson each probe's (M n_L)² trace sample kept for the standard error
    per_probe = (4 * mn * P + (mn * mn if method == "hutchinson" else 0)) * item
    kept = int(probes) * mn * mn * item if method == "hutchinson" else mn * mn * item
    if per_probe + kept > budget:
        raise UnsupportedError(
            f"tr(H^a H^b) by {method} needs about {(per_probe + kept) / 2**30:.3g} GiB "
            f"(M n_L = {mn}, P = {P}" + (f", {int(probes)} probes" if method == "hutchinson"
                                         else "") + f"), above memory_budget = "
            f"{budget / 2**30:.3g} GiB; use the exact closed form (thm8_large method='exact' or "
            "'sampled'), fewer inputs, or a larger memory_budget")
    c = chunk or max(1, min(256, (budget - kept) // per_probe))
    if method == "hvp":
        T = torch.zeros(mn, mn, dtype=s.dtype, device=s.device)
        for start in range(0, P, c):
            idx = torch.arange(start, min(P, start + c), device=s.device)
            V = torch.zeros(len(idx), P, dtype=s.dtype, device=s.device)
            V[torch.arange(len(idx), device=s.device), idx] = 1.0
            Y = _hvp_rows(s, theta, V)
            T += torch.einsum("cip,cjp->ij", Y, Y)
        return HessianTraces(T, None, True, "hvp", P)
    if int(probes) < 2:
        raise ShapeError(f"probes must be >= 2 for a standard error, got {probes!r}")
    gen = torch.Generator(device=s.device).manual_seed(int(seed))
    samples = []
    for start in range(0, int(probes), c):
        k = min(c, int(probes) - start)
        V = torch.randint(0, 2, (k, P), generator=gen, device=s.device).to(s.dtype) * 2 - 1
        Y = _hvp_rows(s, theta, V)
        samples.append(torch.einsum("cip,cjp->cij", Y, Y))
    S = torch.cat(samples)
    return HessianTraces(S.mean(0), S, False, "hutchinson", int(probes))


def _cov2_form(s: _Setup, Ib: Any, A: Any, B: Any) -> Any:
    """``Σ_{m,m'} tr(I_m A^{mm'} I_{m'} B^{mm'ᵀ})`` for (…, M·n_L, M·n_L) trace arrays."""
    torch = s.torch
    n = s.n_L
    A5 = A.reshape(*A.shape[:-2], s.M, n, s.M, n)
    B5 = B.reshape(*B.shape[:-2], s.M, n, s.M, n)
    IA = torch.einsum("mab,...mbkc->...makc", Ib, A5)
    AI = torch.einsum("...makc,kcd->...makd", IA, Ib)
    return (AI * B5).sum((-1, -2, -3, -4))


def _thm8_parts(s: _Setup, tr: HessianTraces, N: float) -> tuple[Estimate, Estimate]:
    torch = s.torch
    h = _batched_forward(s, torch.cat([W.reshape(-1) for W in s.weights]))
    Ib = torch.as_tensor(s.family.fisher(h), dtype=s.dtype, device=s.device)
    inorm = Ib.reshape(s.M, -1).norm(dim=1)
    scale = s.M * s.M * N
    n = s.n_L

    def rhs_of(T: Any) -> Any:
        d = torch.diagonal(T, dim1=-2, dim2=-1).reshape(*T.shape[:-2], s.M, n).sum(-1)
        return (d * inorm).sum(-1) / scale

    if tr.exact:
        sq = float(_cov2_form(s, Ib, tr.mean, tr.mean))
        lhs = Estimate(math.sqrt(max(sq, 0.0)) / scale, 0.0, True, tr.method, tr.probes)
        rhs = Estimate(float(rhs_of(tr.mean)), 0.0, True, tr.method, tr.probes)
        return lhs, rhs
    S = tr.samples
    assert S is not None
    k = S.shape[0]
    total = S.sum(0)
    # the U-statistic of the quadratic form over probes and its jackknife (module ustat)
    f_all = _cov2_form(s, Ib, total, total)
    f_self = _cov2_form(s, Ib, S, S)  # (k,)
    cross = _cov2_form(s, Ib, S, total.expand_as(S))  # f(T_s, Σ T)
    u, u_del = u_statistic_deleted(f_all, f_self, cross)
    se_sq = 0.0 if u_del is None else float(jackknife_stderr(u_del)) ** 2
    sq = float(u)
    val = math.sqrt(max(sq, 0.0))
    # delta method for the square root; at val = 0 fall back to sqrt(se of the square)
    se = math.sqrt(max(se_sq, 0.0)) / (2.0 * val) if val > 0 else math.sqrt(math.sqrt(max(se_sq, 0.0)))
    lhs = Estimate(val / scale, se / scale, False, "hutchinson", k,
                   {"squared_norm": sq / scale**2, "squared_norm_stderr": math.sqrt(se_sq) / scale**2})
    r = rhs_of(S)
    rhs = Estimate(float(r.mean()), float(r.std() / math.sqrt(k)), False, "hutchinson", k)
    return lhs, rhs


def covariance2_norm(net: Any, x: Any, n: int = 1, **options: Any) -> Estimate:
    """``‖Cov(Î₂)‖_F`` (``thm-6``; lhs of ``thm-8``), exact or a labelled estimate.

    ``‖Cov‖_F² = (1/(M²N))² Σ_{m,m'} tr(I_m T^{mm'} I_{m'} T^{mm'ᵀ})``: the lhs of
    :func:`thm8_large`, which takes the same ``options`` (method, probes, seed, limits, device,
    dtype, budgets, sample_inputs, distributed); an estimate (sampled input pairs, or
    Hutchinson probes) carries its standard error and ``exact=False``.
    """
    out: Estimate = thm8_large(net, x, n, **options).details["lhs_estimate"]
    return out


def thm8_large(
    net: Any,
    x: Any,
    n: int = 1,
    *,
    method: Thm8Method = "auto",
    probes: int = 64,
    seed: int = 0,
    exact_limit: int = EXACT_TRACE_LIMIT,
    structured_limit: int = STRUCTURED_ELEMENTS,
    device: str | None = None,
    dtype: Any = None,
    memory_budget: int | None = None,
    time_budget: float | None = None,
    sample_inputs: int | None = None,
    distributed: bool | None = None,
) -> Bound:
    """``thm-8``: ``‖Cov(Î₂)‖_F ≤ (1/(M²N)) Σ_m ‖∂²h_L(x_m)‖_F² ‖I_m‖_F`` with both sides.

    ``method="exact"``: the closed-form traces (any ``P``) streamed over pairs of input blocks
    within ``memory_budget`` bytes and ``time_budget`` seconds, planned in advance by
    :func:`fisher_verify._src.models.mlp_norms.norm_cost` (``details['cost']``) and refused above
    either budget; ``"sampled"``: the lhs as an unbiased U-statistic over ``sample_inputs``
    inputs with its standard error; ``"auto"``: exact when it fits, sampled when only the time
    budget is exceeded, and when the closed form's smallest block exceeds ``structured_limit``
    elements HVPs over the canonical basis (``P ≤ exact_limit``) or Hutchinson probes
    (``"hvp"``, ``"hutchinson"``, see :func:`hessian_traces`). For exact and sampled the rhs is
    exact (per-input sums); estimates have ``details['exact']`` False and
    ``details['lhs_estimate']`` / ``details['rhs_estimate']`` carry the standard errors.
    ``distributed`` (exact and sampled; default: when a ``torch.distributed`` group is
    initialized): the input pairs and inputs are shared over the processes, every process
    calls alike and gets the whole result; ``"hvp"``/``"hutchinson"`` run whole on each.
    """
    from ..distributed import process_group
    from .mlp_norms import min_block_elements, norm_cost, pair_norm, thm8_rhs

    s = _setup(net, x, device, dtype)
    N = _check_n(n)
    net.require_c2("output Hessians (thm-3)", x)
    if method not in ("auto", "exact", "sampled", "hvp", "hutchinson"):
        raise ShapeError("method must be 'auto', 'exact', 'sampled', 'hvp' or 'hutchinson', "
                         f"got {method!r}")
    if method == "auto":
        closed = min_block_elements(s, "thm-8") <= structured_limit and norm_cost(
            net, x, "thm-8", memory_budget=memory_budget, time_budget=time_budget,
            device=device, dtype=dtype, distributed=distributed).fits_memory
        if not closed:
            method = "hvp" if s.offsets[-1] <= exact_limit else "hutchinson"
    if method in ("hvp", "hutchinson"):
        tr = hessian_traces(net, x, method=method, probes=probes, seed=seed,
                            exact_limit=exact_limit, structured_limit=structured_limit,
                            device=device, dtype=dtype, memory_budget=memory_budget)
        lhs, rhs = _thm8_parts(s, tr, N)
        details: dict[str, Any] = {"probes": tr.probes}
    else:
        lhs, cost = pair_norm(net, x, n, "thm-8", method=method,  # type: ignore[arg-type]
                              memory_budget=memory_budget, time_budget=time_budget,
                              sample_inputs=sample_inputs, seed=seed, device=device, dtype=dtype,
                              distributed=distributed)
        rhs = Estimate(thm8_rhs(s, N, max(1, cost.block), *process_group(distributed)), 0.0,
                       True, "exact", 0)
        details = {"probes": 0, "cost": cost}
    label = "" if lhs.exact else f" [ESTIMATE: {lhs.method}, see details]"
    details.update({"exact": lhs.exact, "method": lhs.method, "lhs_estimate": lhs,
                    "rhs_estimate": rhs, "device": str(s.device)})
    return Bound("thm-8", lhs.value, rhs.value, "<=",
                 "||Cov(I2)||_F <= (1/N)||d2 h_L||_F^2 ||I(h_L)||_F" + label, details)
