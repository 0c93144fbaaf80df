"""``analyze(model, data, family)``: the paper's quantities for a user's own network or model.

One entry for every model: an Eq. 3 :class:`~fisher_verify._src.networks.network.Network` (or a
:class:`~fisher_verify._src.networks.linked.LinkedNetwork`, its head through a link, ``ext-links``)
goes through the dense and streamed formulas below, any ``torch.nn.Module`` through the engine of
:mod:`fisher_verify._src.models.report`; both return the one :class:`~fisher_verify._src.models.result.Analysis`.

For a Network: exact Fisher (``eq-6``; its diagonal when P is large), both estimators' variance for N draws
(``thm-4``, ``thm-6``) element-wise and as norms, the bounds of ``thm-7``/``thm-8`` and how
tight they are, the p.s.d. probability bound for Î₂ (``thm-10``), which estimator is better
per layer and overall, and the N each estimator needs for a target relative accuracy
(``lemma-12``).

For a LinkedNetwork the same, with ``J_h = g′ J_f`` and ``∂²h`` carrying the link's ``g″``: the
streamed sums read them through its interface; ``‖Cov(Î)‖_F`` goes through the generic pair sums
of :mod:`fisher_verify._src.fisher.pair_norms` (lemma-13's closed forms read Eq. 3 layers), and
the diagonal route through the base's factors and the link
(:mod:`fisher_verify._src.models.linked_diagonals`). Every layer's reason is ``ext-links``: the
d24 structure results assume ``h`` affine in the last layer, which a link breaks.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import FisherVerifyError
from .fisher.degenerate import check_finite, frobenius, refuse_overflow, underflow_reasons
from .fisher.sample_size import samples_needed
from .fisher.tradeoff import PIECEWISE_LINEAR_ACTIVATIONS, reason_for, tradeoff
from .models.result import Analysis, Row
from .validation import check_count, check_flag, check_fraction

__all__ = ["analyze"]

#: ``Analysis.better`` (and per layer) when the result is degenerate: nothing can be decided
UNDETERMINED = "undetermined"
FULL_LIMIT = 2000  # above this many parameters only diagonals are formed (DESIGN: no P² arrays)
#: Seconds the streamed thm-7/thm-8 norms may be estimated to take inside analyze exactly
#: (above it: the sampled-pairs estimate with its standard error, labelled exact=False)
NORM_SECONDS = 120.0
#: the options of :func:`analyze` that only a torch module takes
MODULE_OPTIONS = ("output", "dtype", "device", "eval_mode", "smooth", "distributed", "method",
                  "probes", "seed", "norms", "rel_precision")
#: Seconds the per-input terms may be estimated to take unless ``time_budget`` is given
DEFAULT_TIME_BUDGET = 300.0

Progress = Callable[[str, int, int], None]


def _better(v1: float, v2: float) -> str:
    if math.isclose(v1, v2, rel_tol=1e-9, abs_tol=1e-300):
        return "tie"
    return "I1" if v1 < v2 else "I2"


def analyze(model: Any, data: Any, family: Any = None, *, n: int = 1, target: float = 0.1,
            confidence: float = 0.95, memory: int | None = None,
            progress: bool | Progress | None = None, diagonal: bool | None = None,
            time_budget: float | None = None, **module_options: Any) -> Analysis:
    """Both Fisher estimators of ``model`` over the inputs ``data`` with ``n`` draws per input
    (``eq-6``, ``thm-4``, ``thm-6``, ``thm-7``, ``thm-8``, ``thm-10``, ``lemma-12``).

    Args:
        model: a :class:`fisher_verify.Network` (Eq. 3), a :class:`fisher_verify.LinkedNetwork`
            (its head through a link) or any ``torch.nn.Module``.
        data: for a Network one input ``(n_0,)`` or several ``(M, n_0)``; for a module
            ``(M, ...)``, ``(inputs, targets)``, a Dataset or a DataLoader (p(x) empirical).
        family: the output family of a module (``fisher_verify.family(...)`` or the
            ``torch.nn`` loss trained with); None for a Network, which carries its own.
        n: number of draws N per input.
        target: relative accuracy ``‖Î − I‖_F ≤ target · ‖I‖_F`` for the sample sizes.
        confidence: probability of reaching it (lemma-12 with ε = 1 − confidence).
        memory: bytes the computation may hold at once (default 1 GiB).
        progress: a Network: ``progress(stage, done, total)``, called as chunks of inputs and
            block pairs finish; a module: ``True`` (default) for a progress line on a terminal.
        diagonal: (Network) force diagonal-only output (default: when P > 2000).
        time_budget: (Network) seconds the per-input terms (``O(M)``) may be estimated to take
            (default :data:`DEFAULT_TIME_BUDGET`), estimated from the first inputs.
        module_options: (module) ``output``, ``dtype``, ``device``, ``eval_mode``, ``smooth``,
            ``distributed``, ``method``, ``probes``, ``seed``, ``norms``, ``rel_precision``
            (:func:`fisher_verify._src.models.report.analyze_module`).

    For a Network the per-input terms (eq-6, thm-4, thm-6, the bounds' right-hand sides,
    thm-10) are streamed over chunks of inputs (:mod:`fisher_verify._src.fisher.streamed`); the
    norms ‖Cov(Î)‖_F of thm-7/thm-8, sums over pairs of inputs, over pairs of input blocks
    (:mod:`fisher_verify._src.models.mlp_norms`), exactly when the cost model says they fit
    ``NORM_SECONDS`` and the memory budget, else as a sampled-pairs estimate with its standard
    error (``covariance_norms_exact=False``, the reason in ``bound_1_note``/``bound_2_note``).

    Raises:
        FisherVerifyError: n < 1, target or confidence outside (0, 1), a non-C² Network
            (the variance of Î₂ needs thm-3/thm-6; a non-C² module gets Var(Î₂) refused in
            the result instead); UnsupportedError (at once, before the work) when one input's
            terms exceed ``memory`` or the per-input terms are estimated above ``time_budget``.
        UnsupportedError: the Fisher or a variance overflows float64 (no finite answer).
            An option of the other kind of model (e.g. ``probes`` for a Network) is refused
            naming it.

    A result that underflowed (every Fisher entry below the smallest normal float64, or a
    Var(Î₁) that is 0 only because the family's fourth moment underflowed) is returned with
    the reasons in ``Analysis.degenerate`` and ``better`` set to ``"undetermined"``.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        if family is None:
            raise FisherVerifyError(
                f"family: a {type(model).__name__} needs its output family, e.g. "
                "family=fisher_verify.family('categorical', K=10) or the torch.nn loss it is "
                "trained with")
        given = [k for k, v in (("diagonal", diagonal), ("time_budget", time_budget)) if v is not None]
        if given:
            raise FisherVerifyError(
                f"{given[0]}: applies to a fisher_verify.Network only; the model is a "
                f"{type(model).__name__} (a module's analysis is per parameter tensor, on the "
                "diagonals)")
        from .models.report import analyze_module

        return analyze_module(model, data, family, n, target=target, confidence=confidence,
                              memory=memory,
                              progress=True if progress is None else progress,  # type: ignore[arg-type]
                              **module_options)
    if module_options:
        raise FisherVerifyError(
            f"{sorted(module_options)[0]}: not an option of analyze for a fisher_verify.Network "
            f"model (the options of a torch module: {', '.join(MODULE_OPTIONS)})")
    if family is not None and family is not getattr(model, "family", None):
        raise FisherVerifyError(
            f"family: the model, a fisher_verify.Network, carries its own family; leave family=None, got "
            f"{family!r}")
    from .models.quantities import require_model

    require_model(model)
    return _analyze_network(model, data, n, target, confidence, diagonal, memory, time_budget,
                            None if progress is None or progress is False else progress)


def _analyze_network(net: Any, x: Any, n: int, target: float, confidence: float,
                     diagonal: bool | None, memory_budget: int | None,
                     time_budget: float | None, progress: Any) -> Analysis:
    """:func:`analyze` for an Eq. 3 Network: checks, then :func:`_compute`."""
    from .networks.network import require_network
    from .validation import check_budget

    net = require_network(net, "model")
    if progress is not None and not callable(progress):
        raise FisherVerifyError(f"progress for a Network must be progress(stage, done, total) or "
                                f"None, got {progress!r}")
    n = check_count(n, "number of samples n")
    target = check_fraction(target, "target")
    confidence = check_fraction(confidence, "confidence")
    diagonal = check_flag(diagonal, "diagonal", allow_none=True)
    budget = check_budget(memory_budget)
    tbudget = _time_budget(time_budget)
    net.require_c2("the variance of the Hessian estimator (thm-6)", x)
    # float64 over- and underflow are detected and reported below (refusal or
    # Analysis.degenerate), so NumPy's RuntimeWarnings about them would only be noise
    with np.errstate(all="ignore"):
        return _compute(net, x, n, target, confidence, diagonal, budget, tbudget, progress)


def _compute(net: Any, x: Any, n: int, target: float, confidence: float,
             diagonal: bool | None, budget: int, tbudget: float,
             progress: Progress | None) -> Analysis:
    """The body of :func:`analyze` after its checks."""
    X, _ = net.inputs(x)
    M = int(X.shape[0])
    P = int(net.num_params)
    diag = P > FULL_LIMIT if diagonal is None else bool(diagonal)
    linked = getattr(net, "link", None) is not None
    cov_norm: dict[int, float | None] = {1: None, 2: None}
    cov_se = {1: 0.0, 2: 0.0}
    bound: dict[int, float | None] = {1: None, 2: None}
    notes: dict[int, str] = {}
    norms_exact = True
    psd = None
    if diag:
        # large P: PyTorch path, no P x P array (models/mlp.py); thm-10 needs lambda_min of
        # the P x P Fisher and is left out; thm-7/thm-8 only exactly, never a stochastic
        # estimate here
        # the norms are streamed over pairs of input blocks and refused (left out here) when
        # the cost model says they exceed the memory budget or NORM_SECONDS
        from .errors import UnsupportedError
        from .models.mlp import diagonals
        from .models.mlp_bounds import thm7_large, thm8_large

        if linked:
            from .models.linked_diagonals import linked_diagonals

            d = linked_diagonals(net, X, n, memory_budget=budget)
        else:
            d = diagonals(net, X, n, memory_budget=budget)
        fisher = np.asarray(d.fisher)
        var = {1: np.asarray(d.variance_1), 2: np.asarray(d.variance_2)}
        check_finite(net, x, fisher, var)
        if linked:  # the generic pair sums, exactly or not at all (as thm7_large/thm8_large)
            for e in (1, 2):
                pn = _linked_norm(net, X, n, e, budget, False, None, notes)
                if pn is not None:
                    cov_norm[e], bound[e] = pn.value, pn.rhs
        for e, fn in (() if linked else ((1, thm7_large), (2, thm8_large))):
            try:
                b = fn(net, X, n, method="exact", time_budget=NORM_SECONDS, memory_budget=budget)
            except UnsupportedError as exc:
                notes[e] = str(exc)
                continue
            cov_norm[e], bound[e] = b.lhs, b.rhs
    else:
        from .fisher.streamed import chunk_inputs, dense_sums
        from .models.mlp_norms import pair_norm

        chunk = chunk_inputs(P, int(net.widths[-1]), M, budget)  # refuses at once
        sums = dense_sums(net, X, n, chunk, time_budget=tbudget, progress=progress)
        fisher, var = sums.fisher, {1: sums.variance_1, 2: sums.variance_2}
        if not np.all(np.isfinite(fisher)):  # the variances would hold inf - inf
            refuse_overflow(net, x, "the Fisher information I(θ)")
        check_finite(net, x, fisher, var)
        bound[1], bound[2] = sums.thm7_rhs, sums.thm8_rhs
        # rhs None where thm-10 does not apply (lambda_min(I(theta)) = 0, as whenever
        # M n_L < P: I(theta) has rank <= M n_L)
        psd = sums.psd.bound
        for e, statement in ((1, "thm-7"), (2, "thm-8")):
            stage = f"||Cov(I{e})||_F ({statement}), block pairs"
            if linked:  # lemma-13's closed forms read Eq. 3 layers: the generic pair sums
                report = None if progress is None else functools.partial(progress, stage)
                pn = _linked_norm(net, X, n, e, budget, True, report, notes)
                if pn is not None:
                    cov_norm[e], cov_se[e] = pn.value, pn.stderr
                    norms_exact = norms_exact and pn.exact
                continue
            est, cost = pair_norm(
                net, X, n, statement, method="auto", memory_budget=budget,
                time_budget=NORM_SECONDS,
                progress=None if progress is None else
                (lambda done, total, stage=stage: progress(stage, done, total)))
            cov_norm[e], cov_se[e] = float(est.value), float(est.stderr)
            if not est.exact:
                norms_exact = False
                notes[e] = (
                    f"||Cov(I{e})||_F is a sampled-pairs ESTIMATE over "
                    f"{est.details.get('sample_inputs')} of {M} inputs (exact=False): the exact "
                    f"sum is estimated at {cost.seconds:.3g} s, above NORM_SECONDS = "
                    f"{NORM_SECONDS:g}, or {(cost.held_bytes + cost.block_bytes) / 2**20:.4g} "
                    f"MiB against memory_budget = {budget / 2**20:.4g} MiB")
    overflowed: list[str] = []
    for e, theorem in ((1, "thm-7"), (2, "thm-8")):
        # the variances are finite (checked), but a norm of them is formed from their squares,
        # which can overflow although the norm itself would fit: left out, and said so
        if any(v is not None and not math.isfinite(v) for v in (cov_norm[e], bound[e])):
            overflowed.append(
                f"||Cov(I{e})||_F and the {theorem} bound overflowed float64 in their sums of "
                "squares (the variances themselves are finite and reported); not computed")
            cov_norm[e] = bound[e] = None
            notes[e] = "not computed: its sum of squares overflowed float64"
    if psd is not None and not math.isfinite(psd):
        psd = None
    dfisher = fisher if diag else np.diagonal(fisher)
    dvar = {e: (var[e] if diag else np.diagonal(var[e])) for e in (1, 2)}

    def row(name: str, idx: Any, why: Any = None) -> Row:
        """Sums over the flat-θ indices ``idx`` (a slice or an index array)."""
        if diag:
            s1, s2 = float(var[1][idx].sum()), float(var[2][idx].sum())
        else:
            sel = np.ix_(np.arange(P)[idx], np.arange(P)[idx])
            s1, s2 = float(var[1][sel].sum()), float(var[2][sel].sum())
        d1, d2 = float(dvar[1][idx].sum()), float(dvar[2][idx].sum())
        r = Row(name, int(np.arange(P)[idx].size), float(dfisher[idx].sum()), s1, s2,
                better=_better(s1, s2), diag_var_1=d1, diag_var_2=d2)
        if why is not None:
            t = tradeoff(d1, d2, why)
            r.lower, r.ratio, r.reason, r.why = t.lower, t.ratio, t.reason, t.why
        return r

    layers, tensors = [], []
    off = net.offsets
    L = len(net.shapes)
    pwl = net.activation in PIECEWISE_LINEAR_ACTIVATIONS
    for layer, (rows, cols) in enumerate(net.shapes):
        # the reason from the structure: W_{L-1} is last; ReLU/identity is piecewise linear;
        # W_{L-2} under a C² activation is the group of d24-groups
        # through a link h = g(f) no layer enters h affinely: the d24 results do not apply
        why = "ext-links" if linked else reason_for(
            last=layer == L - 1, piecewise_linear=pwl,
            before_last_smooth=layer == L - 2 and net.is_c2)
        layers.append(row(f"layer {layer}", slice(off[layer], off[layer + 1]), why))
        # flat θ of a layer is [W | b] row-major: the bias is the last column
        block = off[layer] + np.arange(rows * cols).reshape(rows, cols)
        tensors.append(row(f"W{layer}", block[:, :-1].reshape(-1)))
        tensors.append(row(f"b{layer}", block[:, -1]))
    envelopes, env_note = _envelopes(net, X, fisher, diag, budget)
    total = row("total", slice(0, P))
    t1, t2 = total.var_1, total.var_2
    assert t2 is not None
    fnorm = frobenius(fisher)
    for e, tot in ((1, t1), (2, t2)):
        if not math.isfinite(tot):
            overflowed.append(f"the sum of Var(I{e}) overflowed float64; its sample size is "
                              "not computed")
    underflowed = underflow_reasons(net, x, fisher, var[1])
    degenerate = underflowed + overflowed
    if underflowed:  # a comparison of zeros decides nothing
        for g in (total, *layers, *tensors):
            g.better = UNDETERMINED
            if g.reason is not None:
                g.lower, g.ratio = UNDETERMINED, None
    if diag:
        psd_note = ("thm-10 not computed for large P (it needs lambda_min of the P x P "
                    "Fisher)")
    elif psd is None:
        rank_cap = M * int(net.widths[-1])
        why_singular = (f"rank I(theta) <= M n_L = {rank_cap} < P = {P}; more inputs can help"
                        if rank_cap < P else "I(theta) is singular at this theta")
        psd_note = f"thm-10 does not apply (lambda_min(I(theta)) = 0: {why_singular})"
    else:
        psd_note = ""
    model = f"Network widths {tuple(net.widths)}, activation {net.activation}"
    if linked:
        model = f"Linked{model}, link {net.link.label}"
    return Analysis(
        model=model,
        family=net.family.label, num_inputs=M, n=int(n), num_params=P,
        tensors=tensors, layers=layers, total=total,
        fisher=fisher, variance_1=var[1], variance_2=var[2], diagonal_only=diag,
        covariance_norm_1=cov_norm[1], covariance_norm_2=cov_norm[2],
        covariance_norm_1_stderr=cov_se[1], covariance_norm_2_stderr=cov_se[2],
        covariance_norms_exact=norms_exact, bound_1=bound[1], bound_2=bound[2],
        bound_1_note=notes.get(1, ""), bound_2_note=notes.get(2, ""),
        psd_probability=psd, psd_note=psd_note,
        target_rel_accuracy=target, confidence=confidence,
        samples_needed_1=samples_needed(t1 * n, fnorm, target, confidence)
        if math.isfinite(t1 * n) else None,
        samples_needed_2=samples_needed(t2 * n, fnorm, target, confidence)
        if math.isfinite(t2 * n) else None,
        degenerate=degenerate, envelopes=envelopes, envelopes_note=env_note,
    )


def _linked_norm(net: Any, X: np.ndarray, n: int, e: int, budget: int, sampled: bool,
                 progress: Callable[[int, int], None] | None, notes: dict[int, str]) -> Any:
    """``‖Cov(Î_e)‖_F`` and its bound for a LinkedNetwork by the generic pair sums
    (:func:`~fisher_verify._src.fisher.pair_norms.pair_norm_dense`, thm-7/thm-8), or None with
    the reason in ``notes[e]``; a sampled estimate says so in ``notes[e]``."""
    from .errors import UnsupportedError
    from .fisher.pair_norms import pair_norm_dense

    statement = "thm-7" if e == 1 else "thm-8"
    try:
        pn = pair_norm_dense(net, X, n, statement, memory_budget=budget,
                             time_budget=NORM_SECONDS, sampled=sampled, progress=progress)
    except UnsupportedError as exc:
        notes[e] = f"not computed for a LinkedNetwork: {exc}"
        return None
    if not pn.exact:
        notes[e] = (
            f"||Cov(I{e})||_F is a sampled-pairs ESTIMATE over {pn.sample_inputs} of "
            f"{X.shape[0]} inputs (exact=False): the exact sum is priced at {pn.seconds:.3g} s, "
            f"above NORM_SECONDS = {NORM_SECONDS:g}, or {pn.held_bytes / 2**20:.4g} MiB "
            f"against memory_budget = {budget / 2**20:.4g} MiB")
    return pn


def _envelopes(net: Any, X: np.ndarray, fisher: np.ndarray, diag: bool, budget: int
               ) -> tuple[dict[str, Any] | None, str]:
    """sun26-spectrum's pulled-back envelopes ``J'LJ <= I(theta) <= J'UJ`` on the trace and the
    diagonal, for a categorical output (``I(h) = diag(p) - pp'``); the ``(m, n_L, P)`` Jacobians
    are formed a chunk of inputs at a time within ``budget`` bytes (the diagonals are sums over
    inputs)."""
    from .fisher.diagonal import pulled_back_diagonals

    if not net.family.softmax_core:  # the envelopes bound I(h) = diag(p) - pp' only
        return None, ""
    if diag:
        return None, (f"not computed for P > {FULL_LIMIT} (they need the (M, n_L, P) "
                      "Jacobians)")
    M, P, K = int(X.shape[0]), int(net.num_params), int(net.widths[-1])
    chunk = max(1, int(budget) // (4 * 8 * K * P))  # J, its centred copy and their squares
    low, up = np.zeros(P), np.zeros(P)
    for start in range(0, M, chunk):
        Xc = X[start:start + chunk]
        p = np.asarray(net.family.mean(net.forward(Xc)))
        lo_c, up_c = pulled_back_diagonals(net.jacobian(Xc), p)
        low += lo_c * Xc.shape[0]
        up += up_c * Xc.shape[0]
    low, up = low / M, up / M
    f = np.diagonal(fisher)
    with np.errstate(divide="ignore", invalid="ignore"):
        tight = np.where(up > 0, f / np.where(up > 0, up, 1.0), np.nan)
    finite = tight[np.isfinite(tight)]
    span = [float(finite.min()), float(finite.max())] if finite.size else [math.nan, math.nan]
    return {"diag_lower": low, "diag_upper": up, "trace_lower": float(low.sum()),
            "trace_fisher": float(f.sum()), "trace_upper": float(up.sum()),
            "diag_upper_tightness": span}, ""


def _time_budget(value: Any) -> float:
    if value is None:
        return DEFAULT_TIME_BUDGET
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or float(value) <= 0:
        raise FisherVerifyError(f"time_budget must be a number of seconds > 0, got {value!r}")
    return float(value)


