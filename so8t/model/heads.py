"""Safety head B: decision logits (ALLOW, ESCALATE, REFUSE) from h_safe at the last prompt token."""

from __future__ import annotations

import torch
from torch import nn


class SafetyHead(nn.Module):
    """Linear (or small MLP) classifier on a pooled hidden state. For "mlp", `net.0` is the first layer."""

    def __init__(
        self, hidden_size: int, num_classes: int = 3, kind: str = "linear", mlp_hidden: int | None = None
    ):
        super().__init__()
        self.kind = kind
        self.mlp_hidden = mlp_hidden
        if kind == "linear":
            self.net = nn.Sequential(nn.Linear(hidden_size, num_classes))
        elif kind == "mlp":
            width = mlp_hidden or hidden_size
            self.net = nn.Sequential(nn.Linear(hidden_size, width), nn.GELU(), nn.Linear(width, num_classes))
        else:
            raise ValueError(f"unknown safety head kind {kind!r}: use 'linear' or 'mlp'")

    @property
    def first_layer(self) -> nn.Linear:
        """The layer that reads the hidden state (where R_safe folds in)."""
        return self.net[0]

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)


def pool_last_prompt_token(hidden: torch.Tensor, pool_index: torch.Tensor) -> torch.Tensor:
    """hidden (B, T, D), pool_index (B,) -> (B, D): the row of each sequence at its last prompt token."""
    index = pool_index.to(hidden.device).long()
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]
