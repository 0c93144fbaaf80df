"""The ``"mlp"`` rule at the engine's door: an Eq. 3 MLP recognised in a prepared model.

An ``nn.Sequential`` of ``Linear`` layers and one smooth elementwise activation (what
:func:`fisher_verify._src.networks.torch_import.weights_from_sequential` accepts), with every
parameter trainable and no ``output=`` map, is the Eq. 3 network of the paper: its quantities go
through the analytic factors of :mod:`.mlp` (exact, no factor ``n_L`` at depth, chunked within
the workspace's memory budget) instead of the generic rule, and are handed back per parameter
tensor of the user's module.
"""

from __future__ import annotations

from typing import Any

from .workspace import MAX_BATCH, Workspace

__all__: list[str] = []  # nothing for other rooms


def mlp_network(ws: Workspace) -> tuple[Any, dict[str, tuple[int, int]]] | None:
    """The Eq. 3 :class:`~fisher_verify.Network` of the working copy and, per parameter name,
    its ``(layer, column slice start)``; ``None`` when the model is not a plain MLP."""
    import torch

    from ..errors import FisherVerifyError
    from ..networks.network import Network
    from ..networks.torch_import import weights_from_sequential

    prep = ws.prep
    mod = prep.module
    if prep.output is not None or not isinstance(mod, torch.nn.Sequential) or prep.fixed:
        return None
    try:
        # zero bias columns for Linear(bias=False): only the model's own parameters are read
        # back through ``where`` below, and the weights' derivatives do not depend on them
        weights, activation = weights_from_sequential(mod, zero_bias=True)
        net = Network.from_weights(weights, activation, family=prep.family)
    except FisherVerifyError:
        return None
    where: dict[str, tuple[int, int]] = {}
    layer = 0
    for i, sub in enumerate(mod):
        if isinstance(sub, torch.nn.Linear):
            where[f"{i}.weight"] = (layer, 0)
            if sub.bias is not None:
                where[f"{i}.bias"] = (layer, -1)
            layer += 1
    if set(where) != set(prep.params):
        return None
    return net, where


def mlp_sums(ws: Workspace, found: tuple[Any, dict[str, tuple[int, int]]]) -> tuple[dict[str, Any], int]:
    """Unscaled ``Σ_m d_mᵀ I d_m`` per parameter through models.mlp (exact)."""
    import torch

    from .mlp import diagonals

    net, where = found
    prep = ws.prep
    total: Any = None  # Σ over batches in the Network's flat θ order, split per tensor at the end
    count = 0
    # the Eq. 3 rule plans its own chunks from what one input forms there (mlp.diagonals,
    # memory_budget); the stream's batches only hold raw inputs: an eighth of the budget
    itemsize = 8 if prep.dtype == torch.float64 else 4
    batch = int(max(1, min(MAX_BATCH, ws.memory // (8 * itemsize * max(1, net.widths[0])))))
    for X in ws.stream.batches(batch):
        Mb = int(X.shape[0])
        d = diagonals(net, X.reshape(Mb, -1), 1, fisher=False, variance_1=False, variance_2=True,
                      device=str(prep.device), dtype=prep.dtype, memory_budget=ws.memory)
        assert d.variance_2 is not None
        flat = torch.as_tensor(d.variance_2, dtype=prep.dtype, device=prep.device) * (Mb * Mb)
        total = flat if total is None else total + flat
        count += Mb
    if total is None:
        total = torch.zeros(net.num_params, dtype=prep.dtype, device=prep.device)
    off = net.offsets
    sums = {}
    for name, (layer, col) in where.items():
        block = total[off[layer]:off[layer + 1]].reshape(net.shapes[layer])
        part = block[:, -1] if col == -1 else block[:, :-1]
        sums[name] = part.reshape(-1).clone()  # its own storage: the caller all-reduces in place
    return sums, count
