"""Normal families with a learned covariance (issue 18): the full covariance and the isotropic
normal, and GaussianNLLLoss with one variance shared by every mean.

Independent routes: a tensor Gauss–Hermite rule written here, in the eigenvector coordinates
of Σ = Λ⁻¹ from ``numpy.linalg.eigh`` (the family uses a Cholesky factor), exact for the
polynomials in y the moments of t are; the symbolic kernels evaluated in mpmath at 80 digits;
the family's own density (``moment_mp``); torch's autograd of ``nn.GaussianNLLLoss`` itself.
"""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest
import torch
import torch.nn as nn

import fisher_verify as fv
from fisher_verify._src.families.losses import head_for_loss, loss_by_name
from fisher_verify._src.families.normal_covariance import MAX_COVARIANCE_DIM
from fisher_verify._src.families.registry import family_examples
from fisher_verify._src.testing.calibrated import assert_mean_matches, bonferroni
from fisher_verify.errors import DomainError, ParameterError, ShapeError, UnsupportedError

FULL = "multivariate_normal_unknown_covariance"
EPS = np.finfo(float).eps


def _natural(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """h = (Λμ, the upper triangle of −½Λ), Λ = Σ⁻¹: the convention stated in the module."""
    lam = np.linalg.inv(sigma)
    d = len(mu)
    return np.array([*(lam @ mu), *[-0.5 * lam[i, j] for i in range(d) for j in range(i, d)]])


def _rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def _gh_moments(mu: np.ndarray, sigma: np.ndarray, stat) -> tuple[np.ndarray, ...]:
    """η, Cov t, E(t−η)^⊗3, E(t−η)^⊗4 by a tensor Gauss–Hermite rule (7 nodes per axis: exact
    to degree 13 in y) in Σ's eigenvector coordinates, y = μ + V √(2 diag ev) x."""
    d = len(mu)
    ev, vec = np.linalg.eigh(sigma)
    x, w = np.polynomial.hermite.hermgauss(7)
    grid = np.array(list(itertools.product(x, repeat=d)))
    weights = np.prod(np.array(list(itertools.product(w, repeat=d))), -1) / math.pi ** (d / 2)
    y = mu + (grid * np.sqrt(2 * ev)) @ vec.T
    t = stat(y)
    eta = weights @ t
    s = t - eta
    return (eta, np.einsum("s,sa,sb->ab", weights, s, s),
            np.einsum("s,sa,sb,sc->abc", weights, s, s, s),
            np.einsum("s,sa,sb,sc,sd->abcd", weights, s, s, s, s))


def _full_stat(y: np.ndarray) -> np.ndarray:
    d = y.shape[-1]
    second = [y[:, i] * y[:, j] * (1 if i == j else 2) for i in range(d) for j in range(i, d)]
    return np.column_stack([y, *second])


def _iso_stat(y: np.ndarray) -> np.ndarray:
    return np.column_stack([y, np.sum(y**2, -1)])


def _pairings(i2: np.ndarray) -> np.ndarray:
    return (np.einsum("ab,cd->abcd", i2, i2) + np.einsum("ac,bd->abcd", i2, i2)
            + np.einsum("ad,bc->abcd", i2, i2))


def _check_against(fam, h, ref, rtol) -> None:
    eta, i2, m3, m4 = ref
    for backend in ("numpy", "torch"):
        hv = torch.tensor(h[None]) if backend == "torch" else h[None]
        got = {q: np.asarray(getattr(fam, q)(hv)[0], dtype=float)
               for q in ("mean", "fisher", "kappa3", "kappa4", "central_moment4")}
        scale4 = max(np.max(np.abs(m4)), np.max(np.abs(i2)) ** 2)
        np.testing.assert_allclose(got["mean"], eta, rtol=0, atol=rtol * np.max(np.abs(eta)))
        np.testing.assert_allclose(got["fisher"], i2, rtol=0, atol=rtol * np.max(np.abs(i2)))
        np.testing.assert_allclose(got["kappa3"], m3, rtol=0,
                                   atol=rtol * math.sqrt(np.max(np.abs(i2)) * np.max(np.abs(m4))))
        np.testing.assert_allclose(got["central_moment4"], m4, rtol=0, atol=rtol * scale4)
        np.testing.assert_allclose(got["kappa4"], m4 - _pairings(i2), rtol=0, atol=rtol * scale4)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_full_covariance_cumulants_against_gauss_hermite(d: int) -> None:
    """η, I, κ₃, κ₄ and K against a Gauss–Hermite rule in Σ's eigenvectors, with a correlated Σ."""
    fam = fv.family(FULL, D=d)
    q = _rotation(d, d)
    sigma = q @ np.diag(np.linspace(0.5, 2.0, d)) @ q.T
    mu = np.linspace(-0.7, 1.1, d)
    h = _natural(mu, sigma)
    _check_against(fam, h, _gh_moments(mu, sigma, _full_stat), 1e-12)
    # F(h) = ½ μᵀΛμ + ½ log det Σ (the normalizer of the density with b = (2π)^{-D/2})
    want = 0.5 * mu @ np.linalg.solve(sigma, mu) + 0.5 * math.log(np.linalg.det(sigma))
    np.testing.assert_allclose(fam.log_partition(h[None])[0], want, rtol=1e-13)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_isotropic_cumulants_against_gauss_hermite(d: int) -> None:
    fam = fv.family("isotropic_normal", D=d)
    mu, var = np.linspace(-0.7, 1.1, d), 0.8
    h = np.array([*(mu / var), -0.5 / var])
    _check_against(fam, h, _gh_moments(mu, var * np.eye(d), _iso_stat), 1e-12)


def test_off_diagonal_statistic_is_counted_twice() -> None:
    """t = (y, y₀², 2y₀y₁, y₁²) and tᵀh = h₁ᵀy + yᵀH₂y: the density integrates to 1 at F."""
    fam = fv.family(FULL, D=2)
    y = np.array([[0.5, -2.0]])
    np.testing.assert_allclose(fam.statistic(y)[0], [0.5, -2.0, 0.25, -2.0, 4.0], rtol=0, atol=0)
    sigma = np.array([[1.5, 0.4], [0.4, 0.7]])
    mu = np.array([0.3, -0.2])
    h = _natural(mu, sigma)
    r = y[0] - mu
    want = (-0.5 * r @ np.linalg.solve(sigma, r) - math.log(2 * math.pi)
            - 0.5 * math.log(np.linalg.det(sigma)))
    np.testing.assert_allclose(fam.log_density(y, h)[0], want, rtol=1e-13)


@pytest.mark.parametrize(("name", "d"), [(FULL, 2), ("isotropic_normal", 2)])
def test_kernels_against_mpmath_and_the_density(name: str, d: int) -> None:
    """The float kernels against the symbolic derivation at 80 digits, and that against the
    covariance of t from the family's own density (closed-form Gaussian integrals)."""
    fam = fv.family(name, D=d)
    h = np.array(dict(family_examples())[name].point)
    for q in ("log_partition", "eta", "fisher", "kappa3", "kappa4", "central_moment4"):
        got = getattr(fam, "mean" if q == "eta" else q)(h[None])[0]
        with mpmath.workdps(80):
            ref = fam.kernel(q, "mpmath")([mpmath.mpf(float(v)) for v in h])
        ref = np.array([float(v) for v in np.ravel(ref)], dtype=float)
        np.testing.assert_allclose(np.ravel(got), ref, rtol=0, atol=4e-15 * max(1, np.max(np.abs(ref))))
    with mpmath.workdps(30):
        hm = [mpmath.mpf(float(v)) for v in h]
        fisher = fam.kernel("fisher", "mpmath")(hm)
        for a, b in itertools.combinations_with_replacement(range(fam.dim), 2):
            powers = [0] * fam.dim
            powers[a] += 1
            powers[b] += 1
            assert abs(fam.moment_mp(tuple(powers), hm) - fisher[a, b]) < mpmath.mpf(10) ** -25


@pytest.mark.parametrize("d", [2, 3])
def test_ill_conditioned_covariance(d: int) -> None:
    """Σ of condition number 10⁸: axis-aligned, every quantity to 1e-12 of its scale; rotated,
    to 8·cond·ε, the conditioning of h ↦ (μ, Σ) itself (a backward-stable solve cannot do
    better from float64 h; measured ≤ 1.3·cond·ε). F's rational derivatives printed as kernels
    lost every digit there (η off by 0.14 of its size at D = 2)."""
    fam = fv.family(FULL, D=d)
    mu = np.linspace(0.5, -1.0, d)
    for rotated in (False, True):
        q = _rotation(d, 1) if rotated else np.eye(d)
        for ends in ((1e4, 1e-4), (1e-3, 1e-11), (1.0, 1e-8)):
            sigma = q @ np.diag(np.geomspace(*ends, d)) @ q.T
            h = _natural(mu, sigma)
            lam = np.linalg.inv(sigma)
            cond = np.linalg.cond(lam)
            assert 0.9e8 < cond < 1.1e8
            bound = 8 * cond * EPS if rotated else 1e-12
            for q_name in ("log_partition", "eta", "fisher", "kappa3", "kappa4",
                           "central_moment4"):
                got = getattr(fam, "mean" if q_name == "eta" else q_name)(h[None])[0]
                with mpmath.workdps(80):
                    ref = fam.kernel(q_name, "mpmath")([mpmath.mpf(float(v)) for v in h])
                ref = np.array([float(v) for v in np.ravel(ref)], dtype=float)
                assert np.all(np.isfinite(got))
                err = np.max(np.abs(np.ravel(got) - ref)) / np.max(np.abs(ref))
                assert err <= bound, (rotated, ends, q_name, err, bound)


def test_sampler_moments_calibrated() -> None:
    """Sample means of t and of (t − η)² against η and I, variances from I and K exactly, at a
    false-alarm rate of 1e-6 for each family (Bonferroni over its checks)."""
    rng = np.random.default_rng(20261202)
    q = _rotation(3, 5)
    sigma = q @ np.diag([0.3, 1.0, 2.5]) @ q.T
    cases = [(fv.family(FULL, D=3), _natural(np.array([0.4, -0.3, 1.0]), sigma)),
             (fv.family("isotropic_normal", D=3), np.array([0.5, -0.2, 0.1, -0.7]))]
    for fam, h in cases:
        t = fam.sample_statistic(h, 40_000, rng)
        eta, fisher, k4 = fam.mean(h), fam.fisher(h), fam.central_moment4(h)
        alpha = bonferroni(1e-6, 2 * fam.dim)
        for a in range(fam.dim):
            assert_mean_matches(t[:, a], eta[a], fisher[a, a], alpha=alpha,
                                what=f"{fam.label} E[t_{a}]")
            assert_mean_matches((t[:, a] - eta[a]) ** 2, fisher[a, a],
                                k4[a, a, a, a] - fisher[a, a] ** 2, alpha=alpha,
                                what=f"{fam.label} E[(t_{a} − η)²]")
        # the off-diagonal moments too: E[(t_a − η_a)(t_b − η_b)] = I_ab
        a, b = 0, fam.dim - 1
        prod = (t[:, a] - eta[a]) * (t[:, b] - eta[b])
        var = k4[a, a, b, b] - fisher[a, b] ** 2
        assert_mean_matches(prod, fisher[a, b], var, alpha=1e-6, what=f"{fam.label} I_0,last")


def test_bad_parameters_and_points_are_refused_by_name() -> None:
    for bad in (0, MAX_COVARIANCE_DIM + 1, 2.0, True, "2"):
        with pytest.raises(ParameterError, match=rf"parameter D={bad!r} is invalid.*from 1 to "
                                                 rf"{MAX_COVARIANCE_DIM}"):
            fv.family(FULL, D=bad)
    with pytest.raises(ParameterError, match="D=8 is invalid"):
        fv.family("isotropic_normal", D=8)
    fam = fv.family(FULL, D=2)
    # diagonal negative, but h01² > h00·h11: −H₂ indefinite
    with pytest.raises(DomainError, match=r"batch index \(1,\).*not positive definite"):
        fam.mean(np.array([[0.1, 0.2, -1.0, 0.5, -1.0], [0.1, 0.2, -1.0, 1.5, -1.0]]))
    with pytest.raises(DomainError, match=r"component 4 \(h11\) must be < 0"):
        fam.fisher(np.array([0.1, 0.2, -1.0, 0.0, 0.5]))
    with pytest.raises(ShapeError, match="last axis of size 5"):
        fam.fisher(np.zeros(4))
    with pytest.raises(DomainError, match="not positive definite"):
        fam.sample(np.array([0.0, 0.0, -1.0, 1.0, -1.0]), 3, np.random.default_rng(0))
    # exactly on the boundary (singular −H₂) is refused, within 1 ulp inside is accepted
    fam.check_natural(np.array([0.0, 0.0, -1.0, np.nextafter(1.0, 0.0), -1.0]))
    with pytest.raises(DomainError):
        fam.check_natural(np.array([0.0, 0.0, -1.0, 1.0, -1.0]))
    iso = fv.family("isotropic_normal", D=2)
    with pytest.raises(DomainError, match=r"component 2 \(h2\) must be < 0"):
        iso.mean(np.array([0.0, 0.0, 0.0]))


# --- GaussianNLLLoss with one variance shared by every mean --------------------------------------


def _shared_cases():
    return [
        (fv.shared_variance_gaussian_nll_loss(reduction="sum"), 3),
        (fv.shared_variance_gaussian_nll_loss(full=True, eps=1e-3, reduction="sum"), 5),
        (fv.shared_variance_gaussian_nll_loss(reduction="sum"), 2),
        (fv.shared_variance_gaussian_nll_loss(full=True, eps=1e-2, reduction="sum"), 4),
    ]


@pytest.mark.parametrize("index", range(4))
def test_shared_variance_loss_score_and_hessian_against_autograd(index: int) -> None:
    """−∂loss/∂f = g′ᵀ(t − η) and ∂²loss/∂f² = g′ᵀ I g′ − Σ_k (t − η)_k g″_k, with torch's
    own GaussianNLLLoss(mean, y, var of shape (N, 1)) differentiated by autograd."""
    loss, n = _shared_cases()[index]
    head = head_for_loss(loss, n)
    assert head.family.label == f"isotropic_normal(D={n - 1})"
    assert head.link.name == "mean-shared-var" and head.link.unit.lower[-1] == loss.eps
    rng = np.random.default_rng(index)
    d = n - 1
    f = np.concatenate([rng.normal(size=(5, d)), rng.uniform(0.3, 2.0, size=(5, 1))], 1)
    y = rng.normal(size=(5, d))
    L, fam = head.link, head.family
    h = L.natural(f)
    r = fam.statistic(y) - fam.mean(h)
    gp, gpp, i2 = L.jacobian(f), L.hessian(f), fam.fisher(h)
    yt = torch.tensor(y)
    ft = torch.tensor(f, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(ft[:, :-1], yt, ft[:, -1:]), ft)
    np.testing.assert_allclose(-grad.numpy(), np.einsum("ma,mab->mb", r, gp), rtol=1e-12,
                               atol=1e-12)
    for m in range(5):
        hess = torch.autograd.functional.hessian(
            lambda v, m=m: loss(v[None, :-1], yt[m:m + 1], v[None, -1:]), torch.tensor(f[m]))
        want = gp[m].T @ i2[m] @ gp[m] - np.einsum("a,abc->bc", r[m], gpp[m])
        np.testing.assert_allclose(hess.numpy(), want, rtol=1e-11, atol=1e-12)


def test_shared_variance_loss_refusals_and_names() -> None:
    with pytest.raises(DomainError, match="σ² = 0.0005"):
        head_for_loss(fv.shared_variance_gaussian_nll_loss(eps=1e-3), 3).link.natural(np.array([0.0, 0.0, 5e-4]))
    with pytest.raises(ShapeError, match="at least 2 outputs"):
        head_for_loss(nn.GaussianNLLLoss(), 1)
    with pytest.raises(UnsupportedError, match="isotropic_normal\\(D=8\\).*D <= 7"):
        head_for_loss(fv.shared_variance_gaussian_nll_loss(), 9)
    with pytest.raises(ShapeError, match="odd width.*shared_variance_gaussian_nll_loss"):
        head_for_loss(nn.GaussianNLLLoss(), 9)
    # an even width is pairs for the plain loss, one shared variance for the marked one
    assert head_for_loss(nn.GaussianNLLLoss(), 4).family.label.startswith("product(")
    assert loss_by_name("gaussian-nll-shared", 4).family.label == "isotropic_normal(D=3)"
    with pytest.raises(fv.FisherVerifyError, match="eps must be a finite number"):
        fv.shared_variance_gaussian_nll_loss(eps=-1.0)
    with pytest.raises(ParameterError, match="option D=0"):
        fv.link("mean-shared-var", D=0)


def test_exact_fisher_of_a_shared_variance_head_against_gauss_hermite() -> None:
    """fv.exact_fisher(model, data, family=shared_variance_gaussian_nll_loss()) of a head with 2 means and one
    variance equals E_y[∇ℓ ∇ℓᵀ] averaged over inputs (eq-6), ℓ torch's GaussianNLLLoss and the
    expectation over y ~ N(μ, σ²I) by Gauss–Hermite (exact: the score is quadratic in y)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 3)).double()
    with torch.no_grad():
        model[2].bias[2] = 2.0
    X = torch.randn(3, 2, dtype=torch.float64)
    Y = torch.randn(3, 2, dtype=torch.float64)
    loss = nn.GaussianNLLLoss(reduction="sum")
    got = np.asarray(fv.exact_fisher(model, (X, Y),
                                     family=fv.shared_variance_gaussian_nll_loss(reduction="sum")))
    params = list(model.parameters())
    x, w = np.polynomial.hermite.hermgauss(4)
    want = np.zeros_like(got)
    for m in range(3):
        out = model(X[m:m + 1])[0].detach().numpy()
        mu, var = out[:2], out[2]
        for (i, xa), (j, xb) in itertools.product(enumerate(x), repeat=2):
            y = torch.tensor(mu + math.sqrt(2 * var) * np.array([xa, xb]))[None]
            o = model(X[m:m + 1])
            grads = torch.autograd.grad(loss(o[:, :2], y, o[:, 2:]), params)
            g = torch.cat([v.reshape(-1) for v in grads]).numpy()
            want += w[i] * w[j] / math.pi * np.outer(g, g) / 3
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.max(np.abs(want)))


@pytest.mark.parametrize(("name", "d"), [(FULL, 2), (FULL, 3), ("isotropic_normal", 3)])
def test_exact_expectation_route_against_gauss_hermite(name: str, d: int) -> None:
    """The family's own Gauss rule (Cholesky-whitened nodes, the exact-expectation route that
    the gate and `expect` use) reproduces the moments of t up to order 4 of the rule written
    here in Σ's eigenvectors: the weights sum to 1 and every moment agrees to 1e-12."""
    fam = fv.family(name, D=d)
    q = _rotation(d, 11)
    mu = np.linspace(0.9, -0.4, d)
    if name == FULL:
        sigma = q @ np.diag(np.linspace(0.4, 1.7, d)) @ q.T
        h, stat = _natural(mu, sigma), _full_stat
    else:
        sigma, stat = 0.6 * np.eye(d), _iso_stat
        h = np.array([*(mu / 0.6), -0.5 / 0.6])
    eta, i2, m3, m4 = _gh_moments(mu, sigma, stat)
    t, w, bound = fam.expectation_nodes(h[None], degree=4)
    t, w = t[0], w[0]
    assert bound == 0.0
    np.testing.assert_allclose(np.sum(w), 1.0, rtol=0, atol=1e-14)
    s = t - eta
    scale = max(np.max(np.abs(m4)), np.max(np.abs(i2)) ** 2)
    np.testing.assert_allclose(w @ t, eta, rtol=0, atol=1e-13 * np.max(np.abs(eta)))
    np.testing.assert_allclose(np.einsum("s,sa,sb->ab", w, s, s), i2, rtol=0,
                               atol=1e-12 * np.max(np.abs(i2)))
    np.testing.assert_allclose(np.einsum("s,sa,sb,sc,sd->abcd", w, s, s, s, s), m4, rtol=0,
                               atol=1e-12 * scale)


class _SharedHead(nn.Module):
    """Two means and one variance σ² = softplus + 0.2 (the last output)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([z[:, :2], nn.functional.softplus(z[:, 2:]) + 0.2], -1)


def test_gate_accepts_the_shared_variance_loss() -> None:
    """The gate with family=shared_variance_gaussian_nll_loss() on a head of 2 means and one shared variance:
    the diagonal of the model-label Gauss–Newton split at the head's output passes, the same
    with the data's labels is named "the GGN of a non-canonical head"."""
    from torch.func import functional_call, hessian, jacrev

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 3), _SharedHead()).double()
    X = torch.randn(4, 2, dtype=torch.float64)
    Y = torch.randn(4, 2, dtype=torch.float64)
    loss = nn.GaussianNLLLoss(reduction="sum")

    def ggn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        params = {k: v.detach() for k, v in model.named_parameters()}
        jd = jacrev(lambda p: functional_call(model, p, (x,)))(params)
        jac = torch.cat([jd[k].reshape(x.shape[0], 3, -1) for k in params], -1)
        f = model(x).detach()
        out = torch.zeros(jac.shape[-1], dtype=torch.float64)
        for m in range(x.shape[0]):
            hf = hessian(lambda v, m=m: loss(v[None, :2], y[m:m + 1], v[None, 2:]))(f[m])
            out += torch.einsum("ap,ab,bp->p", jac[m], hf, jac[m])
        return out / x.shape[0]

    def data_labels(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return ggn(model, *data)

    def model_labels(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = data[0]
        f = model(x).detach()
        y = f[:, :2] + f[:, 2:].sqrt() * torch.randn(x.shape[0], 2, dtype=torch.float64)
        return ggn(model, x, y)

    shared = fv.shared_variance_gaussian_nll_loss()
    bad = fv.check_estimator(data_labels, model, (X, Y), family=shared, replications=40)
    assert not bad.passed and bad.cause == "ggn_noncanonical"
    assert "mean-shared-var" in bad.diagnosis
    good = fv.check_estimator(model_labels, model, (X, Y), family=shared, replications=40)
    assert good.passed, good.message()


def test_a_network_moved_into_the_domain() -> None:
    """Network.into_domain moves only H₂'s diagonal, to −margin − Σ|h_ij| or below: −H₂ is then
    diagonally dominant, so positive definite at every input (a shift of every output by the
    same amount, the default, left Λ = [[1, 1], [1, 1]] in the report's tightness sweep)."""
    fam = fv.family(FULL, D=2)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 3))
    for _ in range(5):
        net = fv.Network.random([3, 4, 5], "tanh", fam, 2.0, rng).into_domain(x)
        h = net.forward(x)
        fam.check_natural(h)
        lam = -2 * np.stack([np.stack([h[:, 2], h[:, 3]], -1), np.stack([h[:, 3], h[:, 4]], -1)], -2)
        off = np.abs(lam[:, 0, 1])
        assert np.all(lam[:, 0, 0] - off >= 2 * 0.5 - 1e-12)
        assert np.all(lam[:, 1, 1] - off >= 2 * 0.5 - 1e-12)
    shift = fam.domain_shift(np.array([[0.0, 0.0, -1.0, 1.0, -1.0]]), 0.5)
    np.testing.assert_array_equal(shift, [0.0, 0.0, 0.5, 0.0, 0.5])


@pytest.mark.parametrize(("name", "d", "method"), [("isotropic_normal", 2, "symbolic"),
                                                   (FULL, 1, "symbolic")])
def test_identities_proved_against_the_density(name: str, d: int, method: str) -> None:
    """log-partition, stable kernels, lemma-2 and lemma-5 against the family's own density
    (closed-form Gaussian integrals, axis by axis). The full covariance at D = 2 goes to mpmath
    at 40 digits (SymPy cannot sign the second axis's coefficient): 60 s, in the thorough
    profile's lemma-2 and lemma-5."""
    from fisher_verify._src.identities.prove import prove_family

    results = {r.statement_id: r for r in prove_family(fv.family(name, D=d), seconds=5)}
    assert {"log-partition", "stable-kernels", "lemma-2", "lemma-5"} <= set(results)
    for r in results.values():
        assert r.holds and r.method == method, (r.statement_id, r.method, r.detail)
