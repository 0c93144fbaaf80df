"""Exact ``diag I(θ)`` (eq-6) and ``Var(Î₁)`` diagonal (thm-4) of any model over a data set.

Per batch of inputs, the ``n_L`` rows of ``J_m = ∂h_L(x_m)/∂θ`` come from vector-Jacobian
products (:meth:`PreparedModel.jacobian`); with ``u = J_m[:, i]`` (one column, ``n_L`` entries)

* eq-6:  ``diag I(θ)_i = (1/M) Σ_m uᵀ I(h_L(x_m)) u``;
* thm-4: ``Var(Î₁)_ii = (1/(M² N)) Σ_m C[u, u, u, u]``, ``C = K − I⊗I`` (:mod:`.contract`:
  O(K) per parameter for the categorical family, ``n_L⁴`` per input otherwise).

Only first derivatives enter (ReLU, max pooling are fine). Memory: one batch's Jacobian rows,
``B · n_L · P_group`` numbers, with the batch size ``B`` and the parameter groups chosen from a
memory budget; never ``M · n_L · P``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..distributed import all_reduce_sums
from ..errors import FisherVerifyError, ShapeError
from ..validation import check_count
from .contract import per_parameter_factor
from .mlp_route import mlp_first_sums, sequential_layers
from .rules import probe_generic
from .workspace import Diagonals, Workspace, moments, open_workspace, plan, shaped, total_inputs

__all__: list[str] = []  # nothing for other rooms


def _flat(t: Any) -> Any:
    return t.reshape(t.shape[0], t.shape[1], -1)


def _check_n(n: Any) -> int:
    return check_count(n, "number of draws per input n", error=ShapeError)


@dataclass
class ModelDiagonals:
    """``diag I(θ)`` and the ``Var(Î₁)``/``Var(Î₂)`` diagonals for ``n`` draws, with M."""

    fisher: Diagonals | None
    variance_1: Diagonals | None
    variance_2: Diagonals | None
    num_inputs: int
    n: int


def tap_sums(ws: Workspace, fisher: bool, variance_1: bool) -> Any:
    """:func:`.taps.tap_sums`, imported at its first use (the mlp rule answers without it)."""
    from .taps import tap_sums as layer_sums

    return layer_sums(ws, fisher, variance_1)


def _jacobian_sums(ws: Workspace, fisher: bool, variance_1: bool) -> tuple[dict[str, Any],
                                                                           dict[str, Any], int]:
    """Unscaled ``Σ_m uᵀIu`` and ``Σ_m C[u⁴]`` per parameter (flat), and the local input count."""

    if ws.layers:
        layers = sequential_layers(ws)
        if layers is not None:  # the mlp rule (.rules): lemma-13's factors, no reverse passes
            return mlp_first_sums(ws, layers, fisher, variance_1)
        sums = tap_sums(ws, fisher, variance_1)
        if sums is not None:
            return sums
    ws.generic()
    prep = ws.prep
    factor = per_parameter_factor(prep.family, prep.n_L, variance_1)
    sites = ws.sites
    structured = {n for s in sites for n in s.names}
    generic = [k for k in prep.params if k not in structured]
    # per input, a Linear site holds n_L × out derivatives and its input
    extra = sum(prep.n_L * s.out_features * factor + 4 * prep.params[s.weight].shape[1]
                for s in sites)
    groups, batch = plan(ws, factor, generic, extra)
    f_sum = prep.flat_zeros() if fisher else {}
    v_sum = prep.flat_zeros() if variance_1 else {}
    count = 0
    for X in ws.batches(batch, "Jacobian rows"):
        h = prep.forward(X)
        prep.family.check_natural(h)
        mom = moments(prep, h)
        inputs = ws.taps.inputs(X) if sites else {}
        for i, group in enumerate(groups or [[]]):
            here = sites if i == 0 else []
            if ws.taps is not None:
                jac, G = ws.taps.jacobian(X, group, here)
            else:
                jac, G = prep.jacobian(X, group), {}
            for name in group:
                quad, excess = mom.fisher_and_excess(_flat(jac[name]), variance_1)
                if fisher:
                    f_sum[name] += quad.sum(0)
                if variance_1:
                    v_sum[name] += excess.sum(0)
            for site in here:  # ∂h/∂W[r,c] = g[r] x[c] (module docstring of .linear)
                quad, excess = mom.fisher_and_excess(G[site.module], variance_1)
                x2 = inputs[site.module] ** 2
                for acc, val, xp in ((f_sum, quad, x2), (v_sum, excess, x2 * x2)):
                    if val is None or not acc:
                        continue
                    acc[site.weight] += (val.T @ xp).reshape(-1)
                    if site.bias:
                        acc[site.bias] += val.sum(0)
            del jac, G
        count += int(X.shape[0])
    return f_sum, v_sum, count


def _variance2(ws: Workspace, N: int, *, probes: int | str = 16, rel_precision: float = 0.1,
               **options: Any) -> tuple[Diagonals, int]:
    """:func:`~.hessian.variance2_diagonal` with ``probes`` a count or ``"auto"``: a pilot over
    :data:`~.decision.PILOT_PROBES` probes, then as many as the standard error of the summed
    estimate needs for ``rel_precision`` (:func:`~.decision.probes_for_precision`, capped at
    :data:`~.decision.MAX_PROBES`); the count used and whether it was capped are recorded on
    the result (``probes``, ``probe_note``)."""
    from .decision import (
        MAX_PROBES,
        PILOT_PROBES,
        check_probes,
        check_rel_precision,
        probes_for_precision,
    )
    from .hessian import variance2_diagonal  # second order: not imported on the first-order path

    probes = check_probes(probes)
    if probes == "auto":
        rel_precision = check_rel_precision(rel_precision)
    else:
        out, count = variance2_diagonal(ws, N, probes=probes, **options)  # type: ignore[arg-type]
        out.probes = int(probes) if not out.all_exact else 0
        return out, count
    out, count = variance2_diagonal(ws, N, probes=PILOT_PROBES, **options)
    if out.all_exact:
        return out, count
    value, se, _ = out.sum_over(list(out))
    S, capped = probes_for_precision(se, value, PILOT_PROBES, rel_precision, MAX_PROBES)
    if S > PILOT_PROBES:
        out, count = variance2_diagonal(ws, N, probes=S, **options)
    out.probes = S
    out.probe_note = (
        f"probes=auto: {S} probes for a relative standard error <= {rel_precision:g} "
        f"(pilot {PILOT_PROBES}: {value:.3g} +- {se:.2g})"
        + (f"; capped at MAX_PROBES = {MAX_PROBES}, the precision may not be reached"
           if capped else ""))
    return out, count


def model_diagonals(
    ws: Workspace, n: int = 1, *, fisher: bool = True, variance_1: bool = True,
    variance_2: bool = False, **hessian_options: Any,
) -> ModelDiagonals:
    """``diag I(θ)`` (eq-6), ``Var(Î₁)`` (thm-4) and ``Var(Î₂)`` (thm-6) diagonals on a workspace.

    Raises:
        UnsupportedError: a module that no rule of the engine can differentiate, named
            (:func:`~.rules.probe_generic`), besides what the routes refuse.
    """
    N = _check_n(n)
    try:
        return _model_diagonals(ws, N, fisher, variance_1, variance_2, hessian_options)
    except FisherVerifyError:
        raise
    except Exception:
        # torch.func refused something: name the module when that is the cause (the probe
        # raises UnsupportedError), else the error stands as it is
        probe_generic(ws.prep, ws.stream.example())
        raise


def _model_diagonals(ws: Workspace, N: int, fisher: bool, variance_1: bool, variance_2: bool,
                     hessian_options: dict[str, Any]) -> ModelDiagonals:
    f_sum, v_sum, local = _jacobian_sums(ws, fisher, variance_1) if (fisher or variance_1) \
        else ({}, {}, None)
    all_reduce_sums([*f_sum.values(), *v_sum.values()], ws.world)
    v2: Diagonals | None = None
    if variance_2:
        v2, local2 = _variance2(ws, N, **hessian_options)
        local = local2 if local is None else local
    assert local is not None
    M = total_inputs(ws, local)
    if v2 is not None:
        v2 = v2.scale_(1.0 / (M * M * N))
    return ModelDiagonals(
        fisher=Diagonals(shaped(ws, f_sum, 1.0 / M)) if fisher else None,
        variance_1=Diagonals(shaped(ws, v_sum, 1.0 / (M * M * N))) if variance_1 else None,
        variance_2=v2, num_inputs=M, n=N,
    )


def model_fisher_diagonal(
    model: Any, data: Any, family: Any, *, output: Callable[[Any], Any] | None = None,
    dtype: Any = None, device: Any = None, eval_mode: bool = False, memory: int | None = None,
    distributed: bool | None = None, progress: bool = True,
) -> Diagonals:
    """Exact ``diag I(θ) = diag((1/M) Σ_m J_mᵀ I(h_L(x_m)) J_m)`` (eq-6) of any torch model.

    Args:
        model: an ``nn.Module`` mapping a batch of inputs to ``h_L`` of shape ``(B, n_L)``
            (or to what ``output`` maps to it, e.g. logits for ``categorical``). It is left
            exactly as it was (a deep copy is differentiated).
        data: inputs ``(M, ...)``, ``(inputs, targets)``, a Dataset or a DataLoader.
        family: the output family (``fv.family(...)``, products included); ``n_L = family.dim``.
        output: optional map from the model's output to ``h_L``.
        dtype: ``torch.float64`` (default) or ``torch.float32``.
        device: where to compute (default: the model's device).
        eval_mode: differentiate the model in eval mode (dropout off, running statistics); the
            user's model keeps its own mode.
        memory: budget in bytes for one batch's Jacobian rows (default 1 GiB).
        distributed: split the inputs over the ``torch.distributed`` group (default: when one is
            initialized) and all-reduce the sums.
        progress: a progress line on a terminal for runs longer than 2 s.

    Returns:
        ``{name: tensor shaped like the parameter}`` for every trainable parameter.
    """
    ws = open_workspace(model, data, family, output=output, dtype=dtype, device=device,
                        eval_mode=eval_mode, memory=memory, distributed=distributed,
                        progress=progress, light=True)
    out = model_diagonals(ws, 1, fisher=True, variance_1=False).fisher
    assert out is not None
    return out


def check_second_order_options(method: Any, probes: Any, seed: Any) -> None:
    """Refuse a bad ``method``, ``probes`` or ``seed`` of ``Var(Î₂)`` at once, also where they
    end up unused (``estimator=1``, an Eq. 3 MLP): a typo must not pass unnoticed.

    Raises:
        ShapeError: ``method`` not one of the methods, ``probes`` neither ``"auto"`` nor an
            integer in ``[3, MAX_PROBES]``.
        FisherVerifyError: ``seed`` not an integer >= 0.
    """
    from .decision import check_probes
    from .hessian import METHODS

    if not isinstance(method, str) or method not in METHODS:
        raise ShapeError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    check_probes(probes)
    check_count(seed, "seed", minimum=0)


def model_variance_diagonal(
    model: Any, data: Any, family: Any, estimator: int = 1, n: int = 1, *,
    output: Callable[[Any], Any] | None = None, dtype: Any = None, device: Any = None,
    eval_mode: bool = False, smooth: bool | None = None, memory: int | None = None,
    distributed: bool | None = None, progress: bool = True, method: str = "auto",
    probes: int | str = 16, seed: int = 0, rel_precision: float = 0.1,
) -> Diagonals:
    """``Var(Î_k)_ii`` for ``n`` draws per input: thm-4 (``estimator=1``) or thm-6 (``2``).

    ``estimator=1``: exact, ``(1/(M²N)) Σ_m C[u⁴]``, first derivatives only (module docstring).
    ``estimator=2``: ``(1/(M²N)) Σ_m Σ_αβ ∂²_ii h^α I_αβ ∂²_ii h^β`` needs output-Hessian
    diagonals and a C² model (refused otherwise, with the reason): exact for an Eq. 3 MLP
    (``method="eq3"``) and for parameter tensors with at most ``EXACT_TENSOR_LIMIT`` entries
    (``"hessian"``), else an unbiased Hutchinson estimate over ``probes`` Rademacher probes
    (``"hutchinson"``, flagged in ``.exact`` with ``.stderr``); see
    :func:`fisher_verify._src.models.hessian.variance2_diagonal`. ``probes="auto"`` picks the
    number of probes for a relative standard error ``rel_precision`` of the summed estimate
    (:mod:`fisher_verify._src.models.decision`, capped at ``MAX_PROBES``, recorded in ``.probes``
    and ``.probe_note``). Other arguments as
    :func:`model_fisher_diagonal`; ``smooth`` overrides the C² detection.
    """
    if estimator not in (1, 2) or isinstance(estimator, bool):
        raise ShapeError(f"estimator must be 1 (thm-4) or 2 (thm-6), got {estimator!r}")
    N = _check_n(n)
    check_second_order_options(method, probes, seed)
    ws = open_workspace(model, data, family, output=output, dtype=dtype, device=device,
                        eval_mode=eval_mode, smooth=smooth, memory=memory,
                        distributed=distributed, progress=progress, light=True)
    if estimator == 1:
        out = model_diagonals(ws, N, fisher=False, variance_1=True).variance_1
    else:
        out = model_diagonals(ws, N, fisher=False, variance_1=False, variance_2=True,
                              method=method, probes=probes, seed=seed,
                              rel_precision=rel_precision).variance_2
    assert out is not None
    return out
