"""Hypothesis strategies for small Eq. 3 networks with every activation and family.

``small_networks()`` draws ``(Network, x)`` pairs: depth 1–3, widths 1–5, every activation
and every family of the catalog (categorical K, binomial n, … included). Weights come from a
NumPy generator seeded by Hypothesis (generic, well-conditioned values, no ReLU kinks);
the structure (depth, widths, family, activation, number of inputs) shrinks. The last
layer's bias is shifted so that h_L(x) lies inside the family's natural-parameter domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..errors import FisherVerifyError
from ..families.registry import family, family_examples
from ..networks.activations import ACTIVATIONS
from ..networks.network import Network

ALL_ACTIVATIONS: tuple[str, ...] = tuple(ACTIVATIONS)
C2_ACTIVATIONS: tuple[str, ...] = tuple(n for n, a in ACTIVATIONS.items() if a.is_c2)

#: ``(name, params, h)``: every family of the catalog at one point inside its natural-parameter
#: domain; the fixed counterpart of :func:`families` for ``pytest.mark.parametrize``. Read from
#: the registry (:func:`~fisher_verify._src.families.registry.family_examples`), never listed here.
FAMILY_POINTS: tuple[tuple[str, dict[str, Any], list[float]], ...] = tuple(
    (name, dict(ex.params), list(ex.point)) for name, ex in family_examples()
)


def families() -> st.SearchStrategy[Any]:
    """Every family of the catalog, with its parameters drawn from the small valid values the
    registry gives for it (``Examples.draws``)."""

    def one(name: str, draws: tuple[dict[str, Any], ...]) -> st.SearchStrategy[Any]:
        return st.sampled_from(list(draws)).map(lambda params: family(name, **params))

    return st.one_of(*[one(name, ex.draws) for name, ex in family_examples()])


@st.composite
def _networks(
    draw: Any,
    fams: st.SearchStrategy[Any],
    activations: Sequence[str],
    max_depth: int,
    max_width: int,
    max_inputs: int,
) -> tuple[Network, np.ndarray]:
    fam = draw(fams)
    act = draw(st.sampled_from(list(activations)))
    depth = draw(st.integers(1, max_depth))
    hidden = [draw(st.integers(1, max_width)) for _ in range(depth)]  # n_0 .. n_{L-1}
    widths = [*hidden, fam.dim]
    scale = draw(st.sampled_from([0.5, 1.0, 1.5]))
    M = draw(st.integers(1, max_inputs))
    single = M == 1 and draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    net = Network.random(widths, act, fam, scale=scale, rng=rng)
    X = rng.normal(size=(M, widths[0]))
    net = net.into_domain(X)
    margin = fam.strategy_margin
    if margin > 0:
        h = np.atleast_2d(net.forward(X))
        try:
            fam.check_natural(h + margin)
        except FisherVerifyError:
            net = _shifted(net, fam.domain_shift(h, margin))
    return net, (X[0] if single else X)


def _shifted(net: Network, shift: np.ndarray) -> Network:
    """``net`` with its last bias moved by −``shift`` (a copy)."""
    weights = [W.copy() for W in net.weights]
    weights[-1][:, -1] -= shift
    return Network(weights, net.act, net.family)


def small_networks(
    families_: st.SearchStrategy[Any] | None = None,
    activations: Sequence[str] = ALL_ACTIVATIONS,
    max_depth: int = 3,
    max_width: int = 5,
    max_inputs: int = 3,
) -> st.SearchStrategy[tuple[Network, np.ndarray]]:
    """Strategy of ``(Network, x)``: x is ``(n_0,)`` or ``(M, n_0)`` with M ≤ ``max_inputs``.

    Pass ``families_`` (a strategy of Family objects, e.g. products) or ``activations``
    (e.g. :data:`C2_ACTIVATIONS` for thm-3) to narrow the draw.
    """
    return _networks(
        families_ if families_ is not None else families(),
        tuple(activations),
        max_depth,
        max_width,
        max_inputs,
    )


def bernoulli_half_network(activation: str = "tanh") -> tuple[Network, np.ndarray]:
    """One Bernoulli output with h_L(x) = 0 exactly (p = 1/2) and a nonzero Jacobian.

    Two identical hidden units and last-layer weights (c, −c, 0) make W_1⁻ h_1 = 0 in exact
    floating point. At p = 1/2, (t−η)² = 1/4 for every y, so Î₁ = I(θ) for any draws (fig-1).
    """
    W0 = np.array([[0.7, -0.4, 0.3], [0.7, -0.4, 0.3]])
    W1 = np.array([[1.3, -1.3, 0.0]])
    return Network([W0, W1], activation, family("bernoulli")), np.array([0.9, -1.1])


def one_output_network(name: str = "poisson") -> tuple[Network, np.ndarray]:
    """A depth-2 network with one output unit (n_L = 1) and two inputs."""
    net = Network.random([2, 3, 1], "tanh", family(name), rng=7)
    X = np.array([[0.5, -1.0], [1.5, 0.25]])
    return net.into_domain(X), X
