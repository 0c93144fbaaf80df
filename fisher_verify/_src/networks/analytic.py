"""The analytic route to network derivatives: lemma-13 recursions and their second order.

All functions take the weight list ``[W_0, …, W_{L-1}]`` (``W_l`` is ``n_{l+1} × (n_l+1)``,
last column bias), an :class:`~fisher_verify._src.networks.activations.Activation` and a batch of
inputs ``x`` of shape ``(M, n_0)``; results carry the leading batch axis ``M``.

Flat θ is layer by layer, each ``W_l`` row-major, so the entry ``W_l[r, c]`` sits at
``offset_l + r (n_l + 1) + c``.

Second order (output Hessians). For the computation graph ``a_l = W_l h̄_l``,
``h_{l+1} = σ(a_l)``, the Hessian of an output is the sum over nodes of (the node's adjoint)
× (the node's local second derivative, contracted with its inputs' total derivatives):

``∂²h^a_L = Σ_{l<L-1} Σ_r B_{l+1}[a,r] σ''(a_{l,r}) ∂a_{l,r} ∂a_{l,r}ᵀ
           + Σ_{l≥1} Σ_{r,c} G_l[a,r] (e_{W_l[r,c]} ∂h_{l,c}ᵀ + ∂h_{l,c} e_{W_l[r,c]}ᵀ)``,

with ``G_l = B_{l+1} D_l = ∂h_L/∂a_l`` (lemma-13's adjoints) and the total derivatives
``∂a_l``, ``∂h_l`` accumulated forward. The first sum vanishes for ReLU/identity (σ'' = 0);
the second, the bilinear cross-layer coupling, does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import Activation


@dataclass(frozen=True)
class Lemma13:
    """Quantities of lemma-13 for a batch of ``M`` inputs.

    Attributes:
        hbar: ``h̄_l = (h_l, 1)`` for l = 0..L-1, each ``(M, n_l + 1)``.
        pre: pre-activations ``a_l = W_l h̄_l`` for l = 0..L-1, each ``(M, n_{l+1})``.
        D: diagonals of ``D_l = diag(σ'(a_l))`` (``D_{L-1} = I``), each ``(M, n_{l+1})``.
        B: ``B_l = ∂h_L/∂h_l`` for l = 0..L (``B_L = I``), each ``(M, n_L, n_l)``.
        h_L: network outputs ``(M, n_L)``.
    """

    hbar: list[np.ndarray]
    pre: list[np.ndarray]
    D: list[np.ndarray]
    B: list[np.ndarray]
    h_L: np.ndarray

    def h(self, layer: int) -> np.ndarray:
        """``h_l`` ``(M, n_l)`` for l = 0 (the input x) .. L (the output h_L)."""
        return self.h_L if layer == len(self.hbar) else self.hbar[layer][:, :-1]


def _bar(h: np.ndarray) -> np.ndarray:
    return np.concatenate([h, np.ones(h.shape[:-1] + (1,))], axis=-1)


def forward(weights: list[np.ndarray], act: Activation, x: np.ndarray) -> np.ndarray:
    """h_L for inputs x ``(M, n_0)`` (Eq. 3), shape ``(M, n_L)``."""
    h = x
    last = len(weights) - 1
    for layer, W in enumerate(weights):
        a = _bar(h) @ W.T
        h = a if layer == last else act.np_f(a)
    return h


def lemma13(weights: list[np.ndarray], act: Activation, x: np.ndarray) -> Lemma13:
    """Forward pass and the recursion ``B_L = I``, ``B_l = B_{l+1} D_l W_l⁻`` (lemma-13)."""
    L = len(weights)
    hbar: list[np.ndarray] = []
    pre: list[np.ndarray] = []
    h = x
    for layer, W in enumerate(weights):
        hb = _bar(h)
        a = hb @ W.T
        hbar.append(hb)
        pre.append(a)
        h = a if layer == L - 1 else act.np_f(a)
    D = [act.np_d1(a) for a in pre[:-1]] + [np.ones_like(pre[-1])]
    M, n_L = h.shape
    B: list[np.ndarray] = [np.empty(0)] * (L + 1)
    B[L] = np.broadcast_to(np.eye(n_L), (M, n_L, n_L)).copy()
    for layer in range(L - 1, -1, -1):
        B[layer] = (B[layer + 1] * D[layer][:, None, :]) @ weights[layer][:, :-1]
    return Lemma13(hbar=hbar, pre=pre, D=D, B=B, h_L=h)


def jacobian(weights: list[np.ndarray], act: Activation, x: np.ndarray) -> np.ndarray:
    """J = ∂h_L/∂θ ``(M, n_L, P)`` from ``∂h^a_L/∂W_l = D_l B_{l+1}ᵀ e_a h̄_lᵀ`` (lemma-13)."""
    q = lemma13(weights, act, x)
    M, n_L = q.h_L.shape
    J = np.empty((M, n_L, sum(W.size for W in weights)))
    at = 0
    for layer, W in enumerate(weights):
        G = q.B[layer + 1] * q.D[layer][:, None, :]  # (M, n_L, n_{l+1}) = ∂h_L/∂a_l
        # each layer's outer products written in place: no per-layer block and no concatenated
        # copy of the (M, n_L, P) array (a third of the reference's time at P ~ 1e5)
        blk = J[:, :, at : at + W.size].reshape(M, n_L, W.shape[0], W.shape[1])
        np.multiply(G[:, :, :, None], q.hbar[layer][:, None, None, :], out=blk)
        at += W.size
    return J


def output_hessians(weights: list[np.ndarray], act: Activation, x: np.ndarray) -> np.ndarray:
    """∂²h^a_L/∂θ∂θᵀ ``(M, n_L, P, P)``: the second-order extension of lemma-13 (module doc)."""
    q = lemma13(weights, act, x)
    L = len(weights)
    M, n_L = q.h_L.shape
    sizes = [W.size for W in weights]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    P = int(offsets[-1])
    H = np.zeros((M, n_L, P, P))
    Jh = np.zeros((M, x.shape[-1], P))  # total derivative of h_l (h_0 = x is fixed)
    for layer, W in enumerate(weights):
        n_out, n_in1 = W.shape
        sl = slice(offsets[layer], offsets[layer + 1])
        # total derivative of a_l = W_l h̄_l
        Ja = np.einsum("rc,mcp->mrp", W[:, :-1], Jh)
        explicit = np.einsum("rs,mc->mrsc", np.eye(n_out), q.hbar[layer]).reshape(M, n_out, -1)
        Ja[:, :, sl] += explicit
        G = q.B[layer + 1] * q.D[layer][:, None, :]  # (M, n_L, n_out)
        if layer >= 1:  # bilinear coupling of W_l with h_l (h_0 = x does not depend on θ)
            Jhbar = np.concatenate([Jh, np.zeros((M, 1, P))], axis=1)  # (M, n_in1, P)
            T = np.einsum("mar,mcq->marcq", G, Jhbar).reshape(M, n_L, n_out * n_in1, P)
            H[:, :, sl, :] += T
            H[:, :, :, sl] += np.swapaxes(T, -1, -2)
        if layer < L - 1:
            c2 = q.B[layer + 1] * act.np_d2(q.pre[layer])[:, None, :]
            if np.any(c2):
                H += np.einsum("mar,mrp,mrq->mapq", c2, Ja, Ja)
            Jh = q.D[layer][:, :, None] * Ja
    return 0.5 * (H + np.swapaxes(H, -1, -2))  # exactly symmetric
