"""How tight the bounds are over random networks (``thm-7``, ``thm-8``, ``lemma-9``,
``lemma-14``, ``lemma-15``), and how the moment terms grow with n_L (``remark-9.2``).

Tightness is ``lhs / rhs`` in ``(0, 1]`` (1 = tight); :meth:`TightnessSweep.ratio` gives the
reciprocal ``rhs / lhs`` (bound over true value), as the :class:`~.bounds.Bound` objects do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..families.registry import family_examples
from ..validation import as_generator, check_count
from .bounds import bounds, lemma9_sides

__all__ = ["tightness_sweep"]

#: (name, params) of the families the default sweep draws from: every family of the registry at
#: its example parameters (``family_examples``), then two products and a categorical with more
#: classes, which the registry's examples do not cover.
DEFAULT_FAMILIES: tuple[tuple[str, dict[str, Any]], ...] = (
    *((name, dict(ex.params)) for name, ex in family_examples()),
    ("product", {"components": ("bernoulli", "poisson")}),
    ("product", {"components": ("normal", "bernoulli", "bernoulli")}),
    ("categorical", {"K": 5}),
)

def _make_family(name: str, params: dict[str, Any]) -> Any:
    from ..families.registry import family as get_family

    if name == "product":
        return get_family("product", components=[get_family(c) for c in params["components"]])
    return get_family(name, **params)

_IDS = ("thm7", "thm8", "lemma9_moment", "lemma9_fisher", "lemma14", "lemma15")


@dataclass
class TightnessSweep:
    """Per-network tightness ``lhs/rhs`` of each bound (arrays of length ``count``).

    ``lemma14``/``lemma15`` hold one value per network: the first layer's. ``lhs``/``rhs`` hold
    the raw sides per bound id, and ``family``, ``activation``, ``depth``, ``scale``,
    ``num_params``, ``output_dim`` (n_L) describe each network.
    """

    thm7: np.ndarray
    thm8: np.ndarray
    lemma9_moment: np.ndarray
    lemma9_fisher: np.ndarray
    lemma14: np.ndarray
    lemma15: np.ndarray
    lhs: dict[str, np.ndarray] = field(default_factory=dict)
    rhs: dict[str, np.ndarray] = field(default_factory=dict)
    family: list[str] = field(default_factory=list)
    activation: list[str] = field(default_factory=list)
    depth: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    num_params: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    output_dim: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def ratio(self, bound_id: str) -> np.ndarray:
        """``rhs / lhs`` (bound over true value, ≥ 1) for one of ``thm7``, ``thm8``, …"""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(self.rhs[bound_id]) / np.asarray(self.lhs[bound_id])

    def summary(self) -> dict[str, dict[str, float]]:
        """min / median / max of ``rhs/lhs`` per bound (numbers for the report)."""
        out = {}
        for k in _IDS:
            r = self.ratio(k)
            r = r[np.isfinite(r)]
            if r.size:
                out[k] = {"min": float(r.min()), "median": float(np.median(r)),
                          "max": float(r.max())}
        return out


def tightness_sweep(
    count: int = 60,
    rng: np.random.Generator | int | None = 0,
    *,
    families: Sequence[tuple[str, dict[str, Any]]] = DEFAULT_FAMILIES,
    activations: Sequence[str] = ("tanh", "sigmoid", "softplus", "gelu"),
    depths: Sequence[int] = (1, 2, 3),
    scales: Sequence[float] = (0.25, 1.0, 4.0),
    max_width: int = 4,
    n: int = 1,
) -> TightnessSweep:
    """Tightness of the bounds over ``count`` random small networks (``thm-7``, ``thm-8``, …).

    Each network: a family, a C² activation, a depth, a weight scale and widths ≤
    ``max_width``, drawn from ``rng``; one input ``x ~ N(0, I)``; the last bias shifted into the
    family's domain when needed. Returns arrays for plotting.
    """
    from ..networks.network import Network

    gen = as_generator(rng)
    lhs: dict[str, list[float]] = {k: [] for k in _IDS}
    rhs: dict[str, list[float]] = {k: [] for k in _IDS}
    fams, acts, deps, scs, ps, outs = [], [], [], [], [], []
    for _ in range(check_count(count, "count")):
        name, params = families[int(gen.integers(len(families)))]
        fam = _make_family(name, params)
        act = str(activations[int(gen.integers(len(activations)))])
        depth = int(depths[int(gen.integers(len(depths)))])
        scale = float(scales[int(gen.integers(len(scales)))])
        widths = [int(gen.integers(1, max_width + 1)) for _ in range(depth)] + [fam.dim]
        net = Network.random(widths, act, fam, scale, gen)
        x = np.asarray(gen.normal(size=widths[0]))
        net = net.into_domain(x)
        b = bounds(net, x, n=n)
        for k, bd in (("thm7", b.thm7), ("thm8", b.thm8), ("lemma9_moment", b.lemma9_moment),
                      ("lemma9_fisher", b.lemma9_fisher), ("lemma14", b.lemma14[0]),
                      ("lemma15", b.lemma15[0])):
            lhs[k].append(float(bd.lhs if bd.lhs is not None else np.nan))
            rhs[k].append(float(bd.rhs if bd.rhs is not None else np.nan))
        fams.append(fam.label)
        acts.append(act)
        deps.append(depth)
        scs.append(scale)
        ps.append(net.num_params)
        outs.append(fam.dim)
    L = {k: np.asarray(v) for k, v in lhs.items()}
    R = {k: np.asarray(v) for k, v in rhs.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        tight = {k: np.where(R[k] > 0, L[k] / R[k], np.nan) for k in _IDS}
    return TightnessSweep(
        thm7=tight["thm7"], thm8=tight["thm8"], lemma9_moment=tight["lemma9_moment"],
        lemma9_fisher=tight["lemma9_fisher"], lemma14=tight["lemma14"],
        lemma15=tight["lemma15"], lhs=L, rhs=R, family=fams, activation=acts,
        depth=np.asarray(deps), scale=np.asarray(scs), num_params=np.asarray(ps),
        output_dim=np.asarray(outs, dtype=int),
    )


def moment_growth(
    make_family: Any, widths: Sequence[int], h_of: Any = None
) -> dict[str, np.ndarray]:
    """``remark-9.2``: ``‖K − I⊗I‖_F`` and ``‖I‖_F`` (and lemma-9's bounds) as n_L grows.

    ``make_family(n_L)`` returns a family of dimension n_L; ``h_of(n_L)`` its natural parameter
    (default zeros). Returns arrays keyed ``n_L``, ``moment``, ``moment_bound``, ``fisher``,
    ``fisher_bound`` and the fitted log-log exponents ``moment_exponent`` (of the bound: 2
    when the diagonal moments are bounded) and ``fisher_exponent``.
    """
    rows = []
    for nl in widths:
        fam = make_family(int(nl))
        h = np.zeros(fam.dim) if h_of is None else np.asarray(h_of(int(nl)), dtype=float)
        s = lemma9_sides(fam.central_moment4(h), fam.fisher(h))
        rows.append((fam.dim, float(s["moment_lhs"]), float(s["moment_rhs"]),
                     float(s["fisher_lhs"]), float(s["fisher_rhs"])))
    a = np.asarray(rows)

    def slope(y: np.ndarray) -> np.ndarray:
        ok = y > 0
        if np.sum(ok) < 2:
            return np.asarray(np.nan)
        return np.asarray(np.polyfit(np.log(a[ok, 0]), np.log(y[ok]), 1)[0])

    return {
        "n_L": a[:, 0], "moment": a[:, 1], "moment_bound": a[:, 2], "fisher": a[:, 3],
        "fisher_bound": a[:, 4],
        "moment_exponent": slope(a[:, 2]),
        "fisher_exponent": slope(a[:, 4]),
        "moment_lhs_exponent": slope(a[:, 1]),
        "fisher_lhs_exponent": slope(a[:, 3]),
    }
