"""Shared helpers for proof files: cached family identity proofs and random test networks.

These only *call* the library (families, identities, networks); no statement's
mathematics is implemented here.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from .api import Check, Context

# Widths of the random networks proofs use: (input, hidden..., output). Small enough for
# exact P x P (and P^4 for thm-4/thm-6 on the smallest) tensors, varied in depth.
QUICK_WIDTHS: tuple[tuple[int, ...], ...] = ((3, 4, 1), (2, 3, 3, 2))
THOROUGH_WIDTHS: tuple[tuple[int, ...], ...] = ((3, 4, 1), (2, 3, 3, 2), (4, 5, 3), (3, 3, 3, 3, 3))


@cache
def _identities(name: str, params: tuple[tuple[str, Any], ...], seed: int) -> tuple[Any, ...]:
    from fisher_verify._src.identities import prove_family

    from ..families.registry import family

    return tuple(prove_family(family(name, **dict(params)), seed=seed))


def family_identities(fam: Any, seed: int = 0) -> list[Any]:
    """``prove_family(fam)`` (lemma-2, lemma-5, remark-5.1, table-1, fig-1), cached per process."""
    return list(_identities(fam.name, tuple(sorted(fam.params.items())), seed))


def prove_identity(ctx: Context, statement_id: str, families: Sequence[Any]) -> bool:
    """Record every ``statement_id`` identity that ``prove_family`` proves for ``families``.

    Returns True when at least one family has that identity; adds derivation steps (once per
    family) to the context for the report.
    """
    found = False
    methods: dict[str, str] = {}
    for fam in families:
        for res in family_identities(fam):
            if res.statement_id != statement_id:
                continue
            found = True
            ctx.true(f"{fam.label}: {res.claim}", res.holds, detail=res.detail, family=fam.label)
            methods[f"{fam.label}: {res.claim}"] = f"{res.method}; {res.detail}".strip("; ")
            for label, latex in res.latex:
                ctx.step(f"{fam.label} — {label}", latex)
    ctx.record("identities", methods)
    return found


def all_symbolic(ctx: Context) -> bool:
    """True when every identity recorded by :func:`prove_identity` was proved symbolically."""
    methods = ctx.evidence.get("identities", {})
    return bool(methods) and all(str(m).startswith("symbolic") for m in methods.values())


def identity_summary(ctx: Context) -> str:
    """One line saying how the :func:`prove_identity` identities were established: which
    families symbolically, which (where SymPy cannot reduce the difference) by high-precision
    mpmath at random points, so a "verified" verdict of a symbolic-identity proof says why."""
    methods = ctx.evidence.get("identities", {})
    sym = sorted({k.split(":")[0] for k, m in methods.items() if str(m).startswith("symbolic")})
    num = sorted({k.split(":")[0] for k, m in methods.items()
                  if not str(m).startswith("symbolic")})
    parts = []
    if sym:
        parts.append("symbolic for " + ", ".join(sym))
    if num:
        parts.append("high-precision numeric (mpmath, random rational points) for "
                     + ", ".join(num))
    return "; ".join(parts) if parts else "no identity recorded"


#: Output families of the network-level proofs. The quick profile includes the categorical and
#: ``normal_unknown_variance`` families, whose I(h_L) is not diagonal at n_L = 2: with only
#: Bernoulli/Poisson products, I(h_L) is diagonal and a wrong pairing of the I⊗I terms of thm-4
#: (or of lemma-5 inside K) can hide. At n_L = 1 they become Bernoulli and Normal.
QUICK_FAMILIES: tuple[str, ...] = ("bernoulli", "poisson", "categorical", "normal_unknown_variance")
THOROUGH_FAMILIES: tuple[str, ...] = ("bernoulli", "normal", "poisson", "binomial", "categorical",
                                      "normal_unknown_variance")


def random_networks(
    ctx: Context,
    activation: str = "tanh",
    families: Sequence[str] | None = None,
    widths: Sequence[tuple[int, ...]] | None = None,
    scale: float = 1.0,
) -> list[tuple[Any, np.ndarray]]:
    """Random Eq. 3 networks with an input each, seeded from the context.

    One network per (widths, family) pair, skipping pairs that give a family already drawn
    for those widths; the family must fit the output width (:func:`output_family`), and the
    last bias is shifted into the family's natural domain when it has one
    (``normal_unknown_variance``: h₂ < 0).
    """
    from ..networks.network import Network

    widths = list(widths or ctx.pick(QUICK_WIDTHS, THOROUGH_WIDTHS))
    names = list(families or ctx.pick(QUICK_FAMILIES, THOROUGH_FAMILIES))
    out = []
    for w in widths:
        seen: set[str] = set()
        for name in names:
            fam = output_family(name, w[-1])
            if fam.label in seen:
                continue
            seen.add(fam.label)
            net = Network.random(list(w), activation, fam, scale, ctx.rng)
            x = ctx.rng.normal(size=w[0])
            out.append((net.into_domain(x), x))
    return out


def output_family(name: str, n_out: int) -> Any:
    """A family of dimension ``n_out`` built from ``name`` (itself, or a product of copies).

    A family with K classes (categorical, multinomial) is built with K = ``n_out``;
    ``categorical`` with one output is Bernoulli; ``normal_unknown_variance`` (dimension 2)
    with an odd number of outputs is completed by a ``normal`` output (one output: ``normal``).
    """
    from ..families.catalog import PARAMETERS
    from ..families.product import product
    from ..families.registry import family

    if name == "categorical":
        return family("categorical", K=n_out) if n_out > 1 else family("bernoulli")
    if "K" in PARAMETERS[name] and n_out > 1:  # a family whose dimension is its K classes
        return family(name, K=n_out)
    base = family(name)
    if base.dim == n_out:
        return base
    if base.dim == 2:
        parts = [base] * (n_out // 2) + [family("normal")] * (n_out % 2)
        return parts[0] if len(parts) == 1 else product(*parts)
    return product(*([base] * n_out))


def exact_covariance(route: dict[str, np.ndarray], values: np.ndarray) -> np.ndarray:
    """``Cov(g)`` of a per-node matrix ``g`` (S, P, P) over the nodes of
    :func:`definition_route`, as a (P, P, P, P) tensor: ``Σ_s w_s (g_s − ḡ) ⊗ (g_s − ḡ)``.

    One (P², S) × (S, P²) product instead of an (S, P⁴) intermediate, so a few thousand
    nodes (a product of Poisson outputs) cost a fraction of a second.
    """
    w = route["w"]
    S, P, _ = values.shape
    dev = (values - np.tensordot(w, values, axes=(0, 0))).reshape(S, P * P)
    return ((dev * w[:, None]).T @ dev).reshape(P, P, P, P)


def definition_route(net: Any, x: np.ndarray, degree: int = 4) -> dict[str, np.ndarray]:
    """Score and negative Hessian of ℓ(θ) = t(y)ᵀ h_L(θ) − F(h_L(θ)) by autodiff, at the
    exact-expectation nodes of the family (the route *from the definition*, independent of
    eq-4/eq-5 and lemma-13).

    Returns ``t`` (S, d), ``w`` (S,), ``score`` (S, P) and ``neg_hessian`` (S, P, P); an
    expectation is ``Σ_s w_s g_s``.
    """
    import torch
    from torch.func import grad, hessian

    fam = net.family
    h = np.asarray(net.forward(x), dtype=float)
    t, w, _ = fam.expectation_nodes(h, degree)
    xt = torch.as_tensor(np.asarray(x, dtype=float))
    theta = torch.as_tensor(net.theta)

    log_partition = fam.kernel("log_partition", "torch")  # h was validated above

    def loglik(th: Any, ty: Any) -> Any:
        hl = net.torch_forward(th, xt)
        return (ty * hl).sum() - log_partition(hl[None, :]).reshape(-1)[0]

    from torch.func import vmap

    ts = torch.as_tensor(np.asarray(t, dtype=float))
    scores = vmap(grad(loglik), in_dims=(None, 0))(theta, ts).detach().numpy()
    hessians = -vmap(hessian(loglik), in_dims=(None, 0))(theta, ts).detach().numpy()
    return {"t": np.asarray(t), "w": np.asarray(w), "score": np.array(scores),
            "neg_hessian": np.array(hessians)}


def expect(route: dict[str, np.ndarray], values: np.ndarray) -> np.ndarray:
    """Σ_s w_s values_s over the nodes of :func:`definition_route`."""
    w = route["w"]
    return np.tensordot(w, values, axes=(0, 0))


def close_statistics_law(ctx: Any, tag: str, ex: Any, fam: Any, mean: np.ndarray,
                         cov: np.ndarray, draws: int, rtol: float, scale: float = 0.0,
                         **where: Any) -> None:
    """Check the gate's exact law of a kind's statistics ``ex`` (``ExactStatistics``) against
    the enumerated law of one replicate (``mean``, ``cov``), averaged over ``draws`` draws: the
    mean, the variances, the covariance of the statistics and the variance of three random
    combinations (what the pooled tests read). ``scale`` is the size of the terms that cancel
    when the variances vanish (0: their own size)."""
    from ..testing.gate_exact import combination_variance, statistics_covariance

    ctx.close(f"{tag}: mean = ⟨W, I(θ)⟩", ex.expected, mean, rtol=rtol, **where)
    ctx.close(f"{tag}: variance", ex.variance, np.diag(cov) / draws, rtol=rtol, scale=scale,
              **where)
    ctx.close(f"{tag}: covariance of the statistics", statistics_covariance(ex, fam), cov / draws,
              rtol=rtol, scale=scale, **where)
    a = ctx.rng.normal(size=(3, mean.size))
    ctx.close(f"{tag}: variance of combinations (pooled tests)", combination_variance(ex, fam, a),
              np.einsum("ks,st,kt->k", a, cov, a) / draws, rtol=rtol,
              scale=scale * float(np.sum(np.abs(a), axis=1).max()) ** 2, **where)


def weighted_moments(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """Mean, covariance and fourth central moment of statistics ``points`` (S, T) under the
    probabilities ``weights`` (S,): the exact law of an enumerated estimator."""
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    mean = w @ points
    cen = points - mean
    return mean, (cen * w[:, None]).T @ cen, w @ cen**4


def record_calibrated(ctx: Context, chk: Any) -> bool:
    """Record a :class:`~fisher_verify._src.testing.calibrated.CalibratedCheck` as a check."""
    ctx.checks.append(
        Check(chk.what, bool(chk.passed), float(chk.statistic), float(chk.threshold),
              "calibrated", str(chk))
    )
    if not chk.passed:
        ctx.counterexample(check=chk.what, statistic=chk.statistic, threshold=chk.threshold)
    return bool(chk.passed)


def c2_activations(ctx: Context) -> list[str]:
    """The C² activations the profile exercises (thm-3 and everything after needs C²)."""
    return list(ctx.pick(("tanh",), ("tanh", "sigmoid", "softplus", "gelu")))


def dense_derivatives(net: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """``J = ∂h_L/∂θ`` (M, n_L, P) and ``∂²h_L/∂θ∂θᵀ`` (M, n_L, P, P) by torch.func on the
    network's forward map, one input at a time: the route from the definition, independent of
    lemma-13 and its second-order extension (which the library's ``jacobian`` and
    ``output_hessians`` use by default)."""
    import torch
    from torch.func import hessian, jacrev, vmap

    X = torch.as_tensor(np.asarray(x, dtype=float).reshape(-1, net.widths[0]))
    theta = torch.as_tensor(net.theta)

    def f(th: Any, xm: Any) -> Any:
        return net.torch_forward(th, xm)

    J = vmap(jacrev(f), in_dims=(None, 0))(theta, X)
    H = vmap(hessian(f), in_dims=(None, 0))(theta, X)
    return J.detach().numpy(), H.detach().numpy()


def output_moments(fam: Any, h: Any) -> tuple[np.ndarray, np.ndarray]:
    """``I(h_L) = Cov(t)`` (M, n_L, n_L) and ``K`` (M, n_L⁴), the central moments of ``t`` at the
    family's exact-expectation nodes (lemma-2's definition, not ``fam.fisher``)."""
    hh = np.asarray(h, dtype=float).reshape(-1, fam.dim)
    cov, k4 = [], []
    for hm in hh:
        t, w, _ = fam.expectation_nodes(hm, 4)
        w = np.asarray(w) / np.sum(w)
        s = np.asarray(t) - w @ np.asarray(t)
        cov.append(np.einsum("s,sa,sb->ab", w, s, s))
        k4.append(np.einsum("s,sa,sb,sc,sd->abcd", w, s, s, s, s))
    return np.array(cov), np.array(k4)


def mixed_family(name: str, n_out: int) -> Any:
    """:func:`output_family`, or for ``"a-b"`` the product ``a × b × a …`` of ``n_out`` outputs
    (a Poisson output next to Bernoulli ones keeps the exact-expectation nodes few: a product
    of Poissons has hundreds)."""
    from ..families.product import product
    from ..families.registry import family

    if "-" not in name:
        return output_family(name, n_out)
    parts = name.split("-")
    return product(*[family(parts[k % len(parts)]) for k in range(n_out)])


def bound_cases(ctx: Context, equality_family: str) -> list[tuple[str, Any, np.ndarray]]:
    """(label, net, X) for the thm-7/thm-8 proofs: random networks with several outputs and
    inputs (tanh, softplus, sigmoid; Poisson, categorical, normal with unknown variance), one
    with two inputs, and one with a single output of ``equality_family`` (where the bounds are
    equalities)."""
    from ..networks.network import Network

    spec = ctx.pick(
        [((2, 3, 2), "tanh", "poisson-bernoulli", 1), ((3, 2, 3), "softplus", "categorical", 1),
         ((2, 3, 2), "sigmoid", "normal_unknown_variance", 2), ((2, 3, 1), "tanh",
                                                                 equality_family, 1)],
        [((2, 3, 2), "tanh", "poisson", 1), ((3, 2, 3), "softplus", "categorical", 1),
         ((2, 3, 2), "sigmoid", "normal_unknown_variance", 2), ((3, 3, 3), "tanh", "bernoulli", 2),
         ((2, 2, 2, 2), "softplus", "poisson", 1), ((2, 3, 1), "tanh", equality_family, 1)])
    out = []
    for widths, act, name, M in spec:
        fam = mixed_family(name, widths[-1])
        net = Network.random(list(widths), act, fam, 1.0, ctx.rng)
        X = ctx.rng.normal(size=(M, widths[0]))
        out.append((f"{act} {widths} {net.family.label}, M = {M}", net.into_domain(X), X))
    return out
