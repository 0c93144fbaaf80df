"""Audit a claimed Fisher diagonal at sampled coordinates, where the exact diagonal is out of reach.

For a vocabulary of 10⁴ and ``P`` of 10⁷ the exact ``diag I(θ)`` (eq-6) needs ``n_L`` backward
passes per input for every parameter group; one coordinate needs one **forward-mode** pass per
batch of inputs instead: ``torch.func.jvp`` with the one-hot tangent ``e_i`` gives the column
``u_m = J_m e_i`` of every input's Jacobian at once, and (``ext-sequence``, eq-6)

    I_ii = (1/M) Σ_m u_mᵀ I(h_m) u_m,

in ``O(n_L)`` per input by the family's contraction (``Σ_t m_t Σ_k p_tk d_tk²`` for token-level
outputs, :mod:`fisher_verify._src.families.sequence`). :func:`audit_diagonal` compares a claimed
diagonal with these exact values at a random sample of coordinates (or the ones given):

* **deterministic claim** (``which="exact"``): ``|ĉ_i − I_ii| ≤ rtol · s_i + rtol² · max_j s_j``
  with ``s_i`` the same sum taken over the magnitudes of its terms,
  ``(1/M) Σ_m Σ_k p_k (|u_k| + pᵀ|u|)²`` per position (the rounding scale of the centred form;
  ``rtol`` 1e-9 for a float64 model, 1e-4 for float32, as
  :func:`fisher_verify.check_estimator`). The second term is the floor of
  a column that cancels to zero inside the model (attention's key bias, softmax being
  shift-invariant): rounding noise of relative size ``rtol`` to the largest terms, squared;
* **Monte Carlo claim** (``which="I1"``: ``Î₁`` with ``n`` draws per input, thm-4; ``which="gnb"``:
  the mean of ``n`` Sophia GNB estimates ``M ĝ ⊙ ĝ``, ``ext-gnb``): the claim has mean ``I_ii``
  and exact central moments ``σ_i²`` and ``μ₄,i`` from the cumulants of ``u_mᵀ(t − η_m)``
  (moments up to order 8, per input, added as cumulants). Coordinate ``i`` fails when

      |ĉ_i − I_ii| > τ_i + rtol · s_i + rtol² · max_j s_j,   τ_i = min(σ_i √(S/α), (μ₄,i S/α)^{1/4}),

  Chebyshev's and the fourth-moment Markov bound, each at level ``α/S`` for the ``S`` audited
  coordinates, so the whole audit falsely fails with probability at most ``α`` (default
  ``1e-6``) for any law with those moments: no normality is assumed. With ``R`` independent
  claims (``replicates=True``) Catoni's M-estimate of their mean (scale from the exact
  ``σ_i``, :mod:`.catoni`) is compared within ``σ_i √(2L/(R − 2L))``, ``L = log(2S/α)``:
  about ``0.3 σ_i`` at ``R = 400``, ``S = 30``, instead of ``10² σ_i`` for one claim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import FisherVerifyError, ShapeError
from ..validation import as_generator, check_count, check_flag, check_fraction, check_nonnegative

__all__ = ["audit_diagonal"]

#: Default false-alarm rate of a whole audit (all coordinates together).
AUDIT_ALPHA = 1e-6

_KINDS = ("exact", "I1", "gnb")

#: Most coordinates one audit takes (each costs a forward-mode pass per batch of inputs).
MAX_COORDINATES = 10_000


@dataclass(frozen=True)
class AuditReport:
    """The exact ``I_ii`` at the audited coordinates and the verdict on the claim.

    Attributes:
        passed: every audited coordinate within its threshold.
        coordinates: flat indices (``parameters()`` order of the trainable parameters).
        labels: ``name[i,j,…]`` of each coordinate.
        exact: ``I_ii`` (eq-6). claimed: the claim there.
        threshold: the allowed ``|ĉ_i − I_ii|`` (module docstring).
        scale: the rounding scale ``s_i``. variance, fourth: the claim's exact central moments
            (zeros for ``which="exact"``).
        failed: labels of the coordinates that fail.
        which, n, alpha, rtol, num_inputs, replicates: how it was audited (``claimed`` is
            Catoni's estimate of the replicates' mean when there are several).
    """

    passed: bool
    coordinates: np.ndarray
    labels: list[str]
    exact: np.ndarray
    claimed: np.ndarray
    threshold: np.ndarray
    scale: np.ndarray
    variance: np.ndarray
    fourth: np.ndarray
    failed: list[str]
    which: str
    n: int
    alpha: float
    rtol: float
    num_inputs: int
    replicates: int = 1

    def message(self) -> str:
        """One paragraph: the verdict, then each failing coordinate with its numbers."""
        what = ("deterministic claim, rounding tolerance" if self.which == "exact" else
                f"Monte Carlo claim which={self.which!r} with n = {self.n}, false-alarm rate "
                f"{self.alpha:g} over all coordinates")
        head = (f"audit of {len(self.labels)} coordinates over M = {self.num_inputs} inputs "
                f"({what}): ")
        if self.passed:
            return head + "every coordinate agrees with the exact I_ii."
        lines = [head + f"{len(self.failed)} coordinate(s) fail:"]
        bad = [i for i, lab in enumerate(self.labels) if lab in set(self.failed)]
        for i in bad[:20]:
            lines.append(f"  {self.labels[i]}: claimed {self.claimed[i]:.10g}, exact "
                         f"{self.exact[i]:.10g}, |difference| {abs(self.claimed[i] - self.exact[i]):.3g}"
                         f" > threshold {self.threshold[i]:.3g}")
        if len(bad) > 20:
            lines.append(f"  ... and {len(bad) - 20} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.message()


def audit_threshold(variance: Any, fourth: Any, S: int, alpha: float) -> np.ndarray:
    """``τ = min(σ √(S/α), (μ₄ S/α)^{1/4})``: Chebyshev and the fourth-moment bound at level
    ``α/S`` each (``ext-sequence``); any law with these moments exceeds it with probability at
    most ``α/S``."""
    var = np.maximum(np.asarray(variance, dtype=np.float64), 0.0)
    mu4 = np.maximum(np.asarray(fourth, dtype=np.float64), 0.0)
    level = S / alpha
    return np.minimum(np.sqrt(var * level), (mu4 * level) ** 0.25)


def _labels(names: list[str], shapes: list[tuple[int, ...]], offsets: list[int],
            flat: np.ndarray) -> list[str]:
    out = []
    for i in flat:
        k = int(np.searchsorted(offsets, i, side="right")) - 1
        idx = np.unravel_index(int(i) - offsets[k], shapes[k]) if shapes[k] else ()
        out.append(f"{names[k]}[{','.join(str(int(j)) for j in idx)}]" if idx else names[k])
    return out


def _claim_at(claimed: Any, model: Any, P: int, flat: np.ndarray) -> np.ndarray:
    """One claim (any form :func:`~.adapters.estimate_to_array` reads) at the coordinates."""
    from .adapters import estimate_to_array

    try:
        claim = estimate_to_array(claimed, model)
    except FisherVerifyError as exc:  # name the argument: the reader says "the estimate"
        raise type(exc)(f"claimed: {exc}") from None
    full = sum(int(p.numel()) for p in model.parameters())
    if claim.shape != (P,) and claim.shape != (full,):
        raise ShapeError(f"claimed must be a diagonal of P = {P} entries, got shape {claim.shape}")
    if claim.shape != (P,):  # frozen parameters in the claim: keep the trainable ones
        keep = np.concatenate([np.full(int(p.numel()), p.requires_grad) for p in model.parameters()])
        claim = claim[keep]
    return np.asarray(claim, dtype=np.float64)[flat]


def _check_count_of(S: int) -> None:
    if S > MAX_COORDINATES:
        raise FisherVerifyError(
            f"coordinates: the audit would take {S}, above MAX_COORDINATES = {MAX_COORDINATES} "
            "(one forward-mode pass per coordinate and batch of inputs); audit fewer")


def _coordinates(coordinates: Any, n_coordinates: Any, seed: Any, names: list[str],
                 shapes: list[tuple[int, ...]], offsets: list[int],
                 per_tensor: Any = None) -> np.ndarray:
    P = offsets[-1]
    if coordinates is None and per_tensor is not None:
        k = check_count(per_tensor, "per_tensor")
        _check_count_of(sum(min(k, offsets[j + 1] - offsets[j]) for j in range(len(names))))
        rng = as_generator(seed, "seed")
        picks = [offsets[j] + rng.choice(offsets[j + 1] - offsets[j],
                                         size=min(k, offsets[j + 1] - offsets[j]), replace=False)
                 for j in range(len(names))]
        return np.sort(np.concatenate(picks)).astype(np.int64)
    if coordinates is None:
        k = check_count(n_coordinates, "n_coordinates")
        _check_count_of(min(k, P))
        if k > P:
            raise FisherVerifyError(f"n_coordinates = {k} exceeds the model's P = {P} parameters; "
                                    f"n_coordinates must lie in 1..{P}")
        rng = as_generator(seed, "seed")
        return np.sort(rng.choice(P, size=k, replace=False)).astype(np.int64)
    if not isinstance(coordinates, Sequence | np.ndarray) or isinstance(coordinates, str) or \
            len(coordinates) == 0:
        raise FisherVerifyError("coordinates must be a non-empty list of flat indices or "
                                "(parameter name, index tuple) pairs")
    flat = []
    for c in coordinates:
        if isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], str):
            name, idx = c
            if name not in names:
                raise FisherVerifyError(f"coordinates: {name!r} is not a trainable parameter; "
                                        f"parameters: {names[:6]}...")
            k = names.index(name)
            try:
                local = int(np.ravel_multi_index(tuple(int(j) for j in np.atleast_1d(idx)),
                                                 shapes[k])) if shapes[k] else 0
            except (ValueError, TypeError):
                raise FisherVerifyError(f"coordinates: index {idx!r} is not inside {name} of shape "
                                        f"{shapes[k]}") from None
            flat.append(offsets[k] + local)
        else:
            if isinstance(c, bool) or not isinstance(c, int | np.integer) or not 0 <= int(c) < P:
                raise FisherVerifyError(f"coordinates: {c!r} is not a flat index in 0..{P - 1}")
            flat.append(int(c))
    arr = np.asarray(flat, dtype=np.int64)
    if len(np.unique(arr)) != len(arr):
        raise FisherVerifyError("coordinates: a coordinate is listed twice")
    return arr


def _projection_moments(fam: Any, h: Any, u: Any) -> np.ndarray:
    """Central moments 0..8 of ``uᵀ(t − η)`` per input (B, 9), exactly (the family's own
    ``projected_central_moments``: O(V) per position for token-level and categorical outputs)."""
    U = u.detach().cpu().numpy().astype(np.float64)[:, None, :]
    return np.asarray(fam.projected_central_moments(h.detach().cpu().numpy().astype(np.float64),
                                                    U, 8))[:, 0]


def _quad_and_scale(fam: Any, h: Any, u: Any) -> tuple[Any, Any]:
    """``uᵀI(h)u`` per input and its rounding scale (module docstring), by the family's
    contractions."""
    ctr = fam.contractions(h)
    return ctr.quad(u, u), ctr.magnitude(u)


def _square_law(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variance and fourth central moment of ``s²`` from the central moments 0..8 of ``s``."""
    m2, m4, m6, m8 = mu[..., 2], mu[..., 4], mu[..., 6], mu[..., 8]
    c2 = np.maximum(m4 - m2 * m2, 0.0)
    c4 = np.maximum(m8 - 4.0 * m6 * m2 + 6.0 * m4 * m2 * m2 - 3.0 * m2**4, 0.0)
    return c2, c4


def audit_diagonal(
    model: Any, data: Any, family: Any, claimed: Any, *, which: str = "exact", n: int = 1,
    coordinates: Any = None, n_coordinates: int = 32, per_tensor: int | None = None,
    seed: Any = 0, alpha: float = AUDIT_ALPHA,
    rtol: float | None = None, output: Any = None, dtype: Any = None, device: Any = None,
    eval_mode: bool = False, batch_size: int = 64, replicates: bool = False,
) -> AuditReport:
    """Audit ``claimed`` (a Fisher diagonal of ``model`` over ``data``) at sampled coordinates
    against the exact ``I_ii`` from one forward-mode pass per coordinate and batch (eq-6,
    thm-4, ``ext-gnb``, ``ext-sequence``; module docstring).

    Args:
        model: the ``nn.Module`` (a sequence model: :func:`fisher_verify.with_padding_mask`).
        data: its inputs, as :func:`fisher_verify.exact_fisher` takes them.
        family: the output family (``family("sequence", K=V, T=T)`` for token-level outputs).
        claimed: the claimed diagonal: ``{name: tensor}``, a list of per-parameter tensors or a
            flat ``(P,)`` vector in ``parameters()`` order.
        which: ``"exact"`` (a deterministic claim), ``"I1"`` (``Î₁`` with ``n`` draws per input) or
            ``"gnb"`` (the mean of ``n`` Sophia GNB estimates over all the inputs).
        n: draws per input (``"I1"``) or estimates averaged (``"gnb"``).
        coordinates: flat indices or ``(name, index)`` pairs (default: sampled).
        n_coordinates: how many coordinates to draw, uniformly without replacement.
        per_tensor: instead, draw this many from every parameter tensor (all of a smaller
            one): a sample that sees every layer, where a uniform one falls mostly in the
            embedding and the output head of a large vocabulary.
        seed: the seed (or Generator) of that draw.
        alpha: false-alarm rate of the whole audit (Monte Carlo claims; ≤ 1e-6 by default).
        rtol: rounding tolerance relative to the terms' scale (default 1e-9 for a float64
            model, 1e-4 otherwise).
        output: optional map from the model's output to ``h_L``.
        dtype: ``torch.float64`` (default) or ``torch.float32`` for the exact values.
        device: where to compute (default: the model's device).
        eval_mode: differentiate the model in eval mode.
        batch_size: inputs per forward-mode pass.
        replicates: ``claimed`` is a list of ``R`` independent Monte Carlo claims (each the
            mean of ``n``): Catoni's estimate of their mean, scaled by the exact ``σ_i``, is
            compared within ``σ_i √(2L/(R − 2L))``, ``L = log(2S/α)`` (module docstring).

    Returns:
        :class:`AuditReport`, naming the coordinates that fail; never raises for a wrong claim.

    Raises:
        FisherVerifyError: bad options, coordinates or a claim of the wrong size.
    """
    import torch
    from torch.func import functional_call, jvp

    from ..models.prepared import second_order
    from ..models.workspace import open_workspace
    from ..testing.gate_kinds import sum_moments
    from .catoni import catoni_mean, catoni_radius_factor, catoni_scale, minimum_catoni_draws

    if not isinstance(which, str) or which not in _KINDS:
        hint = " (the words, not the number: which='I1')" if which in (1, 2) else ""
        raise FisherVerifyError(
            f"which must be one of {', '.join(map(repr, _KINDS))}, got {which!r}{hint}")
    N = check_count(n, "n")
    alpha = check_fraction(alpha, "alpha")
    replicates = bool(check_flag(replicates, "replicates"))
    batch_size = check_count(batch_size, "batch_size")
    if rtol is None:
        first = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
        rtol = 1e-9 if first is None or first.dtype == torch.float64 else 1e-4
    rtol = check_nonnegative(rtol, "rtol")
    ws = open_workspace(model, data, family, output=output, dtype=dtype, device=device,
                        eval_mode=eval_mode, distributed=False, progress=False)
    prep = ws.prep
    fam = prep.family
    names = list(prep.params)
    shapes = [tuple(int(s) for s in prep.params[k].shape) for k in names]
    offsets = [0, *np.cumsum([int(prep.params[k].numel()) for k in names]).tolist()]
    P = offsets[-1]
    if coordinates is not None and per_tensor is not None:
        raise FisherVerifyError("give coordinates= or per_tensor=, not both")
    flat = _coordinates(coordinates, n_coordinates, seed, names, shapes, offsets, per_tensor)
    _check_count_of(len(flat))
    labels = _labels(names, shapes, offsets, flat)
    # the claim in parameters() order of the trainable parameters
    trainable = [k for k, p in model.named_parameters() if p.requires_grad]
    if trainable != names:
        raise ShapeError("the model's trainable parameters changed while preparing it")
    if replicates:
        if which == "exact":
            raise FisherVerifyError("replicates=True needs a Monte Carlo which ('I1' or 'gnb'): the "
                                    "replicates of a deterministic claim would all be equal")
        if not isinstance(claimed, list | tuple) or len(claimed) < 1:
            raise FisherVerifyError("claimed: with replicates=True give a list of independent "
                                    "claims (each one in any form of a single claim)")
        low = minimum_catoni_draws(alpha / len(flat))
        if len(claimed) < low:
            raise FisherVerifyError(
                f"claimed: {len(claimed)} replicates; Catoni's bound at the level alpha/S = "
                f"{alpha / len(flat):.3g} ({len(flat)} coordinates) needs at least {low}")
        claim_rows = np.stack([_claim_at(c, model, P, flat) for c in claimed])
    else:
        claim_rows = _claim_at(claimed, model, P, flat)[None]
    R = claim_rows.shape[0]

    S = len(flat)
    quad = np.zeros(S)
    scale = np.zeros(S)
    mc = which != "exact"
    var = np.zeros(S)
    fourth = np.zeros(S)
    moments_gnb: list[list[np.ndarray]] = [[] for _ in range(S)]
    M = 0

    def h_of(theta: dict[str, Any], X: Any) -> Any:
        out = functional_call(prep.module, (theta, prep.fixed), (X,))
        h = prep.output(out) if prep.output is not None else out
        return h.reshape(h.shape[0], -1)

    with second_order():
        for X in ws.stream.batches(batch_size):
            M += int(X.shape[0])
            for j, i in enumerate(flat):
                k = int(np.searchsorted(offsets, i, side="right")) - 1
                name = names[k]
                tangent = torch.zeros_like(prep.params[name])
                tangent.view(-1)[int(i) - offsets[k]] = 1.0
                rest = {key: v for key, v in prep.params.items() if key != name}
                pair = jvp(lambda p, rest=rest, name=name, X=X: h_of({**rest, name: p}, X),
                           (prep.params[name],), (tangent,))
                h, u = pair[0], pair[1]
                if j == 0:
                    fam.check_natural(h)
                q, s = _quad_and_scale(fam, h, u)
                quad[j] += float(q.sum())
                scale[j] += float(s.sum())
                if mc:
                    mu = _projection_moments(fam, h, u)  # (B, 9)
                    if which == "I1":
                        c2, c4 = _square_law(mu)
                        var[j] += float(c2.sum())
                        fourth[j] += float((c4 - 3.0 * c2 * c2).sum())  # κ₄ of each s²
                    else:
                        moments_gnb[j].append(mu)
    exact = quad / M
    scale = scale / M
    if which == "I1":
        # Î₁_ii = (1/(MN)) Σ_m Σ_j s_mj²: cumulants of independent terms add
        k2 = var / (M * M * N)
        k4 = fourth / (M * N) ** 4 * N
        var, fourth = k2, k4 + 3.0 * k2 * k2
    elif which == "gnb":
        for j in range(S):
            mu = sum_moments(np.concatenate(moments_gnb[j])[:, None, :], 1.0 / math.sqrt(M))[0]
            c2, c4 = _square_law(mu)
            var[j] = c2 / N
            fourth[j] = max((c4 + 3.0 * (N - 1) * c2 * c2) / N**3, (c2 / N) ** 2)
    if R > 1:
        # Catoni's estimate of the replicates' mean, scaled by the exact σ_i, at level α/S
        sd = np.sqrt(var)
        delta = alpha / S
        claim_at = catoni_mean(claim_rows, catoni_scale(sd, R, delta))
        tau = sd * catoni_radius_factor(R, delta)
    else:
        claim_at = claim_rows[0]
        tau = audit_threshold(var, fourth, S, alpha) if mc else np.zeros(S)
    # a column that cancels to zero (attention's key bias: softmax is shift-invariant) is
    # rounding noise of relative size rtol to the largest terms, so its I_ii is noise of size
    # rtol² times the largest scale: the floor of every coordinate
    threshold = tau + rtol * scale + rtol * rtol * float(scale.max(initial=0.0))
    bad = ~(np.abs(claim_at - exact) <= threshold)  # NaN fails
    return AuditReport(
        passed=not bool(bad.any()), coordinates=flat, labels=labels, exact=exact,
        claimed=claim_at, threshold=threshold, scale=scale, variance=var, fourth=fourth,
        failed=[lab for lab, b in zip(labels, bad) if b], which=which, n=N, alpha=alpha,
        rtol=float(rtol), num_inputs=M, replicates=R)
