"""The engine's ``mlp`` rule (:mod:`.rules`): an Eq. 3 network on PyTorch, no ``P×P`` array.

The diagonals are computed here; the norms and bounds derived below are computed by
:mod:`.mlp_norms` (pairs of input blocks, cost model) and :mod:`.mlp_bounds` (thm-7, thm-8,
the Hessian traces) from this module's factors. For networks of 10⁵–10⁷ parameters (DESIGN,
"Scale"); a user's ``nn.Sequential`` MLP reaches it through :mod:`.mlp_route`. Everything is
computed from the per-layer factors of lemma-13 on PyTorch (``device`` "cuda" when
available, else "cpu"; ``dtype`` float64 by default) and agrees with the dense small-P route of
:mod:`fisher_verify._src.fisher.covariance` to rounding.

**Factorisation (lemma-13).** With ``a_l = W_l h̄_l`` (l = 0..L-1), ``h_{l+1} = σ(a_l)``,
``h_L = a_{L-1}``, let ``G_l = ∂h_L/∂a_l`` (``n_L × n_{l+1}`` per input). Then

    ∂h^a_L / ∂W_l[r, c] = G_l[a, r] · h̄_l[c].

``G_{L-1} = I`` and ``G_l = (G_{l+1} W_{l+1}⁻) ⊙ σ'(a_l)``: each row of ``G_l`` is one
vector-Jacobian product, so the ``n_L`` rows are the ``n_L`` VJPs per input, run batched over
inputs and outputs (one backward pass with ``n_L`` cotangents). Writing ``g_r = G_l[:, r]``:

* ``eq-6``:  ``diag I(θ)[W_l[r,c]] = (1/M) Σ_m (g_rᵀ I(h_L) g_r) h̄_l[c]²``;
* ``thm-4``: ``Var(Î₁)_ii = (1/(M²N)) Σ_m C[u,u,u,u]`` with ``u = J_{·i} = g_r h̄[c]`` and
  ``C = K − I⊗I = κ₄ + I_ac I_bd + I_ad I_bc``, so ``C[u⁴] = (κ₄[g_r⁴] + 2 (g_rᵀ I g_r)²) h̄[c]⁴``;
  every contraction with the family's moments is the family's own (``Family.contractions``,
  :mod:`fisher_verify._src.families.contractions`: O(K) for the categorical family);
* ``thm-6``: ``Var(Î₂)_ii = (1/(M²N)) Σ_m γ_rᵀ I γ_r h̄[c]⁴`` with ``γ^α_r = ∂²h^α/∂a_l[r]²``,
  because ``∂²h^α/∂W_l[r,c]² = ∂²h^α/∂a_l[r]² · h̄_l[c]²`` (h̄_l does not depend on W_l).

**Pre-activation Hessians.** ``Γ^α_l = ∂²h^α_L/∂a_l∂a_lᵀ`` obeys (chain rule through
``a_{l+1} = W_{l+1}⁻ σ(a_l) + b``, ``D_l = diag σ'(a_l)``, ``β_{l+1} = W_{l+1}⁻ᵀ g^α_{l+1}
= ∂h^α/∂h_{l+1}``)

    Γ_{L-1} = 0,    Γ_l = D_l W_{l+1}⁻ᵀ Γ_{l+1} W_{l+1}⁻ D_l + diag(σ''(a_l) ⊙ β_{l+1}).

So ``Γ_{L-2}`` is diagonal. Unrolled, ``Γ^α_l = Σ_{k=l}^{L-2} J_{klᵀ} diag(λ^α_k) J_{kl}`` with
``λ^α_k = σ''(a_k) ⊙ β^α_{k+1}`` and ``J_{kl} = ∂a_k/∂a_l``, hence
``diag Γ^α_l = Σ_k λ^α_k (J_{kl} ∘ J_{kl})``: the diagonals of ``thm-6`` never need a full
Hessian, and the Jacobians, which do not depend on the output unit α, cost
``O(Σ_{l+2≤k} n_{k+1} n_k n_{l+1})`` per input once instead of ``n_L`` full ``Γ^α`` per input
(:func:`_gamma_diagonals_jacobian`; the full recursion is kept for the traces below and as a
reference).

**Norms.** ``‖Cov(Î₁)‖_F`` (``thm-4``) through the Gram matrices
``J_m J_{m'}ᵀ = Σ_l (h̄_l^m · h̄_l^{m'}) G_l^m G_l^{m'ᵀ}`` (``n_L × n_L``), exactly, as in
:func:`~fisher_verify._src.fisher.covariance.cov1_frobenius`; for the categorical family ``C`` is
never formed (``OneHotContractions.pair_block``): ``C = Σ_k p_k A_k ⊗ A_k`` with
``A_k = s_k s_kᵀ − I``, ``s_k = e_k − p`` (its finite support), so
``⟨C^m, C^{m'} ×₄ G⟩ = Σ_{k,k'} p_k p'_{k'} tr(A_k G A'_{k'} Gᵀ)²`` in O(K²) per pair.
``‖Cov(Î₂)‖_F`` (``thm-6``, ``thm-8``) needs ``T_αβ = tr(H^α_m H^β_{m'})``, computed exactly in
closed form (below), whatever P. Both norms are sums over pairs of inputs and are streamed
over pairs of input blocks within a memory budget, planned by a cost model, or estimated from
sampled input pairs (:mod:`.mlp_norms`, :mod:`.mlp_bounds`). Hessian-vector products over
the canonical basis (``method="hvp"``, P ≤ ``exact_limit``) and a Hutchinson estimate
(Rademacher probes, U-statistic for the quadratic norm, returned with its standard error and
flagged ``exact=False``) remain available, refused above the memory budget.

**Closed-form traces.** For l ≤ k let ``J_{kl} = ∂a_k/∂a_l`` (``J_{ll} = I``,
``J_{kl} = W_k⁻ B_{kl}``), ``B_{kl} = ∂h_k/∂a_l`` (``B_{l+1,l} = D_l``,
``B_{kl} = D_{k-1} W_{k-1}⁻ B_{k-1,l}``; zero for k = l), ``g_k = ∂h^α/∂a_k`` (a row of ``G_k``)
and ``A_{lk} = J_{kl}ᵀ Γ_k = ∂²h^α/∂a_l∂a_k`` (``n_{l+1} × n_{k+1}``). Differentiating
``∂h^α/∂W_k[s,e] = g_k[s] h̄_k[e]`` by ``W_l[r,c]`` (``∂g_k/∂W_l[r,c] = Γ_k J_{kl}[:,r] h̄_l[c]``,
``∂h̄_k[e]/∂W_l[r,c] = B̄_{kl}[e,r] h̄_l[c]`` with a zero bias row in ``B̄``):

    ∂²h^α/∂W_l[r,c]∂W_k[s,e] = h̄_l[c] · (A_{lk}[r,s] h̄_k[e] + B̄_{kl}[e,r] g_k[s]).

So, with primes for (m', β), the Frobenius inner product of the (l, k) blocks is

    (h̄_l·h̄'_l) [ (h̄_k·h̄'_k) ⟨A, A'⟩ + (B'ᵀ h_k)ᵀ A g' + (Bᵀ h'_k)ᵀ A' g + (g·g') ⟨B, B'⟩ ],

and ``tr(H^α H^β) = Σ_l ⟨·⟩_{ll} + 2 Σ_{l<k} ⟨·⟩_{lk}`` (H symmetric). Every term is a Gram
matrix over (input, output) of width-sized arrays (``A``: ``M n_L n_{l+1} n_{k+1}`` entries,
``B``: ``M n_k n_{l+1}``), ``Γ_k`` full from the recursion above; ``Γ_{L-1} = 0`` removes every
``A_{l,L-1}``. Cost ``O((M n_L)² Σ_{l≤k} n_{l+1} n_{k+1} + M² n_L Σ n_{l+1} n_{k+1})``, no ``P``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import ShapeError, UnsupportedError
from ..networks.network import require_network
from ..validation import check_budget, check_count
from .device import resolve_device

__all__ = ["diagonals", "output_hessian_diagonals", "variance1_diagonal", "variance2_diagonal"]

#: Elements (per input chunk) allowed in the largest temporary, ``chunk · n_L · n_l²`` etc.
CHUNK_ELEMENTS = 1 << 25
#: Up to this many parameters :func:`hessian_traces` may use HVPs over the canonical basis
#: (``method="hvp"``, and ``"auto"`` when the closed form does not fit STRUCTURED_ELEMENTS).
EXACT_TRACE_LIMIT = 2048
#: Largest array (elements) the closed-form exact traces may form; ``"auto"`` falls back above.
STRUCTURED_ELEMENTS = 1 << 27
#: Largest Var(Î₁) block (entries) :func:`variance1_block` forms.
MAX_BLOCK_ENTRIES = 1 << 26

TraceMethod = Literal["auto", "exact", "hvp", "hutchinson"]
Thm8Method = Literal["auto", "exact", "sampled", "hvp", "hutchinson"]
NormMethod = Literal["auto", "exact", "sampled"]


def _torch() -> Any:
    import torch

    return torch


# --- setup ------------------------------------------------------------------------------------


@dataclass
class _Setup:
    """Weights and inputs on the device, with the family (whose ``contractions`` pick its
    route: O(K) for the categorical family)."""

    torch: Any
    weights: list[Any]  # W_l (n_{l+1}, n_l + 1)
    X: Any  # (M, n_0)
    act: Any
    family: Any
    dtype: Any
    device: Any
    M: int
    n_L: int
    offsets: list[int]
    squares: dict[int, Any] = field(default_factory=dict)

    def hidden_weight(self, k: int) -> Any:
        """``W_k⁻``: layer k's weight matrix without its bias column (a view)."""
        return self.weights[k][:, :-1]

    def squared_weight(self, k: int) -> Any:
        """``W_k⁻ ∘ W_k⁻``, formed once per setup (every input chunk reuses it)."""
        if k not in self.squares:
            W = self.hidden_weight(k)
            self.squares[k] = W * W
        return self.squares[k]


def _setup(net: Any, x: Any, device: str | None, dtype: Any) -> _Setup:
    torch = _torch()
    require_network(net)
    dtype = torch.float64 if dtype is None else dtype
    if dtype not in (torch.float64, torch.float32):
        raise UnsupportedError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
    dev = resolve_device(device)
    X, _ = net.inputs(x)
    weights = [torch.as_tensor(W, dtype=dtype, device=dev) for W in net.weights]
    return _Setup(
        torch=torch, weights=weights, X=torch.as_tensor(X, dtype=dtype, device=dev),
        act=net.act, family=net.family, dtype=dtype,
        device=dev, M=int(X.shape[0]), n_L=int(net.widths[-1]), offsets=list(net.offsets),
    )


def _check_n(n: Any) -> float:
    return float(check_count(n, "number of draws per input n", error=ShapeError))


def activation_derivatives(name: str, torch_f: Any, a: Any) -> tuple[Any, Any, Any]:
    """σ(a), σ'(a), σ''(a): autograd's own formulas where they are one line (tanh
    ``σ' = 1 − y²``, ``σ'' = −2yσ'``; sigmoid ``σ' = (1 − y)y``, ``σ'' = (1 − 2y)σ'``, as torch's
    backward and double backward compute them), else autograd of the elementwise ``torch_f``
    (as the autodiff route)."""
    import torch

    if name == "tanh":
        y = torch.tanh(a)
        d1 = 1.0 - y * y
        return y, d1, -2.0 * y * d1
    if name == "sigmoid":
        y = torch.sigmoid(a)
        d1 = (1.0 - y) * y
        return y, d1, (1.0 - 2.0 * y) * d1
    if name == "identity":
        return a, torch.ones_like(a), torch.zeros_like(a)
    with torch.enable_grad():
        a = a.detach().requires_grad_(True)
        y = torch_f(a)
        (d1,) = torch.autograd.grad(y.sum(), a, create_graph=True)
        if d1.requires_grad:
            (d2,) = torch.autograd.grad(d1.sum(), a, allow_unused=True)
        else:
            d2 = None
    d2 = torch.zeros_like(a) if d2 is None else d2
    return y.detach(), d1.detach(), d2.detach()


def _derivs(s: _Setup, a: Any) -> tuple[Any, Any, Any]:
    """σ(a), σ'(a), σ''(a) of the network's activation (:func:`activation_derivatives`)."""
    return activation_derivatives(s.act.name, s.act.torch_f, a)


@dataclass
class _Pass:
    """Forward and backward quantities for one chunk of inputs (leading axis m)."""

    h: Any  # (m, n_L)
    hbar: list[Any]  # h̄_l (m, n_l + 1)
    pre: list[Any]  # a_l (m, n_{l+1})
    d1: list[Any]  # σ'(a_l), l < L-1
    d2: list[Any]  # σ''(a_l), l < L-1
    G: list[Any]  # G_l = ∂h_L/∂a_l (m, n_L, n_{l+1})
    beta: list[Any] | None = None  # β_{l+1} = G_{l+1} W_{l+1}⁻ = ∂h_L/∂h_{l+1}, l < L-1


def _forward_backward(s: _Setup, X: Any) -> _Pass:
    torch = s.torch
    L = len(s.weights)
    hbar, pre, d1, d2 = [], [], [], []
    h = X
    for layer, W in enumerate(s.weights):
        hb = torch.cat([h, torch.ones(h.shape[0], 1, dtype=s.dtype, device=s.device)], dim=1)
        a = hb @ W.T
        hbar.append(hb)
        pre.append(a)
        if layer < L - 1:
            h, e1, e2 = _derivs(s, a)
            d1.append(e1)
            d2.append(e2)
        else:
            h = a
    m = X.shape[0]
    G: list[Any] = [None] * L
    G[L - 1] = torch.eye(s.n_L, dtype=s.dtype, device=s.device).expand(m, s.n_L, s.n_L)
    beta: list[Any] = [None] * (L - 1)
    for layer in range(L - 2, -1, -1):  # n_L VJPs per input, batched
        beta[layer] = G[layer + 1] @ s.weights[layer + 1][:, :-1]
        G[layer] = beta[layer] * d1[layer][:, None, :]
    s.family.check_natural(h)
    return _Pass(h=h, hbar=hbar, pre=pre, d1=d1, d2=d2, G=G, beta=beta)


def _chunks(s: _Setup, per_input: int, batch_size: int | None,
            memory_budget: int | None = None) -> Iterator[Any]:
    """Input chunks: ``batch_size`` inputs, or as many as fit ``memory_budget`` bytes when each
    input forms ``per_input`` elements (counted from what the caller actually forms)."""
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size
                                   or int(batch_size) < 1):
        raise ShapeError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    item = 8 if s.dtype == s.torch.float64 else 4
    size = int(batch_size) if batch_size else max(
        1, check_budget(memory_budget) // max(per_input * item, 1))
    for start in range(0, s.M, size):
        yield s.X[start : start + size]


def _per_input_elements(s: _Setup, hessian: bool = False) -> int:
    widths = [W.shape[0] for W in s.weights] + [W.shape[1] for W in s.weights]
    n = max(widths)
    return s.n_L * n * n if hessian else s.n_L * n + n


def _diagonal_elements(s: _Setup, fisher: bool, variance_1: bool, variance_2: bool) -> int:
    """Elements one input forms in :func:`diagonals` (with a factor 2 for temporaries).

    Forward/backward: ``h̄_l``, ``a_l``, ``σ', σ''`` and ``G_l`` (``n_L n_{l+1}``) for all layers;
    Var(Î₁): a few ``n_L n_{l+1}`` arrays for one layer (plus ``d⁴`` for a dense κ₄);
    Var(Î₂): ``λ_k`` and ``diag Γ_l`` for all layers and, on the Jacobian route, two
    ``J_{kl}`` (``n_{k+1} n_{l+1}``) at a time, on the recursive one two full ``Γ``
    (``n_L n_{l+1}²``). Never the input width squared unless a Hessian of that size is formed.
    """
    ins = [int(W.shape[1]) for W in s.weights]
    outs = [int(W.shape[0]) for W in s.weights]
    nL, big = s.n_L, max(outs)
    total = sum(ins) + 3 * sum(outs) + nL * sum(outs)
    if variance_1 or fisher:
        total += 4 * nL * big + 2 * max(ins)
        if variance_1:
            total += s.family.contraction_entries()
    if variance_2:
        total += gamma_elements([ins[0] - 1] + outs, nL)
    return 2 * total


def gamma_elements(widths: list[int], n_L: int) -> int:
    """Elements one input forms in :func:`_gamma_diagonals` (widths ``n_0, …, n_L``): ``β_k``,
    ``λ_k`` and ``diag Γ_l`` for all layers and, on the Jacobian route, two ``J_{kl}``
    (``n_{k+1} n_{l+1}``) at a time, on the recursive one two full ``Γ`` (``n_L n_{l+1}²``)."""
    outs = widths[1:]
    total = 3 * n_L * sum(outs)
    jac, rec = _gamma_costs(widths)
    if jac <= rec:  # two J_{kl} at a time, only where k ≥ l + 2
        total += 3 * max([outs[k] * outs[lo] for lo in range(len(outs))
                          for k in range(lo + 2, len(outs) - 1)] or [0])
    else:  # two full Γ^α_l, only below the last two hidden layers
        total += 3 * n_L * max([o * o for o in outs[:-3]] or [0])
    return total


# --- family moments as contractions -----------------------------------------------------------


def _Moments(s: _Setup, h: Any) -> Any:
    """I(h) quadratic forms and κ₄ contractions for one chunk: the family's own
    (``Family.contractions``; O(K) for the categorical family, eq-6, thm-4, lemma-5)."""
    return s.family.contractions(h)


def kappa4_diagonal(family: Any, h: Any, u: Any) -> Any:
    """``κ₄[u, u, u, u]`` (``lemma-5``) for torch h (m, d) and u (m, r, d), in the family's
    direct form (``Family.kappa4_diagonal``: the categorical family from its finite support, a
    product component by component, a one-dimensional family as ``κ₄(h) u⁴``)."""
    return family.kappa4_diagonal(h, u)


# --- diagonals --------------------------------------------------------------------------------


@dataclass
class LargeDiagonals:
    """Diagonals of ``I(θ)`` (``eq-6``), ``Var(Î₁)`` (``thm-4``) and ``Var(Î₂)`` (``thm-6``).

    Each is a NumPy array of shape ``(P,)`` in flat-θ order (``None`` when not requested);
    variances are for ``n`` draws per input.
    """

    fisher: np.ndarray | None
    variance_1: np.ndarray | None
    variance_2: np.ndarray | None
    n: int
    device: str
    dtype: str


def _gamma_diagonals_recursive(s: _Setup | WeightChain, q: _Pass) -> list[Any]:
    """``diag Γ^α_l`` (m, n_L, n_{l+1}) by the full-matrix recursion (module docstring).

    Forms the full ``Γ^α_l`` per input *and per output unit* below the last two hidden layers:
    ``O(n_L Σ_l n_{l+1}² n_{l+2})`` per input. Kept as the reference of
    :func:`_gamma_diagonals_jacobian` and for very deep, narrow-output networks where it is
    the cheaper one (:func:`_gamma_costs`).
    """
    torch = s.torch
    L = len(q.d1) + 1
    m = q.h.shape[0]
    out: list[Any] = [None] * L
    out[L - 1] = torch.zeros(m, s.n_L, s.n_L, dtype=s.dtype, device=s.device)
    full: Any = None  # full Γ_{l+1} when it is not diagonal
    for layer in range(L - 2, -1, -1):
        Wm = s.hidden_weight(layer + 1)  # (n_{l+2}, n_{l+1})
        beta = q.G[layer + 1] @ Wm if q.beta is None else q.beta[layer]  # ∂h/∂h_{l+1}
        local = q.d2[layer][:, None, :] * beta
        if layer == L - 2:
            out[layer] = local
            continue
        d1 = q.d1[layer]
        if full is None:  # Γ_{l+1} diagonal
            diag = (out[layer + 1] @ s.squared_weight(layer + 1)) * (d1 * d1)[:, None, :] + local
        else:
            WD = Wm[None] * d1[:, None, :]  # (m, n_{l+2}, n_{l+1})
            diag = torch.einsum("msr,mast,mtr->mar", WD, full, WD) + local
        out[layer] = diag
        if layer >= 1:  # the next layer down needs the full Γ_l
            WD = Wm[None] * d1[:, None, :]
            if full is None:
                full_new = torch.einsum("msr,mas,msu->maru", WD, out[layer + 1], WD)
            else:
                full_new = torch.einsum("msr,mast,mtu->maru", WD, full, WD)
            idx = torch.arange(local.shape[-1], device=s.device)
            full_new[:, :, idx, idx] += local
            full = full_new
    return out


def _gamma_costs(widths: list[int]) -> tuple[int, int]:
    """Multiply-adds per input of (Jacobian route, recursive route) for ``diag Γ_l``, all l.

    ``widths`` = (n_0, …, n_L). Jacobian route: the chain ``J_{kl}`` for ``l + 2 ≤ k ≤ L−2``
    (``n_{k+1} n_k n_{l+1}`` each) plus the weighted squares ``n_L n_{k+1} n_{l+1}`` for every
    ``l < k ≤ L−2``; recursive route: ``2 n_L n_{l+1}² n_{l+2}`` for every layer below the last
    two hidden ones (one full Γ per output unit).
    """
    n = widths[1:]  # n[l] = n_{l+1}
    L, nL = len(n), widths[-1]
    jac = rec = 0
    for lo in range(L - 1):
        for k in range(lo + 1, L - 1):
            jac += nL * n[k] * n[lo]
            if k >= lo + 2:
                jac += n[k] * n[k - 1] * n[lo]
        if lo <= L - 4:
            rec += 2 * nL * n[lo] * n[lo] * n[lo + 1]
        elif lo == L - 3:  # diag Γ_{L-3} from the diagonal Γ_{L-2}, as the Jacobian route does
            rec += nL * n[lo] * n[lo + 1]
    return jac, rec


class WeightChain:
    """An Eq. 3 network's weight matrices without bias columns, as the pre-activation Hessian
    routes read them (:func:`_gamma_diagonals`): a user's ``nn.Linear`` weights as they are
    (:mod:`.mlp_route`), where :class:`_Setup` slices its ``(W | b)`` matrices."""

    def __init__(self, weights: list[Any], n_L: int) -> None:
        import torch

        self.torch, self.weights, self.n_L = torch, weights, n_L
        self.dtype, self.device = weights[0].dtype, weights[0].device
        self.squares: dict[int, Any] = {}

    def hidden_weight(self, k: int) -> Any:
        """``W_k⁻``: layer k's weight matrix."""
        return self.weights[k]

    def squared_weight(self, k: int) -> Any:
        """``W_k⁻ ∘ W_k⁻``, formed once (every input chunk reuses it)."""
        if k not in self.squares:
            self.squares[k] = self.weights[k] * self.weights[k]
        return self.squares[k]


def _gamma_diagonals(s: _Setup | WeightChain, q: _Pass) -> list[Any]:
    """``diag Γ^α_l`` (m, n_L, n_{l+1}) for every layer, by the cheaper exact route."""
    L = len(q.d1) + 1
    widths = [int(s.hidden_weight(0).shape[1])] + [int(s.hidden_weight(k).shape[0])
                                                    for k in range(L)]
    jac, rec = _gamma_costs(widths)
    return _gamma_diagonals_jacobian(s, q) if jac <= rec else _gamma_diagonals_recursive(s, q)


def _gamma_diagonals_jacobian(s: _Setup | WeightChain, q: _Pass) -> list[Any]:
    """``diag Γ^α_l`` (m, n_L, n_{l+1}) without any full pre-activation Hessian.

    Unrolling the recursion of the module docstring,
    ``Γ^α_l = Σ_{k=l}^{L−2} J_{kl}ᵀ diag(λ^α_k) J_{kl}`` with ``λ^α_k = σ''(a_k) ⊙ ∂h^α/∂h_{k+1}``
    and ``J_{kl} = ∂a_k/∂a_l`` (``J_{ll} = I``, ``J_{k+1,l} = W_{k+1}⁻ D_k J_{kl}``), so

        diag Γ^α_l[r] = Σ_{k=l}^{L−2} Σ_s λ^α_k[s] J_{kl}[s, r]².

    ``J_{kl}`` does not depend on the output unit α: its cost is paid once per input, not n_L
    times. Cost per input ``O(Σ_{l+2≤k≤L−2} n_{k+1} n_k n_{l+1} + n_L Σ_{l<k≤L−2} n_{k+1} n_{l+1})``
    (one ``width³`` product per pair of layers at least two apart, plus ``n_L width²`` per pair),
    against ``O(n_L Σ_l n_{l+1}² n_{l+2})`` for the recursion; memory ``O(m Σ n_{l+1} n_{k+1})``
    for one J at a time.
    """
    torch = s.torch
    L = len(q.d1) + 1
    m = q.h.shape[0]
    out: list[Any] = [None] * L
    out[L - 1] = torch.zeros(m, s.n_L, s.n_L, dtype=s.dtype, device=s.device)
    lam: list[Any] = [None] * L  # λ^α_k (m, n_L, n_{k+1}) for k ≤ L−2
    for k in range(L - 1):  # β from the backward pass when it has them (no second VJP)
        beta = q.G[k + 1] @ s.hidden_weight(k + 1) if q.beta is None else q.beta[k]
        lam[k] = q.d2[k][:, None, :] * beta
    for lo in range(L - 1):
        if lo + 1 <= L - 2:
            # k = l + 1: J = W_{l+1}⁻ D_l, so J² = (W∘W) D_l²: no product over inputs needed;
            # λ_l is added in place to the product's result (no copy of λ_l)
            diag = (lam[lo + 1] @ s.squared_weight(lo + 1)).mul_((q.d1[lo] ** 2)[:, None, :])
            diag += lam[lo]
        else:
            diag = lam[lo]
        J: Any = None  # J_{kl} laid out (n_{k+1}, m, n_{l+1}) so that W_{k+1} J is one GEMM
        for k in range(lo + 2, L - 1):
            if J is None:
                W1 = s.hidden_weight(lo + 1)
                J = W1[:, None, :] * q.d1[lo][None, :, :]
            Wk = s.hidden_weight(k)  # (n_{k+1}, n_k)
            scaled = (J * q.d1[k - 1].T[:, :, None]).reshape(Wk.shape[1], -1)
            J = (Wk @ scaled).reshape(Wk.shape[0], m, -1)
            diag += torch.bmm(lam[k], (J * J).permute(1, 0, 2))
        out[lo] = diag
    return out


def layer_sums(net: Any, x: Any, n: Any, fisher: bool, variance_1: bool, variance_2: bool,
                device: str | None, dtype: Any, batch_size: int | None,
                memory_budget: int | None) -> tuple[dict[str, list[Any]], _Setup, float]:
    """The unscaled sums over the inputs of :func:`diagonals`, per layer as tensors shaped like
    ``W_l`` (bias column last), on the device: ``{"f": …, "v1": …, "v2": …}`` as asked."""
    s = _setup(net, x, device, dtype)
    N = _check_n(n)
    if variance_2:
        net.require_c2("the variance of the Hessian estimator (thm-6)", x)
    torch = s.torch
    L = len(s.weights)
    # the first chunk's sums start each accumulator (no zero-filled P-sized arrays to add to)
    acc: dict[str, list[Any]] = {
        key: [None] * L for key, on in (("f", fisher), ("v1", variance_1), ("v2", variance_2))
        if on
    }

    def add(key: str, layer: int, value: Any) -> None:
        blocks = acc[key]
        blocks[layer] = value if blocks[layer] is None else blocks[layer].add_(value)

    per = _diagonal_elements(s, fisher, variance_1, variance_2)
    for Xc in _chunks(s, per, batch_size, memory_budget):
        q = _forward_backward(s, Xc)
        mom = _Moments(s, q.h)
        gam = _gamma_diagonals(s, q) if variance_2 else None
        for layer, G in enumerate(q.G):
            hb2 = q.hbar[layer] ** 2
            quad: Any = None  # gᵀ I g per (input, unit r), (m, n_{l+1})
            if variance_1:
                c4, quad = mom.excess4(G.transpose(1, 2))  # C[g⁴], g = G[:, :, r] per r
                add("v1", layer, c4.T @ (hb2 * hb2))
            if fisher:
                quad = mom.quad(G, G) if quad is None else quad
                add("f", layer, quad.T @ hb2)
            if variance_2 and layer < L - 1:  # Γ_{L-1} = 0: h_L is linear in W_{L-1}
                assert gam is not None
                add("v2", layer, mom.quad(gam[layer], gam[layer]).T @ (hb2 * hb2))
    for blocks in acc.values():
        for layer, W in enumerate(s.weights):
            if blocks[layer] is None:
                blocks[layer] = torch.zeros(W.shape, dtype=s.dtype, device=s.device)
    return acc, s, N


def diagonals(
    net: Any,
    x: Any,
    n: int = 1,
    *,
    fisher: bool = True,
    variance_1: bool = True,
    variance_2: bool = True,
    device: str | None = None,
    dtype: Any = None,
    batch_size: int | None = None,
    memory_budget: int | None = None,
) -> LargeDiagonals:
    """Diagonals of ``I(θ)`` (``eq-6``), ``Var(Î₁)`` (``thm-4``), ``Var(Î₂)`` (``thm-6``) in one pass.

    Cost: one forward pass and ``n_L`` batched VJPs per input, plus for ``Var(Î₂)`` the
    pre-activation Hessian diagonals ``O(Σ_{l+2≤k≤L−2} n_{k+1} n_k n_{l+1} +
    n_L Σ_{l<k≤L−2} n_{k+1} n_{l+1})`` per input (:func:`_gamma_diagonals_jacobian`; no full
    Hessian, no factor n_L on the width³ terms); memory ``O(P + chunk · per-input arrays)``.
    No ``P×P`` array is formed. Inputs are processed in chunks sized so that what each chunk
    forms fits ``memory_budget`` bytes (default :data:`DEFAULT_MEMORY_BUDGET`, 1 GiB) besides
    the ``O(P)`` accumulators; ``batch_size`` overrides the chunk.

    Raises:
        UnsupportedError: ``variance_2`` on a non-C² network (thm-3); a bad dtype.
        ShapeError: x of the wrong shape, n not a positive integer.
        DomainError: h_L(x) outside the family's natural-parameter domain.
    """
    acc, s, N = layer_sums(net, x, n, fisher, variance_1, variance_2, device, dtype, batch_size,
                            memory_budget)
    torch = s.torch
    scale = {"f": 1.0 / s.M, "v1": 1.0 / (s.M * s.M * N), "v2": 1.0 / (s.M * s.M * N)}
    out = {
        key: (torch.cat([b.reshape(-1) for b in blocks]) * scale[key]).cpu().numpy()
        for key, blocks in acc.items()
    }
    return LargeDiagonals(out.get("f"), out.get("v1"), out.get("v2"), int(n), str(s.device),
                          str(s.dtype).replace("torch.", ""))


def fisher_diagonal(
    net: Any, x: Any, *, device: str | None = None, dtype: Any = None,
    batch_size: int | None = None, memory_budget: int | None = None,
) -> np.ndarray:
    """``diag I(θ) = diag((1/M) Σ_m J_mᵀ I(h_L) J_m)`` (``eq-6``), shape ``(P,)``, on PyTorch."""
    d = diagonals(net, x, fisher=True, variance_1=False, variance_2=False, device=device,
                  dtype=dtype, batch_size=batch_size, memory_budget=memory_budget)
    assert d.fisher is not None
    return d.fisher


def variance1_diagonal(
    net: Any, x: Any, n: int = 1, *, device: str | None = None, dtype: Any = None,
    batch_size: int | None = None, memory_budget: int | None = None,
) -> np.ndarray:
    """``Var(Î₁)_ii = (1/(M²N)) Σ_m J_ai J_bi J_ci J_di (K − I⊗I)_abcd`` (``thm-4``), ``(P,)``.

    Through ``K − I⊗I = κ₄ + I_ac I_bd + I_ad I_bc`` and ``Family.kappa4_contract`` (O(K) per
    parameter for the categorical family).
    """
    d = diagonals(net, x, n, fisher=False, variance_1=True, variance_2=False, device=device,
                  dtype=dtype, batch_size=batch_size, memory_budget=memory_budget)
    assert d.variance_1 is not None
    return d.variance_1


def variance2_diagonal(
    net: Any, x: Any, n: int = 1, *, device: str | None = None, dtype: Any = None,
    batch_size: int | None = None, memory_budget: int | None = None,
) -> np.ndarray:
    """``Var(Î₂)_ii = (1/(M²N)) Σ_m H^α_ii H^β_ii I_αβ`` (``thm-6``), ``(P,)``, exact Hessian diagonals."""
    d = diagonals(net, x, n, fisher=False, variance_1=False, variance_2=True, device=device,
                  dtype=dtype, batch_size=batch_size, memory_budget=memory_budget)
    assert d.variance_2 is not None
    return d.variance_2


def output_hessian_diagonals(
    net: Any, x: Any, *, device: str | None = None, dtype: Any = None
) -> np.ndarray:
    """``∂²h^α_L/∂θ_i²`` for every input, output and parameter, shape ``(M, n_L, P)``.

    ``= Γ^α_l[r, r] · h̄_l[c]²`` at ``θ_i = W_l[r, c]`` (module docstring); the diagonal of
    ``thm-6``'s ``Var(Î₂)`` needs these. Needs σ ∈ C².
    Memory ``M · n_L · P``: meant for checking, not for the largest networks.
    """
    s = _setup(net, x, device, dtype)
    net.require_c2("output Hessians (thm-3)", x)
    q = _forward_backward(s, s.X)
    gam = _gamma_diagonals(s, q)
    blocks = [
        (g[:, :, :, None] * (hb**2)[:, None, None, :]).reshape(s.M, s.n_L, -1)
        for g, hb in zip(gam, q.hbar)
    ]
    return s.torch.cat(blocks, dim=-1).cpu().numpy()


def variance1_block(
    net: Any, x: Any, layer: int, n: int = 1, *, device: str | None = None, dtype: Any = None
) -> np.ndarray:
    """Element-wise ``Var(Î₁)_ij`` for i, j both in ``W_layer`` (``thm-4``), shape ``(p_l, p_l)``.

    ``Var_{(r,c),(r',c')} = (1/(M²N)) Σ_m S_m[r,r'] h̄[c]² h̄[c']²`` with
    ``S[r,r'] = C[g_r, g_r', g_r, g_r'] = κ₄[g_r, g_r', g_r, g_r'] + (g_rᵀIg_r)(g_r'ᵀIg_r') +
    (g_rᵀIg_r')²``. Refused above :data:`MAX_BLOCK_ENTRIES` entries.
    """
    s = _setup(net, x, device, dtype)
    N = _check_n(n)
    L = len(s.weights)
    if isinstance(layer, bool) or int(layer) != layer or not 0 <= int(layer) < L:
        raise ShapeError(f"layer must be an integer in [0, {L - 1}], got {layer!r}")
    layer = int(layer)
    p_l = int(s.weights[layer].numel())
    if p_l * p_l > MAX_BLOCK_ENTRIES:
        raise UnsupportedError(
            f"the Var(I1) block of W_{layer} has {p_l}^2 entries, above MAX_BLOCK_ENTRIES = "
            f"{MAX_BLOCK_ENTRIES}; use variance1_diagonal"
        )
    torch = s.torch
    n_out, n_in1 = s.weights[layer].shape
    out = torch.zeros(n_out, n_in1, n_out, n_in1, dtype=s.dtype, device=s.device)
    for Xc in _chunks(s, n_out * n_out * s.n_L, None):
        q = _forward_backward(s, Xc)
        mom = _Moments(s, q.h)
        G = q.G[layer]
        u = G.transpose(1, 2)  # (m, n_out, n_L)
        quad = mom.quad(G[:, :, :, None], G[:, :, None, :])  # (m, r, r')
        S = mom.excess4_mixed(u, quad)  # C[u_r, u_s, u_r, u_s], direct where the family has it
        hb2 = q.hbar[layer] ** 2
        out += torch.einsum("mrs,mc,md->rcsd", S, hb2, hb2)
    return (out.reshape(p_l, p_l) / (s.M * s.M * N)).cpu().numpy()


# --- labelled estimates ------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A value that is exact (``exact=True``, ``stderr=0``) or a stochastic estimate.

    Attributes:
        value: the (estimated) quantity.
        stderr: standard error of ``value`` (0 when exact).
        exact: whether ``value`` is exact to rounding.
        method: ``"exact"`` (closed form), ``"hvp"`` (HVPs over the canonical basis) or
            ``"hutchinson"``.
        probes: number of Hessian-vector products per (input, output) used (0 for the closed
            form).
    """

    value: float
    stderr: float
    exact: bool
    method: str
    probes: int
    details: dict[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        if self.exact:
            return f"{self.value:.6g} (exact)"
        return f"{self.value:.6g} ± {self.stderr:.2g} (ESTIMATE, {self.method}, {self.probes} probes)"
