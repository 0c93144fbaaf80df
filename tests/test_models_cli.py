"""fisher-verify analyze --model (alias analyze-model): files written, weights loaded safely,
errors exit 2 without traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import fisher_verify as fv
from fisher_verify.cli import main

BUILDER = '''
import torch.nn as nn

def build(width=2):
    return nn.Sequential(nn.Conv2d(1, width, 3), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(width * 4, 3)).eval()
'''


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "h9_user_models.py").write_text(BUILDER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("h9_user_models", None)
    import h9_user_models  # type: ignore[import-not-found]

    torch.manual_seed(7)
    model = h9_user_models.build(width=2)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    torch.save((torch.randn(4, 1, 6, 6), torch.zeros(4)), tmp_path / "data.pt")
    np.save(tmp_path / "x.npy", torch.randn(4, 1, 6, 6).numpy())
    torch.save(model, tmp_path / "whole.pt")
    return tmp_path


@pytest.mark.parametrize("command", ["analyze", "analyze-model"])
def test_analyze_model_writes_table_json_png(workdir: Path, capsys: pytest.CaptureFixture[str],
                                             command: str) -> None:
    rc = main([command, "--model", "h9_user_models:build", "--model-arg", "width=2",
               "--weights", "w.pt", "--data", "data.pt", "--family", "categorical", "--param", "K=3",
               "-n", "5", "--out", "out"])
    assert rc == 0
    assert "sum Var I1" in capsys.readouterr().out
    report = json.loads((workdir / "out" / "report.json").read_text())
    assert (workdir / "out" / "variances.png").stat().st_size > 1000
    assert "total" in (workdir / "out" / "table.txt").read_text()
    # the weights were loaded: the same numbers as the API on the saved state
    import h9_user_models  # type: ignore[import-not-found]

    model = h9_user_models.build(width=2)
    model.load_state_dict(torch.load(workdir / "w.pt", weights_only=True))
    X = torch.load(workdir / "data.pt", weights_only=True)[0]
    rep = fv.analyze(model, X, fv.family("categorical", K=3), n=5, progress=False)
    assert report["total"]["var_1"] == pytest.approx(rep.total.var_1, rel=1e-12)
    assert report["var_2_all_exact"] is True


@pytest.mark.parametrize("argv, message", [
    (["--pickled-model", "whole.pt", "--data", "x.npy"], "needs --trust-pickle"),
    (["--torch-model", "whole.pt", "--data", "x.npy"], "--model pkg.mod:build --weights"),
    (["--model", "h9_user_models:build", "--data", "x.npy", "--trust-pickle"],
     "--trust-pickle applies"),
    (["--model", "h9_user_models:build", "--data", "x.npy", "--model-arg", "width"],
     "--model-arg 'width' must look like NAME=VALUE"),
    (["--model", "h9_user_models:build", "--x", "x.npy"], "give the inputs of --model as --data"),
    (["--model", "h9_user_models:build"], "--data is required"),
    (["--model", "h9_user_models:build", "--torch-model", "whole.pt", "--data", "x.npy"],
     "give one"),
    (["--model", "h9_user_models:build", "--data", "x.npy", "--activation", "relu"],
     "--activation"),
    (["--model", "h9_user_models", "--data", "x.npy"], "MODULE:CALLABLE"),
    (["--model", "h9_no_such_module:build", "--data", "x.npy"], "cannot import"),
    (["--model", "h9_user_models:build", "--weights", "data.pt", "--data", "x.npy"], "not a state_dict"),
    (["--model", "h9_user_models:build", "--model-arg", "width=3", "--weights", "w.pt", "--data",
      "x.npy"], "do not fit the model"),
    (["--model", "h9_user_models:build", "--data", "missing.npy"], "does not exist"),
    (["--model", "h9_user_models:build", "--data", "whole.pt"], "weights_only=True"),
])
@pytest.mark.parametrize("command", ["analyze", "analyze-model"])
def test_errors_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                       message: str, command: str) -> None:
    rc = main([command, *argv, "--family", "categorical", "--param", "K=3"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_trusted_pickle_and_family_mismatch(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze-model", "--pickled-model", "whole.pt", "--trust-pickle", "--data", "x.npy",
                 "--family", "categorical", "--param", "K=3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_inputs"] == 4
    # the same option under its other name, on the any-model route because of --data
    assert main(["analyze", "--torch-model", "whole.pt", "--trust-pickle", "--data", "x.npy",
                 "--family", "categorical", "--param", "K=3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_inputs"] == 4
    rc = main(["analyze-model", "--pickled-model", "whole.pt", "--trust-pickle", "--data", "x.npy",
               "--family", "bernoulli"])
    assert rc == 2 and "(batch, 1)" in capsys.readouterr().err
