"""The inputs x_1..x_M of the empirical p(x): from a tensor, a dataset or a DataLoader.

Targets are ignored: the Fisher information and both estimators draw labels from the model
(``y ~ p(y|x, θ)``), so only inputs matter. Inputs are streamed in batches whose size the caller
picks from a memory budget, and split over ``torch.distributed`` processes (:mod:`fisher_verify._src.distributed`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

from ..errors import ShapeError, UnsupportedError

__all__: list[str] = []  # nothing for other rooms


def _torch() -> Any:
    import torch

    return torch


def _inputs_of(item: Any) -> Any:
    """The input part of one dataset item or loader batch: ``x`` or the first of ``(x, y, ...)``."""
    torch = _torch()
    if isinstance(item, torch.Tensor):
        return item
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], torch.Tensor):
        return item[0]
    raise ShapeError(
        "each item of the data must be an input tensor or a tuple (inputs, targets, ...), got "
        f"{type(item).__name__}"
    )


class InputStream:
    """Inputs of one process's shard, on the working device; floating inputs in ``dtype``.

    ``data``: a tensor (or NumPy array) of inputs ``(M, ...)``; a tuple ``(inputs, targets)``;
    a map-style dataset (items ``x`` or ``(x, y)``); or a DataLoader (batches ``x`` or
    ``(x, y)``). With ``world > 1`` this process keeps the rows (datasets, tensors) or batches
    (loaders) whose index is ``rank`` modulo ``world``.
    """

    def __init__(self, data: Any, *, device: Any, dtype: Any, rank: int = 0, world: int = 1) -> None:
        torch = _torch()
        import numpy as np
        from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

        self.device, self.dtype, self.rank, self.world = device, dtype, rank, world
        self._tensor: Any = None
        self._dataset: Any = None
        self._loader: Any = None
        if isinstance(data, np.ndarray):
            if data.dtype.kind not in "biufc":  # text, objects: torch would raise a TypeError
                raise ShapeError(f"data must hold numbers, got an array of dtype {data.dtype}")
            data = torch.as_tensor(data)
        if isinstance(data, (tuple, list)) and len(data) == 2 and all(
                isinstance(d, torch.Tensor) for d in data):
            if data[0].shape[:1] != data[1].shape[:1]:
                raise ShapeError(f"data: (inputs, targets) have different lengths: {data[0].shape[0]} "
                                 f"and {data[1].shape[0]}")
            data = data[0]
        if isinstance(data, TensorDataset):
            data = data.tensors[0]
        if isinstance(data, torch.Tensor):
            if data.is_meta:
                raise ShapeError("data: the inputs are a tensor on the meta device (a shape "
                                 "without values); give inputs with values (on cpu or cuda)")
            if data.ndim < 1 or data.shape[0] < 1:
                raise ShapeError(f"data: inputs must have a leading batch axis with at least one input, "
                                 f"got shape {tuple(data.shape)}")
            self._tensor = data[rank::world] if world > 1 else data
        elif isinstance(data, DataLoader):
            if isinstance(data.sampler, DistributedSampler):
                raise UnsupportedError(
                    "the DataLoader uses a DistributedSampler, which pads shards with repeated "
                    "inputs; pass a plain DataLoader: fisher-verify splits it across processes")
            self._loader = data
        elif isinstance(data, Dataset) and hasattr(data, "__len__"):
            self._dataset = data
        else:
            raise ShapeError(
                "data must be an input tensor, a tuple (inputs, targets), a map-style Dataset or "
                f"a DataLoader, got {type(data).__name__}")

    def _prepare(self, x: Any) -> Any:
        x = x.to(self.device)
        return x.to(self.dtype) if x.is_floating_point() else x

    def _raw_batches(self, size: int) -> Iterator[Any]:
        torch = _torch()
        if self._tensor is not None:
            for start in range(0, int(self._tensor.shape[0]), size):
                yield self._tensor[start : start + size]
        elif self._dataset is not None:
            idx = list(range(self.rank, len(self._dataset), self.world))
            for start in range(0, len(idx), size):
                yield torch.stack([_inputs_of(self._dataset[i]) for i in idx[start : start + size]])
        else:
            for b, batch in enumerate(self._loader):
                if b % self.world == self.rank:
                    x = _inputs_of(batch)
                    for start in range(0, int(x.shape[0]), size):
                        yield x[start : start + size]

    def batches(self, size: int) -> Iterator[Any]:
        """Batches of at most ``size`` inputs of this shard, on the working device and dtype.

        Raises:
            ShapeError: an input holding NaN or ±inf, naming its row.
        """
        done = 0
        for x in self._raw_batches(max(1, int(size))):
            self._check_finite(x, done)
            done += int(x.shape[0])
            yield self._prepare(x)

    def _row(self, local: int, whole: bool = False) -> str:
        """The row of the user's data that this shard's ``local``-th input is (``whole``: an
        input counted over the whole data, not this shard)."""
        if whole:
            return str(local)
        if self._loader is not None:
            return f"{local} of this process's inputs, in DataLoader order" if self.world > 1 \
                else f"{local} (in DataLoader order)"
        return str(local * self.world + self.rank)

    def _check_finite(self, x: Any, first: int, whole: bool = False) -> None:
        torch = _torch()
        if not (x.is_floating_point() or x.is_complex()):
            return
        if bool(torch.isfinite(x.sum())):  # no NaN or ±inf term (prepared.check_finite_parameters)
            return
        bad = ~torch.isfinite(x.reshape(x.shape[0], -1))
        if bool(bad.any()):
            row, col = (int(i) for i in torch.nonzero(bad)[0].tolist())
            value = x.reshape(x.shape[0], -1)[row, col].item()
            raise ShapeError(
                f"input row {self._row(first + row, whole)} has {value} (at flat position {col}); "
                "inputs must be finite")

    def example(self, k: int = 2) -> Any:
        """The first ``k`` inputs of the whole data (same on every process), for shape checks."""
        torch = _torch()
        if self._tensor is not None:
            x = self._tensor[:k]
        elif self._dataset is not None:
            x = torch.stack([_inputs_of(self._dataset[i]) for i in range(min(k, len(self._dataset)))])
        else:
            x = None
            for batch in self._loader:
                x = _inputs_of(batch)[:k]
                break
        if x is None or x.shape[0] == 0:
            raise ShapeError("the data holds no input")
        self._check_finite(x, 0, whole=True)  # the first rows of the whole data
        return self._prepare(x)

    def local_count(self) -> int | None:
        """Number of inputs in this shard when known without iterating (else None)."""
        if self._tensor is not None:
            return int(self._tensor.shape[0])
        if self._dataset is not None:
            return len(range(self.rank, len(self._dataset), self.world))
        return None


class Progress:
    """A one-line progress counter on stderr, shown only on a terminal and after ``delay`` s."""

    def __init__(self, total: int | None, label: str, delay: float = 2.0) -> None:
        self.total, self.label, self.delay = total, label, delay
        self.start = time.monotonic()
        self.done = 0
        self.shown = False
        self.on = sys.stderr.isatty()

    def update(self, k: int) -> None:
        self.done += k
        if not self.on or time.monotonic() - self.start < self.delay:
            return
        of = f"/{self.total}" if self.total else ""
        sys.stderr.write(f"\r{self.label}: {self.done}{of} inputs, "
                         f"{time.monotonic() - self.start:.0f} s")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
