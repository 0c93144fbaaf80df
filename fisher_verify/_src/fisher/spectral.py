"""Per-layer Jacobians ``∂h_L/∂W_l``: Frobenius norm (``lemma-14``) and tensor spectral norm
(``lemma-15``), computed exactly from their rank structure.

By ``lemma-13``, ``∂h^a_L/∂W_l[j, k] = (B_{l+1} D_l)_{aj} h̄_l[k]``: the 3-tensor
``T = A ⊗ h̄`` (``A = B_{l+1} D_l``, ``n_L × n_{l+1}``) is rank one in its last mode. Hence

* ``‖T‖_F = ‖A‖_F ‖h̄_l‖₂`` (``lemma-14``'s identity), and
* ``‖T‖_{2σ} = s_max(A) ‖h̄_l‖₂`` exactly (``lemma-15``). Proof: for unit α, β, γ,
  ``⟨T, α⊗β⊗γ⟩ = (αᵀAβ)(h̄ᵀγ) ≤ s_max(A)‖h̄‖`` by the variational characterisation of
  ``s_max`` and Cauchy–Schwarz; equality at the top singular pair of A and ``γ = h̄/‖h̄‖``.

:func:`tensor_spectral_norm` certifies any 3-tensor's spectral norm between a lower bound
(alternating maximisation, a value attained at explicit unit vectors) and an upper bound
(the smallest spectral norm of the three unfoldings, since ``⟨T, α⊗β⊗γ⟩ = αᵀ T_(1) (β⊗γ)``
and ``‖β⊗γ‖ = 1``). For ``T = A ⊗ h̄`` the mode-1 unfolding is ``A ⊗ h̄ᵀ`` (Kronecker) whose
singular values are ``s_i(A)‖h̄‖``, so both bounds meet: the value is certified, not estimated.

**Rounding.** Both bounds are computed in float64, each with a relative rounding error of a
few units of roundoff times the dimension. A certified interval must hold for the exact
norm of the float tensor, so both ends are rounded outward by :func:`rounding_margin`
(``8·k·u``, ``k`` the sum of the tensor's dimensions, ``u`` = 2⁻⁵³): ``lower·(1 − γ)`` and
``upper·(1 + γ)``. Without it, the two routes to the same number (``s_max(A)‖h̄‖``) gave
``lower > upper`` by an ulp in about half the cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..validation import as_generator

__all__: list[str] = []  # nothing for other rooms

#: sup_z |σ'(z)| for the catalog's activations (gelu: Φ(√2) + √2 φ(√2), attained at z = √2).
SUP_ABS_DERIVATIVE: dict[str, float] = {
    "tanh": 1.0,
    "sigmoid": 0.25,
    "softplus": 1.0,
    "relu": 1.0,
    "identity": 1.0,
    "gelu": 1.1289041710806965,
}


def sup_abs_derivative(net: Any) -> float:
    """``sup |σ'|`` of the network's activation (the hypothesis ``|σ'| ≤ 1`` of lemma-14/15).

    Known activations come from :data:`SUP_ABS_DERIVATIVE`; others are evaluated on a dense
    grid of [-50, 50] (a lower estimate of the sup, documented as such).
    """
    name = str(net.activation)
    if name in SUP_ABS_DERIVATIVE:
        return SUP_ABS_DERIVATIVE[name]
    z = np.linspace(-50.0, 50.0, 200_001)
    return float(np.max(np.abs(net.act.np_d1(z))))


@dataclass(frozen=True)
class SpectralNorm:
    """A tensor spectral norm certified between ``lower`` and ``upper`` (``lemma-15``).

    ``lower ≤ ‖T‖_{2σ} ≤ upper`` for the exact norm of the float64 tensor, both ends rounded
    outward (module docstring), so ``lower ≤ upper`` always. ``vectors`` (α, β, γ) attain
    ``lower`` up to that rounding; ``exact`` when ``upper − lower ≤ rtol·upper``.
    """

    lower: float
    upper: float
    vectors: tuple[np.ndarray, np.ndarray, np.ndarray]
    exact: bool

    @property
    def value(self) -> float:
        """The norm (midpoint of the certified interval; exact when ``exact``)."""
        return 0.5 * (self.lower + self.upper)


def rounding_margin(shape: tuple[int, ...]) -> float:
    """Relative outward rounding ``γ = 8·k·u`` of a certified interval for a tensor of
    ``shape`` (``k`` = sum of the dimensions, ``u`` = 2⁻⁵³): covers the float64 rounding of
    the contractions, norms and SVDs behind both ends (``lemma-15``)."""
    return 8.0 * float(sum(shape)) * 2.0**-53


def _outward(lower: float, upper: float, gamma: float) -> tuple[float, float]:
    return lower * (1.0 - gamma), upper * (1.0 + gamma)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def tensor_spectral_norm(
    T: Any,
    *,
    starts: int = 8,
    iters: int = 300,
    rng: np.random.Generator | int | None = 0,
    rtol: float = 1e-9,
) -> SpectralNorm:
    """``‖T‖_{2σ} = max ⟨T, α⊗β⊗γ⟩`` over unit vectors, for a 3-tensor (``lemma-15``).

    Lower bound: alternating maximisation (higher-order power method) from the top singular
    vectors of each unfolding plus ``starts`` random starts. Upper bound: the smallest
    spectral norm of the three unfoldings. Both are rigorous; ``exact`` reports their meeting.
    """
    A = np.asarray(T, dtype=np.float64)
    if A.ndim != 3:
        raise ShapeError(f"tensor spectral norm needs a 3-tensor, got shape {A.shape}")
    unfold = [np.moveaxis(A, k, 0).reshape(A.shape[k], -1) for k in range(3)]
    upper = min(float(np.linalg.norm(U, 2)) for U in unfold)
    gen = as_generator(rng)
    inits: list[tuple[np.ndarray, np.ndarray]] = []
    u1 = np.linalg.svd(unfold[1], full_matrices=False)[0][:, 0]
    u2 = np.linalg.svd(unfold[2], full_matrices=False)[0][:, 0]
    inits.append((u1, u2))
    for _ in range(starts):
        b0 = np.asarray(gen.normal(size=A.shape[1]))
        inits.append((b0, np.asarray(gen.normal(size=A.shape[2]))))
    best = -1.0
    best_vec: tuple[np.ndarray, np.ndarray, np.ndarray] = (
        np.zeros(A.shape[0]), np.zeros(A.shape[1]), np.zeros(A.shape[2])
    )
    for b0, c0 in inits:
        b, c = _unit(b0), _unit(c0)
        a = _unit(np.einsum("ijk,j,k->i", A, b, c))
        prev = -np.inf
        for _ in range(iters):
            a = _unit(np.einsum("ijk,j,k->i", A, b, c))
            b = _unit(np.einsum("ijk,i,k->j", A, a, c))
            c = _unit(np.einsum("ijk,i,j->k", A, a, b))
            val = float(np.einsum("ijk,i,j,k->", A, a, b, c))
            if val - prev <= 1e-15 * max(abs(val), 1e-300):
                break
            prev = val
        val = abs(float(np.einsum("ijk,i,j,k->", A, a, b, c)))
        if val > best:
            best, best_vec = val, (a, b, c)
    lo, hi = _outward(best, upper, rounding_margin(A.shape))
    return SpectralNorm(lo, hi, best_vec, bool(hi - lo <= rtol * max(hi, 1e-300)))


def rank_one_spectral_norm(A: Any, hbar: Any) -> SpectralNorm:
    """``‖A ⊗ h̄‖_{2σ} = s_max(A) ‖h̄‖₂``, with the attaining vectors (``lemma-15``, exact).

    The lower bound is ``⟨T, u⊗v⊗h̄/‖h̄‖⟩`` evaluated at the top singular pair (u, v) of A; the
    upper bound is the mode-1 unfolding's spectral norm ``‖A ⊗ h̄ᵀ‖₂``. They agree to rounding.
    """
    A_ = np.asarray(A, dtype=np.float64)
    h = np.asarray(hbar, dtype=np.float64)
    U, s, Vt = np.linalg.svd(A_, full_matrices=False)
    nh = float(np.linalg.norm(h))
    u, v, g = U[:, 0], Vt[0], _unit(h)
    lower = abs(float(u @ A_ @ v) * float(h @ g))
    upper = float(s[0]) * nh  # = ‖A ⊗ hᵀ‖₂ since σ(A ⊗ hᵀ) = σ(A)·‖h‖
    lo, hi = _outward(lower, upper, rounding_margin((*A_.shape, h.size)))
    return SpectralNorm(lo, hi, (u, v, g), bool(hi - lo <= 1e-12 * max(hi, 1e-300)))


def layer_jacobian(net: Any, x: Any, layer: int) -> np.ndarray:
    """``∂h_L/∂W_l`` ``(M, n_L, n_{l+1}, n_l+1)`` (``lemma-13``): ``(B_{l+1}D_l)_{aj} h̄_l[k]``."""
    q = net.lemma13(x)
    A = q.B[layer + 1] * q.D[layer][:, None, :]
    return A[..., :, :, None] * q.hbar[layer][:, None, None, :]


@dataclass(frozen=True)
class LayerNorms:
    """Norms of ``∂h_L/∂W_l`` for one layer and one input (``lemma-14``, ``lemma-15``).

    Attributes:
        layer: l.
        frobenius: ``‖∂h_L/∂W_l‖_F`` (from the tensor itself).
        frobenius_factored: ``‖B_{l+1}D_l‖_F ‖h̄_l‖₂`` (lemma-14's identity).
        frobenius_bound: ``Π_{i>l} ‖W_i⁻‖_F ‖h̄_l‖₂`` (lemma-14's bound, needs |σ'| ≤ 1), with
            the empty product at the last layer ``l = L−1`` read as ``‖B_L‖_F = ‖I_{n_L}‖_F =
            √n_L``: there ``∂h_L/∂W_{L-1} = I ⊗ h̄_{L-1}`` has norm ``√n_L ‖h̄_{L-1}‖₂``, so the
            literal empty product 1 is false for ``n_L > 1`` (``frobenius_bound_paper``).
        spectral: ``‖∂h_L/∂W_l‖_{2σ}``, certified exactly (:func:`rank_one_spectral_norm`).
        spectral_bound: ``Π_{i>l} s_max(W_i⁻) ‖h̄_l‖₂`` (lemma-15's bound, needs |σ'| ≤ 1).
        derivative_factor: ``(sup|σ'|)^{L-1-l}``; multiplying either bound by it gives a bound
            valid for any activation (equal to 1 under the hypothesis).
    """

    layer: int
    frobenius: float
    frobenius_factored: float
    frobenius_bound: float
    frobenius_bound_paper: float
    spectral: SpectralNorm
    spectral_bound: float
    derivative_factor: float


def layer_norms(net: Any, x: Any) -> list[list[LayerNorms]]:
    """``lemma-14`` and ``lemma-15`` quantities for every input (outer) and layer (inner)."""
    q = net.lemma13(x)
    M = q.h_L.shape[0]
    L = len(net.weights)
    sup = sup_abs_derivative(net)
    out: list[list[LayerNorms]] = []
    for m in range(M):
        row = []
        for layer in range(L):
            A = q.B[layer + 1][m] * q.D[layer][m][None, :]
            hb = q.hbar[layer][m]
            T = A[:, :, None] * hb[None, None, :]
            later = net.weights[layer + 1:]
            nh = float(np.linalg.norm(hb))
            paper = float(np.prod([np.linalg.norm(W[:, :-1]) for W in later])) * nh
            last = math.sqrt(A.shape[0]) if layer == L - 1 else 1.0
            row.append(
                LayerNorms(
                    layer=layer,
                    frobenius=float(np.linalg.norm(T)),
                    frobenius_factored=float(np.linalg.norm(A)) * nh,
                    frobenius_bound=paper * last,
                    frobenius_bound_paper=paper,
                    spectral=rank_one_spectral_norm(A, hb),
                    spectral_bound=float(
                        np.prod([np.linalg.norm(W[:, :-1], 2) for W in later])
                    )
                    * nh,
                    derivative_factor=float(max(sup, 1.0) ** (L - 1 - layer)),
                )
            )
        out.append(row)
    return out
