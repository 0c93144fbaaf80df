"""Token-level outputs: a product of categoricals over ``T`` positions with a padding mask.

A sequence model (a causal transformer) gives ``V`` logits at each of ``T`` positions; its labels
are one token per position, independent given the logits, and padding positions carry no label.
``family("sequence", K=V, T=T)`` is that law (``ext-sequence``). Its natural parameter holds, per
position, the ``V`` logits followed by one **mask entry** ``m_t ∈ {0, 1}`` (1: a real position):

    h = (h_1, m_1, h_2, m_2, …, h_T, m_T),   d = T·(V + 1),
    t(y) = (m_1 e_{y_1}, 0, …, m_T e_{y_T}, 0),   F(h) = Σ_t m_t logsumexp(h_t).

For each fixed mask this is the independent product (:mod:`.product`) of the unmasked positions'
categoricals; a masked position contributes nothing to the likelihood, ``η``, ``I``, ``κ₃`` or
``κ₄`` (its label is the ``ignore_index`` ``IGNORE = -100`` of ``nn.CrossEntropyLoss``). The mask
entries are conditioning indicators, not natural parameters: the mask depends on the input
tokens, never on θ, so ``J = ∂h/∂θ`` is zero in those coordinates, and every cumulant is defined
as zero along them. Since the mask differs from input to input, it travels in ``h``
(:func:`fisher_verify._src.models.sequence.with_padding_mask` appends it to a model's logits).

Cumulants are block-diagonal over positions (independence) and per position those of a one-hot
statistic (:mod:`.onehot`), so the contractions a model needs cost ``O(T·V)`` per Jacobian column:
``uᵀIu = Σ_t m_t Σ_k p_tk d_tk²`` and ``C[u⁴] = Σ_t m_t κ₄,t[u_t⁴] + 2 (uᵀIu)²`` (cumulants of a
sum of independent terms add; ``C = K − I⊗I``, lemma-5). The dense tensors are formed only when
asked for (small ``T·V``) and refused above the memory limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from ..errors import DomainError, ParameterError, ShapeError, UnsupportedError
from ..validation import as_generator, as_real_array, check_count
from .contractions import DenseContractions
from .definition import FamilyDefinition, Support
from .family import DENSE_MEMORY_LIMIT, MAX_SUPPORT_POINTS, Family, _backend_of, _physical_memory
from .onehot import (
    _wsum,
    onehot_centred,
    onehot_cumulant_contract,
    onehot_cumulant_dense,
    onehot_excess4_diagonal,
    onehot_fisher_bilinear,
)

__all__: list[str] = []  # nothing for other rooms

#: The label of a masked position (``nn.CrossEntropyLoss``'s default ``ignore_index``).
IGNORE = -100

#: Largest ``T`` accepted (the positions of one sequence).
MAX_POSITIONS = 1 << 16
#: Largest ``V`` accepted (the catalog's categorical limit is not needed: nothing is symbolic).
MAX_VOCABULARY = 1 << 24


def _xp(a: Any) -> Any:
    if type(a).__module__.startswith("torch"):
        import torch

        return torch
    return np


def sequence(K: Any, T: Any) -> SequenceFamily:  # noqa: N803 - K is the paper's name
    """``family("sequence", K=V, T=T)``: categoricals over ``T`` positions with a padding mask
    (``ext-sequence``; module docstring).

    Raises:
        ParameterError: ``K`` not an integer in ``[2, 2²⁴]`` or ``T`` not one in ``[1, 2¹⁶]``.
    """
    V, positions = check_sequence_parameters(K, T)
    return SequenceFamily(V, positions)


def check_sequence_parameters(K: Any, T: Any) -> tuple[int, int]:  # noqa: N803
    """``(V, T)`` as integers, or the :class:`ParameterError` naming the bad one."""
    for name, value, low, high in (("K", K, 2, MAX_VOCABULARY), ("T", T, 1, MAX_POSITIONS)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
                low <= int(value) <= high):
            raise ParameterError(
                f"family 'sequence': parameter {name}={value!r} is invalid; it must be an integer "
                f"in [{low}, {high}] ({'the vocabulary size V' if name == 'K' else 'the positions T'})")
    return int(K), int(T)


class _Symbols(Sequence[sp.Symbol]):
    """``h_0 … h_{d−1}`` made on access: a vocabulary of 10⁴ over 64 positions has 640 064
    coordinates, whose symbols nothing here needs (the definition only names the family)."""

    def __init__(self, d: int) -> None:
        self.d = d

    def __len__(self) -> int:
        return self.d

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.d))]
        if not -self.d <= i < self.d:
            raise IndexError(i)
        return sp.Symbol(f"h_{i % self.d}", real=True)


class SequenceFamily(Family):
    """``T`` independent categoricals of ``V`` classes, each present where its mask entry is 1.

    Numeric methods take ``h`` of shape ``(..., T·(V+1))`` (NumPy or torch); labels ``y`` have
    shape ``(..., T)`` with ``IGNORE`` at masked positions.
    """

    def __init__(self, V: int, T: int) -> None:  # noqa: N803
        self.V, self.T = V, T
        d = T * (V + 1)
        # the definition only names the family: nothing of it is derived symbolically (the
        # symbolic route would differentiate along the mask entries, which are not parameters)
        y = sp.Symbol("y", integer=True)
        definition = FamilyDefinition(
            name="sequence", params={"K": V, "T": T}, h=_Symbols(d), y=y,  # type: ignore[arg-type]
            statistic=(sp.Integer(0),) * d, log_base=sp.Integer(0),
            support=Support("finite", values=range(V)), log_partition=sp.Integer(0),
            negative=(), domain_text=f"logits real; every {V + 1}-th entry (the mask) 0 or 1",
            sampler=self._sample_impl,
            description=f"{T} categoricals of {V} classes with a padding mask",
        )
        super().__init__(definition)

    @property
    def label(self) -> str:
        """``sequence(K=V, T=T)``."""
        return f"sequence(K={self.V}, T={self.T})"

    # --- layout -----------------------------------------------------------------------------

    def split(self, h: Any) -> tuple[Any, Any]:
        """``(logits (..., T, V), mask (..., T))`` of ``h`` (..., T·(V+1))."""
        hh = h.reshape(*h.shape[:-1], self.T, self.V + 1)
        return hh[..., : self.V], hh[..., self.V]

    def join(self, logits: Any, mask: Any) -> Any:
        """``h`` (..., T·(V+1)) from logits (..., T, V) and a mask (..., T) (the inverse of
        :meth:`split`)."""
        xp = _xp(logits)
        m: Any = mask[..., None]
        m = m.to(logits.dtype) if xp is not np else np.asarray(m, dtype=logits.dtype)
        cat = xp.concatenate([logits, m + 0 * logits[..., :1]], -1) if xp is np else xp.cat(
            [logits, m.expand(*logits.shape[:-1], 1)], -1)
        return cat.reshape(*logits.shape[:-2], self.T * (self.V + 1))

    def lifted(self, values: Any) -> Any:
        """Per-position values (..., T, V) as a vector in h's layout (zeros at the mask entries)."""
        xp = _xp(values)
        pad = xp.zeros_like(values[..., :1])
        cat = xp.concatenate([values, pad], -1) if xp is np else xp.cat([values, pad], -1)
        return cat.reshape(*values.shape[:-2], self.T * (self.V + 1))

    def positions(self, u: Any, axis: int = -1) -> Any:
        """``u`` with its h-axis ``axis`` (length T·(V+1)) split into (T, V), the mask entries
        dropped, the classes last and the positions just before them."""
        xp = _xp(u)
        u = xp.moveaxis(u, axis, -1) if xp is np else u.movedim(axis, -1)
        u = u.reshape(*u.shape[:-1], self.T, self.V + 1)
        return u[..., : self.V]

    def unmasked(self, h: Any) -> Any:
        """``h`` with every mask entry set to 1 (every position counted): what an estimator that
        forgets the padding mask estimates the Fisher information of."""
        xp = _xp(h)
        out = h.copy() if xp is np else h.clone()
        view = out.reshape(*out.shape[:-1], self.T, self.V + 1)
        view[..., self.V] = 1.0
        return view.reshape(out.shape)

    # --- validation -----------------------------------------------------------------------------

    def check_natural(self, h: Any) -> None:
        """Refuse ``h`` of the wrong width, non-finite logits, or a mask entry other than 0 or 1."""
        backend = _backend_of(h)
        if backend == "mpmath":
            raise UnsupportedError(f"{self.label}: mpmath kernels are not provided (nothing of this "
                                   "family is symbolic); use numpy or torch")
        if backend == "torch":
            try:
                values = h.detach().cpu().numpy().astype(float)
            except RuntimeError:  # inside torch.func transforms: the shape only
                if h.ndim == 0 or h.shape[-1] != self.dim:
                    raise ShapeError(f"{self.label}: natural parameter h must have last axis of "
                                     f"size {self.dim}, got shape {tuple(h.shape)}") from None
                return
        else:
            values = as_real_array(h, "natural parameter h")
        if values.ndim == 0 or values.shape[-1] != self.dim:
            raise ShapeError(
                f"{self.label}: natural parameter h must have last axis of size {self.dim} "
                f"(T = {self.T} positions × (V = {self.V} logits + 1 mask entry)), got shape "
                f"{tuple(values.shape)}")
        if not np.all(np.isfinite(values)):
            raise DomainError(f"{self.label}: h contains NaN or infinite values")
        _, mask = self.split(values)
        bad = (mask != 0.0) & (mask != 1.0)
        if np.any(bad):
            pos = int(np.argwhere(bad)[0][-1])
            raise DomainError(
                f"{self.label}: the mask entry of position {pos} (h index "
                f"{pos * (self.V + 1) + self.V}) is {float(mask[bad].reshape(-1)[0])!r}; mask "
                "entries must be 0 (padding) or 1 (a real position)")

    def check_labels(self, y: Any, name: str = "labels") -> np.ndarray:
        """``y`` (..., T) as float64 when each entry is a class in ``0..V−1`` or ``IGNORE``.

        Raises:
            ShapeError: a last axis other than T. DomainError: another value, named.
        """
        arr = as_real_array(y, name)
        if arr.ndim == 0 or arr.shape[-1] != self.T:
            raise ShapeError(f"{name}: {self.label} labels have shape (..., T = {self.T}), got "
                             f"{tuple(arr.shape)}")
        ok = np.isfinite(arr) & (((arr >= 0) & (arr < self.V) & (np.floor(arr) == arr))
                                 | (arr == IGNORE))
        if not np.all(ok):
            bad = arr[~ok].reshape(-1)[0]
            raise DomainError(f"{name}: {float(bad):g} is not a label of {self.label}: each "
                              f"position takes a class 0..{self.V - 1} or {IGNORE} (padding)")
        return arr

    # --- symbolic: not provided -----------------------------------------------------------------

    @property
    def derivation(self) -> Any:
        """Refused: the cumulants are assembled from the one-hot moments (module docstring)."""
        raise UnsupportedError(
            f"{self.label}: no symbolic derivation (the mask entries are not natural parameters); "
            "its numeric kernels are the one-hot moments of each unmasked position")

    def kernel(self, quantity: str, backend: Any) -> Any:
        """Refused, as :attr:`derivation`."""
        raise UnsupportedError(f"{self.label}: no generated kernels; call fisher(h), kappa4(h), … "
                               "directly")

    # --- numeric kernels ---------------------------------------------------------------------------

    def _parts(self, h: Any) -> tuple[Any, Any]:
        """Softmax probabilities (..., T, V) and the mask (..., T), h validated."""
        if _backend_of(h) == "numpy":
            h = as_real_array(h, "natural parameter h")
        self.check_natural(h)
        logits, mask = self.split(h)
        if _xp(h) is np:
            z = logits - np.max(logits, axis=-1, keepdims=True)
            e = np.exp(z)
            return e / np.sum(e, axis=-1, keepdims=True), mask
        import torch

        return torch.softmax(logits, dim=-1), mask

    def probabilities(self, h: Any) -> tuple[Any, Any]:
        """``(p (..., T, V), mask (..., T))``: each position's class probabilities and its mask."""
        return self._parts(h)

    def log_partition(self, h: Any, backend: Any = None) -> Any:
        """``F(h) = Σ_t m_t logsumexp(h_t)``, shape ``(...)``."""
        if _backend_of(h) == "numpy":
            h = as_real_array(h, "natural parameter h")
        self.check_natural(h)
        logits, mask = self.split(h)
        if _xp(h) is np:
            top = np.max(logits, axis=-1)
            lse = top + np.log(np.sum(np.exp(logits - top[..., None]), axis=-1))
            return np.sum(mask * lse, axis=-1)
        import torch

        return (mask * torch.logsumexp(logits, dim=-1)).sum(-1)

    def mean(self, h: Any, backend: Any = None) -> Any:
        """``η = E[t(y)] = (m_t p_t, 0)_t``, shape ``(..., d)``."""
        p, mask = self._parts(h)
        return self.lifted(p * mask[..., None])

    def _dense(self, h: Any, order: int) -> Any:
        """The block-diagonal order-``order`` cumulant (..., d, …, d) (zeros off the blocks)."""
        p, mask = self._parts(h)
        self._refuse_dense(h, order)
        xp = _xp(p)
        blocks = onehot_cumulant_dense(p, order) * mask.reshape(*mask.shape, *(1,) * order)
        lead = tuple(p.shape[:-2])
        W = self.V + 1
        shape = lead + (self.T, W) * order
        out = np.zeros(shape, dtype=p.dtype) if xp is np else xp.zeros(
            shape, dtype=p.dtype, device=p.device)
        for t in range(self.T):
            idx = (Ellipsis,) + (t, slice(0, self.V)) * order
            out[idx] = blocks[(Ellipsis, t) + (slice(None),) * order]
        return out.reshape(lead + (self.dim,) * order)

    def _refuse_dense(self, h: Any, order: int) -> None:
        entries = math.prod(tuple(h.shape[:-1])) * self.dim ** order
        need = 8 * entries * (5 if order == 4 else 2)
        limit = DENSE_MEMORY_LIMIT
        physical = _physical_memory()
        if physical is not None:
            limit = min(limit, physical)
        if need > limit:
            raise UnsupportedError(
                f"{self.label}: the dense order-{order} cumulant has {entries:.3g} entries (about "
                f"{need / 2**30:.3g} GiB), more than the limit of {limit / 2**30:.3g} GiB; use the "
                "O(T·V) contractions: fisher_bilinear, excess4_diagonal, kappa4_contract")

    def fisher(self, h: Any, backend: Any = None) -> Any:
        """``I(h)`` (..., d, d): ``m_t (diag p_t − p_t p_tᵀ)`` on each position's logits."""
        return self._dense(h, 2)

    def kappa3(self, h: Any, backend: Any = None) -> Any:
        """``κ₃`` (..., d, d, d), block-diagonal over positions."""
        return self._dense(h, 3)

    def kappa4(self, h: Any, backend: Any = None) -> Any:
        """``κ₄`` (..., d, d, d, d), block-diagonal over positions."""
        return self._dense(h, 4)

    def central_moment4(self, h: Any, backend: Any = None) -> Any:
        """``K = κ₄ + the three I⊗I permutations`` (lemma-5), which couples the positions."""
        k4 = self._dense(h, 4)
        i2 = self._dense(h, 2)
        ein = np.einsum if _xp(i2) is np else __import__("torch").einsum
        return (k4 + ein("...ab,...cd->...abcd", i2, i2) + ein("...ac,...bd->...abcd", i2, i2)
                + ein("...ad,...bc->...abcd", i2, i2))

    # --- O(T·V) contractions ------------------------------------------------------------------------

    def kappa4_contract(self, h: Any, u: Any, v: Any, w: Any, z: Any) -> Any:
        """``κ₄[u, v, w, z] = Σ_t m_t κ₄,t[u_t, v_t, w_t, z_t]`` (cumulants of independent
        positions add), O(T·V) per batch element; vectors in h's layout broadcast against h."""
        p, mask = self._parts(h)
        per = onehot_cumulant_contract(p, [self.positions(a) for a in (u, v, w, z)])
        return (per * mask).sum(-1)

    def fisher_bilinear(self, h: Any, a: Any, b: Any, axis: int = -1) -> Any:
        """``aᵀ I(h) b`` with h (B, d) and a, b (B, …, d, …) whose axis ``axis`` is the h-axis:
        ``Σ_t m_t Σ_k p_tk d_tk e_tk`` (:func:`~.onehot.onehot_fisher_bilinear`), O(T·V)."""
        return self._excess_or_bilinear(h, a, b, axis, fourth=False)[1]

    def excess4_diagonal(self, h: Any, g: Any, axis: int = -1) -> tuple[Any, Any]:
        """``(C[g⁴], gᵀIg)`` with ``C = K − I⊗I`` (lemma-5): ``Σ_t m_t κ₄,t[g_t⁴] + 2(gᵀIg)²``,
        O(T·V); shapes as :meth:`fisher_bilinear`."""
        return self._excess_or_bilinear(h, g, g, axis, fourth=True)

    def _excess_or_bilinear(self, h: Any, a: Any, b: Any, axis: int, fourth: bool) -> Any:
        p, mask = self._parts(h)
        nd = a.ndim
        ax = axis % nd
        # bring the h-axis last, split it into (T, V): p (B, T, V) broadcasts as (B, 1.., T, V)
        A = self.positions(a, ax)
        lead = A.ndim - 3  # the axes between the batch and the positions
        shape_p = (p.shape[0],) + (1,) * lead + tuple(p.shape[1:])
        pb = p.reshape(shape_p)
        mb = mask.reshape(shape_p[:-1])
        if fourth:
            c, q = onehot_excess4_diagonal(pb, A, axis=-1)
            quad = (mb * q).sum(-1)
            k4 = (mb * (c - 2.0 * q * q)).sum(-1)
            return k4 + 2.0 * quad * quad, quad
        B = A if b is a else self.positions(b, ax)
        q = onehot_fisher_bilinear(pb, A, B, axis=-1)
        return None, (mb * q).sum(-1)

    def projected_central_moments(self, h: Any, U: Any, order: int) -> np.ndarray:
        """Central moments ``0..order`` of ``uᵀ(t − η)`` for h (M, d) and U (M, K, d), exactly,
        in O(T·V): per position the one-hot moments ``Σ_k p_k d_k^j``, combined over the
        independent unmasked positions by adding cumulants."""
        from math import comb

        p, mask = self._parts(np.asarray(h, dtype=np.float64))
        A = self.positions(np.asarray(U, dtype=np.float64))  # (M, K, T, V)
        d = onehot_centred(p[:, None], A)  # (M, K, T, V)
        pw = np.ones_like(d)
        mom = np.empty(d.shape[:-1] + (order + 1,))
        for j in range(order + 1):
            mom[..., j] = _wsum(p[:, None], pw, -1, False, np)
            pw = pw * d
        kap = np.zeros_like(mom)
        for k in range(2, order + 1):
            kap[..., k] = mom[..., k] - sum(comb(k - 1, j - 1) * kap[..., j] * mom[..., k - j]
                                            for j in range(2, k - 1))
        ks = (kap * mask[:, None, :, None]).sum(axis=2)  # (M, K, order+1)
        out = np.zeros_like(ks)
        out[..., 0] = 1.0
        for k in range(2, order + 1):
            out[..., k] = sum(comb(k - 1, j - 1) * ks[..., j] * out[..., k - j]
                              for j in range(2, k + 1))
        return out

    def contractions(self, h: Any) -> Any:
        """The O(T·V) contractions of the engines (eq-6, thm-4, lemma-5):
        :class:`SequenceContractions`."""
        return SequenceContractions(self, h)

    def contraction_entries(self) -> int:
        """0: the fourth-order contractions are direct forms per position (thm-4)."""
        return 0

    def kappa4_diagonal(self, h: Any, u: Any) -> Any:
        """``κ₄[u⁴] = Σ_t m_t κ₄,t[u_t⁴]`` for torch h (m, d) and u (m, r, d), O(T·V) (lemma-5)."""
        c, q = self.excess4_diagonal(h, u.transpose(1, 2), axis=1)
        return c - 2.0 * q * q

    # --- data ----------------------------------------------------------------------------------------

    def _sample_impl(self, h: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        p, mask = self._parts(h)
        cdf = np.cumsum(p, axis=-1)
        u = rng.random((n,) + p.shape[:-1])
        y = np.minimum((u[..., None] > cdf).sum(-1), self.V - 1).astype(float)
        return np.where(mask == 1.0, y, float(IGNORE))

    def sample(self, h: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws, shape ``(n, *h.shape[:-1], T)``, ``IGNORE`` at masked positions."""
        h = as_real_array(h, "natural parameter h")
        count = check_count(n, f"{self.label}: number of samples n")
        return self._sample_impl(h, count, as_generator(rng))

    def statistic(self, y: Any) -> np.ndarray:
        """``t(y)`` (..., d): the one-hot of each position's label, zero where it is ``IGNORE``."""
        y = self.check_labels(y, "y")
        onehot = (y[..., None] == np.arange(self.V, dtype=float)).astype(float)
        return self.lifted(onehot)

    def log_base(self, y: Any) -> np.ndarray:
        """0 (counting measure)."""
        return np.zeros(np.shape(self.check_labels(y, "y"))[:-1])

    def log_density(self, y: Any, h: np.ndarray) -> np.ndarray:
        """``Σ_t m_t log p_t(y_t)``; a masked position contributes nothing (its label must be
        ``IGNORE``), an unmasked one must have a class label."""
        h = as_real_array(h, "natural parameter h")
        yy = self.check_labels(y, "y")
        _, mask = self.split(h)
        bad = (mask == 1.0) & (yy == IGNORE)
        bad = np.broadcast_to(bad, np.broadcast_shapes(bad.shape, mask.shape))
        if np.any(bad):
            raise DomainError(f"y: an unmasked position has the label {IGNORE}; real positions "
                              f"take a class 0..{self.V - 1}")
        t = self.statistic(yy)
        return np.sum(t * h, axis=-1) - self.log_partition(h)

    def expectation_nodes(self, h: np.ndarray, degree: int = 4,
                          tol: float = 1e-15) -> tuple[np.ndarray, np.ndarray, float]:
        """Every label sequence (``V^T`` nodes; a masked position's label is summed out with
        weight 1/V, so its nodes repeat): exact for any g. Refused above
        :data:`~.family.MAX_SUPPORT_POINTS` nodes."""
        h = as_real_array(h, "natural parameter h")
        self.check_natural(h)
        S = self.V ** self.T
        if S > MAX_SUPPORT_POINTS or S * self.dim * max(1, math.prod(h.shape[:-1])) > 5 * 10**7:
            raise UnsupportedError(
                f"{self.label}: the exact expectation sums over all V^T = {self.V}^{self.T} label "
                f"sequences; the limit is {MAX_SUPPORT_POINTS} (and 5e7 numbers over the batch); "
                "use the O(T·V) contractions or projected_central_moments instead")
        p, mask = self._parts(h)
        labels = np.stack(np.unravel_index(np.arange(S), (self.V,) * self.T), -1)  # (S, T)
        lead = h.shape[:-1]
        # per position the probability of its label, or 1/V where masked (summed out)
        pt = np.where(mask[..., None] == 1.0, p, 1.0 / self.V)  # (..., T, V)
        w = np.ones(lead + (S,))
        for t in range(self.T):
            w = w * pt[..., t, labels[:, t]]
        onehot = (labels[..., None] == np.arange(self.V)).astype(float)  # (S, T, V)
        stat = onehot * mask[..., None, :, None]  # (..., S, T, V)
        return self.lifted(stat), w, 0.0

    def integral_mp(self, h: Any, g: Any = None) -> Any:
        """Refused (no mpmath route; see :meth:`expectation_nodes`)."""
        raise UnsupportedError(f"{self.label}: no mpmath route; use expectation_nodes")

    def moment_mp(self, powers: tuple[int, ...], h: Any, center: bool = True) -> Any:
        """Refused, as :meth:`integral_mp`."""
        raise UnsupportedError(f"{self.label}: no mpmath route; use expectation_nodes")


class SequenceContractions(DenseContractions):
    """The sequence family's contractions: per position the one-hot direct forms, summed over
    the unmasked positions (cumulants of independent positions add), O(T·V) per vector. The
    pair contractions of thm-7 and the factor of thm-8 fall back to the dense tensors (small
    T·V only, refused above the memory limit)."""

    direct = True

    def quad(self, u: Any, v: Any) -> Any:
        """``uᵀ I(h) v`` for u, v (m, d, ...) contracted over axis 1 (eq-6)."""
        fam = self.family
        return fam.fisher_bilinear(self.h, u, v, axis=1)

    def _bilinear3(self, u3: Any, v3: Any) -> Any:
        return self.family.fisher_bilinear(self.h, u3, v3, axis=1)

    def kappa4(self, u: Any, v: Any, w: Any, z: Any) -> Any:
        """``κ₄[u, v, w, z]`` (``Family.kappa4_contract``, O(T·V))."""
        import torch

        hh = self.h.reshape(self.h.shape[0], *([1] * (u.ndim - 2)), self.h.shape[1])
        out = self.family.kappa4_contract(hh, u, v, w, z)
        return torch.as_tensor(out, dtype=self.h.dtype, device=self.h.device)

    def excess4(self, u: Any) -> tuple[Any, Any]:
        """``(C[u⁴], uᵀIu)`` for u (m, r, d) over its last axis (thm-4)."""
        return self.family.excess4_diagonal(self.h, u, axis=-1)

    def magnitude(self, u: Any) -> Any:
        """``Σ_t m_t Σ_k p_tk (|u_tk| + p_tᵀ|u_t|)²`` for u (m, d) (m,): the size of the terms
        of the centred ``uᵀIu`` (the coordinate audit)."""
        p, mask = self.family.probabilities(self.h)
        a = self.family.positions(u).abs()
        s = (p * (a + (p * a).sum(-1, keepdim=True)) ** 2).sum(-1)
        return (mask * s).sum(-1)

    def fisher_fro_norms(self) -> Any:
        """``‖I‖_F = (Σ_t m_t ‖diag p_t − p_t p_tᵀ‖_F²)^{1/2}`` (block-diagonal; thm-8 rhs)."""
        p, mask = self.family.probabilities(self.h)
        p2 = (p * p).sum(-1)
        per = p2 - 2.0 * (p * p * p).sum(-1) + p2 * p2
        return (mask * per).sum(-1).clamp(min=0).sqrt()

    def fisher_and_excess(self, J: Any, fourth: bool) -> tuple[Any, Any]:
        """``(uᵀIu, C[u⁴])`` for the columns of J (B, d, p), O(T·V) each (eq-6, thm-4)."""
        if not fourth:
            return self.family.fisher_bilinear(self.h, J, J, axis=1), None
        excess, quad = self.family.excess4_diagonal(self.h, J, axis=1)
        return quad, excess
