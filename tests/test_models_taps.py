"""The layer route (fisher_verify._src.models.taps) against the dense autograd route of test_models.

Every expected value is the dense route's (one plain backward pass per input and output, eq-6 and
thm-4 element-wise); the layer route must be taken where it applies (a spy on ``tap_sums``) and
must decline, falling back to the exact per-input route, where its factorisation would be wrong:
inputs coupled across the batch, a weight also used outside its layer, a layer that sees the
batch in another layout. No timing is asserted (benchmarks/bench_models.py).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from typing import Any

import pytest
import torch
import torch.nn as nn
from test_models import _assert_same, _snapshot, assert_close, expected, flat

import fisher_verify as fv
import fisher_verify._src.models.diagonals as diagonals_module
import fisher_verify._src.models.taps as taps_module

warnings.filterwarnings("ignore", message=".*performance drop.*")


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per call of ``tap_sums``, whether the layer route answered."""
    taken: list[bool] = []
    original = diagonals_module.tap_sums

    def spy(ws: Any, fisher: bool, variance_1: bool) -> Any:
        out = original(ws, fisher, variance_1)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(diagonals_module, "tap_sums", spy)
    return taken


class SeqLinear(nn.Module):
    """A Linear layer on every position of a sequence, once: a sum over positions per input."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.tok = nn.Linear(3, 4)
        self.fc = nn.Linear(4, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.tok(x)).mean(1))


def _convs(n_out: int) -> nn.Module:
    """Grouped, dilated, strided, 'same'-padded and reflect-padded convolutions."""
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding="same", padding_mode="reflect"), nn.Tanh(),
        nn.Conv2d(4, 4, 3, groups=2, stride=2, dilation=1, padding=1), nn.Softplus(),
        nn.Conv2d(4, 2, 2, dilation=2, bias=False), nn.Flatten(), nn.Linear(2 * 1 * 1, n_out))


def _conv1d(n_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv1d(2, 3, 3, padding=2, stride=2), nn.SiLU(),
                         nn.Conv1d(3, 2, 2, padding="same", padding_mode="circular"),
                         nn.Flatten(), nn.Linear(2 * 5, n_out))


def layer_models(n_out: int) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    torch.manual_seed(11)
    return {
        "mlp_float64": (nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.ReLU(),
                                      nn.Linear(4, n_out)).double(),
                        torch.randn(5, 3, dtype=torch.float64)),
        "convs": (_convs(n_out), torch.randn(3, 2, 5, 5)),
        "conv1d": (_conv1d(n_out), torch.randn(4, 2, 7)),
        "seq_linear": (SeqLinear(n_out), torch.randn(3, 6, 3)),
    }


FAMILIES = {
    "categorical4": (lambda: fv.family("categorical", K=4), 4),
    "product_poisson_bernoulli": (lambda: fv.product(fv.family("poisson"), fv.family("bernoulli")), 2),
}


@pytest.mark.parametrize("fam_name", list(FAMILIES))
@pytest.mark.parametrize("model_name", list(layer_models(1)))
def test_layer_route_taken_and_exact(model_name: str, fam_name: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    make, n_out = FAMILIES[fam_name]
    fam = make()
    model, X = layer_models(n_out)[model_name]
    X = 0.5 * X
    want = expected(model, X, fam, n=2)
    taken = _spy(monkeypatch)
    if model_name == "mlp_float64":  # a chain of Linear layers: the layer route itself, not the
        # whole-model mlp rule that answers first (tests/test_models_mlp_rule.py)
        monkeypatch.setattr(diagonals_module, "sequential_layers", lambda ws: None)
    got_f = fv.exact_fisher(model, X, fam, progress=False, diagonal=True)
    got_v = fv.variance(model, X, fam, which="I1", n=2, progress=False, diagonal=True)
    assert taken == [True, True]
    assert_close(flat(got_f, model), want["fisher"])
    assert_close(flat(got_v, model), want["v1"])


def test_layer_route_over_several_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two inputs per batch: the sums over batches are the same."""
    fam = fv.family("categorical", K=3)
    model, X = layer_models(3)["convs"]
    want = expected(model, X, fam, n=1)
    taken = _spy(monkeypatch)
    monkeypatch.setattr(taps_module, "MAX_BATCH", 2)
    got = fv.exact_fisher(model, X, fam, progress=False, diagonal=True)
    assert taken == [True]
    assert_close(flat(got, model), want["fisher"])


class BatchCoupled(nn.Module):
    """Each output depends on the other inputs of the batch (centred over the batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.fc2 = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.tanh(self.fc1(x))
        return self.fc2(a - 0.5 * a.mean(0, keepdim=True))


class ReusedWeight(nn.Module):
    """fc1's weight also enters outside fc1 (a functional call): its hooks see one use only."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 3)
        self.fc2 = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.tanh(self.fc1(x))
        return self.fc2(a + 0.3 * torch.nn.functional.linear(a, self.fc1.weight))


class TimeFirst(nn.Module):
    """A Linear layer on a (time, batch, features) layout: with as many steps as inputs its
    input's first axis looks like the batch, but its rows are time steps."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.fc2 = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, 3) with T = B
        a = torch.tanh(self.fc1(x.transpose(0, 1)))  # (T, B, 4)
        return self.fc2(a.mean(0))


@pytest.mark.parametrize("cls", [ReusedWeight, TimeFirst])
def test_layer_route_declines_where_its_factorisation_is_wrong(
        cls: type[nn.Module], monkeypatch: pytest.MonkeyPatch) -> None:
    fam = fv.family("categorical", K=3)
    torch.manual_seed(4)
    model = cls().double()
    X = torch.randn(2, 2, 3, dtype=torch.float64) if cls is TimeFirst \
        else torch.randn(4, 3, dtype=torch.float64)
    want = expected(model, X, fam, n=1)
    taken = _spy(monkeypatch)
    got_f = fv.exact_fisher(model, X, fam, progress=False, diagonal=True)
    got_v = fv.variance(model, X, fam, which="I1", progress=False, diagonal=True)
    assert taken == [False, False]
    assert_close(flat(got_f, model), want["fisher"])
    assert_close(flat(got_v, model), want["v1"])


class GradientCoupled(BatchCoupled):
    """Coupled across the batch in its derivatives only: the forward values, and each input's
    derivative of its own output, are those of the input alone (the batch sum enters as
    ``sum − sum.detach()``); only the other inputs' rows see the first input's output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.tanh(self.fc1(x))
        m = a.sum(0, keepdim=True)
        return self.fc2(a + 0.5 * (m - m.detach()))


@pytest.mark.parametrize("cls", [BatchCoupled, GradientCoupled])
def test_layer_route_declines_a_batch_coupled_model(cls: type[nn.Module],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Coupling across the batch: the per-input derivatives of the layer route would hold
    other inputs' terms. The route declines (the generic route's values are those of the
    batched forward pass, as before)."""
    fam = fv.family("categorical", K=3)
    torch.manual_seed(5)
    model = cls().double()
    X = torch.randn(4, 3, dtype=torch.float64)
    taken = _spy(monkeypatch)
    fv.exact_fisher(model, X, fam, progress=False, diagonal=True)
    assert taken == [False]


def test_borrowed_model_untouched_and_results_equal_a_copy() -> None:
    """A stock float64 model is run in place (no copy): nothing of it changes, and the values
    equal those of the same model in float32 (which is copied)."""
    fam = fv.family("categorical", K=3)
    torch.manual_seed(8)
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4, 3))
    X = torch.randn(6, 1, 6)
    a = fv.exact_fisher(model, X, fam, progress=False, diagonal=True)
    model = model.double().eval()
    snap = _snapshot(model)
    b = fv.exact_fisher(model, X.double(), fam, progress=False, diagonal=True)
    c = fv.variance(model, X.double(), fam, which="I1", progress=False, diagonal=True)
    _assert_same(model, snap)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-12, atol=0)
    assert set(c) == set(a)


def test_first_call_needs_no_torch_func_machinery() -> None:
    """torch.func's first call imports torch._dynamo (most of a second): the layer route must
    not use it, so a fresh process computing diag I(θ) of an MLP and a CNN never imports it."""
    code = (
        "import sys, torch, fisher_verify as fv\n"
        "nn = torch.nn\n"
        "fam = fv.family('categorical', K=10)\n"
        "mlp = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 10)).double()\n"
        "cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),\n"
        "                    nn.Linear(8, 10)).double()\n"
        "before = set(sys.modules)\n"
        "fv.exact_fisher(mlp, torch.randn(4, 6, dtype=torch.float64), fam, diagonal=True)\n"
        "print(sorted(set(sys.modules) - before))\n"
        "fv.exact_fisher(cnn, torch.randn(4, 1, 6, 6, dtype=torch.float64), fam, diagonal=True)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    *_, mlp_new, dynamo = out.stdout.strip().splitlines()
    assert dynamo == "False"
    # the MLP's call (the whole-model mlp rule) imports no symbolic machinery, no Eq. 3
    # Network, and none of the engine's second-order or layer-route modules
    heavy = ("sympy", "mpmath", "torch._dynamo", "fisher_verify._src.symbolic",
             "fisher_verify._src.networks", "fisher_verify._src.models.hessian",
             "fisher_verify._src.models.taps", "fisher_verify._src.models.linear",
             "fisher_verify._src.models.kinks", "fisher_verify._src.families.losses")
    imported = eval(mlp_new)  # noqa: S307 - the list of module names printed above
    assert "fisher_verify._src.models.mlp_route" in imported
    assert not [m for m in imported if m.startswith(heavy)], imported
