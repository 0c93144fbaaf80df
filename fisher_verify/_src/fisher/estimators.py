"""The two sample estimators Î₁ (score outer products) and Î₂ (negative Hessians), Eq. 2.

Two routes on the same draws:

- ``structured``: eq-7 and eq-8 from t(y) draws, J, ∂²h_L, η and I(h_L);
- ``generic``: automatic differentiation of ``ℓ = t(y)ᵀ h_L − F(h_L)`` per sample (torch
  autograd in float64), straight from the definition Eq. 2. (``log b(y)`` does not depend on θ
  and is left out.)

With several inputs ``(M, n_0)``, ``n`` samples are drawn **per input** and each estimator is
the mean over all ``n M`` pairs ``(x_m, y_{i,m})``, i.e. the average over inputs of the
per-input estimators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import FisherVerifyError, ShapeError, UnsupportedError
from ..networks.network import Network, require_network
from ..validation import as_generator, check_count
from .exact import gauss_newton, output_quantities

Route = Literal["structured", "generic"]


#: What a non-C² network is refused for when Î₂ is asked of it (the words of the CLI's refusal).
HESSIAN_ESTIMATOR = "the Hessian estimator I2 (eq-8)"


@dataclass(frozen=True)
class EstimatorSample:
    """Î₁ and Î₂ from one set of draws.

    Attributes:
        i1: Î₁ ``(P, P)`` (eq-7).
        i2: Î₂ ``(P, P)`` (eq-8); a property that refuses, with the reason, for a network
            whose σ is not C² (ReLU, remark-3.1), where only Î₁ is computed.
        y: the draws, ``(n,)`` for one input or ``(n, M)`` for M inputs (plus the family's
            trailing axes, e.g. for products).
        t: their statistics t(y), ``(n, d)`` or ``(n, M, d)``.
        route: "structured" or "generic".
        i2_refusal: why Î₂ was not computed (``None`` when it was).
    """

    i1: np.ndarray
    hessian_mean: np.ndarray | None
    y: np.ndarray
    t: np.ndarray
    route: str
    i2_refusal: str | None = None

    @property
    def i2(self) -> np.ndarray:
        """Î₂ ``(P, P)`` (eq-8).

        Raises:
            UnsupportedError: the network's σ is not C² (thm-3 does not cover it).
        """
        if self.hessian_mean is None:
            raise UnsupportedError(self.i2_refusal or "I2 was not computed")
        return self.hessian_mean

    @property
    def n(self) -> int:
        """Number of draws per input."""
        return int(self.t.shape[0])


def _torch() -> Any:
    import torch

    return torch


def _batched_t(t: np.ndarray, M: int, d: int, single: bool) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if single and t.ndim == 2:
        t = t[:, None, :]
    if t.ndim != 3 or t.shape[1:] != (M, d):
        want = f"(n, {d})" if single else f"(n, {M}, {d})"
        raise ShapeError(f"statistics t must have shape {want}, got {t.shape}")
    return t


def structured_estimators(
    net: Network, X: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(Î₁, Î₂) by eq-7 and eq-8 from statistics ``t`` ``(n, M, d)`` of draws at inputs ``X``.

    Raises:
        UnsupportedError: σ is not C² (Î₂ needs thm-3).
    """
    net.require_c2(HESSIAN_ESTIMATOR, X)
    _, eta, I = output_quantities(net, X)
    J = net.jacobian(X)
    i1 = _score_outer_mean(J, eta, t)
    H = net.output_hessians(X)
    bias = eta - t.mean(axis=0)
    i2 = np.einsum("ma,mapq->pq", bias, H) / X.shape[0] + gauss_newton(J, I)
    return i1, i2


def _score_outer_mean(J: np.ndarray, eta: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Î₁ by eq-7 from J, η and the statistics (needs only J, so it exists for any σ)."""
    r = t - eta[None]
    S = np.einsum("nma,nmb->mab", r, r) / t.shape[0]
    return gauss_newton(J, S)


def loglik_torch(net: Network, theta: Any, X: Any, t: Any) -> Any:
    """ℓ ``(n, M)`` = t(y)ᵀ h_L − F(h_L) as a torch function of flat θ (log b(y) left out)."""
    torch = _torch()
    h = torch.stack([net.torch_forward(theta, X[m]) for m in range(X.shape[0])])
    F = net.family.log_partition(h)
    return (t * h[None]).sum(-1) - F[None]


def per_sample_grads(outputs: Any, wrt: Any, chunk: int = 512) -> Any:
    """Rows ∂outputs_k/∂wrt for a flat ``outputs`` (batched backward passes)."""
    torch = _torch()
    flat = outputs.reshape(-1)
    rows = []
    for start in range(0, flat.shape[0], chunk):
        stop = min(start + chunk, flat.shape[0])
        eye = torch.zeros(stop - start, flat.shape[0], dtype=flat.dtype)
        eye[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
        (g,) = torch.autograd.grad(
            flat, wrt, grad_outputs=eye, is_grads_batched=True, retain_graph=True
        )
        rows.append(g)
    return torch.cat(rows, 0)


def hessian_of(scalar: Any, wrt: Any) -> Any:
    """∂²scalar/∂wrt² (wrt flat) by double backward."""
    torch = _torch()
    (g,) = torch.autograd.grad(scalar, wrt, create_graph=True)
    eye = torch.eye(wrt.shape[0], dtype=wrt.dtype)
    (Hs,) = torch.autograd.grad(g, wrt, grad_outputs=eye, is_grads_batched=True)
    return Hs


def generic_estimators(net: Network, X: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Î₁, Î₂) by autodiff of ℓ per sample (Eq. 2; the reference for ``eq-7``/``eq-8``),
    from statistics ``t`` ``(n, M, d)``.

    Raises:
        UnsupportedError: σ is not C² (Î₂ needs thm-3).
    """
    net.require_c2(HESSIAN_ESTIMATOR, X)
    theta, ell = _loglik_graph(net, X, t)
    i1 = _score_outer_mean_autodiff(theta, ell)
    i2 = (-hessian_of(ell.sum() / ell.numel(), theta)).detach().numpy()
    return i1, i2


def _loglik_graph(net: Network, X: np.ndarray, t: np.ndarray) -> tuple[Any, Any]:
    """Flat θ (requiring grad) and ℓ ``(n, M)`` of the draws as a torch graph in θ."""
    torch = _torch()
    net.family.check_natural(net.forward(X))
    theta = torch.tensor(net.theta, dtype=torch.float64, requires_grad=True)
    ell = loglik_torch(net, theta, torch.as_tensor(X, dtype=torch.float64),
                       torch.as_tensor(t, dtype=torch.float64))
    return theta, ell


def _score_outer_mean_autodiff(theta: Any, ell: Any) -> np.ndarray:
    """Î₁ from per-sample gradients of ℓ (Eq. 2); needs only first derivatives."""
    G = per_sample_grads(ell, theta)
    return (G.T @ G / ell.numel()).detach().numpy()


def estimators_from_draws(
    net: Network, x: Any, y: Any, route: Route = "structured"
) -> EstimatorSample:
    """Î₁ and Î₂ from given draws ``y`` (``(n,)`` for one input, ``(n, M)`` for M inputs):
    ``route="structured"`` by ``eq-7``/``eq-8``, ``"generic"`` by per-sample autodiff (Eq. 2).

    For a network whose σ is not C² (ReLU) only Î₁ is computed; reading ``.i2`` refuses.
    """
    if route not in ("structured", "generic"):
        raise FisherVerifyError(f"unknown route {route!r}; use 'structured' or 'generic'")
    X, single = net.inputs(x)
    y_arr = np.asarray(y)
    t_raw = np.asarray(net.family.statistic(y_arr), dtype=np.float64)
    t = _batched_t(t_raw, X.shape[0], net.family.dim, single)
    i2: np.ndarray | None = None
    refusal = net.c2_refusal(HESSIAN_ESTIMATOR, X)
    if refusal is not None:  # ReLU: Î₁ needs only J; Î₂ is left out and refused when read
        if route == "structured":
            i1 = _score_outer_mean(net.jacobian(X), output_quantities(net, X)[1], t)
        else:
            i1 = _score_outer_mean_autodiff(*_loglik_graph(net, X, t))
    elif route == "structured":
        i1, i2 = structured_estimators(net, X, t)
    else:
        i1, i2 = generic_estimators(net, X, t)
    return EstimatorSample(i1=i1, hessian_mean=i2, y=y_arr, t=t[:, 0] if single else t,
                           route=route, i2_refusal=refusal)


def draws_bytes(n: int, M: int, d: int, P: int, route: str = "structured") -> int:
    """Bytes :func:`sample_estimators` holds at once for ``n`` draws at ``M`` inputs of an
    ``n_L = d`` family: the labels, ``t`` and ``t − η`` (``n M (3d + 1)`` float64), and for
    the generic route the per-draw gradients (``n M P``)."""
    per_draw = 3 * d + 1 + (P if route == "generic" else 0)
    return 8 * int(n) * int(M) * per_draw


def sample_estimators(
    net: Network,
    x: Any,
    n: int,
    rng: np.random.Generator | int | None = None,
    route: Route = "structured",
    *,
    memory_budget: int | None = None,
) -> EstimatorSample:
    """Draw ``n`` samples y ~ p(y|x,θ) per input and return Î₁ (eq-7) and Î₂ (eq-8).

    For a network whose σ is not C² (ReLU) only Î₁ is computed: reading ``.i2`` refuses,
    as thm-3 does not cover Î₂ there (remark-3.1). The draws are all held at once
    (:func:`draws_bytes`); above ``memory_budget`` bytes (default 1 GiB) the call is refused
    before anything is drawn.

    Raises:
        DomainError: h_L(x) lies outside the family's natural-parameter domain.
        FisherVerifyError: ``n`` is not an integer >= 1, or ``rng`` is not a seed/Generator.
        UnsupportedError: the draws would exceed ``memory_budget``, naming both.
    """
    from ..validation import check_budget

    net = require_network(net)
    count = check_count(n, "number of samples n")
    budget = check_budget(memory_budget)
    gen = as_generator(rng)
    X, single = net.inputs(x)
    need = draws_bytes(count, X.shape[0], net.family.dim, net.num_params, route)
    if need > budget:
        raise UnsupportedError(
            f"n = {count} draws at each of {X.shape[0]} inputs hold about {need / 2**30:.4g} "
            f"GiB (labels, statistics t and the centred statistics, n M (3 n_L + 1) floats"
            + (", plus the per-draw gradients n M P" if route == "generic" else "")
            + f"), above memory_budget = {budget / 2**30:.4g} GiB; use fewer draws n or pass a "
            "larger memory_budget")
    h = net.forward(X)
    y = net.family.sample(h, count, gen)
    return estimators_from_draws(net, X[0] if single else X, y[:, 0] if single else y, route)


def delta_estimators(
    net: Network, x: Any, y_target: Any, est: EstimatorSample, route: Route = "structured"
) -> tuple[np.ndarray, np.ndarray]:
    """(ΔÎ₁, ΔÎ₂) of delta-i for a target ỹ (one per input), against the draws of ``est``.

    ``ΔÎ₁ = ∂l̃ ∂l̃ᵀ − Î₁`` and ``ΔÎ₂ = −∂²l̃ − Î₂``, l̃ = log p(ỹ|x,θ), averaged over inputs
    like Î. ``structured`` uses the delta-i closed forms; ``generic`` differentiates l̃ and
    the draws' ℓ directly.

    Raises:
        UnsupportedError: σ is not C² (ΔÎ₂ needs thm-3).
    """
    net.require_c2(HESSIAN_ESTIMATOR, x)
    X, single = net.inputs(x)
    M, d = X.shape[0], net.family.dim
    tt = np.asarray(net.family.statistic(np.asarray(y_target)), dtype=np.float64).reshape(M, d)
    t = _batched_t(est.t, M, d, single)
    if route == "generic":
        torch = _torch()
        i1, i2 = generic_estimators(net, X, t)
        theta = torch.tensor(net.theta, dtype=torch.float64, requires_grad=True)
        ell = loglik_torch(net, theta, torch.as_tensor(X), torch.as_tensor(tt[None]))
        G = per_sample_grads(ell, theta)
        d1 = (G.T @ G / M).detach().numpy() - i1
        d2 = (-hessian_of(ell.sum() / M, theta)).detach().numpy() - i2
        return d1, d2
    _, eta, _ = output_quantities(net, X)
    J = net.jacobian(X)
    H = net.output_hessians(X)
    r = t - eta[None]
    S = np.einsum("nma,nmb->mab", r, r) / t.shape[0]
    rt = tt - eta
    inner = np.einsum("ma,mb->mab", rt, rt) - S
    d1 = gauss_newton(J, inner)
    d2 = np.einsum("ma,mapq->pq", t.mean(axis=0) - tt, H) / M
    return d1, d2
