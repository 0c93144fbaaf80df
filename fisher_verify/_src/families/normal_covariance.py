"""Normal families of a vector y whose covariance is learned (issue 18).

* ``multivariate_normal_unknown_covariance(D)``: y ∈ ℝᴰ with mean μ and a full covariance Σ,
  both unknown. ``t(y) = (y, vech(y yᵀ))`` with the **off-diagonal products counted twice**:
  ``t = (y₀, …, y_{D−1}, y₀², 2y₀y₁, …, 2y₀y_{D−1}, y₁², 2y₁y₂, …, y_{D−1}²)`` (the upper
  triangle, row by row). Then ``⟨h₂, t₂⟩ = tr(H₂ y yᵀ) = yᵀH₂y`` with ``H₂`` the symmetric
  matrix whose upper triangle is ``h₂``, so ``h = (Λμ, the upper triangle of −½Λ)``,
  ``Λ = Σ⁻¹``: each component of ``h₂`` is an entry of ``−½Λ`` itself (not twice it), and
  ``F(h) = −¼ h₁ᵀH₂⁻¹h₁ − ½ log det(−2H₂)``, ``b(y) = (2π)^{−D/2}``. Domain: ``−H₂``
  positive definite (its diagonal ``h_ii < 0`` is the necessary part the generic check
  states; :func:`negative_definite_reason` decides the rest).
* ``isotropic_normal(D)``: y ∈ ℝᴰ with mean μ and one variance σ² shared by every component,
  ``t = (y₀, …, y_{D−1}, ‖y‖²)``, ``h = (μ/σ², −1/(2σ²))``, ``F = −‖h₁‖²/(4h₂) − (D/2)
  log(−2h₂)``: ``torch.nn.GaussianNLLLoss`` with a ``var`` of shape ``(..., 1)``.

Both route their exact expectations through the tensor product of Gauss–Hermite rules in the
whitened coordinates ``y = μ + √2 R⁻ᵀx`` (``Λ = RRᵀ``, Cholesky): ``t`` is quadratic in y, so
a polynomial of degree k in t is one of degree 2k in y, integrated exactly by ``k + 1`` nodes
per axis. Nothing here inverts Λ explicitly: μ and the nodes come from triangular solves with
its Cholesky factor, which is backward stable, so an ill-conditioned Σ loses only the digits
its condition number costs the map h ↦ (μ, Σ) itself.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp

from ..errors import ParameterError
from ..symbolic.codegen import Backend
from ..validation import as_real_array
from .definition import FamilyDefinition, Support
from .family import Array, Family, _backend_of
from .quadrature import gauss_hermite, points_for_degree

__all__ = ["MAX_COVARIANCE_DIM", "CovarianceFamily", "isotropic_normal", "multivariate_normal_unknown_covariance",
           "negative_definite_reason"]

#: Largest D of the full-covariance family. Its float kernels need no derivation
#: (:class:`CovarianceFamily`), but ``derive``, the mpmath kernels and the proofs do: h has
#: D + D(D+1)/2 components and SymPy differentiates F four times, C(d + 3, 4) κ₄ entries, each a
#: rational function of the d components. Measured cold (no disk cache, one core): D = 3
#: (d = 9, 495 κ₄ entries) derives in 6.4–7.5 s and prints its kernels in 2.9 s; D = 4 (d = 14,
#: 2380 entries) takes 63 s to derive and 89 s to print, minutes, so it is refused at once.
MAX_COVARIANCE_DIM = 3

#: Largest D of the isotropic normal: h has D + 1 components, so the dense κ₄ holds
#: C(D + 4, 4) entries; the vector families' limit (``catalog.MAX_VECTOR_SIZE``) less its one
#: variance component.
MAX_ISOTROPIC_DIM = 7


def _dimension(family: str, value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= limit:
        raise ParameterError(
            f"family {family!r}: parameter D={value!r} is invalid; it must be an integer from 1 "
            f"to {limit} (the dimension of y; the limit keeps the symbolic derivation to seconds)"
        )
    return int(value)


def _pairs(d: int) -> list[tuple[int, int]]:
    """The upper triangle (i ≤ j), row by row: the order of h₂ and t₂."""
    return [(i, j) for i in range(d) for j in range(i, d)]


def _h2_matrix(hh: np.ndarray, d: int) -> np.ndarray:
    """H₂ (..., D, D) from h (..., D + D(D+1)/2)."""
    out = np.empty(hh.shape[:-1] + (d, d))
    for k, (i, j) in enumerate(_pairs(d)):
        out[..., i, j] = out[..., j, i] = hh[..., d + k]
    return out


def _exactly_positive_definite(m: np.ndarray) -> bool:
    """Sylvester's criterion on the exact rationals of the float64 entries (D ≤ 3: at most a
    3×3 determinant), for the points a Cholesky factorisation refuses: those within rounding of
    the boundary are refused only when the matrix really is not positive definite."""
    a = [[Fraction(float(v)) for v in row] for row in m]
    for k in range(1, len(a) + 1):
        minor = sp.Matrix(k, k, lambda r, c: sp.Rational(a[r][c].numerator, a[r][c].denominator))
        if not minor.det(method="bareiss") > 0:
            return False
    return True


def negative_definite_reason(hh: np.ndarray, d: int) -> str | None:
    """Why h (..., D + D(D+1)/2) is outside the domain (``−H₂`` not positive definite), naming
    the first such point, or None when every point is inside."""
    lam = -2.0 * _h2_matrix(np.asarray(hh, dtype=float), d)
    flat = lam.reshape(-1, d, d)
    try:
        pivots = np.diagonal(np.linalg.cholesky(flat), axis1=-2, axis2=-1)
        # a pivot within rounding of 0 (a singular Λ factors with a pivot of √ε): Cholesky
        # cannot tell there, Sylvester's criterion in exact rationals does
        size = np.max(np.abs(flat), axis=(-2, -1))
        unsure = np.flatnonzero(np.min(pivots, -1) ** 2 <= 64 * d * np.finfo(float).eps * size)
    except np.linalg.LinAlgError:
        unsure = np.arange(len(flat))
    for index in unsure:
        m = flat[index]
        if _exactly_positive_definite(m):
            continue
        where = np.unravel_index(index, lam.shape[:-2]) if lam.ndim > 2 else ()
        eig = np.linalg.eigvalsh(m)
        return (f"at batch index {tuple(int(i) for i in where)}, −2H₂ = Λ = "
                f"{[[float(f'{v:.6g}') for v in row] for row in m]} is not positive definite "
                f"(eigenvalues {[float(f'{v:.3g}') for v in eig]}); the "
                "precision matrix Λ = −2H₂ (H₂ the symmetric matrix of the components h_ij) "
                "must be positive definite")
    return None


def _whitening(hh: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """μ = Λ⁻¹h₁ (..., D) and R (..., D, D) lower triangular with Λ = RRᵀ, Λ = −2H₂."""
    hh = np.asarray(hh, dtype=float)
    lam = -2.0 * _h2_matrix(hh, d)
    chol = np.linalg.cholesky(lam)
    # μ = R⁻ᵀ R⁻¹ h₁ by two triangular solves (np.linalg.solve on the triangular factor)
    inner = np.linalg.solve(chol, hh[..., :d, None])
    mean = np.linalg.solve(np.swapaxes(chol, -1, -2), inner)[..., 0]
    return mean, chol


def _tensor_grid(points: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The tensor product of ``points`` Gauss–Hermite nodes in d axes, as probability weights
    of a standard normal after x → √2 x."""
    x, w = gauss_hermite(points)
    grid = np.array(list(itertools.product(x, repeat=d))).reshape(-1, d)
    weights = np.prod(np.array(list(itertools.product(w, repeat=d))).reshape(-1, d), -1)
    return math.sqrt(2.0) * grid, weights / math.pi ** (d / 2)


def multivariate_normal_unknown_covariance(D: Any = 2) -> FamilyDefinition:  # noqa: N803
    """Multivariate normal with unknown mean and full covariance (the module docstring):
    ``t = (y, vech(yyᵀ))`` with off-diagonal products counted twice, ``h = (Λμ, the upper
    triangle of −½Λ)``, ``F = −¼ h₁ᵀH₂⁻¹h₁ − ½ log det(−2H₂)`` (``lemma-2``, ``lemma-5``)."""
    name = "multivariate_normal_unknown_covariance"
    d = _dimension(name, D, MAX_COVARIANCE_DIM)
    pairs = _pairs(d)
    h1 = tuple(sp.Symbol(f"h{i}", real=True) for i in range(d))
    # a diagonal entry of a negative definite H₂ is < 0: SymPy knows it (Gaussian integrals)
    h2 = tuple(sp.Symbol(f"h{i}{j}", negative=True) if i == j else sp.Symbol(f"h{i}{j}", real=True)
               for i, j in pairs)
    ys = tuple(sp.Symbol(f"y{i}", real=True) for i in range(d))
    mus = tuple(sp.Symbol(f"mu{i}", real=True) for i in range(d))
    lams = {p: sp.Symbol(f"lambda{p[0]}{p[1]}", real=True) for p in pairs}
    H = sp.zeros(d, d)
    for (i, j), s in zip(pairs, h2):
        H[i, j] = H[j, i] = s
    det = sp.expand(H.det(method="berkowitz"))
    adj = H.adjugate(method="berkowitz")
    hv = sp.Matrix(h1)
    # H₂⁻¹ = adj(H₂)/det(H₂) and det(−2H₂) = (−2)ᴰ det(H₂): a rational function and one log,
    # whose derivatives SymPy takes term by term without simplifying
    quad = sp.expand((hv.T * adj * hv)[0, 0])
    log_partition = -quad / (4 * det) - sp.log((-2) ** d * det) / 2
    stat = [*ys, *[ys[i] ** 2 if i == j else 2 * ys[i] * ys[j] for i, j in pairs]]
    Lam = sp.zeros(d, d)
    for (i, j), s in lams.items():
        Lam[i, j] = Lam[j, i] = s
    natural = [*(Lam * sp.Matrix(mus)), *[-lams[p] / 2 for p in pairs]]
    diag = tuple(d + k for k, (i, j) in enumerate(pairs) if i == j)

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        mean, chol = _whitening(hh, d)
        z = rng.standard_normal((n, *mean.shape))
        # y = μ + R⁻ᵀz has covariance R⁻ᵀR⁻¹ = Λ⁻¹
        rt = np.broadcast_to(np.swapaxes(chol, -1, -2), (n, *chol.shape))
        return mean + np.linalg.solve(rt, z[..., None])[..., 0]

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        # t is quadratic in y: a degree-k polynomial in t is of degree 2k in y
        grid, weights = _tensor_grid(points_for_degree(2 * degree), d)
        mean, chol = _whitening(hh, d)
        rt = np.swapaxes(chol, -1, -2)[..., None, :, :]
        nodes = mean[..., None, :] + np.linalg.solve(rt, grid[..., None])[..., 0]
        return nodes, np.broadcast_to(weights, nodes.shape[:-1])

    return FamilyDefinition(
        name=name,
        params={"D": d},
        h=(*h1, *h2),
        y=ys[0],
        event=ys,
        statistic=stat,
        log_base=-sp.Rational(d, 2) * sp.log(2 * sp.pi),
        support=Support("continuous", size=d),
        log_partition=log_partition,
        negative=diag,
        domain_text="−H₂ positive definite, H₂ the symmetric matrix of the components h_ij "
                    "(h = (Λμ, the upper triangle of −½Λ), Λ = Σ⁻¹)",
        sampler=sampler,
        mean_symbols=(*mus, *lams.values()),
        natural_of_mean=tuple(natural),
        quadrature=rule,
        route="the tensor product of Gauss–Hermite rules in y = μ + √2 R⁻ᵀx (Λ = RRᵀ), "
              "exact for polynomials in t (quadratic in y) of the degree asked",
        description=f"vector regression in {d} dimensions with a learned full covariance "
                    "(t = (y, vech yyᵀ), off-diagonal products counted twice)",
        domain_check=lambda hh: negative_definite_reason(hh, d),
    )


def isotropic_normal(D: Any = 2) -> FamilyDefinition:  # noqa: N803
    """Normal on ℝᴰ with unknown mean and one shared variance: ``t = (y, ‖y‖²)``,
    ``h = (μ/σ², −1/(2σ²))``, ``F = −‖h₁‖²/(4h₂) − (D/2) log(−2h₂)`` (``lemma-2``; the family
    of ``GaussianNLLLoss`` with ``var`` of shape ``(..., 1)``)."""
    name = "isotropic_normal"
    d = _dimension(name, D, MAX_ISOTROPIC_DIM)
    h1 = tuple(sp.Symbol(f"h{i}", real=True) for i in range(d))
    h2 = sp.Symbol(f"h{d}", negative=True)
    ys = tuple(sp.Symbol(f"y{i}", real=True) for i in range(d))
    mus = tuple(sp.Symbol(f"mu{i}", real=True) for i in range(d))
    var = sp.Symbol("sigma2", positive=True)

    def moments(hh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hh = np.asarray(hh, dtype=float)
        var_ = -0.5 / hh[..., d]
        return hh[..., :d] * var_[..., None], var_

    def sampler(hh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        mean, var_ = moments(hh)
        return mean + np.sqrt(var_)[..., None] * rng.standard_normal((n, *mean.shape))

    def rule(hh: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        grid, weights = _tensor_grid(points_for_degree(2 * degree), d)
        mean, var_ = moments(hh)
        nodes = mean[..., None, :] + np.sqrt(var_)[..., None, None] * grid
        return nodes, np.broadcast_to(weights, nodes.shape[:-1])

    return FamilyDefinition(
        name=name,
        params={"D": d},
        h=(*h1, h2),
        y=ys[0],
        event=ys,
        statistic=(*ys, sp.Add(*[y**2 for y in ys])),
        log_base=-sp.Rational(d, 2) * sp.log(2 * sp.pi),
        support=Support("continuous", size=d),
        log_partition=-sp.Add(*[h**2 for h in h1]) / (4 * h2) - sp.Rational(d, 2) * sp.log(-2 * h2),
        negative=(d,),
        domain_text=f"h{d} < 0 (h = (μ/σ², −1/(2σ²)), one variance σ² shared by the {d} components)",
        sampler=sampler,
        mean_symbols=(*mus, var),
        natural_of_mean=(*[m / var for m in mus], -1 / (2 * var)),
        quadrature=rule,
        route="the tensor product of Gauss–Hermite rules in y = μ + √2 σ x, exact for "
              "polynomials in t (quadratic in y) of the degree asked",
        description=f"vector regression in {d} dimensions with one learned variance "
                    "(GaussianNLLLoss with var of shape (..., 1))",
    )


class CovarianceFamily(Family):
    """The full-covariance family, its float kernels by Cholesky instead of printed from F.

    F's derivatives printed as rational functions of h (``adj(H₂)/det H₂`` and its powers) lose
    every digit at a condition number of 10⁸: terms of size cond² cancel (measured: η off by
    0.14, K by 0.65, relative to their largest entry, at Σ with eigenvalues 10⁻³ and 10⁻¹¹).
    The NumPy and PyTorch kernels instead take μ = Λ⁻¹h₁ and Σ = Λ⁻¹ (Λ = −2H₂) by Cramer's
    rule for D ≤ 2 (forward stable for 2×2, and exact where the products are) and by the
    triangular solves of a Cholesky factor Λ = RRᵀ for D = 3 (3×3 cofactors lose 100× more at
    cond 10⁸), and write the centred statistic as
    ``s_a = l_aᵀz + zᵀM_az − tr(M_aΣ)``, ``z = y − μ ~ N(0, Σ)`` (``l_a`` linear in μ, ``M_a``
    constant): its cumulants are traces and chains of ``M_aΣ`` and ``Σl_a`` read off its
    cumulant generating function, sums of products in which no term of size ``|μ|²`` is ever
    subtracted from another and a cumulant that is 0 (κ₄ of y alone) is an exact 0. What
    remains is the conditioning of
    h ↦ (μ, Σ) itself (cond(Λ)·ε relative). ``F = ½h₁ᵀμ − Σ_i log R_ii``. The mpmath kernels
    stay the symbolic ones (they are the reference, at any precision), and so do the proofs
    (``lemma-2``, ``lemma-5``).
    """

    def domain_shift(self, h: np.ndarray, margin: float) -> np.ndarray:
        """Only the diagonal of H₂ moves, to ``−margin − Σ_j≠i |h_ij|`` or below at every row,
        so that −H₂ is diagonally dominant with a positive diagonal, hence positive definite
        (a shift of every component by the same amount can leave Λ singular)."""
        d = int(self.definition.params["D"])
        h2 = _h2_matrix(np.atleast_2d(np.asarray(h, dtype=float)), d)
        diag = np.diagonal(h2, axis1=-2, axis2=-1)
        off = np.sum(np.abs(h2), -1) - np.abs(diag)
        shift = np.zeros(self.dim)
        for k, (i, j) in enumerate(_pairs(d)):
            if i == j:
                shift[d + k] = max(float(np.max(diag[..., i] + off[..., i]) + margin), 0.0)
        return shift

    def _eval(self, quantity: str, h: Array, backend: Backend | None) -> Array:
        backend = backend or _backend_of(h)
        if backend == "mpmath":
            return super()._eval(quantity, h, backend)
        if backend == "numpy":
            h = as_real_array(h, "natural parameter h")
        self.check_natural(h)
        return _cholesky_kernel(quantity, h, int(self.definition.params["D"]),
                                torch_mode=backend == "torch")


def _cholesky_kernel(quantity: str, h: Any, d: int, torch_mode: bool) -> Any:
    """One quantity of :class:`CovarianceFamily` at h (..., d + d(d+1)/2), NumPy or torch."""
    pairs = _pairs(d)
    if torch_mode:
        import torch

        xp: Any = torch
        h2 = torch.stack([torch.stack([h[..., d + pairs.index((min(i, j), max(i, j)))]
                                       for j in range(d)], -1) for i in range(d)], -2)
        chol = torch.linalg.cholesky(-2.0 * h2)
        diag_log = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    else:
        xp = np
        h = np.asarray(h, dtype=float)
        chol = np.linalg.cholesky(-2.0 * _h2_matrix(h, d))
        diag_log = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    h1 = h[..., :d]
    lam = -2.0 * (h2 if torch_mode else _h2_matrix(h, d))
    if d <= 2:
        # Cramer's rule, forward stable for 2×2 (cond(Λ)·ε, as the triangular solves), and exact
        # where the products are: h₁ ⊥ a row of adj Λ gives μ_i = 0 exactly
        adj, det = _adjugate(xp, lam, d)
        sigma = adj / det[..., None, None]
        mu = xp.einsum("...ij,...j->...i", adj, h1) / det[..., None]
    else:
        # 3×3 cofactors lose 100× more at cond 10⁸ (measured): Σ = R⁻ᵀR⁻¹, μ = R⁻ᵀ(R⁻¹h₁)
        if torch_mode:
            eye = torch.eye(d, dtype=h.dtype, device=h.device).expand(chol.shape)
            rinv = torch.linalg.solve_triangular(chol, eye, upper=False)
        else:
            rinv = np.linalg.solve(chol, np.broadcast_to(np.eye(d), chol.shape))
        sigma = xp.einsum("...ki,...kj->...ij", rinv, rinv)
        mu = xp.einsum("...ki,...k->...i", rinv, xp.einsum("...kj,...j->...k", rinv, h1))
    if quantity == "log_partition":
        return 0.5 * (h1 * mu).sum(-1) - diag_log
    scale = [1.0 if i == j else 2.0 for i, j in pairs]
    if quantity == "eta":
        second = [scale[k] * (mu[..., i] * mu[..., j] + sigma[..., i, j])
                  for k, (i, j) in enumerate(pairs)]
        return xp.concatenate([mu, xp.stack(second, -1)], -1)
    # the centred statistic is s_a = l_aᵀz + zᵀM_a z − tr(M_aΣ), z = y − μ ~ N(0, Σ): its
    # cumulants are those of the cumulant generating function
    #   K(θ) = −½ log det(I − 2MΣ) + ½ lᵀ(Σ⁻¹ − 2M)⁻¹l − tr(MΣ),  l = Σθ_a l_a, M = Σθ_a M_a,
    # i.e. κ_n = 2ⁿ⁻¹/n Σ_σ tr(Π M_σΣ) + 2ⁿ⁻³ Σ_σ l_σ₁ᵀΣ(M_σ₂Σ)…Σl_σₙ over the orderings σ:
    # sums of products, so an entry that is 0 (κ₄ of y alone) comes out as an exact 0
    m_np, g_np = _quadratic_forms(d)
    m_const: Any
    g_const: Any
    l0: Any
    if torch_mode:
        m_const = torch.as_tensor(m_np, dtype=h.dtype, device=h.device)
        g_const = torch.as_tensor(g_np, dtype=h.dtype, device=h.device)
        l0 = torch.cat([torch.eye(d, dtype=h.dtype, device=h.device),
                        torch.zeros(len(pairs), d, dtype=h.dtype, device=h.device)], 0)
    else:
        m_const, g_const = m_np, g_np
        l0 = np.concatenate([np.eye(d), np.zeros((len(pairs), d))], 0)
    lin = l0 + xp.einsum("amn,...n->...am", g_const, mu)  # l_a (..., dim, d)
    sl = xp.einsum("...mn,...an->...am", sigma, lin)  # Σl_a
    a_mat = xp.einsum("amn,...np->...amp", m_const, sigma)  # M_aΣ
    i2 = (xp.einsum("...am,...bm->...ab", lin, sl)
          + 2.0 * xp.einsum("...amn,...bnm->...ab", a_mat, a_mat))
    if quantity == "fisher":
        return i2
    if quantity == "kappa3":
        trace3 = xp.einsum("...amn,...bnp,...cpm->...abc", a_mat, a_mat, a_mat)
        chain3 = xp.einsum("...xm,ymn,...zn->...xyz", sl, m_const, sl)
        return (4.0 / 3.0) * _orderings(xp, trace3, 3) + _orderings(xp, chain3, 3)
    trace4 = xp.einsum("...amn,...bnp,...cpq,...dqm->...abcd", a_mat, a_mat, a_mat, a_mat)
    chain4 = xp.einsum("...wm,xmn,...np,ypq,...zq->...wxyz", sl, m_const, sigma, m_const, sl)
    k4 = 2.0 * _orderings(xp, trace4, 4) + 2.0 * _orderings(xp, chain4, 4)
    if quantity == "kappa4":
        return k4
    return (k4 + xp.einsum("...ab,...cd->...abcd", i2, i2)
            + xp.einsum("...ac,...bd->...abcd", i2, i2) + xp.einsum("...ad,...bc->...abcd", i2, i2))


def _adjugate(xp: Any, m: Any, d: int) -> tuple[Any, Any]:
    """adj(m) (..., d, d) and det(m) (...) of a symmetric m, d ≤ 3, by cofactors."""
    if d == 1:
        return xp.ones_like(m), m[..., 0, 0]

    def minor(i: int, j: int) -> Any:
        rows = [r for r in range(d) if r != i]
        cols = [c for c in range(d) if c != j]
        if d == 2:
            return m[..., rows[0], cols[0]]
        return (m[..., rows[0], cols[0]] * m[..., rows[1], cols[1]]
                - m[..., rows[0], cols[1]] * m[..., rows[1], cols[0]])

    cof = [[(-1) ** (i + j) * minor(i, j) for j in range(d)] for i in range(d)]
    adj = xp.stack([xp.stack([cof[j][i] for j in range(d)], -1) for i in range(d)], -2)
    det = sum(m[..., 0, j] * cof[0][j] for j in range(d))
    return adj, det


def _quadratic_forms(d: int) -> tuple[np.ndarray, np.ndarray]:
    """M (dim, d, d) and G (dim, d, d) with s_a = (l⁰_a + G_aμ)ᵀz + zᵀM_a z − tr(M_aΣ): for the
    pair (i, j) with weight c (1 on the diagonal, 2 off it), c(μ_i z_j + μ_j z_i + z_i z_j − Σ_ij)."""
    pairs = _pairs(d)
    m = np.zeros((d + len(pairs), d, d))
    g = np.zeros((d + len(pairs), d, d))
    for k, (i, j) in enumerate(pairs):
        c = 1.0 if i == j else 2.0
        m[d + k, i, j] += c / 2
        m[d + k, j, i] += c / 2
        g[d + k, j, i] += c
        g[d + k, i, j] += c
    return m, g


def _orderings(xp: Any, tensor: Any, order: int) -> Any:
    """Σ over every ordering σ of the last ``order`` axes of ``tensor``."""
    letters = "abcd"[:order]
    return sum(xp.einsum(f"...{''.join(p)}->...{letters}", tensor)
               for p in itertools.permutations(letters))
