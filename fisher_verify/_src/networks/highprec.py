"""The high-precision route: every tensor of a small network exactly, in mpmath.

For small networks (up to a few hundred parameters) this module evaluates the Eq. 3 network
and everything the paper builds on it with :mod:`mpmath` numbers at ``dps`` significant digits:

- :func:`mp_jacobian`: ``J = ∂h_L/∂θ`` by the lemma-13 recursions
  (``B_L = I``, ``B_l = B_{l+1} D_l W_l⁻``, ``∂h^a_L/∂W_l = D_l B_{l+1}ᵀ e_a h̄_lᵀ``);
- :func:`mp_output_hessians`: ``∂²h^a_L/∂θ∂θᵀ`` by the second-order extension of lemma-13
  documented in :mod:`fisher_verify._src.networks.analytic` (the same recursion, in mpmath);
- :func:`mp_exact_fisher`: ``I(θ) = Jᵀ I(h_L) J`` (eq-6) with the family's mpmath kernel;
- :func:`mp_variance`: the element-wise variance ``Var(Î)_ij`` of ``Î₁`` (``which="I1"``, thm-4,
  with ``K − I⊗I`` from the family's mpmath kernels) or ``Î₂`` (``"I2"``, thm-6, ``H`` and ``I``).

Results are NumPy object arrays of :class:`mpmath.mpf`, with the same shapes and the same
flat-θ ordering as the float64 methods of :class:`~fisher_verify._src.networks.network.Network`
(no batch axis for one input ``(n_0,)``, a leading ``M`` for ``(M, n_0)``). Several inputs
follow the package's convention (:mod:`fisher_verify._src.fisher.covariance`): ``I(θ)`` is the
average over inputs and, with N draws per input, ``Cov(Î) = (1/(M² N)) Σ_m Cov_m``.

Weights and inputs are taken as the float64 numbers the network holds; they convert to mpmath
exactly, so every digit lost by the float64 route is recovered here: the only error left is
mpmath's own rounding at ``dps`` digits. The activations and their first two derivatives are
written in forms free of cancellation (``1 − σ(a)`` as ``σ(−a)``, GELU's ``Φ`` through
``erfc``). ReLU networks have Jacobians and Fisher matrices here (σ'(0) = 0, torch's
convention), and output Hessians at inputs away from the kinks (thm-3-ae; refused at a kink,
remark-3.1).

Cost grows as ``n_L P²`` mpmath operations per input for Hessians; the route is meant for the
small networks on which the float64 routes are checked, not for training-scale models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

from ..errors import ShapeError, UnsupportedError
from ..validation import Which, check_count, check_which

__all__: list[str] = []  # nothing for other rooms

#: Largest P accepted: the route is for small networks ("a few hundred parameters").
MAX_MP_PARAMS = 500

MpFn = Callable[[Any], Any]


# --- activations in mpmath -------------------------------------------------------------------


def _sigmoid(a: Any) -> Any:
    """σ(a) = 1/(1 + e^{−a}); with ``_sigmoid(−a)`` for 1 − σ(a) there is no cancellation."""
    return 1 / (1 + mpmath.exp(-a))


def _softplus(a: Any) -> Any:
    return mpmath.log1p(mpmath.exp(a)) if a < 0 else a + mpmath.log1p(mpmath.exp(-a))


def _phi(a: Any) -> Any:
    """Standard normal density."""
    return mpmath.exp(-a * a / 2) / mpmath.sqrt(2 * mpmath.pi)


def _Phi(a: Any) -> Any:
    """Standard normal CDF through erfc (accurate in the lower tail)."""
    return mpmath.erfc(-a / mpmath.sqrt(2)) / 2


def _relu_d1(a: Any) -> Any:
    return mpmath.mpf(1) if a > 0 else mpmath.mpf(0)


_MP_ACTIVATIONS: dict[str, tuple[MpFn, MpFn, MpFn]] = {
    "tanh": (
        mpmath.tanh,
        lambda a: mpmath.sech(a) ** 2,
        lambda a: -2 * mpmath.tanh(a) * mpmath.sech(a) ** 2,
    ),
    "sigmoid": (
        _sigmoid,
        lambda a: _sigmoid(a) * _sigmoid(-a),
        lambda a: -_sigmoid(a) * _sigmoid(-a) * mpmath.tanh(a / 2),
    ),
    "softplus": (_softplus, _sigmoid, lambda a: _sigmoid(a) * _sigmoid(-a)),
    "gelu": (
        lambda a: a * _Phi(a),
        lambda a: _Phi(a) + a * _phi(a),
        lambda a: (2 - a * a) * _phi(a),
    ),
    "identity": (lambda a: +a, lambda a: mpmath.mpf(1), lambda a: mpmath.mpf(0)),
    # σ'' = 0 away from the kink; at the kink the callers refuse first (thm-3-ae)
    "relu": (lambda a: a if a > 0 else mpmath.mpf(0), _relu_d1, lambda a: mpmath.mpf(0)),
}


def mp_activation(name: str) -> tuple[MpFn, MpFn, MpFn]:
    """σ, σ', σ'' of the activation ``name`` in mpmath (ReLU: σ'' = 0, valid away from its kink,
    where the callers check the inputs first; thm-3-ae)."""
    if name not in _MP_ACTIVATIONS:
        raise UnsupportedError(
            f"no mpmath form for activation {name!r}; known: {', '.join(_MP_ACTIVATIONS)}"
        )
    return _MP_ACTIVATIONS[name]


# --- helpers ---------------------------------------------------------------------------------


def _check_dps(dps: int) -> int:
    return check_count(dps, "dps (decimal digits of working precision)", 15, ShapeError)


def _mp_array(a: Any) -> np.ndarray:
    """Object array of mpf, converting float64 entries exactly (at the current precision)."""
    arr = np.asarray(a)
    out = np.empty(arr.shape, dtype=object)
    flat_in = arr.ravel()
    flat_out = out.ravel()
    for k in range(flat_in.size):
        flat_out[k] = mpmath.mpf(flat_in[k])
    return out


def _mp_zeros(shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    out.fill(mpmath.mpf(0))
    return out


def _apply(fn: MpFn, a: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape, dtype=object)
    for k, v in enumerate(a.ravel()):
        out.ravel()[k] = fn(v)
    return out


def _as_mpf(a: np.ndarray) -> np.ndarray:
    """Every entry an mpf (object arithmetic may leave Python ints, e.g. 0 or 1)."""
    return _apply(lambda v: v if isinstance(v, mpmath.mpf) else mpmath.mpf(v), a)


def _check_size(net: Any) -> None:
    if int(net.num_params) > MAX_MP_PARAMS:
        raise UnsupportedError(
            f"the mpmath route is for small networks: P = {net.num_params} exceeds "
            f"MAX_MP_PARAMS = {MAX_MP_PARAMS}; use the float64 routes"
        )


@dataclass(frozen=True)
class _Pass:
    """Lemma-13 quantities for one input, in mpmath (object arrays)."""

    hbar: list[np.ndarray]  # h̄_l, (n_l + 1,)
    pre: list[np.ndarray]  # a_l = W_l h̄_l, (n_{l+1},)
    D: list[np.ndarray]  # σ'(a_l), D_{L-1} = 1
    B: list[np.ndarray]  # B_l = ∂h_L/∂h_l, (n_L, n_l), B_L = I
    h_L: np.ndarray


def _lemma13(weights: list[np.ndarray], name: str, x: np.ndarray) -> _Pass:
    """Forward pass and ``B_L = I``, ``B_l = B_{l+1} D_l W_l⁻`` (lemma-13), one input."""
    f, d1, _ = mp_activation(name)
    L = len(weights)
    hbar: list[np.ndarray] = []
    pre: list[np.ndarray] = []
    h = x
    for layer, W in enumerate(weights):
        hb = np.concatenate([h, np.array([mpmath.mpf(1)], dtype=object)])
        a = W @ hb
        hbar.append(hb)
        pre.append(a)
        h = a if layer == L - 1 else _apply(f, a)
    D = [_apply(d1, a) for a in pre[:-1]] + [_apply(lambda v: mpmath.mpf(1), pre[-1])]
    n_L = h.shape[0]
    B: list[np.ndarray] = [np.empty(0, dtype=object)] * (L + 1)
    eye = _mp_zeros((n_L, n_L))
    for a in range(n_L):
        eye[a, a] = mpmath.mpf(1)
    B[L] = eye
    for layer in range(L - 1, -1, -1):
        B[layer] = (B[layer + 1] * D[layer][None, :]) @ weights[layer][:, :-1]
    return _Pass(hbar=hbar, pre=pre, D=D, B=B, h_L=h)


def _prepared(net: Any, x: Any) -> tuple[list[np.ndarray], np.ndarray, bool]:
    """Weights and inputs as mpf object arrays (call inside ``workdps``)."""
    _check_size(net)
    X, single = net.inputs(x)
    return [_mp_array(W) for W in net.weights], _mp_array(X), single


def _jacobian_one(weights: list[np.ndarray], q: _Pass) -> np.ndarray:
    blocks = []
    for layer in range(len(weights)):
        G = q.B[layer + 1] * q.D[layer][None, :]  # ∂h_L/∂a_l, (n_L, n_{l+1})
        blk = G[:, :, None] * q.hbar[layer][None, None, :]
        blocks.append(blk.reshape(G.shape[0], -1))
    return np.concatenate(blocks, axis=-1)


def _hessians_one(weights: list[np.ndarray], name: str, q: _Pass, n0: int) -> np.ndarray:
    """The second-order extension of lemma-13 (see :mod:`fisher_verify._src.networks.analytic`)."""
    _, _, d2 = mp_activation(name)
    L = len(weights)
    n_L = q.h_L.shape[0]
    offsets = np.concatenate([[0], np.cumsum([W.size for W in weights])]).astype(int)
    P = int(offsets[-1])
    H = _mp_zeros((n_L, P, P))
    Jh = _mp_zeros((n0, P))  # total derivative of h_l (h_0 = x is fixed)
    for layer, W in enumerate(weights):
        n_out, n_in1 = W.shape
        lo = int(offsets[layer])
        sl = slice(lo, int(offsets[layer + 1]))
        Ja = W[:, :-1] @ Jh if layer else _mp_zeros((n_out, P))  # ∂a_l, implicit part
        for r in range(n_out):  # explicit part: ∂a_{l,r}/∂W_l[r, c] = h̄_{l,c}
            Ja[r, lo + r * n_in1 : lo + (r + 1) * n_in1] += q.hbar[layer]
        G = q.B[layer + 1] * q.D[layer][None, :]  # (n_L, n_out)
        if layer >= 1:  # bilinear coupling of W_l with h_l
            Jhbar = np.concatenate([Jh, _mp_zeros((1, P))], axis=0)  # (n_in1, P)
            T = (G[:, :, None, None] * Jhbar[None, None, :, :]).reshape(n_L, n_out * n_in1, P)
            H[:, sl, :] += T
            H[:, :, sl] += np.swapaxes(T, -1, -2)
        if layer < L - 1:
            c2 = q.B[layer + 1] * _apply(d2, q.pre[layer])[None, :]  # (n_L, n_out)
            for r in range(n_out):
                outer = Ja[r][:, None] * Ja[r][None, :]
                for a in range(n_L):
                    if c2[a, r] != 0:
                        H[a] += c2[a, r] * outer
            Jh = q.D[layer][:, None] * Ja
    return (H + np.swapaxes(H, -1, -2)) / 2


# --- public API ------------------------------------------------------------------------------


def mp_jacobian(net: Any, x: Any, dps: int = 50) -> np.ndarray:
    """``J = ∂h_L/∂θ`` in mpmath by the lemma-13 recursions, at ``dps`` digits.

    Shape ``(n_L, P)`` for one input ``(n_0,)``, ``(M, n_L, P)`` for ``(M, n_0)``; an object
    array of :class:`mpmath.mpf`, flat θ ordered as :meth:`Network.theta`.
    """
    with mpmath.workdps(_check_dps(dps)):
        weights, X, single = _prepared(net, x)
        out = np.stack(
            [_as_mpf(_jacobian_one(weights, _lemma13(weights, net.activation, xm))) for xm in X]
        )
    return out[0] if single else out


def mp_output_hessians(net: Any, x: Any, dps: int = 50) -> np.ndarray:
    """``∂²h^a_L/∂θ∂θᵀ`` in mpmath: the second-order extension of lemma-13, at ``dps`` digits.

    Shape ``(n_L, P, P)`` or ``(M, n_L, P, P)``, object array of mpf.

    Raises:
        UnsupportedError: an input at a kink of σ (ReLU; remark-3.1, thm-3-ae), or
            P > ``MAX_MP_PARAMS``.
    """
    net.require_c2("output Hessians (thm-3)", x)
    with mpmath.workdps(_check_dps(dps)):
        weights, X, single = _prepared(net, x)
        n0 = X.shape[1]
        out = np.stack(
            [
                _as_mpf(_hessians_one(weights, net.activation, _lemma13(weights, net.activation, xm), n0))
                for xm in X
            ]
        )
    return out[0] if single else out


def _output_fisher(fam: Any, h: np.ndarray) -> np.ndarray:
    """``I(h_L)`` ``(n_L, n_L)`` from the family's mpmath kernel (domain-checked)."""
    return np.asarray(fam.fisher([mpmath.mpf(v) for v in h], backend="mpmath"), dtype=object).reshape(
        (len(h), len(h))
    )


def mp_exact_fisher(net: Any, x: Any, dps: int = 50) -> np.ndarray:
    """``I(θ) = Jᵀ I(h_L) J`` (eq-6) in mpmath, averaged over inputs (p(x) empirical).

    ``J`` from the lemma-13 recursions and ``I(h_L)`` from the family's mpmath kernel, both at
    ``dps`` digits. Shape ``(P, P)``, object array of mpf.

    Raises:
        DomainError: h_L(x) lies outside the family's natural-parameter domain.
    """
    with mpmath.workdps(_check_dps(dps)):
        weights, X, _ = _prepared(net, x)
        P = int(net.num_params)
        total = _mp_zeros((P, P))
        for xm in X:
            q = _lemma13(weights, net.activation, xm)
            J = _jacobian_one(weights, q)
            total = total + J.T @ (_output_fisher(net.family, q.h_L) @ J)
        out = _as_mpf(total / len(X))
    return out


def mp_variance(
    net: Any, x: Any, which: Which = "I1", n: int = 1, dps: int = 50
) -> np.ndarray:
    """Element-wise ``Var(Î)_ij`` in mpmath, ``(P, P)`` object array of mpf.

    ``which="I1"`` (score outer products, thm-4): ``Var_ij = (1/N) J_ai J_bj J_ci J_dj
    (K_abcd − I_ab I_cd)`` with ``K`` (``central_moment4``) and ``I`` from the family's mpmath
    kernels. ``"I2"`` (negative Hessians, thm-6): ``Var_ij = (1/N) H^a_ij I_ab H^b_ij``.
    Several inputs: N draws per input and ``(1/(M² N)) Σ_m Var_m``, the convention of
    :mod:`fisher_verify._src.fisher.covariance`.

    Raises:
        UnsupportedError: ``"I2"`` at an input on a kink of a ReLU network (thm-3-ae).
        ShapeError: ``which`` not ``"I1"`` or ``"I2"``, or ``n`` not an integer >= 1.
    """
    estimator = check_which(which)
    count = check_count(n, "number of draws per input n", error=ShapeError)
    if estimator == 2:
        net.require_c2("the variance of the Hessian estimator (thm-6)", x)
    fam = net.family
    with mpmath.workdps(_check_dps(dps)):
        weights, X, _ = _prepared(net, x)
        M = len(X)
        n0 = X.shape[1]
        P = int(net.num_params)
        total = _mp_zeros((P, P))
        for xm in X:
            q = _lemma13(weights, net.activation, xm)
            h = [mpmath.mpf(v) for v in q.h_L]
            nl = len(h)
            I = _output_fisher(fam, q.h_L)
            if estimator == 1:
                J = _jacobian_one(weights, q)
                K = np.asarray(fam.central_moment4(h, backend="mpmath"), dtype=object).reshape((nl,) * 4)
                C = K - I[:, :, None, None] * I[None, None, :, :]  # K − I⊗I (remark-4.1)
                Q = (J[:, None, :] * J[None, :, :]).reshape(nl * nl, P)  # (a c), i
                Cm = C.transpose(0, 2, 1, 3).reshape(nl * nl, nl * nl)  # (a c), (b d)
                total = total + Q.T @ (Cm @ Q)
            else:
                H = _hessians_one(weights, net.activation, q, n0)
                for a in range(nl):
                    for b in range(nl):
                        total = total + I[a, b] * (H[a] * H[b])
        out = _as_mpf(total / (M * M * count))
    return out
