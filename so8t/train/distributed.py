"""The few collectives training needs, each a no-op in a single process: sums and maxima over DDP ranks.

Figures a user reads (logged loss parts, tokens, evaluation parts) and decisions every rank must take
together (stop on a signal or a non-finite loss) go through here, so one rank never logs its own share or
stops alone while the others wait in a collective.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _reduce(values: torch.Tensor, device: torch.device | str, op: dist.ReduceOp) -> torch.Tensor:
    values = values.to(dtype=torch.float64)
    if world_size() > 1:
        values = values.to(device)
        dist.all_reduce(values, op=op)
    return values.cpu()


def sum_over_ranks(values: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`values` summed over all DDP ranks (unchanged in a single process), in float64 on the CPU."""
    return _reduce(values, device, dist.ReduceOp.SUM)


def max_over_ranks(values: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`values` maximised over all DDP ranks (unchanged in a single process), in float64 on the CPU."""
    return _reduce(values, device, dist.ReduceOp.MAX)


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
