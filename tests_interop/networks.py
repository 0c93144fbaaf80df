"""The networks, data and loss conventions of the interop tests (``tox -e interop``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import fisher_verify as fv

#: replicates for Monte Carlo estimators (the gate's standard) and for deterministic ones (the
#: gate's minimum for alpha = 1e-6 is 11; a deterministic estimate has no spread to average)
MC_REPLICATIONS = 200
EXACT_REPLICATIONS = 20


@dataclass(frozen=True)
class Case:
    """A network, its data and the loss the libraries are given."""

    name: str
    model: nn.Module
    data: tuple[Any, Any]
    loss: str  # "ce" or "mse"

    def family(self, convention: str = "torch") -> Any:
        """I(θ)'s family: categorical for CE; for MSE the Gaussian whose Fisher the loss gives.

        ``nn.MSELoss`` is (y − f)² = −log N(y; f, 1/2) + const: the score 2(f − y) with
        y ~ N(f, 1/2) has the law of t − η for ``normal(sigma=√2)`` (I = 2 JᵀJ), the convention
        of BackPACK and curvlinops. ASDL and nngeometry use ½(y − f)², i.e. ``normal(sigma=1)``
        (``convention="half"``); the empirical Fisher is always compared with ``normal(sigma=1)``.
        """
        if self.loss == "ce":
            return "categorical"
        return fv.family("normal") if convention == "half" else fv.family("normal", sigma=math.sqrt(2))


def _classifier(dtype: torch.dtype, widths: tuple[int, ...], act: type[nn.Module], M: int, seed: int) -> Case:
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(act())
    torch.manual_seed(seed)
    model = nn.Sequential(*layers).to(dtype)
    x = torch.randn(M, widths[0], generator=g, dtype=dtype)
    y = torch.randint(0, widths[-1], (M,), generator=g)
    return Case(f"{act.__name__.lower()}-{'-'.join(map(str, widths))}-{str(dtype)[6:]}", model, (x, y), "ce")


def _regressor(seed: int) -> Case:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    y = torch.randn(8, 1, generator=g, dtype=torch.float64)
    return Case("tanh-3-6-1-float64-mse", model, (x, y), "mse")


def classifier() -> Case:
    """Tanh 3-5-3 in float64 (P = 38), 8 inputs: the network of the full sample-size sweep."""
    return _classifier(torch.float64, (3, 5, 3), nn.Tanh, 8, 0)


def classifier32() -> Case:
    """Sigmoid 2-4-4-3 in float32 (P = 47), 6 inputs: a deeper float32 network."""
    return _classifier(torch.float32, (2, 4, 4, 3), nn.Sigmoid, 6, 1)


def regressor() -> Case:
    """Tanh 3-6-1 in float64 with a mean squared error loss (P = 31), 8 inputs."""
    return _regressor(2)


def cnn() -> Case:
    """Conv2d(1, 2, 3)-ReLU-MaxPool2d(2)-Linear(8, 3) in float64 on 6x6 inputs (P = 47), 6 inputs."""
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8, 3)).double()
    x = torch.randn(6, 1, 6, 6, generator=g, dtype=torch.float64)
    return Case("cnn-conv-relu-maxpool-linear-float64", model, (x, torch.randint(0, 3, (6,), generator=g)), "ce")


def dropout_mlp() -> Case:
    """ReLU 3-5-3 with Dropout(0.3), float64 (P = 38), 6 inputs, left in train() mode: the
    libraries are called after ``model.eval()`` (:func:`evaluated`), the gate's reference is the
    eval-mode model."""
    g = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Dropout(0.3), nn.Linear(5, 3)).double().train()
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    return Case("relu-dropout-3-5-3-float64", model, (x, torch.randint(0, 3, (6,), generator=g)), "ce")


def layernorm() -> Case:
    """Linear(3, 4)-LayerNorm(4)-Tanh-Linear(4, 3) in float64 (P = 39), 6 inputs."""
    g = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    return Case("linear-layernorm-tanh-3-4-3-float64", model, (x, torch.randint(0, 3, (6,), generator=g)), "ce")


def evaluated(fisher: Any) -> Any:
    """``fisher`` run on the model in eval mode, as EWC code does (the gate restores the mode)."""

    def run(model: nn.Module, data: Any, **kwargs: Any) -> Any:
        model.eval()
        return fisher(model, data, **kwargs)

    return run


def same_state(a: Any, b: Any) -> bool:
    """Whether two snapshots agree bit for bit."""
    return (
        [k for k, _ in a[0]] == [k for k, _ in b[0]]
        and all(torch.equal(u, v) and u.dtype == v.dtype for (_, u), (_, v) in zip(a[0], b[0]))
        and a[1:] == b[1:]
    )
