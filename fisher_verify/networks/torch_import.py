"""Import of a torch MLP (``nn.Sequential`` of Linear and activation modules) into Eq. 3 form."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnsupportedError

_MODULES = {
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "Softplus": "softplus",
    "GELU": "gelu",
    "ReLU": "relu",
    "Identity": "identity",
}


def weights_from_sequential(model: Any) -> tuple[list[np.ndarray], str]:
    """``[W_0, …]`` (bias appended as the last column) and the activation name of ``model``."""
    import torch
    import torch.nn as nn

    layers = list(model) if isinstance(model, nn.Sequential) else None
    if layers is None:
        raise UnsupportedError(
            "from_torch needs an nn.Sequential of Linear and activation modules, "
            f"got {type(model).__name__}"
        )
    weights: list[np.ndarray] = []
    acts: set[str] = set()
    expect_linear = True
    for i, mod in enumerate(layers):
        kind = type(mod).__name__
        if isinstance(mod, nn.Linear):
            if not expect_linear:
                raise UnsupportedError(
                    f"module {i}: two Linear layers in a row; put an activation between them"
                )
            W = mod.weight.detach().to("cpu", dtype=torch.float64).numpy()
            b = (
                mod.bias.detach().to("cpu", dtype=torch.float64).numpy()
                if mod.bias is not None
                else np.zeros(W.shape[0])
            )
            weights.append(np.concatenate([W, b[:, None]], axis=1))
            expect_linear = False
        elif kind in _MODULES:
            if expect_linear:
                raise UnsupportedError(f"module {i} ({kind}) must follow a Linear layer")
            if kind == "Softplus" and float(getattr(mod, "beta", 1.0)) != 1.0:
                raise UnsupportedError(
                    f"module {i}: Softplus with beta != 1 is not supported; use beta=1"
                )
            if kind == "GELU" and getattr(mod, "approximate", "none") != "none":
                raise UnsupportedError(
                    f"module {i}: GELU(approximate='tanh') is not supported; use GELU()"
                )
            acts.add(_MODULES[kind])
            expect_linear = True
        else:
            raise UnsupportedError(
                f"module {i} ({kind}) is not supported; use Linear and one of {', '.join(_MODULES)}"
            )
    if not weights or expect_linear:
        raise UnsupportedError(
            "the model must end with a Linear layer (Eq. 3: the last layer is linear)"
        )
    if len(acts) > 1:
        raise UnsupportedError(f"all hidden layers must share one activation, found {sorted(acts)}")
    return weights, (acts.pop() if acts else "identity")

