"""A small causal transformer over token sequences, the sequence model of ``ext-sequence``.

Token and position embeddings, ``blocks`` pre-LayerNorm blocks (causal multi-head
self-attention written out, so that forward- and reverse-mode derivatives of every order run
through it; a tanh MLP), a final LayerNorm and an output head tied to the token embedding or
untied. ``forward(tokens (B, T)) → logits (B, T, V)``. With right padding a real position
attends only to real positions (the mask is causal), so padding never changes a real
position's logits; the padding mask of the likelihood is :func:`~.sequence.with_padding_mask`.
It exists for the tests, the statement and the benchmarks; any user module works the same way.
"""

from __future__ import annotations

import math
from typing import Any

from .sequence import _module_base

__all__: list[str] = []  # nothing for other rooms


class CausalTransformer(_module_base()):  # type: ignore[misc]
    """``V`` tokens, ``T`` positions, width ``D``, ``heads`` heads, ``blocks`` blocks."""

    def __init__(self, V: int, T: int, D: int = 8, heads: int = 2, blocks: int = 1,  # noqa: N803
                 tied: bool = True, mlp: int | None = None) -> None:
        import torch

        super().__init__()
        if D % heads:
            raise ValueError(f"D = {D} must be a multiple of heads = {heads}")
        nn = torch.nn
        self.V, self.T, self.D, self.heads, self.tied = V, T, D, heads, tied
        self.embed = nn.Embedding(V, D)
        self.pos = nn.Parameter(0.1 * torch.randn(T, D))
        hidden = 2 * D if mlp is None else mlp
        self.blocks = nn.ModuleList()
        for _ in range(blocks):
            self.blocks.append(nn.ModuleDict({
                "ln1": nn.LayerNorm(D), "qkv": nn.Linear(D, 3 * D), "proj": nn.Linear(D, D),
                "ln2": nn.LayerNorm(D), "up": nn.Linear(D, hidden), "down": nn.Linear(hidden, D),
            }))
        self.ln = nn.LayerNorm(D)
        self.head = None if tied else nn.Linear(D, V, bias=False)
        self.register_buffer("causal", torch.tril(torch.ones(T, T, dtype=torch.bool)),
                             persistent=False)

    def _attention(self, block: Any, x: Any) -> Any:
        import torch

        B, T, D = x.shape
        H = self.heads
        q, k, v = block["qkv"](block["ln1"](x)).split(D, dim=-1)
        q, k, v = (z.reshape(B, T, H, D // H).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(D // H)
        scores = scores.masked_fill(~self.causal[:T, :T], float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        return block["proj"](out.transpose(1, 2).reshape(B, T, D))

    def forward(self, tokens: Any) -> Any:
        """Logits ``(B, T, V)`` for tokens ``(B, T)`` (integers in ``0..V−1``)."""
        import torch

        x = self.embed(tokens.long()) + self.pos[: tokens.shape[1]]
        block: Any
        for block in self.blocks:
            x = x + self._attention(block, x)
            x = x + block["down"](torch.tanh(block["up"](block["ln2"](x))))
        x = self.ln(x)
        return x @ self.embed.weight.T if self.head is None else self.head(x)
