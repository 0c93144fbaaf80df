"""An Eq. 3 network followed by a link layer: ``h(θ) = g(f(θ))`` (``ext-links``, issue 18).

The composite is itself a network whose output is the family's natural parameter, so it offers
the interface the paper's quantities read (``family``, ``inputs``, ``forward``, ``jacobian``,
``output_hessians``, ``torch_forward``): :func:`~fisher_verify.exact_fisher` (``eq-6``),
:func:`~fisher_verify.sample_estimators` (``eq-7``, ``eq-8``, both routes),
:func:`~fisher_verify.covariance` (``thm-4``, ``thm-6``) and the bounds then hold for it with

* ``J_h = g′(f) J_f``, so ``I(θ) = J_fᵀ g′ᵀ I(h) g′ J_f``;
* ``∂²h_k/∂θ∂θᵀ = J_fᵀ g″_k J_f + Σ_j g′_kj ∂²f_j/∂θ∂θᵀ``: ``Î₂``'s term in ``t − η`` carries
  ``g″`` (the part a Gauss–Newton matrix split at ``f`` leaves out, ``ext-ggn-noncanonical``).

:func:`~fisher_verify.analyze` reads it through this interface on its dense route, and on its
diagonal route through :attr:`base`'s lemma-13 factors and the link
(:mod:`fisher_verify._src.models.linked_diagonals`). Other paths that read the Eq. 3 weights
themselves (K-FAC, the spectral results, lemma-14/15) are not offered: the link is not a layer
of Eq. 3.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FisherVerifyError
from .network import Method, Network

__all__ = ["LinkedNetwork"]


class LinkedNetwork:
    """``h = g(f(θ))`` for an Eq. 3 network ``base`` (output ``f``) and a link ``g``.

    Attributes:
        base: the Eq. 3 network whose output is ``f`` (its own ``family`` is the link's, so
            that its width is checked; its output is *not* that family's natural parameter).
        link: the :class:`~fisher_verify._src.families.links.Link`.
        family: the output family (the link's).
    """

    #: read by :func:`~fisher_verify._src.networks.network.require_network`
    gate_interface = True

    def __init__(self, base: Network, link: Any) -> None:
        if not isinstance(base, Network):
            raise FisherVerifyError(f"base must be a fisher_verify.Network, got {type(base).__name__}")
        if getattr(link, "n", None) != base.widths[-1]:
            raise FisherVerifyError(
                f"the link {getattr(link, 'label', link)!r} reads {getattr(link, 'n', '?')} head "
                f"outputs but the network has n_L = {base.widths[-1]}")
        self.base = base
        self.link = link
        self.family = link.family

    @classmethod
    def random(cls, widths: Any, activation: str, link: Any, scale: float = 1.0,
               rng: Any = None) -> LinkedNetwork:
        """Random Eq. 3 weights (:meth:`Network.random`) followed by ``link``."""
        return cls(Network.random(widths, activation, link.family, scale, rng), link)

    # --- what the base network answers -----------------------------------------------------------

    def inputs(self, x: Any) -> tuple[np.ndarray, bool]:
        """As :meth:`Network.inputs`."""
        return self.base.inputs(x)

    def require_c2(self, what: str, x: Any = None) -> None:
        """As :meth:`Network.require_c2` (the links are C^∞ on their domains)."""
        self.base.require_c2(what, x)

    def c2_refusal(self, what: str, x: Any = None) -> str | None:
        """As :meth:`Network.c2_refusal`."""
        return self.base.c2_refusal(what, x)

    @property
    def theta(self) -> np.ndarray:
        """Flat θ of the base network."""
        return self.base.theta

    @property
    def num_params(self) -> int:
        """P."""
        return self.base.num_params

    @property
    def offsets(self) -> list[int]:
        """Start of each W_l in flat θ (the base's)."""
        return self.base.offsets

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """Shapes of W_0, …, W_{L-1}."""
        return self.base.shapes

    @property
    def widths(self) -> tuple[int, ...]:
        """(n_0, …, n_L) of the base network."""
        return self.base.widths

    @property
    def activation(self) -> str:
        """Name of σ."""
        return self.base.activation

    @property
    def is_c2(self) -> bool:
        """Whether σ is C² (the link always is, on its domain)."""
        return self.base.is_c2

    def with_theta(self, theta: Any) -> LinkedNetwork:
        """The same architecture and link with flat parameters ``theta``."""
        return LinkedNetwork(self.base.with_theta(theta), self.link)

    def __repr__(self) -> str:
        return f"LinkedNetwork({self.base!r}, {self.link.label})"

    # --- the composite --------------------------------------------------------------------------

    def head(self, x: Any) -> np.ndarray:
        """The head's output ``f`` (domain-checked against the link)."""
        f = self.base.forward(x)
        self.link.check_output(f)
        return f

    def forward(self, x: Any) -> np.ndarray:
        """``h = g(f)``, shape ``(d,)`` or ``(M, d)``."""
        return self.link.natural(self.head(x))

    def jacobian(self, x: Any, method: Method = "analytic") -> np.ndarray:
        """``J_h = g′(f) J_f``, shape ``(d, P)`` or ``(M, d, P)``."""
        f = self.head(x)
        return np.einsum("...an,...np->...ap", self.link.jacobian(f),
                         self.base.jacobian(x, method=method))

    def output_hessians(self, x: Any, method: Method = "analytic") -> np.ndarray:
        """``∂²h_k/∂θ∂θᵀ = J_fᵀ g″_k J_f + Σ_j g′_kj ∂²f_j/∂θ∂θᵀ``, ``(d, P, P)`` or ``(M, d, P, P)``."""
        f = self.head(x)
        J = self.base.jacobian(x, method=method)
        H = self.base.output_hessians(x, method=method)
        return (np.einsum("...kij,...ip,...jq->...kpq", self.link.hessian(f), J, J)
                + np.einsum("...kj,...jpq->...kpq", self.link.jacobian(f), H))

    def link_curvature(self, x: Any, method: Method = "analytic") -> np.ndarray:
        """The link's part of the output Hessians alone, ``J_fᵀ g″_k J_f`` (the term a
        Gauss–Newton matrix split at ``f`` with data labels misweights,
        ``ext-ggn-noncanonical``), shape as :meth:`output_hessians`."""
        f = self.head(x)
        J = self.base.jacobian(x, method=method)
        return np.einsum("...kij,...ip,...jq->...kpq", self.link.hessian(f), J, J)

    def torch_forward(self, theta: Any, x: Any) -> Any:
        """``h`` as a differentiable torch function of flat θ and one input."""
        return self.link.natural_torch(self.base.torch_forward(theta, x))
