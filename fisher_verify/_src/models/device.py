"""The torch device the engine computes on: the default and the check of a user's choice."""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedError

__all__: list[str] = []  # nothing for other rooms


def _torch() -> Any:
    import torch

    return torch


def default_device() -> str:
    """``"cuda"`` when a GPU is visible to torch, else ``"cpu"``."""
    return "cuda" if _torch().cuda.is_available() else "cpu"


def resolve_device(device: str | None) -> Any:
    """``torch.device(device)``, refused with the available devices when it is not usable."""
    torch = _torch()
    available = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    try:
        dev = torch.device(device or default_device())
    except (RuntimeError, TypeError):
        raise UnsupportedError(
            f"device {device!r} is not a torch device; available: {', '.join(available)}"
        ) from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda" and torch.cuda.is_available():
        if dev.index is None or dev.index < torch.cuda.device_count():
            return dev
    raise UnsupportedError(
        f"device {device!r} is not available with this torch build "
        f"({torch.__version__}); available: {', '.join(available)}"
    )
