"""The engine's rule table (fisher_verify._src.models.rules): a user's own layer kind, registered,
gives the exact diagonals of the dense NumPy reference; an unregistered one that torch.func
cannot differentiate is refused at once, naming the module and how to register a rule.

The custom layer computes ``x Wᵀ + b`` through a custom ``torch.autograd.Function`` written in
the old style (no ``setup_context``), which torch.func's transforms refuse. Expected values:
the dense route of :mod:`fisher_verify._src.fisher` (``exact_fisher``, ``covariance.variance``) on
the Eq. 3 network with the same weights, a route that shares no code with the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import fisher_verify as fv
from fisher_verify._src.fisher.covariance import network_variance
from fisher_verify._src.models import rules
from fisher_verify._src.models.as_network import module_network
from fisher_verify.errors import FisherVerifyError, UnsupportedError


class _AffineFn(torch.autograd.Function):
    """``x Wᵀ + b`` with its own backward, old style: torch.func cannot transform it."""

    @staticmethod
    def forward(ctx: Any, x: Any, w: Any, b: Any) -> Any:  # type: ignore[override]
        ctx.save_for_backward(x, w)
        return x @ w.T + b

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
        x, w = ctx.saved_tensors
        return g @ w, g.T @ x, g.sum(0)


class OddLinear(torch.nn.Module):
    """A user's own affine layer whose forward goes through :class:`_AffineFn`."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_out, n_in))
        self.bias = torch.nn.Parameter(torch.randn(n_out))

    def forward(self, x: Any) -> Any:
        return _AffineFn.apply(x, self.weight, self.bias)


def _odd_forward(module: OddLinear, x: Any) -> Any:
    return torch.nn.functional.linear(x, module.weight, module.bias)


@pytest.fixture
def registered() -> Iterator[None]:
    rules.register_layer(OddLinear, _odd_forward)
    try:
        yield
    finally:
        rules.unregister_layer(OddLinear)


def _model_and_reference() -> tuple[Any, Any, np.ndarray, Any]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(OddLinear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    fam = fv.family("categorical", K=3)
    weights = [torch.cat([model[i].weight, model[i].bias[:, None]], 1).detach().numpy()
               for i in (0, 2)]
    net = fv.Network.from_weights(weights, "tanh", fam)
    X = np.random.default_rng(1).normal(size=(6, 4))
    return model, net, X, fam


def _flat(d: Any) -> np.ndarray:
    """The engine's per-tensor result in the Network's flat θ order (W_l with its bias last)."""
    blocks = []
    for i in (0, 2):
        W = d[f"{i}.weight"].detach().numpy()
        b = d[f"{i}.bias"].detach().numpy()
        blocks.append(np.concatenate([W, b[:, None]], 1).reshape(-1))
    return np.concatenate(blocks)


def test_an_unregistered_layer_torch_func_cannot_transform_is_refused_by_name() -> None:
    model, _, X, fam = _model_and_reference()
    with pytest.raises(UnsupportedError, match=r"module 0 \(OddLinear\).*register_layer"):
        fv.exact_fisher(model, torch.as_tensor(X), fam, progress=False, diagonal=True)
    with pytest.raises(UnsupportedError, match=r"module 0 \(OddLinear\).*register_layer"):
        module_network(model, fam, X)


def test_a_registered_layer_gives_the_dense_reference(registered: None) -> None:
    model, net, X, fam = _model_and_reference()
    Xt = torch.as_tensor(X)
    got_f = _flat(fv.exact_fisher(model, Xt, fam, progress=False, diagonal=True))
    np.testing.assert_allclose(got_f, np.diag(fv.exact_fisher(net, X)), rtol=1e-10, atol=1e-14)
    for k in (1, 2):
        got = fv.variance(model, Xt, fam, which=f"I{k}", n=3, progress=False, diagonal=True)
        assert got.all_exact
        np.testing.assert_allclose(_flat(got), network_variance(net, X, k, 3, diagonal=True),
                                   rtol=1e-9, atol=1e-15)
    # the gate's reference network for the same model gives the same Jacobians
    ref = module_network(model, fam, X)
    np.testing.assert_allclose(ref.forward(X), net.forward(X), rtol=1e-12)


def test_the_users_module_is_left_alone(registered: None) -> None:
    model, _, X, fam = _model_and_reference()
    fv.exact_fisher(model, torch.as_tensor(X), fam, progress=False, diagonal=True)
    assert "forward" not in vars(model[0])  # the rule went into the working copy only
    assert OddLinear.forward is not _odd_forward


def test_the_table_looks_up_kinds_by_class() -> None:
    class MyLinear(torch.nn.Linear):
        pass

    assert rules.rule_for(torch.nn.Linear(2, 2)).name == "linear"  # type: ignore[union-attr]
    # a subclass may compute something else: the Linear factorisation is not assumed for it
    assert rules.rule_for(MyLinear(2, 2)) is None
    assert rules.rule_for(torch.nn.Tanh()) is None  # the generic rule
    assert rules.rule_for(OddLinear(2, 2)) is None
    rules.register_layer(OddLinear, _odd_forward)
    try:
        rule = rules.rule_for(OddLinear(2, 2))
        assert rule is not None and rule.forward is _odd_forward and rule.name == "OddLinear"
    finally:
        rules.unregister_layer(OddLinear)
    assert rules.rule_for(OddLinear(2, 2)) is None
    rules.unregister_layer(torch.nn.Linear)  # built-in rules cannot be removed
    assert rules.rule_for(torch.nn.Linear(2, 2)) is not None


def test_register_layer_refuses_what_is_not_a_module_kind_or_a_forward() -> None:
    with pytest.raises(FisherVerifyError, match="kind must be a subclass of torch.nn.Module"):
        rules.register_layer(int, _odd_forward)
    with pytest.raises(FisherVerifyError, match="forward"):
        rules.register_layer(OddLinear, "not callable")  # type: ignore[arg-type]


def test_the_mlp_rule_plans_its_chunks_from_what_one_input_forms(monkeypatch: Any) -> None:
    """Var(Î₂) of an nn.Sequential MLP goes through the mlp rule in chunks sized by what one
    input forms there, within the caller's memory budget: not a fixed guess of a full n²
    Hessian per output and input (which gave 2 inputs at a time on 784-1000-1000-10 at 1 GiB).

    Widths 30-40-40-3, K = 3: per input ``β_k``, ``λ_k`` and ``diag Γ_l`` of n_L = 3 rows for
    every layer (3 · 3 · (40 + 40 + 3) = 747 numbers), no ``J_{kl}`` (no two hidden layers two
    apart), twice for temporaries: ``2²⁰ / (8 · 2 · 747) = 87`` inputs per chunk, inside
    batches of ``2²⁰ / (8 · (3 · (110 + 83) + 3 · 40 · 4)) = 123`` raw inputs."""
    from fisher_verify._src.models import mlp

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(30, 40), torch.nn.Tanh(), torch.nn.Linear(40, 40),
                                torch.nn.Tanh(), torch.nn.Linear(40, 3)).double()
    fam = fv.family("categorical", K=3)
    X = torch.randn(300, 30, dtype=torch.float64)
    budget = 1 << 20
    sizes: list[int] = []
    gamma = mlp._gamma_diagonals

    def spy(s: Any, q: Any) -> Any:
        sizes.append(int(q.h.shape[0]))
        return gamma(s, q)

    monkeypatch.setattr(mlp, "_gamma_diagonals", spy)
    got = fv.variance(model, X, fam, which="I2", progress=False, memory=budget, diagonal=True)
    assert set(got.methods.values()) == {"eq3"}
    assert sizes == [87, 36, 87, 36, 54]
