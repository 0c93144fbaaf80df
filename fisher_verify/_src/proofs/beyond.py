"""Shared helpers of the "beyond the paper" proofs (``d24-*``, ``sun26-spectrum``): random Eq. 3
networks for every family of the registry at depths 1–3, and the label route from the
definition (autodiff of ``ℓ = t(y)ᵀh_L − F(h_L)`` at the family's exact-expectation nodes).

These only *call* the library; no statement's mathematics is implemented here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .api import Context


@dataclass
class Case:
    """One random network with its inputs and a label for messages."""

    net: Any
    X: np.ndarray
    name: str
    depth: int
    where: str


#: Families checked at every depth in the quick profile too.
FULL_DEPTH_FAMILIES = ("categorical", "normal_unknown_variance")


def c2_activations() -> list[str]:
    """The C² activations of the registry (thm-3's hypothesis)."""
    from ..networks.activations import ACTIVATIONS

    return [k for k, a in ACTIVATIONS.items() if a.is_c2 and k != "identity"]


def all_activations() -> list[str]:
    """Every activation of the registry except the identity (ReLU included)."""
    from ..networks.activations import ACTIVATIONS

    return [k for k in ACTIVATIONS if k != "identity"]


def output_width(name: str) -> int:
    """n_L for a family: 3 for the categorical (so I(h)·1 = 0 is not the Bernoulli case), the
    family's own dimension where its default has more than 2 components (a covariance or a
    direction on the sphere is one output, not a product of copies), 2 otherwise (a product of
    two copies, or the family itself when it has dimension 2)."""
    from ..families.catalog import PARAMETERS
    from ..families.registry import family

    if name == "categorical":
        return 3
    if "K" in PARAMETERS[name]:  # built with K = n_L by output_family
        return 2
    return max(2, family(name).dim)


def family_cases(ctx: Context, depths: tuple[int, ...] = (1, 2, 3), inputs: int = 2,
                 activations: list[str] | None = None, hidden: int = 3) -> list[Case]:
    """A random network for every family of the registry (``fv.family_names()``), activations
    cycling through ``activations`` (default: the C² ones), ``inputs`` random inputs each,
    shifted into the family's natural domain.

    Thorough profile: every family at every depth in ``depths``. Quick profile: the categorical
    and ``normal_unknown_variance`` families (whose I(h_L) is not diagonal) at every depth, the
    others at one depth each, cycling, so every depth still meets several families.
    """
    from ..families.registry import family_names
    from ..networks.network import Network
    from .support import output_family

    acts = activations or c2_activations()
    out = []
    for f, name in enumerate(family_names()):
        full = ctx.thorough or name in FULL_DEPTH_FAMILIES
        for depth in depths if full else (depths[f % len(depths)],):
            n_out = output_width(name)
            fam = output_family(name, n_out)
            widths = [2] + [hidden] * (depth - 1) + [n_out]
            act = acts[(f + depth) % len(acts)]
            X = ctx.rng.normal(size=(inputs, widths[0]))
            net = _inside(Network.random(widths, act, fam, 1.0, ctx.rng), X)
            out.append(Case(net, X, name, depth,
                            f"{fam.label} depth {depth} {act} {tuple(widths)}"))
    return out


def _inside(net: Any, X: np.ndarray, margin: float = 0.5) -> Any:
    """``net`` with its last bias shifted, where needed, so that ``h_L + margin`` still lies in
    the family's natural domain at every input: a network just inside the boundary (a geometric
    output at h = −0.001) has a mean in the thousands and millions of expectation nodes."""
    from ..errors import FisherVerifyError
    from ..networks.network import Network

    net = net.into_domain(X, margin)
    h = np.atleast_2d(net.forward(X))
    try:
        net.family.check_natural(h + margin)
        return net
    except FisherVerifyError:
        weights = [W.copy() for W in net.weights]
        # the family's own shift: a domain that is not a box of signs (a precision matrix that
        # must stay positive definite) is not kept by moving every output the same way
        weights[-1][:, -1] -= net.family.domain_shift(h, margin)
        return Network(weights, net.act, net.family)


def label_route(net: Any, x: np.ndarray, degree: int = 4) -> dict[str, np.ndarray]:
    """Score and diagonal of the negative Hessian of ``ℓ(θ) = t(y)ᵀ h_L(θ) − F(h_L(θ))`` by
    autodiff at the exact-expectation nodes of one input (independent of eq-4, eq-5 and
    lemma-13). ``ℓ`` is affine in ``t``, so its Hessian at a node is that at ``t = 0`` plus
    ``Σ_a t_a`` (Hessian at ``e_a`` − Hessian at 0): ``d + 1`` autodiff Hessians serve every
    node exactly.

    Returns ``t`` (S, d), ``w`` (S,), ``score`` (S, P) and ``neg_hessian_diag`` (S, P).
    """
    import torch
    from torch.func import grad, hessian, vmap

    fam = net.family
    h = np.asarray(net.forward(x), dtype=float)
    t, w, _ = fam.expectation_nodes(h, degree)
    t = np.asarray(t, dtype=float).reshape(-1, fam.dim)
    xt = torch.as_tensor(np.asarray(x, dtype=float))
    theta = torch.as_tensor(net.theta)
    log_partition = fam.kernel("log_partition", "torch")

    def loglik(th: Any, ty: Any) -> Any:
        hl = net.torch_forward(th, xt)
        return (ty * hl).sum() - log_partition(hl[None, :]).reshape(-1)[0]

    ts = torch.as_tensor(t)
    scores = vmap(grad(loglik), in_dims=(None, 0))(theta, ts).detach().numpy()
    basis = torch.cat([torch.zeros(1, fam.dim, dtype=torch.float64),
                       torch.eye(fam.dim, dtype=torch.float64)])
    hs = np.stack([np.diag(hessian(loglik)(theta, b).detach().numpy()) for b in basis])
    neg_diag = -(hs[0][None, :] + t @ (hs[1:] - hs[0][None, :]))
    return {"t": t, "w": np.asarray(w, dtype=float).reshape(-1), "score": np.asarray(scores),
            "neg_hessian_diag": neg_diag}


def node_moments(route: dict[str, np.ndarray], g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(E[g], E[g²])`` over the nodes of :func:`label_route` for per-node values ``g``."""
    w = route["w"]
    return np.tensordot(w, g, axes=(0, 0)), np.tensordot(w, g * g, axes=(0, 0))
