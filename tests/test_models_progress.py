"""The engine's progress line (models/workspace.Workspace.batches): one counter per pass over the
inputs, on stderr, only when the user asked for progress, closed with a newline once shown."""

from __future__ import annotations

import io
import re

import pytest
import torch
import torch.nn as nn

import fisher_verify as fv
from fisher_verify._src.models import data


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("progress", [True, False])
def test_every_batch_is_counted_on_one_line(progress: bool,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 2 of 5 inputs: the counter reads 2, 4, 5 of 5 for diag I (the mlp rule's
    Jacobian rows) and for Var(Î₂) (its Hessian diagonals), then a newline; nothing at all
    without ``progress``."""
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr(data.Progress.__init__, "__defaults__", (0.0,))  # shown at once
    monkeypatch.setattr("fisher_verify._src.models.mlp_route.MAX_BATCH", 2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    X = torch.randn(5, 3, dtype=torch.float64)
    fam = fv.family("categorical", K=3)
    fv.exact_fisher(model, X, fam, diagonal=True, progress=progress)
    fv.variance(model, X, fam, which="I2", diagonal=True, progress=progress)
    if not progress:
        assert err.getvalue() == ""
        return
    lines = err.getvalue().split("\n")
    assert lines[-1] == ""
    for line, label in zip(lines[:-1], ("Jacobian rows", "Hessian diagonals"), strict=True):
        counts = re.findall(rf"\rfisher-verify: {label}: (\d+)/5 inputs, \d+ s", line)
        assert counts == ["2", "4", "5"], line
