"""The "Beyond the paper" figure: ``Var(Î₁)`` against ``Var(Î₂)`` on the diagonal, per parameter
group, for a few activations (``d24-var``, with the reason of each group from
:mod:`fisher_verify._src.fisher.tradeoff`: ``d24-last-layer``, ``d24-pwl``, ``d24-groups``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: the activations drawn, one panel each (ReLU at random inputs, away from its kinks)
ACTIVATIONS: tuple[str, ...] = ("tanh", "sigmoid", "softplus", "gelu", "relu")
#: the network of every panel: widths, inputs M, draws N (categorical output, K = widths[-1])
WIDTHS: tuple[int, ...] = (4, 6, 6, 3)
INPUTS = 8


def tradeoff_data(seed: int) -> dict[str, Any]:
    """Per activation and layer: ``Σ_i Var(Î₁)_ii``, ``Σ_i Var(Î₂)_ii`` (N = 1), their ratio and
    the statement that explains it, from :func:`fisher_verify.analyze` on one random network
    per activation (same seed, same inputs)."""
    from ..analysis import analyze
    from ..families.registry import family
    from ..networks.network import Network

    out: dict[str, Any] = {"widths": list(WIDTHS), "inputs": INPUTS, "n": 1, "seed": seed,
                           "family": f"categorical(K={WIDTHS[-1]})", "activations": {}}
    fam = family("categorical", K=WIDTHS[-1])
    for act in ACTIVATIONS:
        rng = np.random.default_rng(seed)
        net = Network.random(list(WIDTHS), act, fam, 1.0, rng)
        X = rng.normal(size=(INPUTS, WIDTHS[0]))
        a = analyze(net, X, n=1)
        out["activations"][act] = [
            {"layer": layer, "var_1": g.diag_var_1, "var_2": g.diag_var_2, "ratio": g.ratio,
             "lower": g.lower, "reason": g.reason} for layer, g in enumerate(a.layers)]
    return out


def tradeoff_figure(out: Path, seed: int) -> tuple[Path, dict[str, Any]]:
    """``out/d24_tradeoff.png``: one panel per activation, bars of the two diagonal variance
    sums per layer on a log axis, a structural zero (``d24-last-layer``, ``d24-pwl``) written
    as "0" instead of a bar, the reason under each layer; and :func:`tradeoff_data`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = tradeoff_data(seed)
    acts = data["activations"]
    fig, axes = plt.subplots(1, len(acts), figsize=(3.1 * len(acts), 3.8), squeeze=False)
    values = [v for rows in acts.values() for r in rows for v in (r["var_1"], r["var_2"])
              if v > 0]
    floor = min(values) / 10 if values else 1e-12
    top = max(values) * 3 if values else 1.0
    w = 0.38
    for ax, (act, rows) in zip(axes[0], acts.items(), strict=True):
        x = np.arange(len(rows))
        for shift, key, label, color in ((-w / 2, "var_1", r"Var$(\hat I_1)$", "C0"),
                                         (w / 2, "var_2", r"Var$(\hat I_2)$", "C3")):
            vals = [r[key] for r in rows]
            # a structural zero is rounding-level (d24-last-layer, d24-pwl): labelled, no bar
            zero = [key == "var_2" and r["reason"] in ("d24-last-layer", "d24-pwl")
                    for r in rows]
            ax.bar(x + shift, [np.nan if z else v for v, z in zip(vals, zero)], w, color=color,
                   label=label)
            for i, z in enumerate(zero):
                if z:
                    ax.text(i + shift, floor * 1.5, "0", ha="center", fontsize=8, color=color)
        ax.set_yscale("log")
        ax.set_ylim(floor, top)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_xticks(x)
        ax.set_xticklabels([f"$W_{r['layer']}$\n{r['reason']}" for r in rows], fontsize=7)
        ax.set_title(act, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel(r"$\sum_i$ Var$(\hat I)_{ii}$, N = 1 (log scale)", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="upper right", ncol=2)
    fig.suptitle(f"Diagonal estimators per layer, widths {tuple(WIDTHS)}, {data['family']}, "
                 f"M = {INPUTS} inputs", fontsize=10)
    fig.tight_layout()
    path = out / "d24_tradeoff.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, data
