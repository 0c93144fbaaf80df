"""Data-set sums split over ``torch.distributed`` processes (started by ``torchrun``).

Every quantity of the model path is a sum over inputs divided by a power of M, so each process
sums over its shard of the inputs (:class:`~fisher_verify.models.data.InputStream` with
``rank``/``world``) and the sums are all-reduced (gloo on CPU, NCCL on GPUs) before the
division. The result equals the one-process result up to the order of floating-point additions.
The primitives live in :mod:`fisher_verify.distributed`, shared with the pair-sharded thm-7 and
thm-8 norms of :mod:`fisher_verify.fisher.large_norms` (a room below this one).
"""

from __future__ import annotations

from ..distributed import all_reduce_sums, process_group

__all__ = ["all_reduce_sums", "process_group"]
