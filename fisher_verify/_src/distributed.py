"""Sums split over ``torch.distributed`` processes (started by ``torchrun``): the one mechanism.

Every data-set quantity of the package is a sum, over inputs (the Fisher diagonals and
variances of :mod:`fisher_verify._src.models`, eq-6/thm-4/thm-6) or over pairs of inputs (the
thm-7/thm-8 norms of :mod:`fisher_verify._src.models.mlp_norms`), divided by a power of M. Each
process sums its share of the terms and the partial sums are all-reduced (gloo on CPU, NCCL on
GPUs) before the division, so the result equals the one-process result up to the order of the
floating-point additions. Shares are decided by every process alike from the same inputs
(:func:`balanced_shares`), so no process has to tell another which terms it took.

Imports nothing from the package but :mod:`fisher_verify.errors`, so every room may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import UnsupportedError

__all__ = ["all_reduce_max", "all_reduce_sums", "balanced_shares", "process_group"]


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


def all_reduce_max(tensors: list[Any], world: int) -> None:
    """The element-wise maximum of each tensor over all processes, in place.

    For decisions every process must take alike (a timed cost estimate differs from process
    to process; taking different branches would leave the collectives unmatched and hang).
    """
    if world <= 1:
        return
    import torch.distributed as dist

    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)


def balanced_shares(costs: Sequence[float], rank: int, world: int) -> list[int]:
    """Indices of the terms (costs ``costs``) that process ``rank`` of ``world`` takes.

    Disjoint over ranks and together all of them. Greedy longest-processing-time: terms by
    decreasing cost (ties by index) each go to the least-loaded rank (ties by rank), which
    keeps every rank's load within the largest single cost of the mean. Deterministic, so
    every process computes the same split without communicating. Returned in increasing order.
    """
    if world <= 1:
        return list(range(len(costs)))
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world - 1}], got {rank}")
    load = [0.0] * world
    mine = []
    for i in sorted(range(len(costs)), key=lambda j: (-float(costs[j]), j)):
        r = min(range(world), key=lambda w: (load[w], w))
        load[r] += float(costs[i])
        if r == rank:
            mine.append(i)
    return sorted(mine)
