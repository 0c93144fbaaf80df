"""The report's figures: ``fig-1`` (K − I² and I against the mean, every family of the
catalog) and the tightness of ``thm-7`` / ``thm-8`` over random networks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: the paper's Figure 1
PAPER_PANELS: tuple[tuple[str, dict[str, Any]], ...] = (("bernoulli", {}), ("normal", {}), ("poisson", {}))


def _extended_panels() -> tuple[tuple[str, dict[str, Any]], ...]:
    from ..families.registry import family_examples

    paper = {name for name, _ in PAPER_PANELS}
    return tuple((name, dict(ex.params)) for name, ex in family_examples() if name not in paper)


#: the rest of the catalog, from the registry at each family's example parameters (never 1
#: where that repeats a panel: binomial(n=1) is Bernoulli, negative_binomial(r=1) geometric)
EXTENDED_PANELS: tuple[tuple[str, dict[str, Any]], ...] = _extended_panels()


@dataclass
class Panel:
    """One panel of ``fig-1``: a family along a 1-D path of natural parameters ``h`` (M, d),
    drawn against ``x`` (the mean, or the coordinate the path moves)."""

    title: str
    x: np.ndarray
    xlabel: str
    excess: np.ndarray  # K − I² (scalar) or ‖K − I⊗I‖_F (vector family)
    fisher: np.ndarray  # I = Var(t) (scalar) or ‖I‖_F
    vector: bool


def _h_grid(name: str) -> np.ndarray:
    """The natural parameters of a scalar family's panel, from its registry entry
    (``Examples.grid``): linear, or geometric towards the boundary h = 0 of a negative domain."""
    from ..families.registry import family_examples

    grid = dict(family_examples())[name].grid
    if grid is None:
        raise ValueError(f"family {name!r} is a vector family: its figure follows a path")
    lo, hi, spacing = grid
    if spacing == "geometric":
        return -np.geomspace(-hi, -lo, 300)[::-1]
    return np.linspace(lo, hi, 300)


def panel(name: str, params: dict[str, Any]) -> Panel:
    """The curves of ``fig-1`` for one family (``fig-1``, ``lemma-9``'s quantities for a vector
    family).

    A univariate family is drawn against its mean. A vector family has no single mean, so it is
    drawn along a stated path, with Frobenius norms in place of K − I² and I:

    - ``categorical``: p₀ from 0 to 1 with the rest split evenly, p₁ = … = (1 − p₀)/(K − 1);
    - ``normal_unknown_variance``: the mean μ from −3 to 3 at variance σ² = 1;
    - any other vector family (multinomial, multivariate normal): the ray h = s·h₀ through its
      registry example point h₀, s from −3 to 3, with the components that must stay negative
      (the isotropic normal's variance, a full covariance's diagonal) held at h₀'s.
    """
    from ..families.registry import family, family_examples

    fam = family(name, **params)
    if name == "categorical":
        k = fam.dim
        p0 = np.linspace(0.005, 0.995, 300)
        probs = np.column_stack([p0] + [(1 - p0) / (k - 1)] * (k - 1))
        h, x = np.log(probs), p0
        rest = ", ".join(f"p{chr(0x2080 + i)}" for i in range(1, k))
        xlabel = f"p₀ ({rest} = (1 − p₀)/{k - 1})"
    elif name == "normal_unknown_variance":
        mu = np.linspace(-3.0, 3.0, 300)
        h, x = np.column_stack([mu, np.full_like(mu, -0.5)]), mu  # h = (μ/σ², −1/(2σ²)), σ² = 1
        xlabel = "mean μ (variance σ² = 1)"
    elif dict(family_examples())[name].grid is None:
        # any other vector family: the ray through its registry example point h₀ in the
        # components that may take either sign; those that must stay negative (a variance's,
        # a covariance's diagonal) are held at h₀'s
        h0 = np.asarray(dict(family_examples())[name].point, dtype=float)
        held = np.zeros(h0.shape, dtype=bool)
        held[list(fam.definition.negative)] = True
        if held.all():
            # every component negative (Dirichlet concentrations h = −α): the ray s·h₀ holds
            # only s > 0, geometric towards the boundary h = 0
            s = np.geomspace(0.05, 5.0, 300)
            h, x = s[:, None] * h0, s
            xlabel = f"s (h = s·h₀, s > 0, h₀ = {tuple(float(v) for v in h0)})"
        else:
            s = np.linspace(-3.0, 3.0, 300)
            h, x = np.where(held, h0, s[:, None] * h0), s
            xlabel = (f"s (h = s·h₀, h₀ = {tuple(float(v) for v in h0)})" if not held.any() else
                      f"s (h = s·h₀ off the components {tuple(np.flatnonzero(held).tolist())}, "
                      f"h₀ = {tuple(float(v) for v in h0)})")
    else:
        h = _h_grid(name)[:, None]
        x = fam.mean(h)[:, 0]
        xlabel = "mean η = E[t]"  # binomial(n)'s mean is n·p, not its symbol p
    fisher = fam.fisher(h)
    k4 = fam.central_moment4(h)
    if fam.dim == 1:
        return Panel(fam.label, x, xlabel, k4[:, 0, 0, 0, 0] - fisher[:, 0, 0] ** 2,
                     fisher[:, 0, 0], False)
    outer = np.einsum("mab,mcd->mabcd", fisher, fisher)
    excess = np.sqrt(np.sum((k4 - outer) ** 2, axis=(1, 2, 3, 4)))
    return Panel(fam.label, x, xlabel, excess, np.sqrt(np.sum(fisher**2, axis=(1, 2))), True)


def draw_figure_1(panels: Sequence[tuple[str, dict[str, Any]]], title: str) -> Any:
    """``fig-1`` as a Matplotlib figure: K − I² and I (= Var t) against the mean, one panel per
    family, each with its own legend and y label; vector families along the path
    :func:`panel` states."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [panel(n, p) for n, p in panels]
    ncols = min(3, len(drawn))
    nrows = -(-len(drawn) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.1 * ncols, 3.3 * nrows + 0.5),
                             squeeze=False)
    for ax in axes.ravel()[len(drawn):]:
        ax.set_visible(False)
    for ax, pan in zip(axes.ravel(), drawn, strict=False):
        if pan.vector:
            names = (r"$\|K - I\otimes I\|_F$", r"$\|I\|_F$")
        else:
            names = (r"$K - I^2$", r"$I$")
        ax.plot(pan.x, pan.excess, label=names[0], color="C3")
        ax.plot(pan.x, pan.fisher, label=names[1], color="C0", linestyle="--")
        ylabel = f"{names[0]} and {names[1]}"
        if (np.all(pan.excess > 0) and np.all(pan.fisher > 0)
                and np.max(pan.excess / pan.fisher) > 20):
            ax.set_yscale("log")  # otherwise I is a flat line at 0 beside K - I²
            ylabel += " (log scale)"
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_title(pan.title + (" (vector: norms)" if pan.vector else ""), fontsize=10)
        ax.set_xlabel(pan.xlabel, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def figure_1(out: Path, panels: Sequence[tuple[str, dict[str, Any]]], filename: str,
             title: str) -> Path:
    """``fig-1`` (:func:`draw_figure_1`) written to ``out/filename`` as PNG."""
    import matplotlib.pyplot as plt

    fig = draw_figure_1(panels, title)
    path = out / filename
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


_BOUNDS = (("thm-7", "thm7", r"$\|\mathrm{Cov}(\hat I_1)\|_F$ / thm-7 bound"),
           ("thm-8", "thm8", r"$\|\mathrm{Cov}(\hat I_2)\|_F$ / thm-8 bound"))
_GROUPS = (("n_L = 1", "$n_L = 1$ (equality)", "C0"), ("n_L > 1", "$n_L > 1$", "C1"))


def _tightness_groups(sweep: Any, attr: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """(usable mask, [tightness lhs/rhs of the n_L = 1 networks, of the n_L > 1 ones])."""
    n_out = np.asarray(sweep.output_dim)
    tight = np.asarray(getattr(sweep, attr), dtype=float)
    ok = np.isfinite(tight) & (tight > 0)
    return ok, [tight[ok & (n_out == 1)], tight[ok & (n_out > 1)]]


def report_sweep(seed: int, count: int) -> Any:
    """The report's sweep: :func:`~fisher_verify._src.fisher.tightness.tightness_sweep` of ``count``
    networks drawn from ``np.random.default_rng(seed)`` (``thm-7``, ``thm-8``)."""
    from ..fisher.tightness import tightness_sweep

    return tightness_sweep(count=count, rng=np.random.default_rng(seed))


def tightness_summary(sweep: Any, seed: int, count: int) -> dict[str, Any]:
    """The numbers the report (and the README) give for ``thm-7`` and ``thm-8``.

    Over ``sweep`` (:func:`report_sweep` at ``seed`` and ``count``): per bound and n_L group,
    the count and the min / median / max of the tightness ``lhs/rhs``, and the median of the
    bound/true ratio ``rhs/lhs``.
    Networks where both sides vanish (thm-8 on a linear network) have no tightness and are
    counted apart.
    """
    summary: dict[str, Any] = {}
    for key, attr, _ in _BOUNDS:
        lhs, rhs = np.asarray(sweep.lhs[attr]), np.asarray(sweep.rhs[attr])
        ok, groups = _tightness_groups(sweep, attr)
        summary[key] = {"networks": int(ok.size), "plotted": int(ok.sum()),
                        "both_sides_zero": int(np.sum((lhs == 0) & (rhs == 0))),
                        "violations": int(np.sum(lhs > rhs * (1 + 1e-10)))}
        for (name, _, _), g in zip(_GROUPS, groups, strict=True):
            if g.size:
                summary[key][name] = {"n": int(g.size), "min": float(g.min()),
                                      "median": float(np.median(g)), "max": float(g.max()),
                                      "median_bound_over_true": float(np.median(1.0 / g))}
    return {"available": True, "count": count, "seed": seed, "summary": summary}


def tightness_figure(out: Path, seed: int, count: int) -> tuple[Path | None, dict[str, Any]]:
    """Histograms of the tightness ‖Cov(Î)‖_F / bound (``lhs/rhs`` in (0, 1], 1 = tight) of
    ``thm-7`` (Î₁) and ``thm-8`` (Î₂) over ``count`` random networks of
    :func:`fisher_verify._src.fisher.tightness.tightness_sweep`, on a log axis, stacked by n_L.

    For n_L = 1 both bounds are equalities (the covariance tensor is rank one), so those
    networks pile up at 1; networks where both sides vanish (thm-8 on a linear network:
    ∂²h_L = 0) have no tightness and are counted, not plotted. The second value is
    :func:`tightness_summary`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = report_sweep(seed, count)
    tight = tightness_summary(sweep, seed, count)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6), squeeze=False)
    for ax, (key, attr, title) in zip(axes[0], _BOUNDS, strict=True):
        ok, groups = _tightness_groups(sweep, attr)
        lo = max(1e-4, min(float(g.min()) for g in groups if g.size)) if ok.any() else 1e-3
        bins = np.geomspace(10 ** np.floor(np.log10(lo)), 1.05, 36)
        ax.hist([np.clip(g, bins[0], None) for g in groups], bins=bins, stacked=True,
                color=[c for _, _, c in _GROUPS], label=[lab for _, lab, _ in _GROUPS])
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(f"{key}: {title}", fontsize=10)
        ax.set_xlabel("tightness lhs / rhs (1 = tight, log scale)")
        ax.set_ylabel("networks")
        note = f"{int(ok.sum())} of {ok.size} networks"
        zero = tight["summary"][key]["both_sides_zero"]
        if zero:
            note += f"\n{zero} with both sides 0 (linear) not shown"
        ax.legend(fontsize=8, loc="upper left")
        ax.text(0.02, 0.78, note, transform=ax.transAxes, va="top", fontsize=8)
    fig.tight_layout()
    path = out / "tightness.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, tight
