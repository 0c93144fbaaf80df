"""Network construction, validation, θ layout and import (Eq. 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fisher_verify as fv
from fisher_verify import Network
from fisher_verify.errors import FisherVerifyError, ShapeError


def _weights() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(size=(3, 3)), rng.normal(size=(4, 4)), rng.normal(size=(1, 5))]


def test_structure_and_theta_layout() -> None:
    W = _weights()
    net = Network.from_weights(W, activation="tanh", family=fv.family("bernoulli"))
    assert net.widths == (2, 3, 4, 1)
    assert net.num_params == 9 + 16 + 5
    theta = net.theta
    # W_l[r, c] sits at offset_l + r (n_l + 1) + c (row-major, layer by layer)
    assert theta[9 + 2 * 4 + 3] == W[1][2, 3]
    assert theta[25 + 4] == W[2][0, 4]
    back = net.with_theta(theta * 2.0)
    assert np.array_equal(back.weights[1], 2.0 * W[1])
    with pytest.raises(ShapeError, match=r"theta must have shape \(30,\)"):
        net.with_theta(theta[:-1])


def test_forward_matches_hand_loop() -> None:
    W = _weights()
    net = Network.from_weights(W, activation="sigmoid", family=fv.family("bernoulli"))
    x = np.array([0.3, -1.2])
    h = x
    for i, Wi in enumerate(W):
        a = Wi[:, :-1] @ h + Wi[:, -1]
        h = a if i == len(W) - 1 else 1.0 / (1.0 + np.exp(-a))
    np.testing.assert_allclose(net.forward(x), h, rtol=1e-14)
    X = np.stack([x, -x, 2 * x])
    assert net.forward(X).shape == (3, 1)
    np.testing.assert_allclose(net.forward(X)[0], h, rtol=1e-14)


def test_shape_mismatch_names_layer_and_shapes() -> None:
    W = _weights()
    W[1] = W[1][:, :3]
    with pytest.raises(ShapeError, match=r"layer 1: W1 has shape \(4, 3\).*W0 has shape \(3, 3\)"):
        Network.from_weights(W, family=fv.family("bernoulli"))


def test_refusals() -> None:
    W = _weights()
    bad = [w.copy() for w in W]
    bad[0][0, 0] = np.nan
    with pytest.raises(FisherVerifyError, match=r"W0 has nan at \[0, 0\]"):
        Network.from_weights(bad, family=fv.family("bernoulli"))
    with pytest.raises(ShapeError, match="dimension 3 but the network has n_L = 1"):
        Network.from_weights(W, family=fv.family("categorical", K=3))
    net = Network.from_weights(W, family=fv.family("bernoulli"))
    with pytest.raises(ShapeError, match=r"input x must have shape \(2,\) or \(M, 2\)"):
        net.forward(np.zeros(3))
    with pytest.raises(FisherVerifyError, match=r"input x has inf at \[0\]"):
        net.forward(np.array([np.inf, 0.0]))
    with pytest.raises(FisherVerifyError, match="unknown activation 'swish'"):
        Network.from_weights(W, activation="swish", family=fv.family("bernoulli"))
    with pytest.raises(FisherVerifyError, match="unknown method"):
        net.jacobian(np.zeros(2), method="numeric")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="at least one weight matrix"):
        Network.from_weights([], family=fv.family("bernoulli"))


def test_from_npz(tmp_path) -> None:  # type: ignore[no-untyped-def]
    W = _weights()
    good = tmp_path / "w.npz"
    np.savez(good, W0=W[0], W1=W[1], W2=W[2])
    net = Network.from_npz(good, activation="gelu", family=fv.family("bernoulli"))
    assert net.widths == (2, 3, 4, 1) and net.activation == "gelu"
    bad = tmp_path / "bad.npz"
    np.savez(bad, W0=W[0], layer1=W[1])
    bern = fv.family("bernoulli")
    with pytest.raises(ShapeError, match="expected arrays named W0, W1.*unexpected: layer1"):
        Network.from_npz(bad, family=bern)
    with pytest.raises(FisherVerifyError, match="missing.npz' does not exist"):
        Network.from_npz(tmp_path / "missing.npz", family=bern)


def _refusal(path: object, family: object) -> str:
    with pytest.raises(FisherVerifyError) as info:
        Network.from_npz(path, family=family)  # type: ignore[arg-type]
    return str(info.value)


def test_from_npz_names_what_is_wrong_with_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """issue 8: a .npy where an .npz is expected was a TypeError traceback, a damaged .npz was
    said to hold pickled data (or gave a BadZipFile traceback), a folder "did not exist"."""
    bern = fv.family("bernoulli")
    W = _weights()
    np.save(tmp_path / "w.npy", W[0])
    (tmp_path / "zip.npz").write_bytes(b"PK\x03\x04" + bytes(100))
    (tmp_path / "text.npz").write_text("W0 = 1")
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "folder.npz").mkdir()
    np.savez(tmp_path / "objects.npz", W0=np.array([None, 1.0], dtype=object))
    np.savez(tmp_path / "nan.npz", W0=np.full((1, 3), np.nan))
    assert "holds one .npy array" in _refusal(tmp_path / "w.npy", bern)
    for name in ("zip.npz", "text.npz", "empty.npz"):
        msg = _refusal(tmp_path / name, bern)
        assert "not a readable .npz archive" in msg and name in msg and "pickle" not in msg
    msg = _refusal(tmp_path / "folder.npz", bern)
    assert "is a folder" in msg and "does not exist" not in msg
    assert "never loaded" in _refusal(tmp_path / "objects.npz", bern)
    msg = _refusal(tmp_path / "nan.npz", bern)
    assert "nan.npz" in msg and "W0 has nan at [0, 0]" in msg


def test_family_is_required_by_every_constructor(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """issue 8: without a family a one-output network was silently Bernoulli."""
    W = [np.ones((1, 3))]
    np.savez(tmp_path / "w.npz", W0=W[0])
    model = torch.nn.Sequential(torch.nn.Linear(2, 1))
    calls = [
        lambda: Network.from_weights(W),
        lambda: Network.from_npz(tmp_path / "w.npz"),
        lambda: Network.random([2, 1], rng=0),
        lambda: Network.from_torch(model),
        lambda: Network(W, "tanh", None),
    ]
    for call in calls:
        with pytest.raises(FisherVerifyError, match="family is required.*catalog: bernoulli"):
            call()


@pytest.mark.parametrize("rng", ["a", -1, 1.5, True, np.random.RandomState(0), [1.5]])
def test_random_refuses_bad_rng(rng: object) -> None:
    with pytest.raises(FisherVerifyError, match="rng must be a seed .* got"):
        Network.random([2, 1], family=fv.family("bernoulli"), rng=rng)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [-1, float("nan"), float("inf"), "1", True])
def test_random_refuses_bad_scale(scale: object) -> None:
    with pytest.raises(FisherVerifyError, match="scale must be a finite number >= 0"):
        Network.random([2, 1], family=fv.family("bernoulli"), scale=scale)  # type: ignore[arg-type]


@pytest.mark.parametrize("widths", [[2, 1.5], [2, True], [2, 0], ["2", 1], 3, "21"])
def test_random_refuses_bad_widths(widths: object) -> None:
    with pytest.raises(FisherVerifyError, match="width|widths"):
        Network.random(widths, family=fv.family("bernoulli"))  # type: ignore[arg-type]


def test_random_accepts_every_valid_rng_and_seed() -> None:
    fam = fv.family("bernoulli")
    a = Network.random([2, 1], family=fam, rng=np.int64(5))
    b = Network.random([2, 1], family=fam, rng=np.random.default_rng(5))
    c = Network.random([2, 1], family=fam, rng=np.random.SeedSequence(5))
    assert np.array_equal(a.theta, b.theta) and np.array_equal(a.theta, c.theta)
    assert Network.random([2, 1], family=fam, scale=0.0, rng=0).theta.tolist() == [0.0] * 3


def test_empty_batch_message_says_m_at_least_one() -> None:
    """issue 8: (0, 3) was refused with a message that called (M, 3) valid."""
    net = Network.random([3, 1], family=fv.family("bernoulli"), rng=0)
    with pytest.raises(ShapeError, match=r"M >= 1 .* got \(0, 3\)"):
        net.forward(np.zeros((0, 3)))


@pytest.mark.parametrize(
    "module,name",
    [
        (torch.nn.Tanh(), "tanh"),
        (torch.nn.Sigmoid(), "sigmoid"),
        (torch.nn.Softplus(), "softplus"),
        (torch.nn.GELU(), "gelu"),
        (torch.nn.ReLU(), "relu"),
    ],
)
def test_from_torch_matches_torch(module: torch.nn.Module, name: str) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), module, torch.nn.Linear(4, 2), module, torch.nn.Linear(2, 3)
    ).double()
    net = Network.from_torch(model, family=fv.family("categorical", K=3))
    assert net.activation == name and net.widths == (3, 4, 2, 3)
    x = np.random.default_rng(1).normal(size=(5, 3))
    ref = model(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(net.forward(x), ref, rtol=1e-12, atol=1e-14)


def test_from_torch_refusals() -> None:
    bern = fv.family("bernoulli")
    with pytest.raises(FisherVerifyError, match="must end with a Linear"):
        Network.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Tanh()), bern)
    with pytest.raises(FisherVerifyError, match="Dropout.*not supported"):
        Network.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Dropout()), bern)


def test_random_and_flags() -> None:
    net = Network.random([2, 5, 1], "relu", fv.family("poisson"), scale=0.5, rng=3)
    assert net.num_params == 5 * 3 + 6 and not net.is_c2
    with pytest.raises(FisherVerifyError, match="only at inputs away from its kinks .* pass the inputs"):
        net.require_c2("thm-3")
    net.require_c2("thm-3", np.array([0.3, -0.7]))  # generic input: smooth there (thm-3-ae)
    assert Network.random([2, 5, 1], "gelu", fv.family("poisson"), rng=3).is_c2
    with pytest.raises(ShapeError, match="widths must list"):
        Network.random([2], "tanh", fv.family("poisson"))


def test_into_domain_shifts_only_when_needed() -> None:
    """Network.into_domain: a network already in the domain comes back as is; otherwise the
    last bias moves every output to <= -margin over all inputs (h < 0 families)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4, 2))
    net = fv.Network.random([2, 3, 2], "tanh", fv.family("categorical", K=2), rng=rng)
    assert net.into_domain(X) is net
    geo = fv.product(fv.family("geometric"), fv.family("exponential"))
    shifted = fv.Network(net.weights, "tanh", geo).into_domain(X, margin=0.25)
    assert np.max(shifted.forward(X), axis=0) == pytest.approx([-0.25, -0.25])
    assert np.max(shifted.into_domain(X[0]).forward(X[0])) <= -0.25


def test_complex_objects_and_non_lists_are_refused_not_cast() -> None:
    """A cast to float64 would drop an imaginary part silently or turn None into NaN."""
    fam = fv.family("bernoulli")
    net = Network.random([2, 3, 1], family=fam, rng=0)
    with pytest.raises(ShapeError, match="W0 .* must be an array of real numbers"):
        Network.from_weights([np.array([[1j, 0.0, 0.0]])], family=fam)
    with pytest.raises(ShapeError, match="input x .* real numbers"):
        net.forward(np.array([1j, 0.0]))
    with pytest.raises(ShapeError, match="input x .* real numbers"):
        net.forward(np.array([None, 1.0]))
    with pytest.raises(ShapeError, match="theta must be an array of real numbers"):
        net.with_theta("abc")
    for weights in (None, 5, "W0"):
        with pytest.raises(ShapeError, match="weights must be a list"):
            Network.from_weights(weights, family=fam)  # type: ignore[arg-type]
    with pytest.raises(FisherVerifyError, match="a path must be a str or a Path"):
        Network.from_npz(None, family=fam)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="which must be 'I1' .* got True"):
        fv.variance(net, np.zeros(2), which=True)  # type: ignore[arg-type]
    # what is real stays accepted: lists, integers, torch tensors
    assert np.array_equal(net.forward([1, 2]), net.forward(torch.tensor([1.0, 2.0])))
