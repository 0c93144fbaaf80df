"""Link layers ``h = g(f)`` and the losses whose heads need them (``ext-links``, issue 18).

Independent routes: torch autograd of each link's torch kernel (``g′``, ``g″`` against the
SymPy derivatives printed for NumPy), torch autograd of each ``torch.nn`` loss module with respect
to the head's output ``f`` (the score ``g′ᵀ(t − η)`` and the Hessian ``g′ᵀ I g′ − Σ (t − η)_k
g″_k``), the composite network's Hessians by ``torch.func``, and models whose link undoes their
last layer (``BCELoss`` after ``Sigmoid`` is ``BCEWithLogitsLoss`` before it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.func import functional_call, hessian, jacrev

import fisher_verify as fv
from fisher_verify._src.families.links import LINKS, link
from fisher_verify._src.families.losses import LOSS_NAMES, head_for_loss, loss_by_name
from fisher_verify.errors import DomainError, ParameterError, ShapeError, UnsupportedError

RTOL = 1e-11


def _inside(name: str, f: np.ndarray, n_units: int) -> np.ndarray:
    """Random head outputs moved into the link's domain."""
    f = f.copy()
    if name == "logit":
        f = 1.0 / (1.0 + np.exp(-f))
    elif name == "rate":
        f = np.exp(f)
    elif name in ("mean-var", "mean-shared-var"):  # (its default D = 1: one mean per σ²)
        f[..., n_units:] = np.exp(f[..., n_units:])
    return f


@pytest.mark.parametrize("name", list(LINKS))
@pytest.mark.parametrize("layout", ["chunked", "interleaved"])
def test_link_derivatives_against_autograd(name: str, layout: str) -> None:
    L = link(name, 2, layout=layout)
    rng = np.random.default_rng(len(name))
    f = _inside(name, rng.normal(size=(3, L.n)), 2)
    if layout == "interleaved" and name in ("mean-var", "mean-shared-var"):  # σ² at odd places
        f = rng.normal(size=(3, L.n))
        f[:, 1::2] = np.exp(f[:, 1::2])
    h = L.natural(f)
    J, H = L.jacobian(f), L.hessian(f)
    for m in range(f.shape[0]):
        ft = torch.tensor(f[m])
        np.testing.assert_allclose(L.natural_torch(ft).numpy(), h[m], rtol=RTOL)
        Jt = torch.autograd.functional.jacobian(L.natural_torch, ft).numpy()
        np.testing.assert_allclose(J[m], Jt, rtol=1e-10, atol=1e-12 * np.max(np.abs(Jt)))
        for k in range(L.n):
            Ht = torch.autograd.functional.hessian(lambda v, k=k: L.natural_torch(v)[k], ft).numpy()
            np.testing.assert_allclose(H[m, k], Ht, rtol=1e-9,
                                       atol=1e-11 * max(1.0, float(np.max(np.abs(J[m]))) ** 2))
        mp = [float(v) for v in L.natural_mp(list(f[m]))]
        np.testing.assert_allclose(mp, h[m], rtol=1e-14)
    np.testing.assert_allclose(L.head_of(h), f, rtol=1e-12, atol=1e-14)


def test_layout_places_units() -> None:
    """chunked: ``mean, var = out.chunk(2, -1)``; interleaved: ``(μ₁, σ₁², μ₂, σ₂²)``; h in the
    product's block order either way."""
    f = np.array([0.5, -1.0, 2.0, 4.0])
    chunked = link("mean-var", 2).natural(f)
    np.testing.assert_allclose(chunked, [0.5 / 2.0, -1 / 4.0, -1.0 / 4.0, -1 / 8.0])
    inter = link("mean-var", 2, layout="interleaved").natural(np.array([0.5, 2.0, -1.0, 4.0]))
    np.testing.assert_allclose(inter, chunked)


def test_link_refusals() -> None:
    with pytest.raises(DomainError, match=r"p = 1\.2 is outside the domain of the link logit"):
        link("logit").natural(np.array([1.2]))
    with pytest.raises(DomainError, match="σ² = 0 is outside"):
        link("mean-var").natural(np.array([0.3, 0.0]))
    with pytest.raises(DomainError, match="λ = -0.5"):
        link("rate", eps=0.2).natural(np.array([-0.5]))
    assert np.isfinite(link("rate", eps=0.2).natural(np.array([-0.1]))).all()  # λ + eps > 0
    with pytest.raises(ShapeError, match="last axis of size 2"):
        link("mean-var").natural(np.zeros(3))
    with pytest.raises(ParameterError, match="unknown link 'probit'; known links: logit"):
        link("probit")
    with pytest.raises(ParameterError, match="no option eps; its options: lower"):
        link("logit", eps=1.0)
    with pytest.raises(ParameterError, match="layout must be"):
        link("logit", layout="rows")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="gamma, exponential"):
        link("exp-rate", family=fv.family("poisson"))
    with pytest.raises(ParameterError, match="lower=1.5 must be a finite number >= 0 and < 1"):
        link("logit", lower=1.5)
    assert link("exp-rate", family=fv.family("exponential")).family.label == "exponential"


# --- the losses ---------------------------------------------------------------------------------


def _loss_cases() -> list[tuple[str, nn.Module, int]]:
    return [
        ("bce", nn.BCELoss(reduction="sum"), 1),
        ("bce", nn.BCELoss(reduction="sum"), 3),
        ("poisson", nn.PoissonNLLLoss(log_input=False, reduction="sum"), 2),
        ("poisson eps", nn.PoissonNLLLoss(log_input=False, eps=0.5, full=True, reduction="sum"), 1),
        ("gauss", nn.GaussianNLLLoss(reduction="sum"), 2),
        ("gauss full", nn.GaussianNLLLoss(full=True, eps=1e-3, reduction="sum"), 4),
    ]


def _call(loss: nn.Module, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if isinstance(loss, nn.GaussianNLLLoss):
        mean, var = f.chunk(2, -1)
        return loss(mean, y, var)
    return loss(f, y)


def _draw(what: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Head outputs in the link's domain and labels, for 5 inputs."""
    if what.startswith("bce"):
        return rng.uniform(0.05, 0.95, size=(5, n)), rng.integers(0, 2, size=(5, n)).astype(float)
    if what.startswith("poisson"):
        return rng.uniform(0.2, 3.0, size=(5, n)), rng.poisson(1.5, size=(5, n)).astype(float)
    f = np.concatenate([rng.normal(size=(5, n // 2)), rng.uniform(0.3, 2.0, size=(5, n // 2))], 1)
    return f, rng.normal(size=(5, n // 2))


@pytest.mark.parametrize("index", range(6))
def test_loss_score_and_hessian_in_f_against_autograd(index: int) -> None:
    what, loss, n = _loss_cases()[index]
    head = head_for_loss(loss, n)
    assert head.link is not None and head.family.dim == n
    rng = np.random.default_rng(index)
    f, y = _draw(what, n, rng)
    L, fam = head.link, head.family
    h = L.natural(f)
    t = fam.statistic(y).reshape(5, n)
    r = t - fam.mean(h)
    gp, gpp, I = L.jacobian(f), L.hessian(f), fam.fisher(h)
    yt = torch.tensor(y)
    ft = torch.tensor(f, requires_grad=True)
    (grad,) = torch.autograd.grad(_call(loss, ft, yt), ft)
    # −∂loss/∂f = g′ᵀ (t(y) − η(h)): the chain rule through the link
    np.testing.assert_allclose(-grad.numpy(), np.einsum("mkj,mk->mj", gp, r), rtol=1e-10,
                               atol=1e-12)
    for m in range(5):
        Hf = hessian(lambda v, m=m: _call(loss, v[None], yt[m:m + 1]))(torch.tensor(f[m])).numpy()
        fisher_part = gp[m].T @ I[m] @ gp[m]
        residual_part = np.einsum("k,kij->ij", r[m], gpp[m])
        # the two parts cancel at some labels (a zero count): judged at their own size
        size = max(np.max(np.abs(fisher_part)), np.max(np.abs(residual_part)))
        np.testing.assert_allclose(Hf, fisher_part - residual_part, rtol=1e-9, atol=1e-12 * size)
    # the loss is −log p(y | g(f)) up to a term in y: differences between two heads agree
    f2 = _draw(what, n, rng)[0]
    v1 = float(_call(loss, torch.tensor(f), yt))
    v2 = float(_call(loss, torch.tensor(f2), yt))
    ll = [float(np.sum(np.sum(t * L.natural(ff), -1) - fam.log_partition(L.natural(ff))))
          for ff in (f, f2)]
    assert abs((v2 - v1) + (ll[1] - ll[0])) <= 1e-10 * (1 + abs(v1) + abs(v2))


def test_loss_domains_are_where_the_loss_is_the_loglik() -> None:
    """BCELoss clamps log p at −100 and GaussianNLLLoss clamps σ² at eps: below, refused."""
    bce = head_for_loss(nn.BCELoss(), 1).link
    assert bce.unit.lower[0] == math.exp(-100.0)
    with pytest.raises(DomainError, match="p = 1e-50"):
        bce.natural(np.array([1e-50]))
    gauss = head_for_loss(nn.GaussianNLLLoss(eps=1e-3), 2).link
    with pytest.raises(DomainError, match="σ² = 0.0005"):
        gauss.natural(np.array([0.0, 5e-4]))
    assert head_for_loss(nn.PoissonNLLLoss(log_input=False, eps=0.25), 1).link.unit.lower[0] == -0.25


def test_mse_with_and_without_the_half() -> None:
    """``mse`` is nn.MSELoss, ``(y − f)²``: normal(σ=√2); ``half-mse`` is ``½(y − f)²``:
    normal(σ=1); checked by autograd: −∂loss/∂f = t(y) − η(f) of each family, y read as
    t(y)/σ² ... i.e. the score of normal(σ) at label σ²y."""
    rng = np.random.default_rng(7)
    f, y = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    for name, factor, sigma2 in (("mse", 1.0, 2.0), ("half-mse", 0.5, 1.0)):
        head = loss_by_name(name, 2)
        assert head.link is None
        fam = head.family
        assert fam.components[0].params["sigma"] ** 2 == pytest.approx(sigma2)
        ft = torch.tensor(f, requires_grad=True)
        value = factor * nn.MSELoss(reduction="sum")(ft, torch.tensor(y))
        (grad,) = torch.autograd.grad(value, ft)
        score = fam.statistic(sigma2 * y).reshape(4, 2) - fam.mean(f)
        np.testing.assert_allclose(-grad.numpy(), score, rtol=1e-12, atol=1e-12)


def test_loss_names_and_refusals() -> None:
    assert LOSS_NAMES == ("cross-entropy", "nll", "bce-with-logits", "bce", "poisson-log",
                          "poisson", "gaussian-nll", "gaussian-nll-shared", "mse", "half-mse")
    assert loss_by_name("gaussian-nll", 4).family.label == ("product(normal_unknown_variance, "
                                                            "normal_unknown_variance)")
    with pytest.raises(fv.FisherVerifyError, match="unknown loss 'huber'; the losses: "
                                                   "cross-entropy"):
        loss_by_name("huber", 2)
    # an odd width of the plain loss is refused, naming the shared-variance marker
    with pytest.raises(ShapeError, match="n_outputs=3: an odd width cannot be .mean, var. pairs.*"
                                         "shared_variance_gaussian_nll_loss"):
        head_for_loss(nn.GaussianNLLLoss(), 3)
    assert (head_for_loss(fv.shared_variance_gaussian_nll_loss(), 3).family.label
            == "isotropic_normal(D=2)")
    with pytest.raises(ShapeError, match="at least 2 outputs .* got n_outputs=1"):
        head_for_loss(nn.GaussianNLLLoss(), 1)
    with pytest.raises(UnsupportedError, match="weight="):
        head_for_loss(nn.BCELoss(weight=torch.ones(2)), 2)
    for loss, words in ((nn.BCELoss(), "a probability p"), (nn.GaussianNLLLoss(), "variance"),
                        (nn.PoissonNLLLoss(log_input=False), "a rate")):
        with pytest.raises(UnsupportedError, match=f"{words}.*head_for_loss"):
            fv.family_for_loss(loss, 2)
    with pytest.raises(UnsupportedError, match="MAX_PRODUCT_OUTPUTS"):
        head_for_loss(nn.BCELoss(), 33)


# --- networks with a link -----------------------------------------------------------------------


def _linked(name: str) -> fv.LinkedNetwork:
    from fisher_verify._src.proofs.head_route import linked_example

    return linked_example(name, "tanh", np.random.default_rng(3))


@pytest.mark.parametrize("name", ["mean-logstd", "softplus-rate", "logit"])
def test_linked_network_derivatives_against_torch_func(name: str) -> None:
    net = _linked(name)
    X = np.random.default_rng(4).normal(size=(2, 2))
    J, H = net.jacobian(X), net.output_hessians(X)
    theta = torch.tensor(net.theta)
    for m in range(2):
        x = torch.tensor(X[m])
        Jt = jacrev(lambda th, x=x: net.torch_forward(th, x))(theta).numpy()
        Ht = hessian(lambda th, x=x: net.torch_forward(th, x))(theta).numpy()
        np.testing.assert_allclose(J[m], Jt, rtol=1e-10, atol=1e-13 * np.max(np.abs(Jt)))
        np.testing.assert_allclose(H[m], Ht, rtol=1e-9, atol=1e-12 * np.max(np.abs(Ht)))
    # I(θ) = Jᵀ g′ᵀ I(h) g′ J
    f = net.base.forward(X)
    gp = net.link.jacobian(f)
    Jf = net.base.jacobian(X)
    I_h = net.family.fisher(net.forward(X))
    want = np.einsum("map,mab,mbq->pq", np.einsum("mkj,mjp->mkp", gp, Jf), I_h,
                     np.einsum("mkj,mjp->mkp", gp, Jf)) / 2
    np.testing.assert_allclose(fv.exact_fisher(net, X), want, rtol=1e-12, atol=1e-15)


def test_linked_network_refuses_a_mismatched_link() -> None:
    base = fv.Network.random((2, 3, 1), "tanh", fv.family("poisson"), rng=0)
    with pytest.raises(fv.FisherVerifyError, match="reads 2 head outputs but the network has n_L = 1"):
        fv.LinkedNetwork(base, link("mean-var"))


# --- the any-model engine and the gate ----------------------------------------------------------


class _Exp(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.exp()


def test_engine_applies_the_loss_link() -> None:
    """A link that undoes the model's last map gives the canonical head's Fisher: BCELoss after
    Sigmoid = BCEWithLogitsLoss before it; PoissonNLLLoss(log_input=False, eps=0) after exp =
    PoissonNLLLoss(log_input=True) before it."""
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    pairs = [((nn.Sequential(body, nn.Sigmoid()), nn.BCELoss()), (body, nn.BCEWithLogitsLoss())),
             ((nn.Sequential(body, _Exp()), nn.PoissonNLLLoss(log_input=False, eps=0.0)),
              (body, nn.PoissonNLLLoss(log_input=True)))]
    for (m1, l1), (m2, l2) in pairs:
        a = fv.exact_fisher(m1, x, l1, progress=False, diagonal=True)
        b = fv.exact_fisher(m2, x, l2, progress=False, diagonal=True)
        for k in b:
            np.testing.assert_allclose(a["0." + k].numpy(), b[k].numpy(), rtol=1e-10,
                                       atol=1e-14)


class _GaussHead(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([z[:, :1], nn.functional.softplus(z[:, 1:]) + 0.2], -1)


def _gauss_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2), _GaussHead()).double()
    X = torch.randn(4, 2, dtype=torch.float64)
    return model, X, torch.randn(4, 1, dtype=torch.float64)


def _ggn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """diag of J_fᵀ ∂²GaussianNLLLoss(y)/∂f² J_f, the Gauss–Newton split at the head's output."""
    loss = nn.GaussianNLLLoss(reduction="sum")
    params = {k: v.detach() for k, v in model.named_parameters()}
    Jd = jacrev(lambda p: functional_call(model, p, (x,)))(params)
    J = torch.cat([Jd[k].reshape(x.shape[0], 2, -1) for k in params], -1)
    f = model(x).detach()
    out = torch.zeros(J.shape[-1], dtype=torch.float64)
    for m in range(x.shape[0]):
        Hf = hessian(lambda v, m=m: loss(v[:1], y[m], v[1:]))(f[m])
        out += torch.einsum("ap,ab,bp->p", J[m], Hf, J[m])
    return out / x.shape[0]


def test_gate_names_the_ggn_of_a_non_canonical_head() -> None:
    model, X, Y = _gauss_model()

    def data_label_ggn(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return _ggn(model, *data)

    def model_label_ggn(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = data[0]
        f = model(x).detach()
        y = f[:, :1] + f[:, 1:].sqrt() * torch.randn(x.shape[0], 1, dtype=torch.float64)
        return _ggn(model, x, y)

    bad = fv.check_estimator(data_label_ggn, model, (X, Y), family=nn.GaussianNLLLoss(),
                                replications=40)
    assert not bad.passed and bad.cause == "ggn_noncanonical"
    assert "the GGN of a non-canonical head" in bad.diagnosis and "mean-var" in bad.diagnosis
    good = fv.check_estimator(model_label_ggn, model, (X, Y), family=nn.GaussianNLLLoss(),
                                 replications=40)
    assert good.passed, good.message()


# --- the command line ----------------------------------------------------------------------------


def _cli(argv: list[str]) -> tuple[int, str, str]:
    import contextlib
    import io

    from fisher_verify.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return int(code), out.getvalue(), err.getvalue()


def test_cli_analyze_with_a_loss(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``analyze --loss gaussian-nll`` on an Eq. 3 network whose outputs are (μ, σ²): the network
    with the loss's link is analysed as a LinkedNetwork (the full P × P matrices, eq-6, thm-4,
    thm-6 with g″), whose sums are those of the dense formulas."""
    import json

    rng = np.random.default_rng(0)
    W0, W1 = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(2, 4)) * 0.3
    W1[1, -1] = 1.0  # σ² > 0 at every input (tanh hidden units: |Σ w a| ≤ 0.9)
    assert np.sum(np.abs(W1[1, :-1])) < 1.0
    np.savez(tmp_path / "w.npz", W0=W0, W1=W1)
    X = rng.normal(size=(3, 2))
    np.save(tmp_path / "x.npy", X)
    code, out, err = _cli(["analyze", "--weights", str(tmp_path / "w.npz"), "--x",
                           str(tmp_path / "x.npy"), "--loss", "gaussian-nll", "--json"])
    assert code == 0, err
    total = json.loads(out)["total"]
    L = link("mean-var", lower=1e-6)  # GaussianNLLLoss's eps
    net = fv.LinkedNetwork(fv.Network([W0, W1], "tanh", L.family), L)
    assert total["fisher"] == pytest.approx(np.trace(fv.exact_fisher(net, X)), rel=1e-10)
    for e in (1, 2):
        V = fv.variance(net, X, which=f"I{e}")
        assert total[f"var_{e}"] == pytest.approx(np.sum(V), rel=1e-10)
        assert total[f"diag_var_{e}"] == pytest.approx(np.trace(V), rel=1e-10)
    assert json.loads(out)["model"].startswith("LinkedNetwork widths (2, 3, 2)")
    code, _, err = _cli(["analyze", "--weights", str(tmp_path / "w.npz"), "--x",
                         str(tmp_path / "x.npy"), "--loss", "huber"])
    assert code == 2 and "--loss 'huber' is not a loss of the table" in err
    assert "Traceback" not in err


def test_bounds_of_a_linked_network() -> None:
    """fv.bounds: thm-7/thm-8 left sides are the norms of thm-4/thm-6 of the composite, lemma-12
    its total variances; lemma-14/15 (Eq. 3 layer Jacobians) are left out (fv.analyze of a
    LinkedNetwork: tests/test_analyze_linked.py)."""
    net = _linked("mean-logstd")
    X = np.random.default_rng(5).normal(size=(3, 2))
    b = fv.bounds(net, X, 2)
    assert b.thm7.lhs == pytest.approx(float(np.linalg.norm(fv.covariance(net, X, which="I1", n=2))),
                                       rel=1e-10)
    assert b.thm8.lhs == pytest.approx(float(np.linalg.norm(fv.covariance(net, X, which="I2", n=2))),
                                       rel=1e-10)
    assert b.lemma12_2.lhs == pytest.approx(math.sqrt(float(np.sum(fv.variance(net, X, which="I2", n=2)))),
                                            rel=1e-10)
    assert b.lemma14 == [] and b.lemma15 == [] and b.all_hold()


def test_link_module_appended_to_a_model() -> None:
    """``nn.Sequential(model, link.module())`` with the link's family is the loss's head."""
    torch.manual_seed(1)
    body = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), _GaussHead()).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    L = link("mean-var", lower=1e-6)
    a = fv.variance(nn.Sequential(body, L.module()), x, L.family, progress=False, diagonal=True)
    b = fv.variance(body, x, nn.GaussianNLLLoss(), progress=False, diagonal=True)
    for k in b:
        np.testing.assert_allclose(a["0." + k].numpy(), b[k].numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", [1, 2])
def test_gate_passes_the_estimators_of_a_linked_network(kind: int) -> None:
    """Î₁ and Î₂ of a LinkedNetwork (eq-7/8 with g″) pass the gate calibrated by thm-4/thm-6 of
    the composite; Î₂ without the link's g″ term does not."""
    from fisher_verify._src.fisher.estimators import sample_estimators

    net = _linked("softplus-rate")
    X = np.random.default_rng(6).normal(size=(3, 2))

    def estimator(g: np.random.Generator) -> np.ndarray:
        est = sample_estimators(net, X, 4, g)
        return est.i1 if kind == 1 else est.i2

    report = fv.check_estimator(estimator, net, X, n=4, which=f"I{kind}", replications=100)
    assert report.passed, report.message()
    if kind == 2:
        curv = net.link_curvature(X)
        f_eta = net.family.mean(net.forward(X))

        def without_g2(g: np.random.Generator) -> np.ndarray:
            est = sample_estimators(net, X, 4, g)
            r = est.t.mean(axis=0) - f_eta  # (M, d)
            # Î₂ = ... − Σ r_k ∂²h_k: adding back Σ r_k J_fᵀ g″_k J_f drops g″'s part
            return est.i2 + np.einsum("mk,mkpq->pq", r, curv) / X.shape[0]

        bad = fv.check_estimator(without_g2, net, X, n=4, which="I2", replications=100)
        assert not bad.passed


@pytest.mark.parametrize("u", [-800.0, -700.0, -300.0, -30.0, -1e-4, 0.0, 1e-4, 40.0, 800.0])
def test_softplus_rate_is_stable_where_the_rate_is_tiny(u: float) -> None:
    """g, g′, g″ of log softplus(u) against the textbook forms evaluated in mpmath at 400
    digits (enough to resolve the cancellation σσ(−u)/softplus − (σ/softplus)² ≈ −eᵘ/2 down
    to u = −800): relative 1e-13 (the textbook float64 g″ is 0/0 below u ≈ −372)."""
    import mpmath

    L = link("softplus-rate")
    with mpmath.workdps(400):
        v = mpmath.mpf(u)
        sp_ = mpmath.log1p(mpmath.exp(v))
        sig = 1 / (1 + mpmath.exp(-v))
        want = [mpmath.log(sp_), sig / sp_, sig * (1 - sig) / sp_ - (sig / sp_) ** 2]
    got = [L.natural(np.array([u]))[0], L.jacobian(np.array([u]))[0, 0],
           L.hessian(np.array([u]))[0, 0, 0]]
    for g, w in zip(got, want):
        assert abs(g - float(w)) <= 1e-13 * abs(float(w)) or (float(w) == 0 and g == 0)


def test_gate_with_bce_on_probabilities() -> None:
    """BCELoss on a Sigmoid head: the empirical Fisher from BCELoss's own per-input gradients at
    the data's labels is the empirical reference (scores through the logit link); Î₁ from
    labels drawn from the model passes the calibrated gate."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2), nn.Sigmoid()).double()
    X = torch.randn(5, 2, dtype=torch.float64)
    Y = torch.randint(0, 2, (5, 2)).double()
    loss = nn.BCELoss(reduction="sum")

    def grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = 0
        for m in range(x.shape[0]):
            g = torch.autograd.grad(loss(model(x[m:m + 1]), y[m:m + 1]), list(model.parameters()))
            flat = torch.cat([t.reshape(-1) for t in g])
            out = out + flat * flat
        return out / x.shape[0]

    def empirical(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return grads(model, *data)

    def sampled(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = data[0]
        with torch.no_grad():
            y = torch.bernoulli(model(x))
        return grads(model, x, y)

    emp = fv.check_estimator(empirical, model, (X, Y), family=nn.BCELoss(),
                                reference="empirical")
    assert emp.passed, emp
    mc = fv.check_estimator(sampled, model, (X, Y), family=nn.BCELoss(), replications=60)
    assert mc.passed, mc.message()


@pytest.mark.parametrize("name", ["mean-var", "softplus-rate", "logit"])
def test_both_estimator_routes_agree_on_a_linked_network(name: str) -> None:
    """eq-7/eq-8 from J_h = g′J_f and ∂²h with g″ (structured) = autograd of ℓ through the
    link's torch kernel (generic, Eq. 2), on the same draws."""
    from fisher_verify._src.fisher.estimators import estimators_from_draws

    net = _linked(name)
    X = np.random.default_rng(8).normal(size=(3, 2))
    y = net.family.sample(net.forward(X), 5, np.random.default_rng(9))
    a = estimators_from_draws(net, X, y, "structured")
    b = estimators_from_draws(net, X, y, "generic")
    for s, g in ((a.i1, b.i1), (a.i2, b.i2)):
        np.testing.assert_allclose(s, g, rtol=1e-10, atol=1e-13 * np.max(np.abs(g)))


@pytest.mark.parametrize("u", [-800.0, -300.0, -30.0, -6.0, 0.5, 40.0, 800.0])
def test_softplus_rate_torch_kernel_differentiates_stably(u: float) -> None:
    """The any-model engine differentiates the link's torch kernel by autograd: first and
    second derivatives of log softplus through it equal the stable NumPy g′, g″ (themselves
    pinned to mpmath above), also where λ = softplus(u) underflows float64."""
    L = link("softplus-rate")
    ut = torch.tensor([u], dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(L.natural_torch(ut)[0], ut, create_graph=True)
    (g2,) = torch.autograd.grad(g1[0], ut)
    J, H = L.jacobian(np.array([u]))[0, 0], L.hessian(np.array([u]))[0, 0, 0]
    assert abs(float(g1) - J) <= 1e-13 * abs(J)
    assert abs(float(g2) - H) <= 1e-12 * abs(H) or (H == 0 and float(g2) == 0)


def test_gen_laguerre_rule_integrates_polynomials_exactly() -> None:
    """The NumPy Golub–Welsch rule of ext-links' gamma head: ∫₀^∞ x^m x^α e^(−x) dx =
    Γ(m + α + 1) for every m ≤ 2n − 1, against math.gamma (an independent route)."""
    import math

    from fisher_verify._src.proofs.head_route import gen_laguerre_rule

    for alpha in (0.0, 1.0, 2.5):
        x, w = gen_laguerre_rule(12, alpha)
        assert np.all(x > 0) and np.all(w > 0)
        for m in range(2 * 12):
            exact = math.gamma(m + alpha + 1.0)
            assert abs(float(np.sum(w * x**m)) - exact) <= 1e-11 * exact, (alpha, m)
