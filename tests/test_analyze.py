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
    err = _one_line_error(capsys, ["analyze", "--weights", str(w), "--x", str(x),
                                   "--family", "categorical", "--param", "K=2",
                                   "--activation", "relu"])
    assert "C^2" in err


def test_analyze_result(files):
    pytest.importorskip("fisher_verify.fisher.covariance")
    pytest.importorskip("fisher_verify.fisher.bounds")
    w, x = files
    net = fv.Network.from_npz(w, family=fv.family("categorical", K=2))
    res = fv.analyze(net, np.load(x), n=10)
    assert res.num_params == net.num_params and res.fisher.shape == (res.num_params,) * 2
    assert res.better in ("I1", "I2", "tie") and len(res.layers) == 2
    assert res.samples_needed_1 is not None and res.samples_needed_1 >= 1
    assert "lemma-12" in res.summary()


def test_analyze_cli_json(files, capsys):
    pytest.importorskip("fisher_verify.fisher.covariance")
    pytest.importorskip("fisher_verify.fisher.bounds")
    w, x = files
    assert main(["analyze", "--weights", str(w), "--x", str(x), "--family", "categorical",
                 "--param", "K=2", "--samples", "5", "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["n"] == 5 and doc["num_params"] == 3 * 4 + 4 + 2 * 5
