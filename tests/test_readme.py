"""The README's Python snippets run as printed (issue 8: what a newcomer meets first).

Each snippet is read from README.md itself, so a change to the API that breaks one fails here,
and each is also run in a wrong variant to show that the check can fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import fisher_verify as fv
from fisher_verify.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _block(marker: str) -> str:
    """The one ```python block of the README that contains ``marker``."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if marker in b]
    assert len(blocks) == 1, f"expected one README python block with {marker!r}"
    return blocks[0]


def test_tour_snippet_runs_and_its_fisher_is_the_jacobian_sandwich() -> None:
    ns: dict[str, object] = {}
    exec(compile(_block('fv.family("binomial", n=5)'), "README.md", "exec"), ns)
    net, x, fisher = ns["net"], ns["x"], ns["I"]
    assert isinstance(net, fv.Network)
    # eq-6 by an independent route: the dense Jacobian and the family's I(h_L)
    J = net.jacobian(x)
    expected = J.T @ net.family.fisher(net.forward(x)) @ J
    np.testing.assert_allclose(fisher, expected, rtol=1e-12, atol=1e-15)
    assert ns["est"].i1.shape == expected.shape  # type: ignore[attr-defined]


def test_gate_snippet_passes_a_correct_estimator_and_names_a_missing_one_over_n() -> None:
    code = _block("fv.assert_estimator(est, net, x")
    net = fv.Network.random([3, 4, 1], activation="tanh", family=fv.family("bernoulli"), rng=0)
    x = np.random.default_rng(2).normal(size=(4, 3))

    def correct(net: fv.Network, x: np.ndarray, n: int, rng: object) -> np.ndarray:
        return fv.sample_estimators(net, x, n=n, rng=rng).i1  # type: ignore[arg-type]

    exec(compile(code, "README.md", "exec"), {"fv": fv, "net": net, "x": x, "my_fisher": correct})

    def summed(net: fv.Network, x: np.ndarray, n: int, rng: object) -> np.ndarray:
        return n * correct(net, x, n, rng)

    with pytest.raises(AssertionError, match="missing 1/N"):
        exec(compile(code, "README.md", "exec"), {"fv": fv, "net": net, "x": x, "my_fisher": summed})


def test_user_proof_snippet_is_verified_by_check_and_refuted_when_wrong(tmp_path: Path) -> None:
    code = _block("@statement(\"poisson-mean\"")
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (good / "poisson_mean.py").write_text(code)
    assert "fam.mean(h), rtol" in code
    (bad / "poisson_mean.py").write_text(code.replace("fam.mean(h), rtol", "2 * fam.mean(h), rtol"))
    assert main(["check", str(good)]) == 0
    assert main(["check", str(bad)]) == 1


def test_model_snippet_gives_one_tensor_per_parameter_and_the_fisher_of_a_linear_model() -> None:
    import torch

    torch.manual_seed(0)
    # a linear softmax model: diag I(θ) is known in closed form, (1/M) Σ_m x_c² (p_r − p_r²)
    model = torch.nn.Linear(3, 10).double().eval()
    x = torch.randn(6, 3, dtype=torch.float64)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(6)), batch_size=4)
    ns: dict[str, object] = {"fv": fv, "model": model, "loader": loader, "print": lambda *a: None}
    exec(compile(_block("fv.exact_fisher(model, loader, fam, diagonal=True)"), "README.md", "exec"), ns)
    fisher = ns["fisher"]
    assert isinstance(fisher, dict) and list(fisher) == ["weight", "bias"]
    with torch.no_grad():
        p = torch.softmax(model(x), dim=-1)
    expected_w = ((p - p * p)[:, :, None] * (x * x)[:, None, :]).mean(0)
    torch.testing.assert_close(fisher["weight"], expected_w, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(fisher["bias"], (p - p * p).mean(0), rtol=1e-12, atol=1e-15)
    assert set(ns["var1"]) == {"weight", "bias"}  # type: ignore[arg-type]
