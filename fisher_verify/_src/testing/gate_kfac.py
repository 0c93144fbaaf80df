"""The exact law of the gate's statistics for a K-FAC factor estimate (``kind=KFAC(...)``,
``ext-kfac``).

K-FAC's Monte Carlo gradient factor of a layer with pre-activations ``z`` (outputs before the
nonlinearity, per position ``t`` of a shared weight) is, with labels drawn from the model and
``r = t(y) − η(h_L)``,

    Ĝ = (1/M) Σ_m (1/n) Σ_i Σ_t g_t g_tᵀ,   g_t = J_tᵀ r,   J_t = ∂h_L/∂z_t   (K-FAC-expand),
    Ĝ = (1/M) Σ_m (1/n) Σ_i (Σ_t g_t)(Σ_t g_t)ᵀ                                (K-FAC-reduce),

i.e. ``Î₁`` of eq-11 at the pre-activations (one position: both are the same). Every gate
statistic ``⟨W, Ĝ⟩`` is, per input and draw, a quadratic form ``rᵀ A r`` in the family's noise
with ``A = Σ_t J_t W J_tᵀ`` (reduce: ``J = Σ_t J_t``), so thm-4 gives its law exactly: mean
``(1/M) Σ_m tr(A_m I_m)`` and variance ``(1/(M² n)) Σ_m κ₄[A_m, A_m] + 2 tr(I_m A_m I_m A_m)``,
covariances by the family's exact-expectation nodes, and fourth moments of the rank-one
statistics (one position) as for ``Î₁``.

``factor="G"``: the estimate is ``Ĝ`` (``(q, q)``, or its diagonal), statistics ``Ĝ_rr`` and
``vᵀĜv``. ``factor="block"`` (Eq. 3 networks): the estimate is the layer's K-FAC block
``Ĝ ⊗ A`` in the flat-θ order of ``W_l`` (row-major: output index major, so ``G`` first;
``A = (1/M) Σ_m h̄ h̄ᵀ`` exact), whose statistics are ``⟨W', Ĝ⟩`` with ``W' = A_cc e_r e_rᵀ``
(diagonal element ``(r, c)``) or ``V A Vᵀ`` (``vᵀ(Ĝ⊗A)v``, ``V`` the ``q × c`` reshape of
``v``): the same law. The other Kronecker order ``A ⊗ Ĝ`` is that block under the commutation
permutation, which the diagnosis names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import FisherVerifyError, UnsupportedError
from ..fisher.kfac import kfac_factors, preactivation_jacobian
from ..networks.network import Network
from .gate_exact import ExactStatistics, _kappa4_pairs, _statistic_moments, checked_outputs

__all__ = ["KFAC"]

#: Largest M·S·(d² + q²) for the per-input matrices of all statistics at once.
KFAC_ENTRY_LIMIT = 30_000_000


@dataclass(frozen=True)
class KFAC:
    """A K-FAC factor estimator of one layer (``ext-kfac``).

    Attributes:
        layer: the weight matrix ``W_l`` (an index ``0..L-1``) of an Eq. 3 network, or the
            name of a ``Linear`` / ``Conv*d`` module (``named_modules()``) of any model.
        factor: ``"G"``: the estimate is the gradient factor ``Ĝ`` ``(q, q)`` (q output units or
            channels); ``"block"`` (Eq. 3 networks): the layer's K-FAC block ``Ĝ ⊗ A``.
        sharing: for a layer applied at several positions (a convolution):
            ``"expand"`` (``Σ_t g_t g_tᵀ``) or ``"reduce"`` (``(Σ_t g_t)(Σ_t g_t)ᵀ``), Eschenhagen
            et al. 2023; irrelevant for one position.
    """

    layer: int | str
    factor: Literal["G", "block"] = "G"
    sharing: Literal["expand", "reduce"] = "expand"


def check_kfac(kind: KFAC) -> None:
    """Refuse a malformed :class:`KFAC` kind, naming the field."""
    if kind.factor not in ("G", "block"):
        raise FisherVerifyError(f"KFAC.factor must be 'G' (the gradient factor Ĝ) or 'block' "
                                f"(the layer's Ĝ ⊗ A), got {kind.factor!r}")
    if kind.sharing not in ("expand", "reduce"):
        raise FisherVerifyError(f"KFAC.sharing must be 'expand' or 'reduce', got {kind.sharing!r}")
    if isinstance(kind.layer, bool) or not isinstance(kind.layer, int | np.integer | str):
        raise FisherVerifyError(f"KFAC.layer must be a layer index (an Eq. 3 network) or a module "
                                f"name, got {kind.layer!r}")


def _module_positions(net: Any, X: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """``J_t = ∂h_L/∂z_t`` (M, T, d, q) of the named ``Linear`` / ``Conv*d`` module of a model
    (its output ``z``, channels ``q`` and positions ``t``), by one backward pass per output."""
    import torch

    mods = dict(net.prep.module.named_modules())
    if name not in mods or not isinstance(mods[name], torch.nn.Linear | torch.nn.Conv1d |
                                          torch.nn.Conv2d | torch.nn.Conv3d):
        valid = [k for k, m in mods.items() if isinstance(m, torch.nn.Linear | torch.nn.Conv1d |
                                                          torch.nn.Conv2d | torch.nn.Conv3d)]
        raise FisherVerifyError(f"KFAC.layer = {name!r} is not a Linear or Conv module of the "
                                f"model; valid: {', '.join(map(repr, valid))}")
    mod = mods[name]
    probe: dict[str, Any] = {}

    def hook(_m: Any, _inp: Any, out: Any) -> Any:
        delta = torch.zeros_like(out, requires_grad=True)
        probe["delta"] = delta
        return out + delta

    handle = mod.register_forward_hook(hook)
    try:
        x = net._torch_inputs(X)
        with torch.enable_grad():
            out = net.prep.module(x)
            h = net.prep.output(out) if net.prep.output is not None else out
            h = h.reshape(h.shape[0], -1)
            delta = probe["delta"]
            rows = [torch.autograd.grad(h[:, a].sum(), delta, retain_graph=True)[0]
                    for a in range(h.shape[1])]
    finally:
        handle.remove()
    g = torch.stack(rows, dim=1).detach().to(torch.float64).cpu().numpy()  # (M, d, q, *pos)
    M, d, q = g.shape[:3]
    g = g.reshape(M, d, q, -1)
    kind = "Linear" if isinstance(mod, torch.nn.Linear) else "Conv"
    if kind == "Linear" and g.shape[-1] != 1:
        kind = "Linear (applied at several positions)"
    return np.ascontiguousarray(np.transpose(g, (0, 3, 1, 2))), kind


def position_jacobians(net: Any, X: np.ndarray, kind: KFAC) -> np.ndarray:
    """``J_t = ∂h_L/∂z_t`` (M, T, d, q) of the kind's layer (``ext-kfac``); ``sharing="reduce"``
    gives ``Σ_t J_t`` (T = 1)."""
    if isinstance(net, Network):
        if isinstance(kind.layer, str):
            raise FisherVerifyError(f"KFAC.layer must be an integer 0..{net.depth - 1} for an Eq. 3 "
                                    f"network, got {kind.layer!r}")
        Jt = preactivation_jacobian(net, X, int(kind.layer))[:, None]
    elif hasattr(net, "prep"):
        if not isinstance(kind.layer, str):
            raise FisherVerifyError(f"KFAC.layer must be a module name for this model, got "
                                    f"{kind.layer!r}")
        Jt, _ = _module_positions(net, X, kind.layer)
    else:
        raise UnsupportedError("kind=KFAC needs an Eq. 3 Network or a model seen through the any-model "
                               "reference (ModuleNetwork)")
    if kind.sharing == "reduce":
        Jt = Jt.sum(axis=1, keepdims=True)
    return np.asarray(Jt, dtype=np.float64)


def _input_factor(net: Network, X: np.ndarray, layer: int) -> np.ndarray:
    return kfac_factors(net, X, layer)[0]


def kfac_target(kind: KFAC, net: Any, X: np.ndarray) -> tuple[int, list[str], list[tuple[str, np.ndarray]]]:
    """(size P of the estimate's side, labels of its diagonal, plausible wrong orders) for the
    gate's messages and diagnoses."""
    check_kfac(kind)
    Jt = position_jacobians(net, X[:1], kind)
    q = Jt.shape[-1]
    if kind.factor == "G":
        return q, [f"Ĝ[{r},{r}] (layer {kind.layer!r})" for r in range(q)], []
    if not isinstance(net, Network):
        raise UnsupportedError("KFAC(factor='block') needs an Eq. 3 Network (the block Ĝ ⊗ A in "
                               "its flat [W | b] order); use factor='G' for any model")
    c = net.shapes[int(kind.layer)][1]
    labels = [f"(Ĝ⊗A)[{i},{i}] (W{kind.layer}[{r},{col}])" for i, (r, col) in
              enumerate((r, col) for r in range(q) for col in range(c))]
    # estimate[c·q + r] = (A ⊗ G)[(c, r)] = (G ⊗ A)[(r, c)]
    perm = np.array([r * c + col for col in range(c) for r in range(q)], dtype=np.int64)
    return q * c, labels, [("the Kronecker order A ⊗ G instead of G ⊗ A (K-FAC's block of W_l "
                            "row-major is G ⊗ A: output index major)", perm)]


def _weights(kind: KFAC, net: Any, X: np.ndarray, q: int, V: np.ndarray,
             diagonal_only: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Weight matrices ``W'_j`` (S, q, q) on ``Ĝ`` of every statistic, their rank-one vectors
    ``w_j`` with ``W'_j = w_j w_jᵀ`` (S, q; NaN rows where not rank one) and the Kronecker
    input factor ``A`` (block) or None."""
    D = V.shape[0]
    if kind.factor == "G":
        eye = np.eye(q)
        if diagonal_only:
            dirs = np.stack([np.diag(v * v) for v in V]) if D else np.zeros((0, q, q))
            vec = np.concatenate([eye, np.full((D, q), np.nan)])
        else:
            dirs = np.einsum("kp,kq->kpq", V, V)
            vec = np.concatenate([eye, V])
        return np.concatenate([np.einsum("rp,rq->rpq", eye, eye), dirs]), vec, None
    A = _input_factor(net, X, int(kind.layer))
    c = A.shape[0]
    a = np.diag(A)
    diag_w = np.zeros((q * c, q, q))
    vec = np.full((q * c + D, q), np.nan)
    for r in range(q):
        diag_w[r * c : (r + 1) * c, r, r] = a
        vec[r * c : (r + 1) * c, r] = np.sqrt(np.maximum(a, 0.0))
        vec[r * c : (r + 1) * c, :r] = 0.0
        vec[r * c : (r + 1) * c, r + 1 :] = 0.0
    Vm = V.reshape(D, q, c)
    if diagonal_only:
        dirs = np.stack([np.diag((Vm[k] ** 2) @ a) for k in range(D)]) if D else np.zeros((0, q, q))
    else:
        dirs = np.einsum("krc,cd,ksd->krs", Vm, A, Vm)
    return np.concatenate([diag_w, dirs]), vec, A


def kfac_statistics(
    kind: KFAC, net: Any, X: np.ndarray, n: int, V: np.ndarray, diagonal_only: bool,
    *, fourth_moments: bool = True,
) -> ExactStatistics:
    """The exact law of the gate's statistics for a K-FAC factor estimate (``ext-kfac``; module
    docstring): thm-4 with ``A_m = Σ_t J_t W' J_tᵀ`` per statistic."""
    check_kfac(kind)
    fam = net.family
    M = X.shape[0]
    h, eta = checked_outputs(net, X)
    Ih = np.asarray(fam.fisher(h), dtype=np.float64)
    Jt = position_jacobians(net, X, kind)  # (M, T, d, q)
    T, d, q = Jt.shape[1:]
    Wg, vec, Afac = _weights(kind, net, X, q, V, diagonal_only)
    S = Wg.shape[0]
    if M * S * (d * d + q * q) > KFAC_ENTRY_LIMIT:
        raise UnsupportedError(
            f"kind={kind!r}: {M} inputs × {S} statistics × (d² + q²) = {M * S * (d * d + q * q):,} "
            f"entries exceed {KFAC_ENTRY_LIMIT:,}; lower the inputs or directions"
        )
    A = np.einsum("mtaq,sqr,mtbr->msab", Jt, Wg, Jt)  # (M, S, d, d)
    A = 0.5 * (A + np.swapaxes(A, -1, -2))
    expected = np.einsum("msab,mba->s", A, Ih) / M
    absA = np.einsum("mtaq,sqr,mtbr->msab", np.abs(Jt), np.abs(Wg), np.abs(Jt))
    scales = np.einsum("msab,mba->s", absA, np.abs(Ih)) / M
    G = np.einsum("mtaq,mab,mtbr->qr", Jt, Ih, Jt) / M
    full = G if Afac is None else np.kron(G, Afac)
    norm = 1.0 / (M * M * float(n))

    def combination(coeffs: np.ndarray) -> np.ndarray:
        c = np.atleast_2d(np.asarray(coeffs, dtype=np.float64))
        Ab = np.einsum("ks,msab->kmab", c, A)
        K = c.shape[0]
        hK = np.broadcast_to(h[None], (K, M, d)).reshape(K * M, d)
        k4 = _kappa4_pairs(fam, hK, Ab.reshape(K * M, d, d)).reshape(K, M)
        IA = np.einsum("mab,kmbc->kmac", Ih, Ab)
        tr = np.einsum("kmab,kmba->km", IA, IA)
        return np.maximum((k4 + 2.0 * tr).sum(axis=1) * norm, 0.0)

    def covariance() -> np.ndarray:
        t, w, _ = fam.expectation_nodes(h, degree=4)
        t = np.asarray(t, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        w = w / w.sum(axis=-1, keepdims=True)
        r = t - eta[:, None, :]
        g = np.einsum("mqa,msab,mqb->mqs", r, A, r)
        g = (g - np.einsum("mq,mqs->ms", w, g)[:, None, :]) * np.sqrt(w)[:, :, None]
        flat = g.reshape(-1, S)
        return np.asarray(flat.T @ flat) * norm

    def at_labels(tt: np.ndarray) -> np.ndarray:
        r = np.asarray(tt, dtype=np.float64) - eta[None]  # (k, M, d)
        return np.einsum("kma,msab,kmb->s", r, A, r) / (r.shape[0] * M)

    variance = combination(np.eye(S))  # S ≤ q² + directions: small
    fourth = np.full(S, np.nan)
    one = (T == 1) & np.all(np.isfinite(vec), axis=1)
    if fourth_moments and np.any(one):
        proj = np.einsum("maq,sq->msa", Jt[:, 0], vec[one])
        _, mu4 = _statistic_moments(fam, h, proj, 1, n)
        fourth[one] = mu4
    P = S - V.shape[0]
    return ExactStatistics(
        expected=expected, variance=variance, fourth=fourth, scales=scales, kind=kind, n=int(n),
        diagonal_only=bool(diagonal_only), V=V, h=h, eta=eta,
        dense_J=np.broadcast_to(np.zeros(()), (M, d, P)),  # only its shape is read: P statistics
        w=None, fisher_full=None if diagonal_only else full,
        combination=combination, covariance=covariance, labels_fn=at_labels, tag="_KFAC",
    )


def kfac_alternatives(kind: KFAC, net: Any, X: np.ndarray, V: np.ndarray,
                      diagonal_only: bool) -> list[tuple[str, np.ndarray]]:
    """Exact statistics of the wrong layer's factor (every other layer of the same width, of an
    Eq. 3 network), for the diagnosis."""
    out: list[tuple[str, np.ndarray]] = []
    if not isinstance(net, Network):
        return _module_alternatives(kind, net, X, V, diagonal_only) if hasattr(net, "prep") else out
    if kind.factor == "block":
        # the other Kronecker order, with its own exact statistics (the diagnosis' permutation
        # check widens only the directions' radius, by a fixed factor)
        A, G = kfac_factors(net, X, int(kind.layer))
        swapped = np.kron(A, G)
        diag = np.diag(swapped)
        dirs = (V * V) @ diag if diagonal_only else np.einsum("kp,pq,kq->k", V, swapped, V)
        out.append(("the Kronecker order A ⊗ G instead of G ⊗ A (K-FAC's block of W_l row-major "
                    "is G ⊗ A: output index major)", np.concatenate([diag, dirs])))
        return out
    q = net.shapes[int(kind.layer)][0]
    for other in range(net.depth):
        if other == int(kind.layer) or net.shapes[other][0] != q:
            continue
        ex = kfac_statistics(KFAC(other), net, X, 1, V, diagonal_only, fourth_moments=False)
        out.append((f"the gradient factor of layer {other} (pre-activations of the wrong layer), "
                    f"not of layer {kind.layer}", ex.expected))
    return out


def _module_alternatives(kind: KFAC, net: Any, X: np.ndarray, V: np.ndarray,
                         diagonal_only: bool) -> list[tuple[str, np.ndarray]]:
    """The gradient factor of every other Linear / Conv module of a model with as many output
    units or channels (the wrong layer hooked), for the diagnosis."""
    import torch

    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    mods = dict(net.prep.module.named_modules())
    mine = mods.get(str(kind.layer))
    width = getattr(mine, "out_features", getattr(mine, "out_channels", None))
    out = []
    for name, mod in mods.items():
        if name == kind.layer or not isinstance(mod, kinds):
            continue
        if getattr(mod, "out_features", getattr(mod, "out_channels", None)) != width:
            continue
        ex = kfac_statistics(KFAC(name, sharing=kind.sharing), net, X, 1, V, diagonal_only,
                             fourth_moments=False)
        out.append((f"the gradient factor of module {name!r} (the wrong layer's output hooked), "
                    f"not of {kind.layer!r}", ex.expected))
    return out
