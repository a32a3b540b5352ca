"""PET regulariser: curvature of the final hidden-state trajectory, and its late-training weight schedule."""

from __future__ import annotations

import torch


def pet_triples(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T-2) float mask: 1 where positions t-1, t, t+1 are all non-padding."""
    m = attention_mask.float()
    return m[:, :-2] * m[:, 1:-1] * m[:, 2:]


def pet_sum(hidden: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over valid triples of ||h_{t+1} - 2 h_t + h_{t-1}||^2 / D, number of valid triples), fp32."""
    h = hidden.float()
    second = h[:, 2:] - 2 * h[:, 1:-1] + h[:, :-2]
    valid = pet_triples(attention_mask.to(h.device))
    return (second.pow(2).sum(-1) / h.shape[-1] * valid).sum(), valid.sum()


def pet_penalty(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid triples of ||h_{t+1} - 2 h_t + h_{t-1}||^2 / D (0 when no triple is valid)."""
    total, count = pet_sum(hidden, attention_mask)
    return total / count.clamp_min(1.0)


def pet_weight(
    step: int, total_steps: int, weight: float, start_fraction: float = 0.5, full_fraction: float = 1.0
) -> float:
    """0 before start_fraction of total_steps, linear ramp to `weight` at full_fraction, `weight` after."""
    if total_steps <= 0 or weight == 0.0:
        return 0.0
    progress = step / total_steps
    if progress < start_fraction:
        return 0.0
    if progress >= full_fraction or full_fraction <= start_fraction:
        return float(weight)
    return float(weight) * (progress - start_fraction) / (full_fraction - start_fraction)
