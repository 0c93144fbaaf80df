"""A calibrated CI gate for *anyone's* Monte Carlo Fisher estimator.

:func:`check_fisher_estimator` runs a user's estimator ``R`` times and tests that it is unbiased
for the exact Fisher information ``I(θ) = (1/M) Σ_m J_mᵀ I(h_L(x_m)) J_m`` (``eq-6``) of a
:class:`~fisher_verify.networks.network.Network`. It catches a missing ``1/N``, a wrong scale,
the "empirical Fisher" mistake (labels from data instead of from the model), labels drawn at a
stale θ, and the like.

**What is tested.** Each replicate ``Î^(r)`` (a ``P×P`` matrix, or its diagonal) is reduced to
``S`` linear statistics ``s_j(Î) = ⟨W_j, Î⟩``:

* every diagonal element ``Î_ii`` (``W = e_i e_iᵀ``);
* ``directions`` random quadratic forms ``vᵀ Î v`` (``W = v vᵀ``, ``v`` uniform on the unit
  sphere, drawn from ``rng`` *before* any replicate, so independent of the draws); with
  ``diagonal_only`` the form ``vᵀ Diag(Î) v = Σ_i v_i² Î_ii``.

**Exact variances.** With ``N = n`` draws per input and ``M`` inputs, a correct estimator is
``Î = (1/M) Σ_m (1/N) Σ_i term(x_m, y_mi)`` with ``y_mi ~ p(y|x_m, θ)`` independent, so
``Var ⟨W, Î⟩ = (1/(M²N)) Σ_m Var ⟨W, term(x_m, y)⟩`` (``cov-n``), in closed form:

* ``Î₁`` (score outer products, ``eq-7``, ``thm-4``): ``⟨W, term⟩ = rᵀ A_m r`` with ``r = t − η``
  and ``A_m = J_m W J_mᵀ``, so ``Var = (K − I⊗I)[A_m, A_m] = κ₄[A_m, A_m] + 2 tr(A_m I A_m I)``
  (``lemma-5``); for ``W = v vᵀ``, ``A = u uᵀ`` with ``u = J_m v`` and this is
  ``κ₄[u,u,u,u] + 2 (uᵀ I u)²``. ``κ₄`` goes through ``Family.kappa4_contract`` (``O(K)`` for
  the categorical family).
* ``Î₂`` (negative Hessians, ``eq-8``, ``thm-6``): ``⟨W, term⟩ = const − Σ_a r_a ⟨W, H^a_m⟩``,
  so ``Var = w_mᵀ I(h_L) w_m`` with ``w^a_m = ⟨W, H^a_m⟩`` (``= vᵀ H^a_m v``).
* Diagonal elements: :func:`fisher_verify.fisher.covariance.variance` (``diagonal=True``), or
  :func:`fisher_verify.fisher.large.variance2_diagonal` when the output Hessians are too large
  to hold.

**Why the test is valid.** For each statistic the ``R`` replicate values are i.i.d. with mean
``s_j(I(θ))`` and variance ``σ_j²`` (exact, above) under the null. The median of ``k`` group
means (:mod:`fisher_verify.testing.calibrated`) misses the mean by more than ``c σ_j/√(R/k)``
with probability at most ``P(Bin(k, 1/c²) ≥ (k+1)/2)`` by Chebyshev on each group — only the
variance is used, no normality. ``(k, c)`` is chosen so this is ``≤ alpha / S``, and by the
union bound (Bonferroni) the whole gate raises a false alarm with probability ``≤ alpha``
(default ``1e-6``). Nothing is tuned by trial. The guarantee holds for any estimator whose mean
is ``I(θ)`` and whose variance is at most that of ``Î_kind`` with ``n`` draws per input (e.g.
``Î₂`` tested with ``kind=1`` is fine where its variance is smaller); the report shows the
observed spread relative to the exact one (``sd_ratio``) so that a mismatch in ``n`` is visible.
A tiny deterministic tolerance ``rtol · ⟨|W|, |I(θ)|⟩`` for rounding only widens the acceptance
region, so it can only lower the false-alarm rate.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import FisherVerifyError, ShapeError, UnsupportedError
from ..networks.network import Network
from ..validation import as_generator, check_count
from .calibrated import DEFAULT_ALPHA, bonferroni, median_of_means_plan

__all__ = [
    "EstimatorReport",
    "GateStatistic",
    "assert_fisher_estimator",
    "check_fisher_estimator",
    "from_torch_estimator",
    "minimum_replications",
    "torch_parameter_permutation",
]

#: A user's estimator: ``estimator(rng) -> (P, P)`` array (or ``(P,)`` diagonal).
Estimator = Callable[[np.random.Generator], Any]

#: Above this many entries of the output Hessians ``(M, n_L, P, P)`` the ``Î₂`` variances use
#: the PyTorch path (:mod:`fisher_verify.fisher.large` and Hessian-vector products).
DENSE_HESSIAN_LIMIT = 20_000_000

#: Above this many parameters the ``Î₁`` diagonal variances use
#: :func:`fisher_verify.fisher.large.variance1_diagonal` (PyTorch, lemma-13 factors).
LARGE_DIAGONAL_P = 2000


# --- report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateStatistic:
    """One tested statistic ``⟨W, Î⟩`` of the replicates.

    Attributes:
        label: which element / direction, e.g. ``"Î[5,5] (W0[1,2])"`` or ``"v3ᵀ Î v3"``.
        observed: median of the group means of the replicate values (the tested estimate).
        mean: plain mean over all replicates.
        expected: the exact value ``⟨W, I(θ)⟩`` (``eq-6``).
        sd: exact standard deviation of one replicate (``thm-4`` / ``thm-6``).
        empirical_sd: standard deviation of the replicate values.
        radius: median-of-means radius at the per-statistic level ``alpha / S``.
        slack: deterministic rounding tolerance ``rtol · ⟨|W|, |I(θ)|⟩``.
        replications: R.
    """

    label: str
    observed: float
    mean: float
    expected: float
    sd: float
    empirical_sd: float
    radius: float
    slack: float
    replications: int

    @property
    def threshold(self) -> float:
        """Largest accepted ``|observed − expected|``."""
        return self.radius + self.slack

    @property
    def passed(self) -> bool:
        """Whether ``|observed − expected| ≤ threshold``."""
        return bool(abs(self.observed - self.expected) <= self.threshold)

    @property
    def excess(self) -> float:
        """``|observed − expected| / threshold`` (> 1 fails; ``inf`` for non-finite values)."""
        dev = abs(self.observed - self.expected)
        if not math.isfinite(dev):
            return math.inf
        return dev / self.threshold if self.threshold > 0 else (0.0 if dev == 0 else math.inf)

    @property
    def standard_error(self) -> float:
        """Exact sd of the mean of R replicates, ``sd / √R``."""
        return self.sd / math.sqrt(self.replications)

    @property
    def z(self) -> float:
        """``(observed − expected)`` in exact standard errors (``inf`` when the sd is 0)."""
        dev = self.observed - self.expected
        se = self.standard_error
        if se > 0:
            return dev / se
        return 0.0 if dev == 0 else math.copysign(math.inf, dev)

    @property
    def threshold_z(self) -> float:
        """The acceptance radius in exact standard errors (about 25–35 at alpha ≈ 1e-8)."""
        se = self.standard_error
        return self.radius / se if se > 0 else 0.0

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        z = f"{abs(self.z):.1f}" if math.isfinite(self.z) else "inf"
        return (
            f"{self.label}: {verdict}: observed {self.observed:.6g}, exact {self.expected:.6g} "
            f"(off by {z} exact standard errors; threshold {self.threshold_z:.1f} = "
            f"{self.threshold:.3g})"
        )


@dataclass(frozen=True)
class EstimatorReport:
    """Outcome of :func:`check_fisher_estimator`.

    Attributes:
        passed: every statistic within its threshold.
        kind: 1 (``Î₁``, score outer products) or 2 (``Î₂``, negative Hessians): whose exact
            variance calibrates the test.
        n: draws per input the estimator is declared to use.
        replications: R.
        diagonal_only: whether the estimator returns ``diag Î`` only.
        alpha: false-alarm rate of the whole gate.
        alpha_per_check: ``alpha / S`` (Bonferroni).
        groups: number k of groups of the median of means; ``chebyshev_c`` its multiple c.
        statistics: every tested statistic (diagonal elements first, then directions).
        worst: the statistic with the largest ``|observed − expected| / threshold``.
        scale: least-squares factor c in ``observed ≈ c · exact`` (each statistic normalised by
            ``⟨|W|, |I(θ)|⟩``); 1 for a correct estimator.
        scale_explains: whether ``c · exact`` falls within every threshold (a pure rescaling).
        sd_ratio: median over statistics of (empirical sd / exact sd of ``Î_kind``).
        diagnosis: a one-line reading of the numbers.
    """

    passed: bool
    kind: int
    n: int
    replications: int
    diagonal_only: bool
    alpha: float
    alpha_per_check: float
    groups: int
    chebyshev_c: float
    statistics: tuple[GateStatistic, ...]
    worst: GateStatistic
    scale: float
    scale_explains: bool
    sd_ratio: float
    diagnosis: str

    @property
    def failures(self) -> tuple[GateStatistic, ...]:
        """The statistics outside their threshold."""
        return tuple(s for s in self.statistics if not s.passed)

    def message(self) -> str:
        """A multi-line human summary (the AssertionError text of the assert form)."""
        est = "Î₁ (score outer products)" if self.kind == 1 else "Î₂ (negative Hessians)"
        head = "PASSED" if self.passed else "FAILED"
        shape = "diagonal" if self.diagonal_only else "P x P"
        lines = [
            f"Fisher estimator gate {head}: {len(self.failures)} of {len(self.statistics)} "
            f"statistics off ({shape} estimate calibrated by the exact variance of {est}, "
            f"n = {self.n} draws per input, R = {self.replications} replicates; "
            f"alpha = {self.alpha:.1e} for the whole gate, {self.alpha_per_check:.2e} per "
            f"statistic; median of {self.groups} group means)",
            f"  worst: {self.worst}",
            f"  scale factor (least squares of observed vs exact): {self.scale:.4g}"
            + (" — a rescaled I(θ) fits every statistic" if self.scale_explains else ""),
            f"  spread: empirical sd / exact sd = {self.sd_ratio:.3g}",
            f"  diagnosis: {self.diagnosis}",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.message()


# --- labels -----------------------------------------------------------------------------------


def _param_label(net: Network, i: int) -> str:
    off = net.offsets
    for layer, (_rows, cols) in enumerate(net.shapes):
        if off[layer] <= i < off[layer + 1]:
            r, c = divmod(i - off[layer], cols)
            what = f"b{layer}[{r}]" if c == cols - 1 else f"W{layer}[{r},{c}]"
            return f"Î[{i},{i}] ({what})"
    return f"Î[{i},{i}]"


# --- exact values and variances ---------------------------------------------------------------


def _kappa4_pairs(fam: Any, h: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``κ₄[A_m, A_m]`` (M,) for symmetric ``A`` (M, d, d), by eigenvectors and kappa4_contract."""
    lam, Q = np.linalg.eigh(A)  # A = Q diag(lam) Qᵀ
    q = np.swapaxes(Q, 1, 2)  # (M, r, d): rows are eigenvectors
    qk, ql = q[:, :, None, :], q[:, None, :, :]
    hh = h[:, None, None, :]
    k4 = np.asarray(fam.kappa4_contract(hh, qk, qk, ql, ql), dtype=np.float64)  # (M, r, r)
    return np.einsum("mk,mkl,ml->m", lam, k4, lam)


def _torch_second_directional(net: Network, X: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``vᵀ H^a_m v`` (M, n_L, D) by forward-over-forward differentiation (no ``P×P`` array)."""
    import torch
    from torch.func import jvp, vmap

    th = torch.as_tensor(net.theta, dtype=torch.float64)
    Xt = torch.as_tensor(X, dtype=torch.float64)
    Vt = torch.as_tensor(V, dtype=torch.float64)

    def second(x: Any, v: Any) -> Any:
        def first(t: Any) -> Any:
            return jvp(lambda s: net.torch_forward(s, x), (t,), (v,))[1]

        return jvp(first, (th,), (v,))[1]

    per_v = vmap(vmap(second, in_dims=(None, 0)), in_dims=(0, None))(Xt, Vt)  # (M, D, n_L)
    return per_v.permute(0, 2, 1).detach().numpy()


def _exact_statistics(
    net: Network, X: np.ndarray, kind: int, n: int, V: np.ndarray, diagonal_only: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact values, variances of one replicate and rounding scales of the S statistics."""
    from ..fisher.covariance import variance

    fam = net.family
    M = X.shape[0]
    h = np.asarray(net.forward(X), dtype=np.float64)
    fam.check_natural(h)
    Ih = np.asarray(fam.fisher(h), dtype=np.float64)  # (M, d, d)
    J = np.asarray(net.jacobian(X), dtype=np.float64)  # (M, d, P)
    P = J.shape[-1]
    d = J.shape[1]
    norm = 1.0 / (M * M * float(n))
    dense_h = kind == 2 and M * d * P * P <= DENSE_HESSIAN_LIMIT
    H = np.asarray(net.output_hessians(X), dtype=np.float64) if dense_h else None

    # diagonal elements (eq-6; thm-4 / thm-6 via covariance.variance or the large path)
    diag_I = np.einsum("map,mab,mbp->p", J, Ih, J) / M
    if (kind == 1 and P <= LARGE_DIAGONAL_P) or dense_h:
        var_diag = np.asarray(variance(net, X, kind, n, diagonal=True), dtype=np.float64)  # type: ignore[arg-type]
    elif kind == 1:
        from ..fisher.large import variance1_diagonal

        var_diag = variance1_diagonal(net, X, n)
    else:
        from ..fisher.large import variance2_diagonal

        var_diag = variance2_diagonal(net, X, n)

    # directions
    W2 = V * V  # (D, P): weights of vᵀ Diag(Î) v
    if diagonal_only:
        exp_dir = W2 @ diag_I
        scale_dir = W2 @ np.abs(diag_I)
        if kind == 1:
            # A_mk = J_m diag(v_k²) J_mᵀ, one direction at a time (memory M·d·P)
            A = np.stack([np.einsum("map,mbp->mab", J * w2, J) for w2 in W2], axis=1)
            hD = np.repeat(h[:, None, :], V.shape[0], axis=1).reshape(-1, d)
            k4 = _kappa4_pairs(fam, hD, A.reshape(-1, d, d)).reshape(M, -1)
            IA = np.einsum("mab,mkbc->mkac", Ih, A)
            tr = np.einsum("mkab,mkba->mk", IA, IA)
            var_dir = (k4 + 2.0 * tr).sum(0) * norm
        else:
            if H is not None:
                Hd = np.diagonal(H, axis1=2, axis2=3)  # (M, d, P)
            else:
                from ..fisher.large import output_hessian_diagonals

                Hd = output_hessian_diagonals(net, X)
            w = np.einsum("kp,map->mak", W2, Hd)  # (M, d, D)
            var_dir = np.einsum("mak,mab,mbk->k", w, Ih, w) * norm
    else:
        # |I(θ)| (eq-6) for the rounding scale only, as one (M·d × P)ᵀ(M·d × P) product
        IJ = np.einsum("mab,mbp->map", Ih, J)
        I_full = J.reshape(M * d, P).T @ IJ.reshape(M * d, P) / M
        absV = np.abs(V)
        scale_dir = np.einsum("kp,pq,kq->k", absV, np.abs(I_full), absV)
        u = np.einsum("map,kp->mka", J, V)  # (M, D, d): u = J_m v
        quad = np.einsum("mka,mab,mkb->mk", u, Ih, u)
        exp_dir = quad.mean(axis=0)  # vᵀ I(θ) v
        if kind == 1:
            hD = h[:, None, :]
            k4 = np.asarray(fam.kappa4_contract(hD, u, u, u, u), dtype=np.float64)
            var_dir = (k4 + 2.0 * quad * quad).sum(0) * norm
        else:
            if H is not None:
                w = np.einsum("kp,mapq,kq->mak", V, H, V)
            else:
                w = _torch_second_directional(net, X, V)
            var_dir = np.einsum("mak,mab,mbk->k", w, Ih, w) * norm

    expected = np.concatenate([diag_I, exp_dir])
    var = np.maximum(np.concatenate([var_diag, var_dir]), 0.0)
    scales = np.concatenate([np.abs(diag_I), scale_dir])
    return expected, var, scales


# --- the gate ---------------------------------------------------------------------------------


def minimum_replications(alpha: float, n_statistics: int) -> int:
    """Smallest R for which a level ``alpha / n_statistics`` median of means exists."""
    per = bonferroni(alpha, n_statistics)
    R = 3
    while True:
        try:
            median_of_means_plan(float(per), R)
            return R
        except ValueError:
            R += 2


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def _diagnose(
    passed: bool,
    scale: float,
    scale_explains: bool,
    sd_ratio: float,
    finite: bool,
    n: int,
    M: int,
    kind: int,
) -> str:
    if not finite:
        return "the estimator returned NaN or infinite values"
    spread = ""
    rescaled = scale_explains and math.isfinite(scale) and sd_ratio <= 2.0 * max(1.0, abs(scale))
    if sd_ratio > 2.0 and not rescaled:
        spread = (
            f" Its spread is {sd_ratio:.2g}x the exact sd of Î{kind} with n = {n} draws per input: "
            "does it really use n draws per input? The false-alarm guarantee assumes a variance "
            f"at most that of Î{kind}(n)."
        )
    if passed:
        return "consistent with an unbiased estimator of I(θ) (eq-6)." + spread
    if sd_ratio < 0.05:
        return (
            f"the replicates barely vary ({sd_ratio:.2g}x the exact sd) although a Monte Carlo "
            "estimator should: the estimate hardly depends on rng. Labels are probably not drawn "
            "from the model p(y|x,θ) — this looks like the empirical Fisher (labels from data) — "
            "or the rng is ignored."
        )
    if scale_explains and abs(scale - 1.0) > 1e-3:
        size = "too large" if scale > 1 else "too small"
        hint = ""
        for value, why in (
            (float(n), f"n = {n}: a missing 1/N (sum instead of mean over draws)?"),
            (float(M), f"M = {M}: a missing 1/M (sum instead of mean over inputs)?"),
            (float(n * M), f"n·M = {n * M}: a sum instead of a mean?"),
            (1.0 / n, "1/n: divided by N twice?"),
            (1.0 / M, "1/M: divided by M twice?"),
            (0.5, "1/2: a loss convention with a factor 1/2 (e.g. MSE as 0.5‖·‖²)?"),
            (2.0, "2: a factor 2 (e.g. squared error without 1/2)?"),
        ):
            if value != 1.0 and abs(scale / value - 1.0) < 0.05:
                hint = f" The factor is close to {why}"
                break
        return f"your estimator is {scale:.3g}x {size}: a rescaled I(θ) fits every statistic.{hint}"
    return (
        f"biased, and not by a constant factor (best factor {scale:.3g} does not fit): the labels "
        "seem to come from a distribution other than p(y|x,θ) (data labels = empirical Fisher, a "
        "stale or perturbed θ, a wrong family/link) or the per-sample terms are wrong." + spread
    )


def check_fisher_estimator(
    estimator: Estimator,
    net: Network,
    x: Any,
    *,
    n: int,
    kind: Literal[1, 2] = 1,
    replications: int = 200,
    rng: np.random.Generator | int | None = 0,
    alpha: float = DEFAULT_ALPHA,
    diagonal_only: bool = False,
    directions: int = 8,
    rtol: float = 1e-9,
) -> EstimatorReport:
    """Test that a user's Monte Carlo estimator is unbiased for I(θ) (``eq-6``); never raises on a
    wrong estimator, returns an :class:`EstimatorReport`.

    Args:
        estimator: ``estimator(rng) -> array``: one estimate from ``n`` label draws per input
            ``y ~ p(y|x_m, θ)``, drawn by the user's code with the given ``numpy`` Generator;
            ``(P, P)`` in flat-θ order (:class:`~fisher_verify.networks.network.Network`), or the
            ``(P,)`` diagonal when ``diagonal_only``. Torch tensors are accepted.
        net: the network whose ``I(θ)`` the estimator targets.
        x: inputs, ``(n_0,)`` or ``(M, n_0)`` (p(x) is their empirical distribution).
        n: draws per input the estimator uses.
        kind: 1 calibrates with the exact variance of ``Î₁`` (``thm-4``), 2 with that of ``Î₂``
            (``thm-6``). The test is valid for any unbiased estimator with at most that variance.
        replications: R independent calls of ``estimator``.
        rng: seed or Generator; directions are drawn from it first, then each call gets it.
        alpha: false-alarm rate of the whole gate (Bonferroni over all statistics).
        diagonal_only: the estimator returns ``diag Î`` only (EWC / K-FAC style pipelines).
        directions: number of random quadratic forms ``vᵀÎv`` (``vᵀ Diag(Î) v`` when diagonal).
        rtol: deterministic rounding tolerance, relative to ``⟨|W|, |I(θ)|⟩``; raise it (e.g.
            ``1e-4``) for float32 estimators.

    Raises:
        ShapeError: the estimator returns an array of the wrong shape.
        FisherVerifyError: too few replications for ``alpha`` (the message gives the minimum).
        UnsupportedError: ``kind=2`` on a non-C² network (thm-3).
    """
    if kind not in (1, 2):
        raise FisherVerifyError(f"kind must be 1 (score outer products) or 2 (negative Hessians), got {kind!r}")
    n = check_count(n, "n (draws per input)", error=ShapeError)
    directions = check_count(directions, "directions", minimum=0)
    if not 0 < alpha < 1:
        raise FisherVerifyError(f"alpha must lie in (0, 1), got {alpha}")
    if kind == 2:
        net.require_c2("the variance of the Hessian estimator (thm-6)")
    R = check_count(replications, "replications")
    gen = as_generator(rng)
    X, _ = net.inputs(x)
    M = X.shape[0]
    P = net.num_params
    S = P + int(directions)
    per = bonferroni(alpha, S)
    try:
        k, c = median_of_means_plan(float(per), R)
    except ValueError:
        need = minimum_replications(alpha, S)
        raise FisherVerifyError(
            f"replications = {R} is too few for alpha = {alpha:g} over {S} statistics "
            f"(alpha {per:.2e} each); use at least {need} (200 or more for useful power)"
        ) from None
    m = R // k

    V = gen.normal(size=(int(directions), P))
    V /= np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-300)
    expected, var, scales = _exact_statistics(net, X, kind, n, V, diagonal_only)

    want = (P,) if diagonal_only else (P, P)
    values = np.empty((R, S))
    for r in range(R):
        est = _as_array(estimator(gen))
        if est.shape != want:
            hint = " (pass diagonal_only=True for a diagonal estimator)" if est.shape == (P,) else ""
            raise ShapeError(f"the estimator returned shape {est.shape}, expected {want}{hint}")
        if diagonal_only:
            values[r, :P] = est
            values[r, P:] = (V * V) @ est
        else:
            values[r, :P] = np.diagonal(est)
            values[r, P:] = np.sum((V @ est) * V, axis=1)

    finite = bool(np.all(np.isfinite(values)))
    observed = np.median(values[: k * m].reshape(k, m, S).mean(axis=1), axis=0)
    means = values.mean(axis=0)
    emp_sd = values.std(axis=0, ddof=1) if R > 1 else np.zeros(S)
    sd = np.sqrt(var)
    radius = c * sd / math.sqrt(m)
    slack = rtol * np.maximum(scales, np.abs(expected))

    labels = [_param_label(net, i) for i in range(P)]
    form = "Diag(Î)" if diagonal_only else "Î"
    labels += [f"v{j}ᵀ {form} v{j} (random unit v{j})" for j in range(int(directions))]
    stats = tuple(
        GateStatistic(
            labels[j], float(observed[j]), float(means[j]), float(expected[j]), float(sd[j]),
            float(emp_sd[j]), float(radius[j]), float(slack[j]), R,
        )
        for j in range(S)
    )
    passed = finite and all(s.passed for s in stats)
    worst = max(stats, key=lambda s: s.excess)

    # least-squares scale factor, each statistic normalised by its magnitude scale
    wts = np.where(scales > 0, 1.0 / np.maximum(scales, 1e-300), 0.0)
    den = float(np.sum((expected * wts) ** 2))
    if finite and den > 0:
        scale = float(np.sum(means * expected * wts * wts) / den)
    else:
        scale = math.nan
    scale_explains = bool(
        finite and math.isfinite(scale)
        # a rescaled correct estimator c·Î has sd |c|·σ, hence the radius scaled by max(1, |c|)
        and np.all(
            np.abs(observed - scale * expected)
            <= max(1.0, abs(scale)) * (radius + slack) + rtol * abs(scale) * scales
        )
    )
    positive = sd > 0
    sd_ratio = float(np.median(emp_sd[positive] / sd[positive])) if np.any(positive) else math.nan
    diagnosis = _diagnose(passed, scale, scale_explains, sd_ratio, finite, n, M, kind)
    return EstimatorReport(
        passed=passed, kind=int(kind), n=n, replications=R, diagonal_only=bool(diagonal_only),
        alpha=float(alpha), alpha_per_check=float(per), groups=int(k), chebyshev_c=float(c),
        statistics=stats, worst=worst, scale=scale, scale_explains=scale_explains,
        sd_ratio=sd_ratio, diagnosis=diagnosis,
    )


def assert_fisher_estimator(
    estimator: Estimator, net: Network, x: Any, **kwargs: Any
) -> EstimatorReport:
    """:func:`check_fisher_estimator`, raising ``AssertionError`` with the report when it fails.

    For pytest: ``assert_fisher_estimator(my_estimator, net, x, n=100)``. Same keyword
    arguments; returns the report when the estimator passes.
    """
    report = check_fisher_estimator(estimator, net, x, **kwargs)
    if not report.passed:
        raise AssertionError(report.message())
    return report


# --- torch adapter ----------------------------------------------------------------------------


def torch_parameter_permutation(model: Any) -> np.ndarray:
    """Index map ``perm`` with ``θ_net[k] = θ_torch[perm[k]]``.

    ``θ_torch`` is ``torch.nn.utils.parameters_to_vector(model.parameters())`` (per Linear: the
    weight row-major, then the bias); ``θ_net`` the flat θ of
    :meth:`Network.from_torch <fisher_verify.networks.network.Network.from_torch>` (per layer
    ``[W | b]`` row-major, the bias as the last column).

    Raises:
        UnsupportedError: a Linear layer without bias (the Network would have parameters that the
            model lacks), or a parameter outside Linear layers.
    """
    import torch.nn as nn

    layers = [mod for mod in model if isinstance(mod, nn.Linear)]
    n_linear = sum(p.numel() for mod in layers for p in mod.parameters())
    if n_linear != sum(p.numel() for p in model.parameters()):
        raise UnsupportedError("the model has parameters outside its Linear layers")
    perm: list[int] = []
    t0 = 0
    for i, mod in enumerate(layers):
        if mod.bias is None:
            raise UnsupportedError(
                f"Linear layer {i} has no bias; the Network's flat θ has one per layer "
                "(use bias=True to check this estimator)"
            )
        out, inp = mod.weight.shape
        for r in range(out):
            perm.extend(t0 + r * inp + c for c in range(inp))
            perm.append(t0 + out * inp + r)
        t0 += out * inp + out
    return np.asarray(perm, dtype=np.int64)


def from_torch_estimator(
    fn: Callable[[Any, Any, Any], Any], model: Any, x: Any, *, dtype: Any = None
) -> Estimator:
    """Adapt ``fn(model, x, generator) -> tensor`` to the ``estimator(rng)`` of the gate.

    ``model`` is the ``nn.Sequential`` passed to ``Network.from_torch``; ``fn`` returns its
    estimate in the order of ``model.parameters()`` (``(P, P)`` or the ``(P,)`` diagonal), using
    the ``torch.Generator`` it is given for every label draw. The model is copied and cast to
    ``dtype`` (float64 by default; rounding then stays far below the statistical threshold) and
    ``x`` becomes a tensor of that dtype. The result is permuted into the Network's flat-θ order
    (:func:`torch_parameter_permutation`).
    """
    import torch

    dt = torch.float64 if dtype is None else dtype
    perm = torch_parameter_permutation(model)
    local = copy.deepcopy(model).to(dt)
    xt = torch.as_tensor(np.asarray(_as_array(x)), dtype=dt)

    def estimator(rng: np.random.Generator) -> np.ndarray:
        g = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        arr = _as_array(fn(local, xt, g))
        P = perm.size
        if arr.shape == (P,):
            return arr[perm]
        if arr.shape == (P, P):
            return arr[np.ix_(perm, perm)]
        raise ShapeError(
            f"the torch estimator returned shape {arr.shape}; expected ({P}, {P}) or ({P},) "
            "in model.parameters() order"
        )

    return estimator
