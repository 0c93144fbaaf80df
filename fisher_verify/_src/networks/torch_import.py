"""Import of a torch MLP (``nn.Sequential`` of Linear and activation modules) into Eq. 3 form."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..validation import check_materialized

_MODULES = {
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "Softplus": "softplus",
    "GELU": "gelu",
    "ReLU": "relu",
    "Identity": "identity",
}


def variant_refusal(index: int, mod: Any) -> str | None:
    """Why the activation module ``mod`` (at ``index``, of a kind in the Eq. 3 table) is not its
    Eq. 3 activation (Softplus with ``beta != 1``, tanh-approximate GELU), else ``None``."""
    kind = type(mod).__name__
    if kind == "Softplus" and float(getattr(mod, "beta", 1.0)) != 1.0:
        return f"module {index}: Softplus with beta != 1 is not supported; use beta=1"
    if kind == "GELU" and getattr(mod, "approximate", "none") != "none":
        return f"module {index}: GELU(approximate='tanh') is not supported; use GELU()"
    return None


def eq3_activation(mod: Any) -> str | None:
    """The Eq. 3 activation name of an activation module, or ``None`` when it has none."""
    name = _MODULES.get(type(mod).__name__)
    return None if name is None or variant_refusal(0, mod) is not None else name


def weights_from_sequential(
    model: Any, zero_bias: bool = False
) -> tuple[list[np.ndarray], str]:
    """``[W_0, …]`` (bias appended as the last column) and the activation name of ``model``.

    A ``Linear(bias=False)`` layer is refused: Eq. 3 gives every layer a trainable bias, so
    its Network would have parameters the model does not have (and a different P).
    ``zero_bias=True`` (for callers that map the Network's parameters back to the model's
    and drop the bias columns themselves) puts a zero column there instead: derivatives with
    respect to the weights are the same, since the bias is 0 either way.

    Raises:
        UnsupportedError: not an ``nn.Sequential`` of Linear layers and one activation; a
            bias-free Linear layer (unless ``zero_bias``); a meta-device parameter.
    """
    import torch
    import torch.nn as nn

    layers = list(model) if isinstance(model, nn.Sequential) else None
    if layers is None:
        raise UnsupportedError(
            "from_torch needs an nn.Sequential of Linear and activation modules, "
            f"got {type(model).__name__}"
        )
    check_materialized(model)
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
            if mod.bias is None and not zero_bias:
                total = sum(int(p.numel()) for p in model.parameters())
                raise UnsupportedError(
                    f"module {i}: Linear(bias=False) has no bias, but an Eq. 3 network gives "
                    "every layer a trainable bias (its parameters would not be the model's "
                    f"{total}); analyse the model as it is with fisher_verify.analyze("
                    "model, x, family) (CLI: analyze --torch-model MODEL.pt --trust-pickle "
                    "--data x.npy)"
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
            refusal = variant_refusal(i, mod)
            if refusal is not None:
                raise UnsupportedError(refusal)
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

