"""Data-set sums split over ``torch.distributed`` processes (started by ``torchrun``).

Every quantity of the model path is a sum over inputs divided by a power of M, so each process
sums over its shard of the inputs (:class:`~fisher_verify.models.data.InputStream` with
``rank``/``world``) and the sums are all-reduced (gloo on CPU, NCCL on GPUs) before the
division. The result equals the one-process result up to the order of floating-point additions.
"""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedError

__all__ = ["all_reduce_sums", "process_group"]


def process_group(distributed: bool | None) -> tuple[int, int]:
    """``(rank, world size)``: of the initialized default process group, else ``(0, 1)``.

    ``distributed=None`` uses the group when one is initialized; ``True`` requires one;
    ``False`` ignores it (every process then computes the whole sum by itself).
    """
    import torch.distributed as dist

    ready = dist.is_available() and dist.is_initialized()
    if distributed and not ready:
        raise UnsupportedError(
            "distributed=True needs an initialized torch.distributed process group: start with "
            "torchrun and call torch.distributed.init_process_group() first")
    if ready and distributed is not False:
        return int(dist.get_rank()), int(dist.get_world_size())
    return 0, 1


def all_reduce_sums(tensors: list[Any], world: int) -> None:
    """Sum each tensor over all processes, in place (nothing to do for one process)."""
    if world <= 1:
        return
    import torch.distributed as dist

    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
