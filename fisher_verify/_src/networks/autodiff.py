"""The automatic-differentiation route: the same Eq. 3 network in torch float64, torch.func.

Independent of :mod:`fisher_verify._src.networks.analytic`: it shares only the activation
definitions (σ itself; σ' and σ'' come from autograd). At a ReLU kink autograd uses
relu'(0) = 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import Activation


def _torch() -> Any:
    import torch

    return torch


def unflatten(theta: Any, shapes: list[tuple[int, int]]) -> list[Any]:
    """Weights ``W_l`` as views into flat θ (layer by layer, row-major)."""
    out = []
    start = 0
    for r, c in shapes:
        out.append(theta[start : start + r * c].reshape(r, c))
        start += r * c
    return out


def forward_torch(
    theta: Any, x: Any, shapes: list[tuple[int, int]], act: Activation, start: int = 0
) -> Any:
    """h_L as a torch function of flat θ and one input (or h_start at layer ``start``)."""
    torch = _torch()
    weights = unflatten(theta, shapes)
    h = x
    last = len(weights) - 1
    for layer in range(start, len(weights)):
        W = weights[layer]
        a = W[:, :-1] @ h + W[:, -1]
        h = a if layer == last else act.torch_f(a)
    return torch.as_tensor(h)


def _per_input(
    transform: Any, theta: np.ndarray, x: np.ndarray, shapes: list[tuple[int, int]],
    act: Activation,
) -> np.ndarray:
    """``vmap(transform(h_L))`` over the inputs in float64 (``transform``: a torch.func one)."""
    torch = _torch()
    from torch.func import vmap

    th = torch.as_tensor(theta, dtype=torch.float64)
    X = torch.as_tensor(x, dtype=torch.float64)

    def f(t: Any, xi: Any) -> Any:
        return forward_torch(t, xi, shapes, act)

    return vmap(transform(f), in_dims=(None, 0))(th, X).detach().numpy()


def jacobian(
    theta: np.ndarray, x: np.ndarray, shapes: list[tuple[int, int]], act: Activation
) -> np.ndarray:
    """J ``(M, n_L, P)`` by ``vmap(jacrev(h_L))`` over the inputs."""
    from torch.func import jacrev

    return _per_input(jacrev, theta, x, shapes, act)


def output_hessians(
    theta: np.ndarray, x: np.ndarray, shapes: list[tuple[int, int]], act: Activation
) -> np.ndarray:
    """∂²h_L/∂θ∂θᵀ ``(M, n_L, P, P)`` by ``vmap(hessian(h_L))`` over the inputs."""
    from torch.func import hessian

    return _per_input(hessian, theta, x, shapes, act)
