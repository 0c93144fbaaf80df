"""Exact K-FAC factors of a layer of an Eq. 3 network, dense reference (``ext-kfac``).

For the weight matrix ``W_l`` (``a_l = W_l h̄_l``), lemma-13 gives ``∂h_L/∂a_l = B_{l+1} D_l``
(``D_{L-1} = I``), so the layer's Jacobian is ``∂h^a_L/∂W_l[r, c] = (B_{l+1} D_l)[a, r] h̄_l[c]``
and its block of I(θ) (eq-6) for one input is ``(Gᵀ I G) ⊗ (h̄ h̄ᵀ)`` in the flat-θ order
(``W_l`` row-major: row ``r`` major, column ``c`` minor, so the output factor comes first).

K-FAC (Martens & Grosse 2015) averages the two factors separately over the ``M`` inputs:
``A_l = (1/M) Σ_m h̄_l h̄_lᵀ`` and ``G_l = (1/M) Σ_m (B_{l+1} D_l)ᵀ I(h_L) (B_{l+1} D_l)``, and
approximates the block by ``G_l ⊗ A_l``: exact for one input, an approximation for several.
Its Monte Carlo ``G`` replaces ``I(h_L)`` by ``(t(y) − η)(t(y) − η)ᵀ`` with labels drawn from
the model: ``Î₁`` of the pre-activations ``a_l`` (eq-11), unbiased for ``G_l``, so thm-4 with
``J = ∂h_L/∂a_l`` gives its exact element-wise variance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FisherVerifyError, ShapeError
from ..networks.network import Network, require_network
from .backprop import _statistics
from .covariance import cov1_variance
from .exact import output_quantities


def _check_weight_layer(net: Network, layer: Any) -> int:
    """``layer`` as the index l of ``W_l`` (0..L-1), or a refusal naming the valid range."""
    if isinstance(layer, bool) or not isinstance(layer, int | np.integer) or not (
        0 <= int(layer) < net.depth
    ):
        raise FisherVerifyError(
            f"layer must be the index of a weight matrix W_l, an integer 0..{net.depth - 1} "
            f"for this network of depth L = {net.depth}, got {layer!r}"
        )
    return int(layer)


def preactivation_jacobian(net: Network, x: Any, layer: int) -> np.ndarray:
    """``∂h_L/∂a_l = B_{l+1} D_l`` ``(M, n_L, n_{l+1})`` (lemma-13; ``ext-kfac``)."""
    net = require_network(net)
    layer = _check_weight_layer(net, layer)
    q = net.lemma13(x)
    return np.asarray(q.B[layer + 1] * q.D[layer][:, None, :])


def kfac_factors(net: Network, x: Any, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact K-FAC factors ``(A_l, G_l)`` of ``W_l`` over the inputs ``x`` (``ext-kfac``).

    ``A_l = (1/M) Σ_m h̄_l h̄_lᵀ`` ``(n_l + 1, n_l + 1)`` and ``G_l = (1/M) Σ_m (B_{l+1} D_l)ᵀ
    I(h_L) (B_{l+1} D_l)`` ``(n_{l+1}, n_{l+1})``.

    Raises:
        FisherVerifyError: ``layer`` is not 0..L-1; DomainError: h_L outside the family's domain.
    """
    net = require_network(net)
    layer = _check_weight_layer(net, layer)
    X, _ = net.inputs(x)
    M = X.shape[0]
    _, _, I = output_quantities(net, X)
    q = net.lemma13(X)
    hb = q.hbar[layer]
    Ja = q.B[layer + 1] * q.D[layer][:, None, :]
    A = hb.T @ hb / M
    G = np.einsum("mar,mab,mbs->rs", Ja, I, Ja) / M
    return A, G


def kfac_block(net: Network, x: Any, layer: int) -> np.ndarray:
    """K-FAC's approximation ``G_l ⊗ A_l`` of the ``W_l`` block of I(θ), in the flat-θ order
    (``W_l`` row-major; ``ext-kfac``), shape ``(n_{l+1}(n_l+1), n_{l+1}(n_l+1))``."""
    A, G = kfac_factors(net, x, layer)
    return np.kron(G, A)


def layer_slice(net: Network, layer: int) -> slice:
    """Where ``W_l`` lies in flat θ (``ext-kfac``)."""
    net = require_network(net)
    layer = _check_weight_layer(net, layer)
    off = net.offsets
    return slice(off[layer], off[layer + 1])


def gradient_factor_estimate(net: Network, x: Any, t: Any, layer: int) -> np.ndarray:
    """Monte Carlo K-FAC ``Ĝ_l`` from statistics ``t`` ``(N, d)`` (one input) or ``(N, M, d)``:
    ``(1/M) Σ_m (1/N) Σ_i g g ᵀ`` with ``g = (B_{l+1} D_l)ᵀ (t(y_i) − η(h_L))`` the gradient of
    ℓ in ``a_l`` (``Î₁`` of eq-11 at the pre-activations; ``ext-kfac``). Unbiased for ``G_l``
    when the labels are drawn from the model, not taken from data."""
    net = require_network(net)
    layer = _check_weight_layer(net, layer)
    X, tt = _statistics(net, x, t)
    _, eta, _ = output_quantities(net, X)
    r = tt - eta[None]
    S = np.einsum("nma,nmb->mab", r, r) / tt.shape[0]
    Ja = preactivation_jacobian(net, X, layer)
    return np.asarray(np.einsum("mar,mab,mbs->rs", Ja, S, Ja) / X.shape[0])


def gradient_factor_variance(net: Network, x: Any, layer: int, n: int = 1) -> np.ndarray:
    """Exact ``Var(Ĝ_l)_rs`` ``(n_{l+1}, n_{l+1})`` of :func:`gradient_factor_estimate` with ``n``
    labels drawn from the model per input: thm-4 with ``J = ∂h_L/∂a_l = B_{l+1} D_l``
    (``ext-kfac``; ``(1/(M² n)) Σ_m`` over the inputs as in :mod:`.covariance`).

    Raises:
        FisherVerifyError: ``layer`` is not 0..L-1 or ``n`` is not an integer ≥ 1.
    """
    net = require_network(net)
    layer = _check_weight_layer(net, layer)
    X, _ = net.inputs(x)
    h, _, I = output_quantities(net, X)
    K = np.asarray(net.family.central_moment4(h), dtype=np.float64)
    return cov1_variance(preactivation_jacobian(net, X, layer), K, I, n)


# --- weight sharing: K-FAC-expand and K-FAC-reduce (Eschenhagen et al. 2023) -----------------


def _shared_arrays(a: Any, Jz: Any, I: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a`` (N, R, c), ``Jz`` (N, D, R, q), ``I`` (N, D, D) as float64, shapes checked."""
    a = np.asarray(a, dtype=np.float64)
    Jz = np.asarray(Jz, dtype=np.float64)
    I = np.asarray(I, dtype=np.float64)
    if a.ndim != 3 or Jz.ndim != 4 or I.ndim != 3:
        raise ShapeError(
            f"expected the layer inputs a (N, R, c), the output Jacobians Jz = ∂f_n/∂z_(n,r) "
            f"(N, D, R, q) and the output Fisher I (N, D, D); got shapes {a.shape}, {Jz.shape}, "
            f"{I.shape}"
        )
    N, R, _ = a.shape
    if Jz.shape[0] != N or Jz.shape[2] != R or I.shape != (N, Jz.shape[1], Jz.shape[1]):
        raise ShapeError(
            f"inconsistent shapes: a {a.shape} (N, R, c), Jz {Jz.shape} (N, D, R, q), I {I.shape} "
            "(N, D, D) must agree in N, R and D"
        )
    return a, Jz, I


def shared_layer_block(a: Any, Jz: Any, I: Any) -> np.ndarray:
    """The exact Fisher block ``(1/N) Σ_n J_nᵀ I_n J_n`` of a linear layer ``z_(n,r) = W a_(n,r)``
    shared over R positions (``ext-kfac-sharing``), ``J_n = Σ_r Jz_(n,·,r) ⊗ a_(n,r)ᵀ`` the
    Jacobian in ``W`` row-major; ``(qc, qc)``."""
    a, Jz, I = _shared_arrays(a, Jz, I)
    N, D = Jz.shape[:2]
    JW = np.einsum("ndrq,nrc->ndqc", Jz, a).reshape(N, D, -1)
    return np.asarray(np.einsum("ndp,nde,neq->pq", JW, I, JW) / N)


def kfac_expand_factors(a: Any, Jz: Any, I: Any) -> tuple[np.ndarray, np.ndarray]:
    """K-FAC-expand ``(A, G)`` (``ext-kfac-sharing``): the positions treated like inputs,
    ``A = (1/(NR)) Σ_(n,r) a aᵀ`` and ``G = (1/N) Σ_(n,r) Jz_rᵀ I_n Jz_r`` (the exact expectation
    of ``Σ_r g_r g_rᵀ``); ``G ⊗ A`` is the block of a deep linear network in the expand setting."""
    a, Jz, I = _shared_arrays(a, Jz, I)
    N, R, _ = a.shape
    A = np.einsum("nrc,nrd->cd", a, a) / (N * R)
    G = np.einsum("ndrq,nde,nerp->qp", Jz, I, Jz) / N
    return A, G


def kfac_reduce_factors(a: Any, Jz: Any, I: Any) -> tuple[np.ndarray, np.ndarray]:
    """K-FAC-reduce ``(A, G)`` (``ext-kfac-sharing``): ``A = (1/(N R²)) Σ_n (Σ_r a)(Σ_r a)ᵀ`` and
    ``G = (1/N) Σ_n (Σ_r Jz_r)ᵀ I_n (Σ_r Jz_r)`` (of ``(Σ_r g_r)(Σ_r g_r)ᵀ``); ``G ⊗ A`` is the
    block of a deep linear network in the reduce setting."""
    a, Jz, I = _shared_arrays(a, Jz, I)
    N, R, _ = a.shape
    s = a.sum(axis=1)
    Js = Jz.sum(axis=2)
    A = s.T @ s / (N * R * R)
    G = np.einsum("ndq,nde,nep->qp", Js, I, Js) / N
    return A, G
