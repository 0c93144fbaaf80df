"""``analyze`` and ``fisher-verify analyze``: results and one-line user errors (issue 5)."""

from __future__ import annotations

import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify.cli import main


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    net = fv.Network.random([3, 4, 2], "tanh", fv.product(fv.family("bernoulli"),
                                                          fv.family("bernoulli")), 1.0, rng)
    w = tmp_path / "w.npz"
    np.savez(w, **{f"W{i}": W for i, W in enumerate(net.weights)})
    x = tmp_path / "x.npy"
    np.save(x, rng.normal(size=3))
    return w, x


def _one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and "error" in err
    return err


def test_bad_inputs_are_one_line_exit_2(files, tmp_path, capsys):
    w, x = files
    base = ["analyze", "--x", str(x), "--family", "bernoulli"]
    _one_line_error(capsys, [*base, "--weights", str(tmp_path / "none.npz")])
    np.savez(tmp_path / "bad.npz", A=np.zeros((2, 2)))
    _one_line_error(capsys, [*base, "--weights", str(tmp_path / "bad.npz")])
    # a univariate family on a 2-output network
    _one_line_error(capsys, [*base, "--weights", str(w)])
    np.save(tmp_path / "x5.npy", np.zeros(5))
    _one_line_error(capsys, ["analyze", "--weights", str(w), "--x", str(tmp_path / "x5.npy"),
                             "--family", "categorical", "--param", "K=2"])
    _one_line_error(capsys, ["analyze", "--weights", str(w), "--x", str(x), "--family", "nope"])
    # ReLU: analysed at an input away from its kinks (thm-3-ae), refused at a kink, naming it
    relu = ["analyze", "--weights", str(w), "--family", "categorical", "--param", "K=2",
            "--activation", "relu"]
    assert main([*relu, "--x", str(x)]) == 0
    assert "Var(I2)" in capsys.readouterr().out
    W0 = np.load(w)["W0"]
    x_kink = np.array([1.0, 0.0, 0.0]) * (-W0[1, -1] / W0[1, 0])  # unit 1 of layer 1 at 0
    np.save(tmp_path / "x_kink.npy", x_kink)
    err = _one_line_error(capsys, [*relu, "--x", str(tmp_path / "x_kink.npy")])
    assert "kink" in err and "input 0: pre-activation 1 of layer 1" in err
    # --x that is not an .npy array, is an .npz archive or is a folder; a malformed --param;
    # a target outside (0, 1)
    (tmp_path / "junk.npy").write_text("not numpy")
    for bad_x, words in ((tmp_path / "junk.npy", "not a readable NumPy .npy array"),
                         (w, "is an .npz archive"), (tmp_path, "is a folder")):
        err = _one_line_error(capsys, ["analyze", "--weights", str(w), "--x", str(bad_x),
                                       "--family", "categorical", "--param", "K=2"])
        assert words in err
    err = _one_line_error(capsys, ["analyze", "--weights", str(w), "--x", str(x),
                                   "--family", "categorical", "--param", "K"])
    assert "NAME=VALUE" in err
    err = _one_line_error(capsys, ["analyze", "--weights", str(w), "--x", str(x),
                                   "--family", "categorical", "--param", "K=2", "--target", "0"])
    assert "target must lie strictly between 0 and 1, got 0.0" in err


def test_analyze_result(files):
    w, x = files
    net = fv.Network.from_npz(w, family=fv.family("categorical", K=2))
    res = fv.analyze(net, np.load(x), n=10)
    assert res.num_params == net.num_params and res.fisher.shape == (res.num_params,) * 2
    assert res.better in ("I1", "I2", "tie") and len(res.layers) == 2
    assert res.samples_needed_1 is not None and res.samples_needed_1 >= 1
    assert "lemma-12" in res.summary()


def test_analyze_cli_json(files, capsys):
    w, x = files
    assert main(["analyze", "--weights", str(w), "--x", str(x), "--family", "categorical",
                 "--param", "K=2", "--samples", "5", "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["n"] == 5 and doc["num_params"] == 3 * 4 + 4 + 2 * 5


class _RunsCodeWhenUnpickled:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


def test_torch_model_without_trust_pickle_is_refused_before_reading(tmp_path, capsys):
    """Loading a user's file never runs code from it unless the user opts in: --torch-model
    without --trust-pickle is one line, exit 2, naming the flag and the safe alternative, and
    the file's code does not run; with --trust-pickle it does (the opt-in is real)."""
    import torch

    marker = tmp_path / "ran"
    torch.save(_RunsCodeWhenUnpickled(str(marker)), tmp_path / "evil.pt")
    np.save(tmp_path / "x.npy", np.zeros(3))
    argv = ["analyze", "--torch-model", str(tmp_path / "evil.pt"), "--x",
            str(tmp_path / "x.npy"), "--family", "bernoulli"]
    for name in ("analyze", "analyze-model"):
        err = _one_line_error(capsys, [name, *argv[1:]])
        assert "--trust-pickle" in err and "--model pkg.mod:build --weights state_dict.pt" in err
        assert not marker.exists()
    err = _one_line_error(capsys, ["analyze", "--pickled-model", str(tmp_path / "evil.pt"),
                                   "--data", str(tmp_path / "x.npy"), "--family", "bernoulli"])
    assert "--trust-pickle" in err and not marker.exists()
    # opted in: the file is unpickled (its code runs) and what it held is then refused
    err = _one_line_error(capsys, [*argv, "--trust-pickle"])
    assert marker.exists() and "not an nn.Sequential" in err


def test_trust_pickle_help_says_why(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--trust-pickle allow --torch-model/--pickled-model: unpickling a whole module runs " \
           "code stored in the file" in out


@pytest.mark.parametrize("extra, words", [
    (["--trust-pickle"], "--trust-pickle applies to --torch-model"),
    (["--data", "DATA"], "--data"),
    (["--out", "OUT"], "--out applies to a model given with --model"),
    (["--eval"], "--eval applies"),
    (["--method", "hessian"], "--method applies"),
    (["--model", "os:getcwd"], "--x"),
])
def test_options_of_the_other_route_are_refused(files, tmp_path, capsys, extra, words):
    """Nothing the user gave is silently ignored: any-model options on the Eq. 3 route (and
    --x with --model) are refused, naming the option."""
    w, x = files
    extra = [str(tmp_path / "d.npy") if a == "DATA" else str(tmp_path / "o") if a == "OUT" else a
             for a in extra]
    argv = ["analyze", "--x", str(x), "--family", "bernoulli", *extra]
    if "--model" not in extra:
        argv += ["--weights", str(w)]
    err = _one_line_error(capsys, argv)
    assert words in err
    assert not (tmp_path / "o").exists()


def test_a_state_dict_as_eq3_weights_points_to_model(files, tmp_path, capsys):
    import torch

    _, x = files
    torch.save(torch.nn.Linear(3, 1).state_dict(), tmp_path / "sd.pt")
    err = _one_line_error(capsys, ["analyze", "--weights", str(tmp_path / "sd.pt"), "--x", str(x),
                                   "--family", "bernoulli"])
    assert "--model MODULE:CALLABLE" in err and "sd.pt" in err


def test_fv_analyze_of_a_torch_module_without_family_names_the_family():
    """fv.analyze(model, data) for a torch module asks for the output family by name (the one
    entry takes any module; the family is not part of it)."""
    import torch

    model = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2, 1))
    with pytest.raises(fv.FisherVerifyError) as info:
        fv.analyze(model, np.zeros((1, 1, 4)))
    msg = str(info.value)
    assert msg.startswith("family:") and "fisher_verify.family('categorical', K=10)" in msg


def test_analyze_cli_torch_model(tmp_path, capsys):
    """--torch-model --trust-pickle: a whole nn.Sequential saved with torch.save (loaded with
    weights_only=False) gives the same analysis as its weights in .npz; a state_dict is a
    one-line user error."""
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model = model.double()
    path = tmp_path / "model.pt"
    torch.save(model, path)
    x = tmp_path / "x.npy"
    xs = np.random.default_rng(1).normal(size=(3, 3))
    np.save(x, xs)
    argv = ["analyze", "--torch-model", str(path), "--x", str(x), "--family", "categorical",
            "--param", "K=2", "--samples", "4", "--json", "--trust-pickle"]
    assert main(argv) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    net = fv.Network.from_torch(model, family=fv.family("categorical", K=2))
    ref = fv.analyze(net, xs, n=4)
    assert doc["num_params"] == 3 * 4 + 4 + 2 * 5 == ref.num_params
    assert doc["model"] == "Network widths (3, 4, 2), activation tanh"
    assert doc["bound_1"] == pytest.approx(ref.bound_1, rel=1e-12)
    assert doc["covariance_norm_2"] == pytest.approx(ref.covariance_norm_2, rel=1e-12)
    b = fv.bounds(net, xs, n=4)
    # streamed over chunks of inputs (fisher/streamed.py): equal up to rounding
    assert ref.bound_1 == pytest.approx(float(b.thm7), rel=1e-12)
    assert ref.bound_2 == pytest.approx(float(b.thm8), rel=1e-12)
    # None when thm-10 does not apply
    assert (ref.psd_probability is None) == (b.psd_probability.rhs is None)
    if ref.psd_probability is not None:
        assert ref.psd_probability == pytest.approx(b.psd_probability.rhs, rel=1e-9)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    err = _one_line_error(capsys, [*argv[:2], str(tmp_path / "sd.pt"), *argv[3:]])
    assert "state_dict" in err


def test_diagonal_mode_uses_the_large_path_and_matches_the_dense_route() -> None:
    """diagonal=True (the default above 2000 parameters) gives the dense route's diagonals."""
    import numpy as np

    import fisher_verify as fv

    rng = np.random.default_rng(4)
    net = fv.Network.random([3, 5, 2], activation="tanh", family=fv.family("categorical", K=2), rng=rng)
    x = rng.normal(size=(3, 3))
    diag = fv.analyze(net, x, n=20, diagonal=True)
    dense = fv.analyze(net, x, n=20, diagonal=False)
    assert diag.diagonal_only and not dense.diagonal_only
    np.testing.assert_allclose(diag.fisher, np.diag(dense.fisher), rtol=1e-10, atol=1e-14)
    for e in ("variance_1", "variance_2"):
        np.testing.assert_allclose(getattr(diag, e), np.diag(getattr(dense, e)), rtol=1e-10, atol=1e-14)
    assert diag.covariance_norm_1 is not None and dense.covariance_norm_1 is not None
    np.testing.assert_allclose(diag.covariance_norm_1, dense.covariance_norm_1, rtol=1e-10)
    np.testing.assert_allclose(diag.bound_1, dense.bound_1, rtol=1e-10)
    np.testing.assert_allclose(diag.bound_2, dense.bound_2, rtol=1e-10)
    assert "thm-10 not computed for large P" in diag.summary()


def test_summary_explains_why_thm10_does_not_apply() -> None:
    """With M inputs I(θ) has rank <= M n_L; when that is below P the summary says so."""
    import numpy as np

    import fisher_verify as fv

    rng = np.random.default_rng(0)
    net = fv.Network.random([3, 4, 1], activation="tanh", family=fv.family("bernoulli"), rng=rng)
    result = fv.analyze(net, rng.normal(size=(5, 3)), n=100)
    assert result.num_inputs == 5 and result.psd_probability is None
    assert "rank I(theta) <= M n_L = 5 < P = 21" in result.summary()


def test_samples_needed_is_the_smallest_n_that_meets_lemma_12() -> None:
    """lemma-12 (Chebyshev): N draws give ‖Î₁ − I‖_F ≤ rel‖I‖_F with probability ≥ conf once
    Σ Var(one draw)/N ≤ (1 − conf) rel² ‖I‖². The one-draw variances here come from enumerating
    the Bernoulli label (not from the closed form analyze uses), and N must be the smallest."""
    net = fv.Network.random([2, 3, 1], "tanh", family=fv.family("bernoulli"), rng=4)
    x = np.array([0.4, -1.2])
    J = np.asarray(net.jacobian(x[None], method="autodiff"))[0]     # (1, P), torch.func
    p = 1.0 / (1.0 + np.exp(-net.forward(x)[0]))
    outer = {y: np.outer(J[0] * (y - p), J[0] * (y - p)) for y in (0, 1)}
    law = {0: 1.0 - p, 1: p}
    fisher = sum(law[y] * outer[y] for y in (0, 1))
    var_one = sum(law[y] * (outer[y] - fisher) ** 2 for y in (0, 1)).sum()
    rel, conf = 0.1, 0.95
    res = fv.analyze(net, x, n=1, target=rel, confidence=conf)
    N = res.samples_needed_1
    budget = (1 - conf) * rel**2 * np.linalg.norm(fisher) ** 2
    assert N is not None and var_one / N <= budget * (1 + 1e-12)
    assert N == 1 or var_one / (N - 1) > budget * (1 - 1e-12)
