"""``fv.analyze`` of a ``fv.LinkedNetwork`` (issue 18, ``ext-links``): every quantity it reports
against an independent route.

* (b) the definition: per-sample scores and negative Hessians in θ by ``torch.func`` from each
  head's *own* density (:mod:`fisher_verify._src.proofs.head_route`: Gauss–Hermite nodes for the
  Gaussian (μ, log σ) head, the Poisson sum with its tail bound for the softplus-Poisson head,
  moment-matched nodes in ``log y`` for the Beta head), expectations exact on those nodes;
  ``J_h`` and ``∂²h`` for the bounds by dense autodiff of ``h(θ)``, ``t − η`` from the score;
* (a) the same network written as a torch model with the loss it is trained with
  (``GaussianNLLLoss``, ``PoissonNLLLoss(log_input=False)``) through ``fv.analyze(model, data,
  loss)``'s engine.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import fisher_verify as fv
from fisher_verify._src.families.links import link_names
from fisher_verify._src.fisher.pair_norms import pair_norm_dense
from fisher_verify._src.proofs.head_route import head_nodes, head_terms, linked_example
from fisher_verify.errors import FisherVerifyError, UnsupportedError

HEADS = ["mean-logstd", "softplus-rate", "softplus-neg:beta"]
N = 3
RTOL = 1e-9


def _reference(net, X, n):  # type: ignore[no-untyped-def]
    """Every quantity of the dense analysis from the definition (module docstring)."""
    from torch.func import hessian, jacrev

    M, P = X.shape[0], net.num_params
    name = _key(net)
    theta = torch.as_tensor(net.theta)
    F = np.zeros((P, P))
    cov = {1: np.zeros((P,) * 4), 2: np.zeros((P,) * 4)}
    rhs7 = rhs8 = rho2 = lam_max = 0.0
    f = net.base.forward(X)
    for m in range(M):
        ys, w, _ = head_nodes(name, f[m])
        r = head_terms(net, X[m], ys)
        outer = np.einsum("si,sj->sij", r["score"], r["score"])
        for e, terms in ((1, outer), (2, r["neg_hessian"])):
            mu = np.tensordot(w, terms, axes=(0, 0))
            if e == 1:
                F += mu / M
            dev = (terms - mu).reshape(len(w), P * P)
            cov[e] += ((dev * w[:, None]).T @ dev).reshape((P,) * 4) / (M * M * n)
        xt = torch.as_tensor(X[m])
        Jh = jacrev(lambda th, xt=xt: net.torch_forward(th, xt))(theta).detach().numpy()  # (d, P)
        Hh = hessian(lambda th, xt=xt: net.torch_forward(th, xt))(theta).detach().numpy()  # (d, P, P)
        d = np.linalg.lstsq(Jh.T, r["score"].T, rcond=None)[0].T  # t − η per node (S, d)
        I = np.einsum("s,sa,sb->ab", w, d, d)
        dd = np.einsum("sa,sb->sab", d, d).reshape(len(w), -1)
        C = np.einsum("s,si,sj->ij", w, dd, dd) - np.outer(I.reshape(-1), I.reshape(-1))
        rhs7 += np.linalg.norm(Jh) ** 4 * np.linalg.norm(C) / (M * M * n)
        rhs8 += np.linalg.norm(Hh) ** 2 * np.linalg.norm(I) / (M * M * n)
        rho2 += sum(float(np.max(np.abs(np.linalg.eigvalsh(Ha)))) ** 2 for Ha in Hh)
        lam_max += float(np.linalg.eigvalsh(I)[-1])
    var = {e: np.einsum("ijij->ij", cov[e]) for e in (1, 2)}
    lam_min = float(np.linalg.eigvalsh(F)[0])
    psd = 1.0 - (net.widths[-1] * rho2 * lam_max / (M * M * lam_min**2)) / n
    return {"fisher": F, "var": var, "norm": {e: float(np.linalg.norm(cov[e])) for e in (1, 2)},
            "bound": {1: rhs7, 2: rhs8}, "psd": psd, "lam_min": lam_min, "cov": cov}


def _key(net) -> str:  # type: ignore[no-untyped-def]
    return net.link.name + (":beta" if net.family.name == "beta" else "")


def _net(name: str, seed: int = 3):  # type: ignore[no-untyped-def]
    return linked_example(name, "tanh", np.random.default_rng(seed))


@pytest.mark.parametrize("name", HEADS)
def test_dense_analysis_against_the_heads_density(name: str) -> None:
    """eq-6, thm-4, thm-6 (with g″), ‖Cov(Î)‖_F, thm-7/thm-8 right sides, thm-10 and lemma-12
    of ``fv.analyze`` equal the definition's (16 inputs, so that λ_min(I(θ)) > 0)."""
    net = _net(name)
    X = np.random.default_rng(11).normal(size=(16, 2))
    a = fv.analyze(net, X, n=N, target=0.2, confidence=0.9)
    ref = _reference(net, X, N)
    scale = float(np.max(np.abs(ref["fisher"])))
    np.testing.assert_allclose(a.fisher, ref["fisher"], rtol=RTOL, atol=RTOL * scale)
    for e in (1, 2):
        V = getattr(a, f"variance_{e}")
        np.testing.assert_allclose(V, ref["var"][e], rtol=RTOL,
                                   atol=RTOL * float(np.max(np.abs(ref["var"][e]))))
        assert getattr(a, f"covariance_norm_{e}") == pytest.approx(ref["norm"][e], rel=RTOL)
        assert getattr(a, f"bound_{e}") == pytest.approx(ref["bound"][e], rel=RTOL)
        assert getattr(a, f"covariance_norm_{e}") <= getattr(a, f"bound_{e}")
        # lemma-12: N ≥ Σ Var(one draw) / ((1 − conf) target² ‖I‖_F²)
        need = math.ceil(float(np.sum(ref["var"][e])) * N
                         / (0.1 * 0.2**2 * float(np.sum(ref["fisher"] ** 2))))
        assert getattr(a, f"samples_needed_{e}") == need
    assert ref["lam_min"] > 1e-8 * float(np.max(np.linalg.eigvalsh(ref["fisher"])))
    assert a.psd_probability == pytest.approx(ref["psd"], rel=1e-8)
    assert a.covariance_norms_exact and a.covariance_norm_1_stderr == 0.0
    assert a.model == f"LinkedNetwork widths {net.widths}, activation tanh, link {net.link.label}"
    # rows: per layer sums over the blocks, the reason the link's
    off = net.offsets
    for layer, row in enumerate(a.layers):
        blk = slice(off[layer], off[layer + 1])
        assert row.fisher == pytest.approx(float(np.trace(ref["fisher"][blk, blk])), rel=RTOL)
        assert row.var_2 == pytest.approx(float(np.sum(ref["var"][2][blk, blk])), rel=RTOL)
        assert row.reason == "ext-links" and "g''" in (row.why or "")
    assert "ext-links: head through a link h = g(f)" in a.table()


@pytest.mark.parametrize("name", HEADS)
def test_diagonal_route_against_the_heads_density(name: str) -> None:
    """``diagonal=True`` (the large-P route: the base's lemma-13 factors through the link) gives
    the definition's diagonals, and the norms and bounds (exact pair sums) the definition's."""
    net = _net(name, seed=4)
    X = np.random.default_rng(12).normal(size=(3, 2))
    a = fv.analyze(net, X, n=N, diagonal=True)
    ref = _reference(net, X, N)
    np.testing.assert_allclose(a.fisher, np.diagonal(ref["fisher"]), rtol=RTOL,
                               atol=RTOL * float(np.max(np.abs(ref["fisher"]))))
    for e in (1, 2):
        d = np.diagonal(ref["var"][e])
        np.testing.assert_allclose(getattr(a, f"variance_{e}"), d, rtol=RTOL,
                                   atol=RTOL * float(np.max(d)))
        assert getattr(a, f"covariance_norm_{e}") == pytest.approx(ref["norm"][e], rel=RTOL)
        assert getattr(a, f"bound_{e}") == pytest.approx(ref["bound"][e], rel=RTOL)
        assert getattr(a, f"bound_{e}_note") == ""
    assert a.psd_probability is None and a.psd_note.startswith("thm-10 not computed for large P")


def test_diagonal_route_leaves_out_what_exceeds_the_budget() -> None:
    """The diagonal route never estimates the norms: above the memory budget a norm is left
    out with the bytes named; the bound it would come with too."""
    net = fv.LinkedNetwork.random((4, 20, 1), "tanh", fv.link("softplus-rate"), 0.5,
                                  np.random.default_rng(9))
    X = np.random.default_rng(12).normal(size=(3, 4))
    P = net.num_params
    need = 8 * (4 * 3 * P * P + 3 + 6 * 64 * 64) + 8 * 9  # thm-8: three inputs' Hessians
    a = fv.analyze(net, X, n=N, diagonal=True, memory=need - 1)
    assert a.covariance_norm_1 is not None
    assert a.covariance_norm_2 is None and a.bound_2 is None
    assert a.bound_2_note == (
        f"not computed for a LinkedNetwork: thm-8: the output Hessians of 3 inputs need "
        f"{need / 2**20:.4g} MiB (n_L = 1, P = {P}), above memory_budget = "
        f"{(need - 1) / 2**20:.4g} MiB")
    assert "||Cov(I2)||_F and thm-8: n/a, not computed for a LinkedNetwork" in a.summary()


def test_leaving_g2_out_would_be_caught() -> None:
    """The Var(Î₂) the analysis reports is not the one without the link's g″ (a Gauss–Newton
    split at f): the reference distinguishes them, so the tests above can fail."""
    net = _net("softplus-rate")
    X = np.random.default_rng(1).normal(size=(3, 2))
    f = net.base.forward(X)
    H = np.einsum("mkj,mjpq->mkpq", net.link.jacobian(f), net.base.output_hessians(X))
    I = net.family.fisher(net.forward(X))
    wrong = np.einsum("mapq,mab,mbpq->pq", H, I, H) / (9 * N)
    a = fv.analyze(net, X, n=N)
    gap = float(np.max(np.abs(wrong - a.variance_2)) / np.max(np.abs(a.variance_2)))
    assert gap > 1e-3


class _LogStdToVar(nn.Module):
    """(μ, s) → (μ, e^{2s}): the (μ, log σ) head in GaussianNLLLoss's (μ, σ²)."""

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        mu, s = f.chunk(2, -1)
        return torch.cat([mu, torch.exp(2 * s)], -1)


def _body(base) -> nn.Sequential:  # type: ignore[no-untyped-def]
    layers: list[nn.Module] = []
    for i, W in enumerate(base.weights):
        lin = nn.Linear(W.shape[1] - 1, W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(W[:, :-1]))
            lin.bias.copy_(torch.as_tensor(W[:, -1]))
        layers += [lin] + ([nn.Tanh()] if i < len(base.weights) - 1 else [])
    return nn.Sequential(*layers)


@pytest.mark.parametrize("name", ["mean-logstd", "mean-var", "softplus-rate"])
def test_same_numbers_as_the_torch_model_with_its_loss(name: str) -> None:
    """The LinkedNetwork and the torch model trained with the matching loss (the any-model
    engine, autograd through the loss's head) agree on every sum both report."""
    net = _net(name, seed=5)
    X = np.random.default_rng(13).normal(size=(6, 2))
    body = _body(net.base)
    if name == "mean-logstd":
        model, loss = nn.Sequential(body, _LogStdToVar()), nn.GaussianNLLLoss(eps=1e-12)
    elif name == "mean-var":
        model, loss = body, nn.GaussianNLLLoss(eps=1e-12)
    else:
        model = nn.Sequential(body, nn.Softplus(beta=1.0, threshold=1000.0))
        loss = nn.PoissonNLLLoss(log_input=False, eps=1e-300)
    a = fv.analyze(net, X, n=N)
    b = fv.analyze(model, torch.as_tensor(X), loss, n=N, progress=False)
    assert b.total.var_2_exact
    assert b.total.fisher == pytest.approx(a.total.fisher, rel=1e-8)
    assert b.total.var_1 == pytest.approx(a.total.diag_var_1, rel=1e-8)
    assert b.total.var_2 == pytest.approx(a.total.diag_var_2, rel=1e-8)
    for e in (1, 2):
        assert getattr(b, f"covariance_norm_{e}") == pytest.approx(
            getattr(a, f"covariance_norm_{e}"), rel=1e-8)
        assert getattr(b, f"bound_{e}") == pytest.approx(getattr(a, f"bound_{e}"), rel=1e-8)


@pytest.mark.parametrize("block", [64, 2])
def test_sampled_pair_norms_are_the_u_statistic(block: int, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    """The exact pair sum over blocks of inputs (one block, and blocks of 2 so that the pairs
    across blocks count twice), and above the norm budget the sampled-pairs estimate: exact
    diagonal terms plus M(M−1) times the mean of f over the sampled distinct pairs,
    f(m, m') = ⟨Cov_m, Cov_m'⟩ of the per-input covariances (from the definition)."""
    from fisher_verify._src.fisher import pair_norms

    monkeypatch.setattr(pair_norms, "BLOCK", block)
    net = _net("softplus-rate", seed=6)
    X = np.random.default_rng(14).normal(size=(7, 2))
    M = X.shape[0]
    per = [_reference(net, X[m:m + 1], 1)["cov"] for m in range(M)]
    for e, statement in ((1, "thm-7"), (2, "thm-8")):
        f = np.array([[float(np.sum(per[i][e] * per[j][e])) for j in range(M)] for i in range(M)])
        exact = pair_norm_dense(net, X, N, statement, memory_budget=2**30, time_budget=60.0)
        assert exact.exact and exact.value == pytest.approx(
            math.sqrt(f.sum()) / (M * M * N), rel=RTOL)
        every = pair_norm_dense(net, X, N, statement, memory_budget=2**30, time_budget=60.0,
                                sample_inputs=M)
        assert every.exact and every.value == pytest.approx(exact.value, rel=RTOL)
        two = pair_norm_dense(net, X[:2], N, statement, memory_budget=2**30, time_budget=60.0,
                              sample_inputs=3)  # fewer inputs than a sample: every pair
        assert two.exact and two.value == pytest.approx(
            math.sqrt(f[:2, :2].sum()) / (4 * N), rel=RTOL)
        k = 4
        s = pair_norm_dense(net, X, N, statement, memory_budget=2**30, time_budget=60.0,
                            sample_inputs=k, seed=2)
        pick = np.sort(np.random.default_rng(2).choice(M, size=k, replace=False))
        sub = f[np.ix_(pick, pick)]
        U = (sub.sum() - np.trace(sub)) / (k * (k - 1))
        assert not s.exact and s.sample_inputs == k and s.stderr > 0
        assert s.value == pytest.approx(math.sqrt(np.trace(f) + M * (M - 1) * U) / (M * M * N),
                                        rel=RTOL)
        # its standard error: the delete-one jackknife of U (each U_(i) the mean over the
        # distinct pairs of the other k − 1 inputs), through the delta method for the root
        dele = np.array([(lambda g: (g.sum() - np.trace(g)) / ((k - 1) * (k - 2)))(
            np.delete(np.delete(sub, i, 0), i, 1)) for i in range(k)])
        se_u = math.sqrt((k - 1) / k * float(np.sum((dele - dele.mean()) ** 2)))
        assert s.stderr == pytest.approx(M * (M - 1) * se_u / (M * M * N) ** 2 / (2 * s.value),
                                         rel=1e-9)


def test_analyze_says_when_its_norms_are_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Priced above NORM_SECONDS (here: 1000 s per pair of inputs), the dense route's norms are
    the sampled estimate over the largest sample within it (3 inputs), labelled so in the
    result and its summary."""
    from fisher_verify._src.fisher import pair_norms

    monkeypatch.setattr(pair_norms, "_price", lambda *args: (0.0, 1e3))
    net = _net("mean-logstd")
    a = fv.analyze(net, np.random.default_rng(2).normal(size=(5, 2)), n=N)
    assert not a.covariance_norms_exact and a.covariance_norm_2_stderr > 0
    assert a.bound_2_note.startswith("||Cov(I2)||_F is a sampled-pairs ESTIMATE over 3 of 5 inputs")
    assert "(ESTIMATE)" in a.summary()


def test_relu_base_off_and_at_its_kinks() -> None:
    """A ReLU base is piecewise linear, but h = g(f) is not: away from the kinks Var(Î₂) is the
    definition's (not the 0 of d24-pwl) and every layer's reason is ext-links; at a kink the
    analysis is refused where ∂²h does not exist, naming it."""
    base = _net("softplus-rate").base
    w = [W.copy() for W in base.weights]
    net = fv.LinkedNetwork(fv.Network(w, "relu", base.family), _net("softplus-rate").link)
    X = np.random.default_rng(8).normal(size=(3, 2))
    a = fv.analyze(net, X, n=N)
    ref = _reference(net, X, N)
    np.testing.assert_allclose(a.variance_2, ref["var"][2], rtol=RTOL,
                               atol=RTOL * float(np.max(np.abs(ref["var"][2]))))
    assert float(np.trace(ref["var"][2])) > 1e-6 * float(np.trace(ref["var"][1]))
    assert {r.reason for r in a.layers} == {"ext-links"}
    w[0][0, -1] = 0.0
    kinked = fv.LinkedNetwork(fv.Network(w, "relu", base.family), net.link)
    with pytest.raises(UnsupportedError, match=r"the variance of the Hessian estimator \(thm-6\) "
                                               "is not defined at a kink of relu"):
        fv.analyze(kinked, np.zeros((2, 2)))


def test_refusals_name_the_argument() -> None:
    net = _net("softplus-rate")
    X = np.zeros((2, 2))
    with pytest.raises(FisherVerifyError, match="family: the model, a fisher_verify.Network, "
                                                "carries its own family"):
        fv.analyze(net, X, family=fv.family("bernoulli"))
    with pytest.raises(FisherVerifyError, match="probes: not an option of analyze"):
        fv.analyze(net, X, probes=4)


def test_json_is_strict() -> None:
    """No NaN/Infinity literal in the JSON of a linked analysis (dense and diagonal)."""
    net = _net("softplus-neg:beta")
    X = np.random.default_rng(3).normal(size=(2, 2))

    def refuse(token: str) -> None:
        raise AssertionError(f"non-strict JSON literal {token}")

    for diagonal in (False, True):
        a = fv.analyze(net, X, n=2, diagonal=diagonal)
        out = json.loads(a.to_json(), parse_constant=refuse)
        assert out["model"].startswith("LinkedNetwork")
        assert out["total"]["var_2"] == pytest.approx(a.total.var_2)


def _cli(argv: list[str]) -> tuple[int, str, str]:
    import contextlib
    import io

    from fisher_verify.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return int(code), out.getvalue(), err.getvalue()


def test_cli_link(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``analyze --weights W.npz --link NAME [--family F --param k=v]`` is fv.analyze of the
    LinkedNetwork; bad values exit 2 naming --link, without a traceback."""
    net = _net("softplus-neg:beta", seed=7)
    np.savez(tmp_path / "w.npz", **{f"W{i}": W for i, W in enumerate(net.base.weights)})
    X = np.random.default_rng(4).normal(size=(4, 2))
    np.save(tmp_path / "x.npy", X)
    base = ["analyze", "--weights", str(tmp_path / "w.npz"), "--x", str(tmp_path / "x.npy")]
    code, out, err = _cli([*base, "--link", "softplus-neg", "--family", "beta", "--param",
                           "b=2", "--samples", "2", "--json"])
    assert code == 0, err
    got = json.loads(out)
    want = fv.analyze(net, X, n=2)
    assert got["model"] == ("LinkedNetwork widths (2, 3, 1), activation tanh, link "
                            "softplus-neg(1 unit) onto beta(b=2)")
    for key in ("covariance_norm_1", "covariance_norm_2", "bound_1", "bound_2"):
        assert got[key] == pytest.approx(getattr(want, key), rel=1e-12)
    np.testing.assert_allclose(got["variance_2"], want.variance_2, rtol=1e-12)
    bad = {
        ("--link", "probit"): "--link 'probit' is not a link; the links: "
                              + ", ".join(link_names()),
        ("--link", "mean-logstd"): "--link 'mean-logstd': the network has n_L = 1 outputs, not "
                                   "a multiple of 2 (the outputs one unit of the link reads)",
        ("--link", "softplus-rate", "--family", "bernoulli"):
            "--link 'softplus-rate': link 'softplus-rate' maps onto the natural parameter of "
            "poisson; got family=bernoulli",
        ("--link", "softplus-rate", "--loss", "poisson"):
            "--link 'softplus-rate' and --loss 'poisson' both give the head's link",
        ("--link", "softplus-rate", "--param", "K=2"): "--param 'K=2' applies to --family",
    }
    for args, message in bad.items():
        code, _, err = _cli([*base, *args])
        assert code == 2 and message in err and "Traceback" not in err, (args, err)


def test_progress_names_the_stages() -> None:
    """A linked analysis reports its stages as an Eq. 3 one does: the per-input terms, then
    each norm's rows of block pairs (70 inputs: two rows of 64)."""
    net = _net("mean-var")
    calls: list[tuple[str, int, int]] = []
    fv.analyze(net, np.random.default_rng(1).normal(size=(70, 2)),
               progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert ("per-input terms (eq-6, thm-4, thm-6)", 70, 70) in calls
    for e, statement in ((1, "thm-7"), (2, "thm-8")):
        stage = f"||Cov(I{e})||_F ({statement}), block pairs"
        assert [c for c in calls if c[0] == stage] == [(stage, 0, 2), (stage, 1, 2)]
