"""issue 14 §2: no degenerate answer without a word, and no value of the user's changed.

Bias-free layers, integer and non-finite weights, inputs that are not finite, float64 under-
and overflow, strict JSON, parameter checks that do not depend on call history, and the
tracebacks that became refusals (meta device, a broken ``--model`` module). Every refusal is
a ``FisherVerifyError`` naming the argument; at the CLI exit 2 without a traceback, and a
degenerate result exit 3 with a warning line.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import fisher_verify as fv
from fisher_verify._src import jsontext
from fisher_verify._src.fisher.degenerate import TINY, underflow_reasons
from fisher_verify.cli import main
from fisher_verify.errors import FisherVerifyError, ParameterError, UnsupportedError

W0 = np.array([[1.0, 0.5, 0.2], [0.3, -1.0, 0.1]])
X2 = np.array([[0.3, -0.2], [0.1, 0.5]])


def _strict(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity (RFC 8259)."""
    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def _net(last: list[list[float]], fam: Any) -> Any:
    return fv.Network.from_weights([W0, np.array(last, dtype=float)], family=fam)


# --- 1. Linear(bias=False) ----------------------------------------------------------------------


def _bias_free() -> torch.nn.Sequential:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(3, 3, bias=False), torch.nn.Tanh(),
                               torch.nn.Linear(3, 1)).double()


def test_bias_free_layer_is_refused_by_the_eq3_import_naming_the_parameter_count() -> None:
    model = _bias_free()
    count = sum(p.numel() for p in model.parameters())
    with pytest.raises(UnsupportedError, match=rf"module 0: Linear\(bias=False\).*model's {count}\)"):
        fv.Network.from_torch(model, family=fv.family("bernoulli"))


def _dense_reference(model: torch.nn.Module, X: torch.Tensor) -> tuple[np.ndarray, float]:
    """diag I(θ) and ‖Cov(Î₂)‖_F (N = 1) of a one-output Bernoulli model from torch autograd on
    the model's own parameters: I = (1/M) Σ_m p(1−p) ∇h ∇hᵀ and Cov(Î₂) = (1/M²) Σ_m p(1−p)
    H_m ⊗ H_m (Î₂ = Jᵀ F'' J − (t − η) ∂²h)."""
    from torch.func import functional_call

    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def h(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for k, s in zip(names, shapes):
            size = int(np.prod(s))
            params[k] = theta[start:start + size].reshape(s)
            start += size
        return functional_call(model, params, (x[None],))[0, 0]

    M = X.shape[0]
    fisher = torch.zeros_like(flat)
    hess, var = [], []
    for x in X:
        def at_x(t: torch.Tensor, x: torch.Tensor = x) -> torch.Tensor:
            return h(t, x)

        g = torch.autograd.functional.jacobian(at_x, flat)
        H = torch.autograd.functional.hessian(at_x, flat)
        p = torch.sigmoid(h(flat, x)).detach()
        fisher += p * (1 - p) * g**2 / M
        hess.append(H)
        var.append(p * (1 - p))
    norm2 = sum(float(var[a] * var[b] * (hess[a] * hess[b]).sum() ** 2)
                for a in range(M) for b in range(M))
    return fisher.numpy(), math.sqrt(norm2) / M**2


def test_bias_free_model_is_analysed_with_its_own_parameters() -> None:
    """P is the model's parameter count and diag I(θ), thm-8's ‖Cov(Î₂)‖_F equal torch autograd
    on the model itself (the Eq. 3 closed form summed over invented bias entries)."""
    model = _bias_free()
    X = torch.tensor([[0.3, -0.2, 0.5], [0.1, 0.4, -0.7], [-0.6, 0.2, 0.9]], dtype=torch.float64)
    rep = fv.analyze(model, X, fv.family("bernoulli"), progress=False)
    fisher, norm2 = _dense_reference(model, X)
    assert rep.num_params == sum(p.numel() for p in model.parameters()) == 13
    got = np.concatenate([rep.fisher[k].reshape(-1).numpy() for k, _ in
                          model.named_parameters()])
    np.testing.assert_allclose(got, fisher, rtol=1e-10, atol=1e-14)
    assert rep.covariance_norm_2 == pytest.approx(norm2, rel=1e-9)


def test_check_torch_fisher_gates_a_bias_free_model_with_its_own_parameters() -> None:
    """The Eq. 3 reference cannot hold Linear(bias=False); the any-module reference can: the
    exact diag I(θ) from torch autograd passes as exact, twice it fails by its factor."""
    from fisher_verify._src.testing.adapters import sequential_reference

    model = _bias_free()
    X = torch.tensor([[0.3, -0.2, 0.5], [0.1, 0.4, -0.7], [-0.6, 0.2, 0.9]], dtype=torch.float64)
    with pytest.raises(UnsupportedError, match=r"default reference_model .*bias=False"):
        sequential_reference(model, fv.family("bernoulli"))
    fisher, _ = _dense_reference(model, X)
    report = fv.check_estimator(lambda m, d: torch.as_tensor(fisher), model, X,
                                   family=fv.family("bernoulli"), replications=60)
    assert report.passed and report.cause == "exact", report.message()
    doubled = fv.check_estimator(lambda m, d: torch.as_tensor(2 * fisher), model, X,
                                    family=fv.family("bernoulli"), replications=60)
    assert not doubled.passed and doubled.cause == "exact_scaled", doubled.message()


def test_cli_torch_model_with_bias_free_layer_exits_2(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    torch.save(_bias_free(), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    rc, _, err = _cli(["analyze", "--torch-model", str(tmp_path / "m.pt"), "--trust-pickle",
                       "--x", str(tmp_path / "x.npy"), "--family", "bernoulli"], capsys)
    assert rc == 2 and "bias=False" in err and "--data" in err


# --- 2. integers and dtypes: never a changed value ----------------------------------------------

BUILDER = '''
import torch

class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)
        self.register_buffer("scale", torch.ones(1, dtype=torch.int64))

    def forward(self, x):
        return self.lin(x) * self.scale.to(x.dtype)

def build():
    return Scaled()

def build32():
    return torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))
'''


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "i14_models.py").write_text(BUILDER)
    (tmp_path / "i14_broken.py").write_text("def build(:\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("i14_models", "i14_broken"):
        sys.modules.pop(name, None)
    np.save(tmp_path / "d.npy", X2)
    return tmp_path


def test_float_state_into_an_integer_tensor_is_refused_not_truncated(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"lin.weight": torch.tensor([[0.5, -0.25]]), "lin.bias": torch.tensor([0.1]),
                "scale": torch.tensor([0.3])}, workdir / "w.pt")
    rc, _, err = _cli(["analyze", "--model", "i14_models:build", "--weights", "w.pt", "--data",
                       "d.npy", "--family", "bernoulli"], capsys)
    assert rc == 2
    assert "'scale'" in err and "0.3" in err and "would become 0" in err


def test_float64_state_into_a_float32_model_keeps_every_digit(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """load_state_dict rounded float64 values into the float32 model before they were analysed
    in float64: the result must equal that of the float64 values themselves."""
    import i14_models  # type: ignore[import-not-found]

    ref = i14_models.build32().double()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.linspace(-0.9, 0.8, p.numel(), dtype=torch.float64).reshape(p.shape) / 3)
    state = ref.state_dict()
    assert any(not torch.equal(v.float().double(), v) for v in state.values())
    torch.save(state, workdir / "w64.pt")
    rc, out, _ = _cli(["analyze", "--model", "i14_models:build32", "--weights", "w64.pt",
                       "--data", "d.npy", "--family", "bernoulli", "--json"], capsys)
    assert rc == 0
    got = _strict(out)
    exact = fv.analyze(ref, torch.as_tensor(X2), fv.family("bernoulli"), progress=False)
    assert got["total"]["fisher"] == pytest.approx(exact.total.fisher, rel=1e-13)
    assert got["total"]["var_1"] == pytest.approx(exact.total.var_1, rel=1e-13)


def test_integer_state_into_a_float_model_is_converted_exactly(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import i14_models

    ints = {"0.weight": torch.tensor([[1, -2], [3, 0]]), "0.bias": torch.tensor([1, 0]),
            "2.weight": torch.tensor([[2, -1]]), "2.bias": torch.tensor([0])}
    torch.save(ints, workdir / "wi.pt")
    rc, out, _ = _cli(["analyze", "--model", "i14_models:build32", "--weights", "wi.pt",
                       "--data", "d.npy", "--family", "bernoulli", "--json"], capsys)
    assert rc == 0
    ref = i14_models.build32().double()
    ref.load_state_dict({k: v.double() for k, v in ints.items()})
    exact = fv.analyze(ref, torch.as_tensor(X2), fv.family("bernoulli"), progress=False)
    assert _strict(out)["total"]["fisher"] == pytest.approx(exact.total.fisher, rel=1e-13)
    big = dict(ints, **{"0.bias": torch.tensor([2**60 + 1, 0])})
    torch.save(big, workdir / "wbig.pt")
    rc, _, err = _cli(["analyze", "--model", "i14_models:build32", "--weights", "wbig.pt",
                       "--data", "d.npy", "--family", "bernoulli"], capsys)
    assert rc == 2 and "'0.bias'" in err and str(2**60 + 1) in err


def test_integer_weights_beyond_float64_are_refused() -> None:
    fam = fv.family("bernoulli")
    exact = fv.Network.from_weights([np.array([[2**53, 3, -1]], dtype=np.int64)], family=fam)
    assert exact.weights[0][0, 0] == 2**53 and exact.weights[0].dtype == np.float64
    with pytest.raises(FisherVerifyError, match=r"W0.*integer 9007199254740993 at \[0, 0\]"):
        fv.Network.from_weights([np.array([[2**53 + 1, 3, -1]], dtype=np.int64)], family=fam)


# --- 3. the culprit named -----------------------------------------------------------------------


def test_non_finite_weight_named_by_array_and_index(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    W1 = np.array([[1.0, 2.0, 3.0]])
    bad = W0.copy()
    bad[1, 2] = np.inf
    np.savez(tmp_path / "w.npz", W0=bad, W1=W1)
    np.save(tmp_path / "x.npy", X2)
    rc, _, err = _cli(["analyze", "--weights", str(tmp_path / "w.npz"), "--x",
                       str(tmp_path / "x.npy"), "--family", "bernoulli"], capsys)
    assert rc == 2 and "W0 has inf at [1, 2]" in err and "--target" not in err
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    with torch.no_grad():
        model[2].weight[0, 1] = float("nan")
    with pytest.raises(FisherVerifyError, match=r"parameter '2.weight' has nan at \[0, 1\]"):
        fv.analyze(model, torch.as_tensor(X2), fv.family("bernoulli"), progress=False)
    with pytest.raises(FisherVerifyError, match=r"W1 has nan at \[0, 1\]"):
        fv.Network.from_torch(model, family=fv.family("bernoulli"))


class _Exp(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


def test_non_finite_output_names_its_cause_not_the_family() -> None:
    """A NaN buffer or an overflow inside the model was "bernoulli: h contains NaN"."""
    X = torch.tensor([[0.1, 0.2], [800.0, 0.0]], dtype=torch.float64)
    bn = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2),
                             torch.nn.Linear(2, 1)).eval()
    bn[1].running_var[1] = float("nan")
    with pytest.raises(FisherVerifyError, match="buffer '1.running_var' holds NaN"):
        fv.analyze(bn, X[:1], fv.family("bernoulli"), progress=False)
    over = torch.nn.Sequential(_Exp(), torch.nn.Linear(2, 1))
    with pytest.raises(FisherVerifyError, match="not finite at input row 1 .*overflows"):
        fv.analyze(over, X, fv.family("bernoulli"), progress=False)


def test_non_finite_input_named_by_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    X = np.zeros((5, 2))
    X[3, 1] = np.nan
    net = _net([[1.0, 1.0, 0.0]], fv.family("bernoulli"))
    with pytest.raises(FisherVerifyError, match=r"input x has nan at \[3, 1\] \(row 3 of 5"):
        fv.analyze(net, X)
    model = torch.nn.Sequential(torch.nn.Linear(2, 1))
    with pytest.raises(FisherVerifyError, match="input row 3 has nan"):
        fv.analyze(model, torch.as_tensor(X), fv.family("bernoulli"), progress=False)
    np.savez(tmp_path / "w.npz", W0=W0, W1=np.array([[1.0, 1.0, 0.0]]))
    np.save(tmp_path / "x.npy", X)
    X[2, 0] = -np.inf  # the first non-finite row is named
    with pytest.raises(FisherVerifyError, match="input row 2 has -inf"):
        fv.analyze(model, torch.as_tensor(X), fv.family("bernoulli"), progress=False)
    rc, _, err = _cli(["analyze", "--weights", str(tmp_path / "w.npz"), "--x",
                       str(tmp_path / "x.npy"), "--family", "bernoulli"], capsys)
    assert rc == 2 and "row 3 of 5" in err


def test_unknown_activation_is_blamed_on_the_option(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "w.npz", W0=W0, W1=np.array([[1.0, 1.0, 0.0]]))
    np.save(tmp_path / "x.npy", X2)
    rc, _, err = _cli(["analyze", "--weights", str(tmp_path / "w.npz"), "--x",
                       str(tmp_path / "x.npy"), "--family", "bernoulli", "--activation", "RELU"],
                      capsys)
    assert rc == 2 and "--activation" in err and "'RELU'" in err and "relu" in err
    assert "w.npz" not in err
    with pytest.raises(FisherVerifyError, match="unknown activation") as info:
        fv.Network.from_npz(tmp_path / "w.npz", activation="RELU", family=fv.family("bernoulli"))
    assert "w.npz" not in str(info.value)


# --- 4. under- and overflow ---------------------------------------------------------------------


@pytest.mark.parametrize(("fam", "last"), [
    (("normal", {"sigma": 1e-200}), [[1.0, 0.9, 0.0]]),
    (("bernoulli", {}), [[1.0, 1.0, 1000.0]]),
    (("bernoulli", {}), [[1.0, 1.0, -1000.0]]),
    (("categorical", {"K": 3}), [[1.0, 1.0, 1e4], [1.0, 1.0, -1e4], [0.0, 0.0, 0.0]]),
])
@pytest.mark.parametrize("diagonal", [False, True])
def test_underflowed_fisher_is_reported_degenerate(fam: tuple[str, dict[str, Any]],
                                                   last: list[list[float]], diagonal: bool) -> None:
    res = fv.analyze(_net(last, fv.family(fam[0], **fam[1])), X2, diagonal=diagonal)
    assert len(res.degenerate) == 1 and "every entry of the Fisher information underflowed" \
        in res.degenerate[0]
    assert res.better == "undetermined" and all(g.better == "undetermined" for g in res.layers)
    assert res.summary().startswith("WARNING: degenerate result: every entry")
    assert _strict(jsontext.dumps(res.as_dict()))["degenerate"] == res.degenerate


def test_var1_underflow_is_reported_and_true_zeros_are_not() -> None:
    """normal(σ = 1e-100): I(θ) ~ 1e-200 is representable, μ₄ = 3σ⁴ is not, so Var(Î₁) = 0 is an
    underflow; a Bernoulli at h = 0 has Var(Î₁) = 0 exactly (μ₄ = Cov² = 1/16): not flagged,
    nor is a Bernoulli at |h| ≈ 400 whose tiny Fisher (~1e-174) is still a normal float64."""
    res = fv.analyze(_net([[1.0, 0.9, 0.0]], fv.family("normal", sigma=1e-100)), X2)
    assert len(res.degenerate) == 1 and res.degenerate[0].startswith("Var(I1) underflowed")
    zero = fv.analyze(_net([[0.0, 0.0, 0.0]], fv.family("bernoulli")), X2)
    assert zero.degenerate == [] and float(np.max(np.abs(zero.variance_1))) < 1e-15
    far = fv.analyze(_net([[1.0, 1.0, 400.0]], fv.family("bernoulli")), X2)
    assert far.degenerate == [] and 0 < float(np.max(np.abs(far.fisher))) < 1e-170
    # ‖I‖_F ~ 1e-174 although its squares underflow: the sample sizes exist (lemma-12)
    assert far.samples_needed_1 is not None and far.samples_needed_2 is not None
    assert "||I||_F = 0 " not in far.summary()


def test_underflow_threshold_is_the_smallest_normal_float64() -> None:
    assert np.finfo(np.float64).tiny == TINY == 2.0**-1022
    net = _net([[1.0, 1.0, 0.0]], fv.family("bernoulli"))
    ones = np.ones((9, 9))
    assert underflow_reasons(net, X2, ones * TINY, ones) == []
    assert underflow_reasons(net, X2, ones * (TINY * (1 - 2**-52)), ones) != []


@pytest.mark.parametrize(("name", "params", "last", "what"), [
    ("normal", {"sigma": 1e200}, [[1.0, 0.9, 0.0]], "Fisher information"),
    ("poisson", {}, [[1.0, 1.0, 1000.0]], "Fisher information"),
    ("normal", {"sigma": 1e100}, [[1.0, 0.9, 0.0]], "Var"),
])
def test_overflow_is_refused_with_the_reason(name: str, params: dict[str, Any],
                                             last: list[list[float]], what: str) -> None:
    net = _net(last, fv.family(name, **params))
    for diagonal in (False, True):
        with pytest.raises(UnsupportedError, match=f"overflow: .*{what}.*not finite"):
            fv.analyze(net, X2, diagonal=diagonal)


def test_norm_overflow_leaves_the_norm_out_and_says_so() -> None:
    """Poisson at h ≈ 300: Var(Î₁) ~ 1e261 is finite, its sum of squares is not."""
    res = fv.analyze(_net([[1.0, 1.0, 300.0]], fv.family("poisson")), X2)
    assert np.all(np.isfinite(res.variance_1)) and np.max(res.variance_1) > 1e250
    assert res.covariance_norm_1 is None and res.bound_1 is None
    assert res.covariance_norm_2 is not None and math.isfinite(res.covariance_norm_2)
    assert any("thm-7" in why and "overflowed" in why for why in res.degenerate)
    # the Frobenius norm of I(θ) ~ 1e130 is exact although its square overflows
    assert res.samples_needed_1 is not None and res.samples_needed_1 > 1


def test_analyze_model_underflow_and_overflow() -> None:
    torch.manual_seed(0)
    X = torch.randn(5, 3, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    with torch.no_grad():
        model[2].weight.mul_(1e4)
        model[2].bias.copy_(torch.tensor([1e4, -1e4, 0.0]))
    rep = fv.analyze(model, X, fv.family("categorical", K=3), progress=False)
    assert len(rep.degenerate) == 1 and "underflowed" in rep.degenerate[0]
    assert rep.total.better == "undetermined" and "WARNING" in rep.summary()
    assert _strict(rep.to_json())["degenerate"] == rep.degenerate
    one = torch.nn.Sequential(torch.nn.Linear(3, 1))
    assert fv.analyze(one, X, fv.family("normal"), progress=False).degenerate == []
    small = fv.analyze(one, X, fv.family("normal", sigma=1e-100), progress=False)
    assert len(small.degenerate) == 1 and small.degenerate[0].startswith("Var(I1) underflowed")
    zero = torch.nn.Sequential(torch.nn.Linear(3, 1)).double()
    with torch.no_grad():
        zero[0].weight.zero_()
        zero[0].bias.zero_()
    assert fv.analyze(zero, X, fv.family("bernoulli"), progress=False).degenerate == []
    with torch.no_grad():
        one[0].bias.fill_(400.0)  # diag I(θ) ~ 1e-174: representable, its squares are not
    far = fv.analyze(one, X, fv.family("bernoulli"), progress=False)
    assert far.degenerate == [] and 0 < far.total.fisher < 1e-170
    assert far.samples_needed_1 is not None and far.samples_needed_2 is not None
    with pytest.raises(UnsupportedError, match=r"overflow: diag I\(θ\) is not finite.*row 0"):
        fv.analyze(one, X, fv.family("normal", sigma=1e200), progress=False)


def test_cli_degenerate_exits_3_with_a_warning_and_overflow_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "w.npz", W0=W0, W1=np.array([[1.0, 1.0, 1000.0]]))
    np.save(tmp_path / "x.npy", X2)
    base = ["analyze", "--weights", str(tmp_path / "w.npz"), "--x", str(tmp_path / "x.npy")]
    rc, out, err = _cli([*base, "--family", "bernoulli", "--json"], capsys)
    assert rc == 3 and "warning: degenerate result: every entry" in err
    assert _strict(out)["better"] == "undetermined"
    rc, _, err = _cli([*base, "--family", "poisson"], capsys)
    assert rc == 2 and "overflow" in err


# --- 5. strict JSON -----------------------------------------------------------------------------


def test_json_encoding_of_non_finite_numbers() -> None:
    data = {"a": math.inf, "b": [-math.inf, math.nan, 1.5], "c": np.array([np.inf, 2.0]),
            "d": np.float32("nan"), "e": (1, True, None)}
    assert _strict(jsontext.dumps(data)) == {"a": "inf", "b": ["-inf", "nan", 1.5],
                                             "c": ["inf", 2.0], "d": "nan", "e": [1, True, None]}
    assert float(_strict(jsontext.dumps(math.inf))) == math.inf


def test_derive_json_is_strict(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _cli(["derive", "poisson", "--format", "json", "--no-proofs", "--at", "800"],
                      capsys)
    assert rc == 0
    values = _strict(out)["values"]
    assert values["log_partition"] == "inf" and values["fisher"] == [["inf"]]


def test_no_lenient_json_dumps_in_the_package() -> None:
    root = Path(fv.__file__).parent
    lenient = [str(p.relative_to(root)) for p in root.rglob("*.py")
               if p.name != "jsontext.py" and "json.dump" in p.read_text(encoding="utf-8")]
    assert lenient == []


# --- 6. parameter checks independent of history -------------------------------------------------


@pytest.mark.parametrize(("name", "good", "bad"), [
    ("binomial", {"n": 1}, [{"n": 1.0}, {"n": True}, {"n": [1]}]),
    ("categorical", {"K": 3}, [{"K": 3.0}, {"K": [3]}]),
])
def test_parameter_refusal_does_not_depend_on_earlier_calls(name: str, good: dict[str, Any],
                                                             bad: list[dict[str, Any]]) -> None:
    fv.family(name, **good)
    for params in bad:
        with pytest.raises(ParameterError, match=f"parameter {next(iter(params))}="):
            fv.family(name, **params)
    assert fv.family(name, **good) is fv.family(name, **good)


# --- 7. tracebacks turned into refusals ---------------------------------------------------------


def test_meta_device_model_is_refused_at_every_entry_point(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(),
                                torch.nn.Linear(3, 1)).to("meta")
    fam, X = fv.family("bernoulli"), torch.as_tensor(X2)
    calls = [lambda: fv.analyze(model, X, fam, progress=False),
             lambda: fv.exact_fisher(model, X, fam, progress=False, diagonal=True),
             lambda: fv.variance(model, X, fam, progress=False, diagonal=True),
             lambda: fv.check_estimator(lambda m, d: None, model, X, family=fam),
             lambda: fv.Network.from_torch(model, family=fam)]
    for call in calls:
        with pytest.raises(FisherVerifyError, match="'0.weight' is on the meta device"):
            call()
    live = torch.nn.Sequential(torch.nn.Linear(2, 1))
    net = fv.Network.from_torch(live.double(), family=fam)
    for call in (lambda: fv.analyze(net, X.to("meta")),
                 lambda: fv.analyze(live, X.to("meta"), fam, progress=False)):
        with pytest.raises(FisherVerifyError, match="meta device"):
            call()
    torch.save(model, tmp_path / "meta.pt")
    np.save(tmp_path / "x.npy", X2)
    for inputs in (["--x", str(tmp_path / "x.npy")], ["--data", str(tmp_path / "x.npy")]):
        rc, _, err = _cli(["analyze", "--torch-model", str(tmp_path / "meta.pt"), "--trust-pickle",
                           *inputs, "--family", "bernoulli"], capsys)
        assert rc == 2 and "meta device" in err


def test_broken_model_module_and_file_paths_are_refused(workdir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _cli(["analyze", "--model", "i14_broken:build", "--data", "d.npy", "--family",
                       "bernoulli"], capsys)
    assert rc == 2 and "syntax error" in err and "i14_broken.py line 1" in err
    for path in ("../x", "dir/i14_models", "i14 models"):
        rc, _, err = _cli(["analyze", "--model", f"{path}:build", "--data", "d.npy", "--family",
                           "bernoulli"], capsys)
        assert rc == 2 and "is not a module import path" in err
