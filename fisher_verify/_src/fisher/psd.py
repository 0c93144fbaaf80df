"""Positive semi-definiteness of the Hessian estimator Î₂ (``thm-10``, ``thm-11``).

By eq-8, ``Î₂ = I(θ) + (1/M) Σ_m Σ_a ε_{ma} ∂²h^a_L(x_m)`` with ``ε_{ma} = η_a − t̄_a`` the
bias of the sample mean of ``t`` at input ``m`` (``N`` draws per input). Only the ``n_L``-vector
of sample means per input is random, so Î₂ can be sampled without differentiating anything.

Several inputs. The paper's statements are for one input. With M inputs (average over
inputs, N draws per input) the same proofs give, with ``ρ`` the vector of all ``M n_L``
spectral radii ``ρ(∂²h^a_L(x_m))``:

* ``thm-11``: ``λ_min(Î₂) ≥ λ_min(I(θ)) − (1/M) Σ_{m,a} ρ_{ma} |ε_{ma}| ≥ −(1/M) Σ ρ_{ma}|ε_{ma}|``;
* ``thm-10``: ``‖Σ ε H‖₂ ≤ ‖ε‖₂‖ρ‖₂ / M`` and Chebyshev/Markov on ``E‖ε‖² = Σ_m tr I_m / N``:
  ``P(Î₂ ⪰ 0) ≥ 1 − ‖ρ‖₂² Σ_m tr I(h_L(x_m)) / (N M² λ_min(I(θ))²)``
  ``≥ 1 − n_L ‖ρ‖₂² Σ_m λ_max(I_m) / (N M² λ_min²)``; the last is the paper's form at M = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..validation import as_generator, check_count
from .covariance import _batched
from .exact import gauss_newton

#: What a non-C² network is refused for (thm-10 and thm-11 are about Î₂, which needs thm-3).
PSD_OF_HESSIAN_ESTIMATOR = "the p.s.d. behaviour of the Hessian estimator I2 (thm-10, thm-11)"

__all__: list[str] = []  # nothing for other rooms


def spectral_radii(H: Any) -> np.ndarray:
    """``ρ(∂²h^a_L)`` per input and output, shape ``(M, n_L)`` (``thm-10``, ``thm-11``)."""
    import torch

    Hb = _batched(H, 3, "H")
    # torch's batched eigvalsh: NumPy's loops over LAPACK per matrix and is 20-30x slower on
    # a loaded machine (its BLAS threads oversubscribe the cores), the bulk of analyze's time
    ev = torch.linalg.eigvalsh(torch.from_numpy(np.ascontiguousarray(Hb)))
    return ev.abs().amax(-1).numpy()


@dataclass(frozen=True)
class PsdBound:
    """``thm-10``'s lower bound on ``P(Î₂ ⪰ 0)`` and its ingredients.

    ``bound`` is the paper's form ``1 − n_L‖ρ‖²λ_max(I(h_L))/(Nλ_min(I(θ))²)`` (generalised to
    M inputs as in the module docstring), ``None`` when ``λ_min(I(θ)) ≤ tol·λ_max(I(θ))``
    (the theorem does not apply). ``bound_trace`` uses ``tr I`` instead of ``n_L λ_max`` (never
    smaller). ``constant`` is c in ``bound = 1 − c/N``.
    """

    bound: float | None
    bound_trace: float | None
    constant: float | None
    rho: np.ndarray
    lambda_min_fisher: float
    lambda_max_output_fisher: np.ndarray
    applicable: bool


def psd_probability_bound(
    J: Any, H: Any, I: Any, n: int, *, tol: float = 1e-10
) -> PsdBound:
    """``thm-10``: the probability bound from J ``(M?, n_L, P)``, H, I(h_L), N draws per input.

    Raises:
        FisherVerifyError: ``n`` is not an integer >= 1.
    """
    Jb = _batched(J, 2, "J")
    Ib = _batched(I, 2, "I")
    M, nl, _ = Jb.shape
    rho = spectral_radii(H)
    lam_max_out = np.linalg.eigvalsh(Ib)[:, -1]
    return psd_bound_from_sums(
        gauss_newton(Jb, Ib), float(np.sum(rho**2)), float(np.sum(lam_max_out)),
        float(np.sum(np.trace(Ib, axis1=1, axis2=2))), M, nl, n, rho=rho,
        lam_max_out=lam_max_out, tol=tol)


def psd_bound_from_sums(
    fisher: Any, rho2: float, lam_max_sum: float, trace_sum: float, M: int, n_L: int, n: int,
    *, rho: Any = None, lam_max_out: Any = None, tol: float = 1e-10,
) -> PsdBound:
    """``thm-10`` from I(θ) and the per-input sums ``‖ρ‖₂²``, ``Σ_m λ_max(I_m)`` and
    ``Σ_m tr I_m`` (so the inputs can be streamed; :func:`psd_probability_bound` is this
    with the sums of all inputs at once)."""
    count = check_count(n, "number of draws per input n")
    ev = np.linalg.eigvalsh(np.asarray(fisher, dtype=np.float64))
    lam_min = float(ev[0])
    rho_arr = np.zeros(0) if rho is None else rho
    lmo = np.zeros(0) if lam_max_out is None else lam_max_out
    applicable = lam_min > tol * max(float(ev[-1]), 1e-300)
    if not applicable:
        return PsdBound(None, None, None, rho_arr, lam_min, lmo, False)
    c = n_L * rho2 * lam_max_sum / (M * M * lam_min**2)
    c_tr = rho2 * trace_sum / (M * M * lam_min**2)
    return PsdBound(1.0 - c / count, 1.0 - c_tr / count, c, rho_arr, lam_min, lmo, True)


def hessian_estimator(J: Any, H: Any, I: Any, eta: Any, t_mean: Any) -> np.ndarray:
    """Î₂ by eq-8 from sample means ``t_mean`` ``(M?, n_L)`` (or a stack ``(R, M, n_L)``)."""
    Jb, Hb, Ib = _batched(J, 2, "J"), _batched(H, 3, "H"), _batched(I, 2, "I")
    M = Jb.shape[0]
    fisher = gauss_newton(Jb, Ib)
    eps = np.asarray(eta, dtype=np.float64).reshape(M, -1) - np.asarray(t_mean, dtype=np.float64)
    return fisher + np.einsum("...ma,mapq->...pq", eps, Hb) / M


def thm11_lower_bound(H: Any, eta: Any, t_mean: Any) -> np.ndarray:
    """``thm-11``: ``−(1/M) Σ_{m,a} ρ(∂²h^a_L(x_m)) |η_{ma} − t̄_{ma}|``, a bound on λ_min(Î₂)."""
    rho = spectral_radii(H)
    M = rho.shape[0]
    eps = np.asarray(eta, dtype=np.float64).reshape(M, -1) - np.asarray(t_mean, dtype=np.float64)
    return -np.einsum("ma,...ma->...", rho, np.abs(eps)) / M


@dataclass(frozen=True)
class PsdSample:
    """Monte Carlo replicates of Î₂ (``thm-10``, ``thm-11``).

    Attributes:
        lambda_min: ``λ_min(Î₂)`` per replicate ``(R,)``.
        thm11_bound: thm-11's lower bound per replicate ``(R,)``.
        psd_count: number of replicates with ``λ_min ≥ −tol``.
        draws: R.
        bound: thm-10's :class:`PsdBound`.
    """

    lambda_min: np.ndarray
    thm11_bound: np.ndarray
    psd_count: int
    draws: int
    bound: PsdBound

    @property
    def frequency(self) -> float:
        """Observed p.s.d. frequency."""
        return self.psd_count / self.draws


def sample_psd(
    net: Any, x: Any, n: int, draws: int, rng: np.random.Generator | int | None = None
) -> PsdSample:
    """Draw ``draws`` replicates of Î₂ with ``n`` draws per input (``thm-10``, ``thm-11``).

    p.s.d. means ``λ_min(Î₂) ≥ −10⁻¹² · max(1, ‖I(θ)‖₂)`` (rounding of ``eigvalsh``).

    Raises:
        UnsupportedError: σ is not C² (Î₂ and thm-10/thm-11 rest on thm-3).
        FisherVerifyError: ``n`` or ``draws`` not an integer >= 1, or a bad ``rng``.
    """
    net.require_c2(PSD_OF_HESSIAN_ESTIMATOR, x)
    n = check_count(n, "number of draws per input n")
    draws = check_count(draws, "number of replicates draws")
    gen = as_generator(rng)
    fam = net.family
    h = _batched(net.forward(x), 1, "h_L")
    J, H = _batched(net.jacobian(x), 2, "J"), _batched(net.output_hessians(x), 3, "H")
    I, eta = np.asarray(fam.fisher(h)), np.asarray(fam.mean(h))
    t = fam.sample_statistic(h, n * draws, gen)  # (n R, M, n_L)
    t_mean = t.reshape(draws, n, *t.shape[1:]).mean(axis=1)  # (R, M, n_L)
    est = hessian_estimator(J, H, I, eta, t_mean)
    lam = np.linalg.eigvalsh(est)[:, 0]
    scale = max(1.0, float(np.linalg.norm(est[0], 2)))
    return PsdSample(
        lambda_min=lam,
        thm11_bound=thm11_lower_bound(H, eta, t_mean),
        psd_count=int(np.sum(lam >= -1e-12 * scale)),
        draws=draws,
        bound=psd_probability_bound(J, H, I, n),
    )


def bias_variance_exact(family: Any, h: Any, n: int = 1) -> np.ndarray:
    """``Var(η_a − (1/N) Σ_i t_a(y_i))`` from the definition, shape ``(M?, n_L)`` (``thm-11``).

    Computed as ``E[(t_a − E t_a)²]/N`` on ``family.expectation_nodes`` (no use of I(h)); the
    theorem says it equals ``I_aa(h_L)/N``.
    """
    count = check_count(n, "number of draws per input n")
    hh = np.asarray(h, dtype=np.float64)
    t, w, _ = family.expectation_nodes(hh, degree=2)
    w = w / np.sum(w, axis=-1, keepdims=True)
    mean = np.einsum("...s,...sa->...a", w, t)
    return np.einsum("...s,...sa->...a", w, (t - mean[..., None, :]) ** 2) / count
