"""A sequence model's ``(batch, T, V)`` logits as the natural parameter of ``family("sequence")``.

The padding mask depends on the input tokens, and the engine sees only ``h_L`` per input, so the
mask travels in ``h_L`` (:mod:`fisher_verify._src.families.sequence`): :func:`with_padding_mask` wraps
the user's model in a module whose output is ``(logits_t, m_t)`` per position, flattened to
``(batch, T·(V+1))``. The mask is computed from the tokens without gradient, so ``J`` is zero
along it and every diagonal, variance and audit counts the unmasked positions only
(``ext-sequence``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ShapeError
from ..validation import check_callable

__all__ = ["with_padding_mask"]


def _module_base() -> Any:
    import torch

    return torch.nn.Module


class PaddedSequenceModel(_module_base()):  # type: ignore[misc]
    """``model`` (tokens (B, T) → logits (B, T, V)) with the padding mask appended per position.

    Attributes:
        model: the wrapped model (its parameters are this module's, named ``model.<name>``).
        mask: tokens (B, T) → (B, T) booleans, True at real positions.
    """

    def __init__(self, model: Any, mask: Callable[[Any], Any]) -> None:
        super().__init__()
        self.model = model
        self.mask = mask

    def forward(self, tokens: Any) -> Any:
        """``(B, T·(V+1))``: per position the V logits, then 1.0 (real) or 0.0 (padding)."""
        import torch

        logits = self.model(tokens)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 3:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ShapeError(f"with_padding_mask: the model must return logits of shape (batch, T, V); "
                             f"it returned {shape}")
        with torch.no_grad():
            m = self.mask(tokens)
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != tuple(logits.shape[:2]):
            shape = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise ShapeError(f"with_padding_mask: the mask must have shape (batch, T) = "
                             f"{tuple(logits.shape[:2])}, got {shape}")
        m = m.to(logits.dtype).detach()
        out = torch.cat([logits, m[..., None]], dim=-1)
        return out.reshape(out.shape[0], -1)


def with_padding_mask(model: Any, pad_token: int | None = None, *,
                      mask: Callable[[Any], Any] | None = None) -> PaddedSequenceModel:
    """``model`` (tokens → (B, T, V) logits) as the engine's model for ``family("sequence", K=V,
    T=T)`` (``ext-sequence``): the padding mask is ``tokens != pad_token``, or ``mask(tokens)``.

    The user's module is wrapped, not copied: ``fv.exact_fisher(with_padding_mask(net,
    0), tokens, fv.family("sequence", K=V, T=T))`` gives the diagonal of ``net``'s parameters
    (named ``model.<name>``).

    Raises:
        ShapeError: neither or both of ``pad_token`` and ``mask``; ``model`` not a module.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ShapeError(f"with_padding_mask: model must be a torch.nn.Module, got {type(model).__name__}")
    if (pad_token is None) == (mask is None):
        raise ShapeError("with_padding_mask: give exactly one of pad_token= (the padding token id) "
                         "or mask= (tokens -> (batch, T) booleans, True at real positions)")
    if mask is None:
        if isinstance(pad_token, bool) or not isinstance(pad_token, int):
            raise ShapeError(f"with_padding_mask: pad_token must be an integer token id, got {pad_token!r}")
        pad = int(pad_token)

        def mask(tokens: Any) -> Any:
            return tokens != pad
    else:
        check_callable(mask, "mask", "mask(tokens) -> (batch, T) booleans, True at real positions")
    return PaddedSequenceModel(model, mask)
