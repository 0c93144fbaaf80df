"""``Var(Î₂)`` diagonal (thm-6) of any C² model: exact where the structure allows, else estimated.

``Var(Î₂)_ii = (1/(M² N)) Σ_m d_mᵀ I(h_L(x_m)) d_m`` with ``d_m[α] = ∂²h^α_L(x_m)/∂θ_i²``
(thm-6, diagonal). Three routes, chosen per parameter tensor and reported per tensor:

* ``"eq3"`` (exact): the model is an Eq. 3 MLP (``nn.Sequential`` of ``Linear`` layers and one
  smooth activation): the pre-activation Hessian recursion of :mod:`fisher_verify._src.models.mlp`;
* ``"hessian"`` (exact): a tensor with at most :data:`EXACT_TENSOR_LIMIT` entries: its diagonal
  Hessian block per output, by forward-over-reverse differentiation (``p`` HVPs per output);
* ``"linear"`` (exact): weight and bias of a Linear layer applied once per input to a vector
  (:mod:`.linear`) with at most :data:`LINEAR_EXACT_LIMIT` outputs:
  ``∂²h^α/∂W[r,c]² = Γ^α[r,r] x_c²`` with ``Γ^α`` the Hessian at the layer's output;
* ``"hutchinson"`` (estimate, ``exact=False``): larger tensors. With Rademacher probes ``v_s``
  (independent per input and probe), ``d̂_s = v_s ⊙ (H^α v_s)`` is unbiased for ``d`` and
  independent across ``s``, so the U-statistic
  ``U = Σ_{s≠s'} d̂_sᵀ I d̂_{s'} / (S(S−1)) = (TᵀIT − Σ_s d̂_sᵀ I d̂_s) / (S(S−1))``, ``T = Σ_s d̂_s``,
  is unbiased for ``dᵀ I d``; its standard error is the delete-one-probe jackknife. Estimates
  are never mixed silently with exact values: each tensor carries its flag and its stderr.

Non-C² models (ReLU, max pooling, ...) are refused with the reason (thm-3: ``Î₂`` is not
the Fisher there and the Hessian diagonal misses the kinks' Dirac terms).
"""

from __future__ import annotations

import math
from typing import Any

from ..distributed import all_reduce_sums
from ..errors import ShapeError, UnsupportedError
from ..fisher.ustat import jackknife_stderr, u_statistic_deleted
from .mlp_route import eq3_chain, mlp_second_sums
from .prepared import second_order
from .workspace import MAX_BATCH, Diagonals, Workspace, moments, plan

__all__: list[str] = []  # nothing for other rooms

#: Parameter tensors up to this many entries get exact Hessian-diagonal blocks.
EXACT_TENSOR_LIMIT = 64
#: Linear layers with up to this many outputs get exact diagonals through their output Hessian.
LINEAR_EXACT_LIMIT = 256

METHODS = ("auto", "eq3", "hessian", "hutchinson")


def _hessian_block_diagonal(ws: Workspace, X: Any, name: str) -> Any:
    """``∂²h^α/∂θ_i²`` for the entries of one tensor: shape ``(B, n_L, p)``, exact."""
    from torch.func import jacfwd, jacrev, vmap

    prep = ws.prep
    rest = {k: v for k, v in prep.params.items() if k != name}

    def one(t: Any, x: Any) -> Any:
        return prep._h({**rest, name: t}, x)

    with second_order():
        H = vmap(jacfwd(jacrev(one)), in_dims=(None, 0))(prep.params[name], X)
    B, nL, p = X.shape[0], prep.n_L, int(prep.params[name].numel())
    return H.reshape(B, nL, p, p).diagonal(dim1=-2, dim2=-1)


def _linear_output_hessian_diagonal(ws: Workspace, X: Any, site: Any) -> Any:
    """``Γ^α[r, r] = ∂²h^α/∂a_r²`` at a Linear layer's output ``a`` (B, n_L, out), exact.

    ``∂²h^α/∂W[r,c]² = Γ^α[r,r] x_c²`` and ``∂²h^α/∂b_r² = Γ^α[r,r]`` since ``a = W x + b`` is
    linear in ``(W, b)`` and ``x`` does not depend on them: ``out`` HVPs per output instead of
    ``out × in``.
    """
    import torch
    from torch.func import jacfwd, jacrev, vmap

    prep, taps = ws.prep, ws.taps
    eps0 = torch.zeros(1, site.out_features, dtype=prep.dtype, device=prep.device)

    def one(e: Any, x: Any) -> Any:
        taps.eps = {site.module: e}
        try:
            return prep._h(prep.params, x)
        finally:
            taps.eps = None

    with second_order():
        H = vmap(jacfwd(jacrev(one)), in_dims=(None, 0))(eps0, X)
    B, n = X.shape[0], site.out_features
    return H.reshape(B, prep.n_L, n, n).diagonal(dim1=-2, dim2=-1)


def probe_sums(ws: Workspace, X: Any, V: dict[str, Any]) -> dict[str, tuple[Any, Any, Any]]:
    """For probes ``V[name]`` of shape ``(S, B, *shape)``: per tensor the sums over the batch of
    ``TᵀIT`` (p,), ``d̂_sᵀ I d̂_s`` (S, p) and ``d̂_sᵀ I T`` (S, p) (module docstring)."""
    from torch.func import jacrev, jvp, vmap

    prep = ws.prep
    names = list(V)
    rest = {k: v for k, v in prep.params.items() if k not in V}
    group = {k: prep.params[k] for k in names}
    S = next(iter(V.values())).shape[0]

    def hv(x: Any, v: dict[str, Any]) -> Any:
        def grad(g: dict[str, Any]) -> Any:
            return jacrev(lambda q: prep._h({**rest, **q}, x))(g)

        return jvp(grad, (group,), (v,))[1]

    mom = moments(prep, prep.forward(X))
    D: dict[str, list[Any]] = {k: [] for k in names}
    for s in range(S):
        with second_order():
            out = vmap(hv)(X, {k: V[k][s] for k in names})
        for k in names:
            Bn = X.shape[0]
            D[k].append(V[k][s].reshape(Bn, 1, -1) * out[k].reshape(Bn, prep.n_L, -1))
    res = {}
    for k in names:
        Dk = __import__("torch").stack(D[k], dim=2)  # (B, n_L, S, p)
        T = Dk.sum(2)
        tit = mom.bilinear(T, T).sum(0)
        q = mom.bilinear(Dk, Dk).sum(0)
        a = mom.bilinear(Dk, T[:, :, None, :].expand_as(Dk)).sum(0)
        res[k] = (tit, q, a)
    return res


def u_statistic(tit: Any, q: Any, a: Any) -> tuple[Any, Any]:
    """The unbiased ``Σ_m dᵀ I d`` and its delete-one-probe jackknife standard error.

    ``tit`` (p,), ``q`` and ``a`` (S, p) summed over inputs (module docstring): the total,
    self and cross terms of :func:`fisher_verify._src.fisher.ustat.u_statistic_deleted`.
    """
    U, U_del = u_statistic_deleted(tit, q, a)
    if U_del is None:
        return U, U.new_full(U.shape, math.inf)
    return U, jackknife_stderr(U_del)


def variance2_diagonal(
    ws: Workspace, n: int, *, method: str = "auto", probes: int = 16, seed: int = 0,
    exact_limit: int = EXACT_TENSOR_LIMIT,
) -> tuple[Diagonals, int]:
    """Unscaled ``Σ_m d_mᵀ I d_m`` per parameter tensor (scale by ``1/(M²N)``), with flags.

    Returns the sums (as :class:`Diagonals`, ``stderr`` in the same units) and the local
    input count. ``method``: ``"auto"`` (``eq3`` for an Eq. 3 MLP, else ``hessian`` for tensors
    up to ``exact_limit`` entries and ``hutchinson`` above), or one of them for every tensor.
    """
    import torch

    del n  # the caller scales by 1/(M² N)
    what = "the variance of the Hessian estimator Î₂"
    found = None
    if ws.remake is not None:
        # a light workspace (the user's module itself where a copy changes nothing) serves the
        # Eq. 3 rule, which only reads its weights and runs it forward; any other route, or a
        # kink scan, works on the full preparation (a copy, the Linear sites)
        ws.prep.require_c2(what)
        if not ws.prep.piecewise and method in ("auto", "eq3"):
            found = eq3_chain(ws)
        if found is None:
            ws.generic()
    prep = ws.prep
    prep.require_smooth(what, ws.stream.batches(256))
    if method not in METHODS:
        raise ShapeError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    from .decision import check_probes

    if check_probes(probes) == "auto":
        raise ShapeError("probes='auto' is resolved by model_diagonals; give a count here")
    if method in ("auto", "eq3"):
        found = found if found is not None else eq3_chain(ws)
        if found is not None:
            sums, count = mlp_second_sums(ws, found)
            all_reduce_sums(list(sums.values()), ws.world)
            shaped = {k: v.reshape(prep.params[k].shape) for k, v in sums.items()}
            return Diagonals(shaped, {k: True for k in sums},
                             {k: torch.zeros_like(v) for k, v in shaped.items()},
                             {k: "eq3" for k in sums}), count
        if method == "eq3":
            raise UnsupportedError("method='eq3' needs an nn.Sequential of Linear layers and one "
                                   "smooth activation, all parameters trainable, and no output=")
    exact_names = [k for k, p in prep.params.items()
                   if method == "hessian" or (method == "auto" and p.numel() <= exact_limit)]
    # Linear layers: exact through the output Hessian of the layer (module docstring)
    linear_sites = [site for site in ws.sites if method == "auto"
                    and site.out_features <= LINEAR_EXACT_LIMIT
                    and not all(k in exact_names for k in site.names)]
    linear_names = {k for site in linear_sites for k in site.names}
    exact_names = [k for k in exact_names if k not in linear_names]
    est_names = [k for k in prep.params if k not in exact_names and k not in linear_names]
    S = probes
    # the probe sums hold 2 S values per estimated entry for the whole run: refused before
    # anything is allocated when they alone exceed the memory budget
    itemsize = 8 if prep.dtype == torch.float64 else 4
    held = 2 * S * sum(int(prep.params[k].numel()) for k in est_names) * itemsize
    if held > ws.memory:
        raise UnsupportedError(
            f"{S} Hutchinson probes over {len(est_names)} estimated tensors hold "
            f"{held / 2**20:.4g} MiB of probe sums, above the memory budget of "
            f"{ws.memory / 2**20:.4g} MiB; use fewer probes or raise memory=")
    zeros = prep.flat_zeros()
    exact_sum = {k: zeros[k].clone() for k in [*exact_names, *linear_names]}
    acc = {k: (zeros[k].clone(), zeros[k].new_zeros(S, zeros[k].numel()),
               zeros[k].new_zeros(S, zeros[k].numel())) for k in est_names}
    # per input: an exact tensor's Hessian block is n_L × p² numbers; an estimated group holds
    # S probes' d̂ (n_L × S × p) plus the HVP's own temporaries
    block = max([2 * prep.n_L * int(prep.params[k].numel()) ** 2 for k in exact_names]
                + [2 * prep.n_L * site.out_features ** 2 for site in linear_sites], default=0)
    est_groups, batch = plan(ws, 4 * S + 8, est_names, block) if est_names else ([], 0)
    if not est_names:
        itemsize = 8 if prep.dtype == torch.float64 else 4
        batch = int(max(1, min(MAX_BATCH, ws.memory // (itemsize * (block + 1)))))
    gen = torch.Generator(device="cpu").manual_seed(int(seed) * 1_000_003 + ws.rank)
    count = 0
    for X in ws.batches(batch, "Hessian diagonals"):
        Bn = int(X.shape[0])
        if exact_names or linear_sites:
            mom = moments(prep, prep.forward(X))
            for k in exact_names:
                d = _hessian_block_diagonal(ws, X, k)
                exact_sum[k] += mom.bilinear(d, d).sum(0)
            inputs = ws.taps.inputs(X) if linear_sites else {}
            for site in linear_sites:
                gam = _linear_output_hessian_diagonal(ws, X, site)  # (B, n_L, out)
                q = mom.bilinear(gam, gam)  # Γ_rᵀ I Γ_r, (B, out)
                exact_sum[site.weight] += (q.T @ inputs[site.module] ** 4).reshape(-1)
                if site.bias:
                    exact_sum[site.bias] += q.sum(0)
        if est_names:
            for group in est_groups:  # independent probes per group: still unbiased
                V = {k: (torch.randint(0, 2, (S, Bn, *prep.params[k].shape), generator=gen)
                         .to(dtype=prep.dtype, device=prep.device) * 2 - 1) for k in group}
                for k, (tit, q, a) in probe_sums(ws, X, V).items():
                    acc[k][0].add_(tit)
                    acc[k][1].add_(q)
                    acc[k][2].add_(a)
        count += Bn
    all_reduce_sums([*exact_sum.values(), *(t for v in acc.values() for t in v)], ws.world)
    values, stderr, exact, methods = {}, {}, {}, {}
    jack: dict[str, Any] = {}
    for k in prep.params:
        shape = prep.params[k].shape
        if k in exact_sum:
            values[k] = exact_sum[k].reshape(shape)
            stderr[k] = torch.zeros(shape, dtype=prep.dtype, device=prep.device)
            exact[k], methods[k] = True, ("linear" if k in linear_names else "hessian")
        else:
            U, U_del = u_statistic_deleted(*acc[k])
            values[k], stderr[k] = U.reshape(shape), jackknife_stderr(U_del).reshape(shape)
            jack[k] = U_del.sum(-1)  # delete-one values of the tensor's sum, for sums' stderr
            exact[k], methods[k] = False, "hutchinson"
    out = Diagonals(values, exact, stderr, methods)
    out.jackknife = jack
    return out, count
