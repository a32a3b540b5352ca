"""The optimizer's param groups: LoRA at the learning rate, rotations and head B at the safety learning rate.

Generators and biases get no weight decay (decay would pull the rotations towards the identity). Every
trainable parameter lands in exactly one group.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def param_groups(model: nn.Module, settings: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The non-empty groups `lora`, `so8t` and `so8t_no_decay` of `model`'s trainable parameters, each with
    its `settings` (lr, weight_decay) and its name."""
    groups: dict[str, dict[str, Any]] = {name: {"params": [], **values} for name, values in settings.items()}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if "lora_" in name:
            groups["lora"]["params"].append(param)
        elif "generators" in name or param.ndim < 2:
            groups["so8t_no_decay"]["params"].append(param)
        else:
            groups["so8t"]["params"].append(param)
    return [dict(group, name=name) for name, group in groups.items() if group["params"]]
