"""The engine's whole-model ``mlp`` rule for diag I(θ) and Var(Î₁) (models/mlp_route.py), and rules
registered for a stock module kind on a model the engine would otherwise run in place.

Expected values come from the dense route of test_models (one plain ``torch.autograd`` backward
pass per input and output on the model as the user wrote it, hooks included; eq-6 and the
element-wise thm-4 formula with the family's dense fourth moment), a route that shares no code
with the rule. The rule must be taken where the model is exactly a chain of stock Linear layers and
element-wise activations, and must decline wherever the forward pass computes something else
(a hook, a subclass's own forward, a registered rule, an ``output=`` map, a buffer, a frozen
weight), the values then coming from the routes that run the forward. No timing is asserted
(benchmarks/bench_models.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn as nn
from test_models import _assert_same, _snapshot, assert_close, expected, flat

import fisher_verify as fv
import fisher_verify._src.models.diagonals as diagonals_module
from fisher_verify._src.models import rules


def _spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[bool]]:
    """Per call of diag I / Var(Î₁): whether the mlp rule and the layer route answered."""
    seen: dict[str, list[bool]] = {"mlp": [], "taps": []}
    mlp, taps = diagonals_module.mlp_first_sums, diagonals_module.tap_sums

    def mlp_spy(*args: Any) -> Any:
        seen["mlp"].append(True)
        return mlp(*args)

    def taps_spy(*args: Any) -> Any:
        out = taps(*args)
        seen["taps"].append(out is not None)
        return out

    monkeypatch.setattr(diagonals_module, "mlp_first_sums", mlp_spy)
    monkeypatch.setattr(diagonals_module, "tap_sums", taps_spy)
    return seen


FAMILIES = {
    "categorical4": lambda: fv.family("categorical", K=4),
    "poisson2_bernoulli2": lambda: fv.product(fv.family("poisson"), fv.family("poisson"),
                                              fv.family("bernoulli"), fv.family("bernoulli")),
}


def _chains() -> dict[str, nn.Module]:
    torch.manual_seed(3)
    at_kink = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 4))
    with torch.no_grad():  # unit 0's pre-activation is exactly 0: ReLU's derivative there is
        at_kink[0].weight[0] = 0.0  # autograd's 0 (its Jacobian column of W_0[0, :] is zero)
        at_kink[0].bias[0] = 0.0
    return {
        "relu_at_its_kink": at_kink,
        "tanh_sigmoid": nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 5), nn.Sigmoid(),
                                      nn.Linear(5, 4)),
        # activations differ per layer, two in a row, one in place; a bias-free last layer
        "mixed": nn.Sequential(nn.Linear(3, 6), nn.ReLU(inplace=True), nn.Linear(6, 5),
                               nn.Softplus(), nn.GELU(), nn.Linear(5, 4, bias=False)),
        "linear_linear": nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 4)),
    }


@pytest.mark.parametrize("fam_name", list(FAMILIES))
@pytest.mark.parametrize("chain", list(_chains()))
def test_mlp_rule_taken_and_exact(chain: str, fam_name: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fam = FAMILIES[fam_name]()
    model = _chains()[chain].double().eval()
    X = 0.7 * torch.randn(7, 3, dtype=torch.float64)
    want = expected(model, X, fam, n=3)
    seen = _spies(monkeypatch)
    got_f = fv.exact_fisher(model, X, fam, progress=False, diagonal=True)
    got_v = fv.variance(model, X, fam, which="I1", n=3, progress=False, diagonal=True)
    assert seen == {"mlp": [True, True], "taps": []}
    assert_close(flat(got_f, model), want["fisher"])
    assert_close(flat(got_v, model), want["v1"])


@pytest.mark.parametrize("chunk", [1, 3 * 4 * 6])
def test_mlp_rule_over_several_batches_and_in_float32(chunk: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 5 inputs (the sums over batches add up), chunks of 1 or 3 inputs inside them
    for the derivative recursion, and a float32 model (a float64 copy)."""
    fam = fv.family("categorical", K=4)
    model = _chains()["tanh_sigmoid"]  # float32: copied into float64
    X = torch.randn(9, 3)
    want = expected(model, X, fam, n=1)
    seen = _spies(monkeypatch)
    monkeypatch.setattr("fisher_verify._src.models.mlp_route.MAX_BATCH", 5)
    monkeypatch.setattr("fisher_verify._src.models.mlp_route.CHUNK_NUMBERS", chunk)
    got_f = fv.exact_fisher(model, X, fam, progress=False, diagonal=True)
    got_v = fv.variance(model, X, fam, which="I1", progress=False, diagonal=True)
    assert seen["mlp"] == [True, True]
    assert_close(flat(got_f, model), want["fisher"])
    assert_close(flat(got_v, model), want["v1"])


class OwnLinear(nn.Linear):
    """A Linear subclass with its own forward: not the affine map of nn.Linear."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(super().forward(x))


class Scaled(nn.Sequential):
    """A Sequential subclass whose forward is not the chain."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return 2.0 * super().forward(x)


def _declining() -> dict[str, tuple[nn.Module, dict[str, Any]]]:
    torch.manual_seed(5)
    hooked = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    hooked[1].register_forward_hook(lambda _m, _i, out: 1.5 * out)
    frozen = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    frozen[0].bias.requires_grad_(False)
    buffered = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    buffered.register_buffer("unused", torch.ones(1, dtype=torch.float64))
    return {
        "forward_hook": (hooked, {}),
        "linear_subclass": (nn.Sequential(OwnLinear(3, 5), nn.Linear(5, 4)).double(), {}),
        "sequential_subclass": (Scaled(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double(), {}),
        "softmax_not_elementwise": (nn.Sequential(nn.Linear(3, 5), nn.Softmax(-1),
                                                  nn.Linear(5, 4)).double(), {}),
        "output_map": (nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double(),
                       {"output": lambda out: 0.5 * out}),
        "frozen_bias": (frozen, {}),
        "buffer": (buffered, {}),
    }


@pytest.mark.parametrize("case", list(_declining()))
def test_mlp_rule_declines_where_the_forward_is_not_the_chain(
        case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fam = fv.family("categorical", K=4)
    model, options = _declining()[case]
    X = torch.randn(6, 3, dtype=torch.float64)
    want = expected(model, X, fam, n=1, hessians=True, output=options.get("output"))
    seen = _spies(monkeypatch)
    got_f = fv.exact_fisher(model, X, fam, progress=False, diagonal=True, **options)
    got_v = fv.variance(model, X, fam, which="I1", progress=False, diagonal=True, **options)
    assert seen["mlp"] == []
    assert_close(flat(got_f, model), want["fisher"])
    assert_close(flat(got_v, model), want["v1"])
    # Var(Î₂) too: the mlp rule's eq3 route (models.mlp) declines alike; every tensor is small
    # enough for the exact per-tensor Hessians
    got_2 = fv.variance(model, X, fam, which="I2", progress=False, diagonal=True, **options)
    assert "eq3" not in got_2.methods.values() and got_2.all_exact
    assert_close(flat(got_2, model), want["v2"])


# --- a rule registered for a stock module kind ----------------------------------------------------


class Sin(nn.Module):
    """What the registered rule below computes, as a module of its own (the independent route)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)


@pytest.fixture
def tanh_as_sin() -> Iterator[None]:
    """A rule for the stock ``nn.Tanh`` whose forward differs from Tanh's, so that the values
    show which forward the engine ran."""
    rules.register_layer(nn.Tanh, lambda _m, x: torch.sin(x))
    try:
        yield
    finally:
        rules.unregister_layer(nn.Tanh)


def _with_sin(model: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(*[Sin() if isinstance(m, nn.Tanh) else m for m in model])


def _stock_models() -> dict[str, tuple[nn.Sequential, torch.Tensor]]:
    """Stock float64 models in eval mode without hooks: the engine runs them in place (no copy)
    unless a rule says otherwise."""
    torch.manual_seed(9)
    mlp = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double().eval()
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(),
                        nn.Linear(2 * 3 * 3, 4)).double().eval()
    return {"mlp": (mlp, torch.randn(5, 3, dtype=torch.float64)),
            "cnn": (cnn, torch.randn(5, 1, 5, 5, dtype=torch.float64))}


@pytest.mark.parametrize("name", list(_stock_models()))
def test_a_rule_registered_for_a_stock_kind_is_used_and_the_model_untouched(
        name: str, tanh_as_sin: None) -> None:
    fam = fv.family("categorical", K=4)
    model, X = _stock_models()[name]
    want = expected(_with_sin(model), X, fam, n=2)
    off = expected(model, X, fam, n=1)["fisher"]  # the stock Tanh's values
    snap = _snapshot(model)
    got_f = fv.exact_fisher(model, X, fam, progress=False, diagonal=True)
    got_v = fv.variance(model, X, fam, which="I1", n=2, progress=False, diagonal=True)
    _assert_same(model, snap)
    assert all("forward" not in vars(m) for m in model.modules())  # the rule ran on a copy
    assert_close(flat(got_f, model), want["fisher"])
    assert_close(flat(got_v, model), want["v1"])
    assert float(abs(flat(got_f, model) - off).max()) > 1e-3 * float(abs(off).max())


@pytest.mark.parametrize("name", list(_stock_models()))
def test_without_the_rule_the_stock_forward_is_differentiated(name: str) -> None:
    """The same models with no rule registered: the stock Tanh (the control of the test above)."""
    fam = fv.family("categorical", K=4)
    model, X = _stock_models()[name]
    want = expected(model, X, fam, n=1)
    got = fv.exact_fisher(model, X, fam, progress=False, diagonal=True)
    assert_close(flat(got, model), want["fisher"])


@pytest.mark.parametrize("per_input", [None, 1 << 40])
def test_var2_through_the_mlp_rule_over_several_batches(
        per_input: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Var(Î₂) of an MLP (the rule's eq3 route, the module's own tensors) summed over batches of 2
    inputs, and over chunks of one input inside them (each input priced above the memory
    budget), equals the dense Hessian route."""
    fam = fv.family("categorical", K=4)
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(),
                          nn.Linear(5, 4)).double()
    X = torch.randn(5, 3, dtype=torch.float64)
    want = expected(model, X, fam, n=2, hessians=True)
    monkeypatch.setattr("fisher_verify._src.models.mlp_route.MAX_BATCH", 2)
    if per_input is not None:
        monkeypatch.setattr("fisher_verify._src.models.mlp.gamma_elements", lambda *a: per_input)
    got = fv.variance(model, X, fam, which="I2", n=2, progress=False, diagonal=True)
    assert set(got.methods.values()) == {"eq3"}
    assert_close(flat(got, model), want["v2"])


def _var2_chains() -> dict[str, nn.Module]:
    torch.manual_seed(8)
    deep = [nn.Linear(3, 3), nn.Tanh()]
    for _ in range(8):  # deep and narrow: the full-Γ recursion is the cheaper route there
        deep += [nn.Linear(3, 3), nn.Tanh()]
    return {
        "sigmoid": nn.Sequential(nn.Linear(3, 6), nn.Sigmoid(), nn.Linear(6, 4)),
        "softplus3": nn.Sequential(nn.Linear(3, 5), nn.Softplus(), nn.Linear(5, 5), nn.Softplus(),
                                   nn.Linear(5, 6), nn.Softplus(), nn.Linear(6, 4)),
        "gelu_no_last_bias": nn.Sequential(nn.Linear(3, 5), nn.GELU(), nn.Linear(5, 5), nn.GELU(),
                                           nn.Linear(5, 4, bias=False)),
        "deep_tanh": nn.Sequential(*deep, nn.Linear(3, 4)),
        "identity": nn.Sequential(nn.Linear(3, 5), nn.Identity(), nn.Linear(5, 4)),
        "single_linear": nn.Sequential(nn.Linear(3, 4)),
    }


@pytest.mark.parametrize("chain", list(_var2_chains()))
def test_var2_of_the_module_equals_the_dense_hessian_route(chain: str) -> None:
    """thm-6's diagonal of every Eq. 3 chain the rule takes, straight from the module's tensors
    (mlp_route.mlp_second_sums), equals the dense torch.autograd Hessians of test_models: each
    activation (σ'' in closed form or by autograd), both pre-activation Hessian routes (the deep
    narrow chain goes through the full-Γ recursion, the others through the Jacobians), and a
    bias-free last layer. The identity chain's and the single layer's Hessians are zero (h_L
    affine in θ): their values must vanish at the rounding of eq-6's size."""
    from fisher_verify._src.models.mlp import _gamma_costs

    fam = fv.family("categorical", K=4)
    model = _var2_chains()[chain].double()
    X = 0.8 * torch.randn(6, 3, dtype=torch.float64)
    want = expected(model, X, fam, n=3, hessians=True)
    got = fv.variance(model, X, fam, which="I2", n=3, progress=False, diagonal=True)
    assert set(got.methods.values()) == {"eq3"}
    widths = [3] + [int(m.out_features) for m in model if isinstance(m, nn.Linear)]
    jac, rec = _gamma_costs(widths)
    assert (jac > rec) == (chain == "deep_tanh")
    if chain in ("identity", "single_linear"):  # zero up to rounding of eq-6's size, as ReLU
        scale = float(abs(want["fisher"]).max())
        assert float(abs(flat(got, model)).max()) <= 1e-10 * scale
        assert float(abs(want["v2"]).max()) <= 1e-10 * scale
    else:
        assert_close(flat(got, model), want["v2"])


def test_var2_of_a_stock_mlp_borrows_the_model_and_leaves_it_untouched(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Var(Î₂) of a stock float64 MLP takes the eq3 route on the user's own module (no working
    copy, as diag I): the values equal the dense Hessian route and nothing of the model changes
    (parameters, grads, hooks, mode, dtype). A chain of two activations (no Eq. 3 network), a
    ReLU chain (kinks to scan) and ``method="hessian"`` are answered on the full preparation (a
    copy), exact and untouched as well."""
    import fisher_verify._src.models.hessian as hessian_module

    fam = fv.family("categorical", K=4)
    torch.manual_seed(11)
    tanh = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(),
                         nn.Linear(5, 4, bias=False)).double()
    mixed = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 5), nn.Sigmoid(),
                          nn.Linear(5, 4)).double()
    relu = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 4)).double()
    # in eval mode no call is recorded while preparing: the C² detection runs it forward itself
    tanh_eval = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4)).double().eval()
    X = torch.randn(5, 3, dtype=torch.float64)
    borrowed: list[bool] = []
    found = hessian_module.eq3_chain

    def spy(ws: Any) -> Any:
        borrowed.append(ws.prep.borrowed)
        return found(ws)

    monkeypatch.setattr(hessian_module, "eq3_chain", spy)
    # (model, method, the prep the eq3 rule is asked on, in order; methods of the answer)
    cases = ((tanh, "auto", [True], {"eq3"}), (tanh_eval, "auto", [True], {"eq3"}),
             (mixed, "auto", [True, False], None),
             (relu, "auto", [False], {"eq3"}), (tanh, "hessian", [], {"hessian"}))
    for model, method, asked, methods in cases:
        dense = expected(model, X, fam, n=2, hessians=True)
        want = dense["v2"]
        snap = _snapshot(model)
        borrowed.clear()
        got = fv.variance(model, X, fam, which="I2", n=2, progress=False, diagonal=True,
                          method=method)
        _assert_same(model, snap)
        assert borrowed == asked
        assert methods is None or set(got.methods.values()) == methods
        assert "eq3" not in got.methods.values() or methods is not None
        if model is relu:  # ∂²h/∂θ_i² = 0 off the kinks: zero up to rounding of eq-6's size
            scale = float(abs(dense["fisher"]).max())
            assert float(abs(flat(got, model) - want).max()) <= 1e-10 * scale
        else:
            assert_close(flat(got, model), want)
