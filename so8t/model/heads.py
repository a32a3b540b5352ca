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


def init_from_decision_words(
    head: SafetyHead, lm_head_weight: torch.Tensor, word_token_ids: list[int]
) -> bool:
    """Start a linear head B as the LM's own logits for the decision words at the pooled token.

    At init the gate is the identity, so head B then reads the state the LM head reads and starts from
    whatever the base already knows about " ALLOW" / " ESCALATE" / " REFUSE" instead of from noise.
    Returns False (head left as is) for an MLP head, shared first tokens or a quantised LM head.
    """
    layer = head.first_layer
    if head.kind != "linear" or len(set(word_token_ids)) != len(word_token_ids):
        return False
    if not lm_head_weight.is_floating_point() or lm_head_weight.shape[1] != layer.in_features:
        return False
    with torch.no_grad():
        layer.weight.copy_(lm_head_weight[word_token_ids].to(layer.weight))
        layer.bias.zero_()
    return True


def pool_last_prompt_token(hidden: torch.Tensor, pool_index: torch.Tensor) -> torch.Tensor:
    """hidden (B, T, D), pool_index (B,) -> (B, D): the row of each sequence at its last prompt token."""
    index = pool_index.to(hidden.device).long()
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]
