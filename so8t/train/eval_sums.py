"""The validation loss parts as sums over the validation set, each row counted once on any number of processes.

Under DDP, accelerate gives every rank whole, equal evaluation batches: the last round of batches is padded
with rows from the start of the set, which its `gather_for_metrics` drops again. The loss parts are sums of
a batch, not per-row values gathered through Trainer, so the rows to leave out are asked of that same
function: each rank tags its rows (rank, position), and the tags it keeps are the rows that count.
"""

from __future__ import annotations

from typing import Any

import torch

from so8t.train.distributed import rank, sum_over_ranks

# one slot per rank in the row tags, wider than any evaluation batch
_TAG_STRIDE = 1 << 20


def rows_counted_once(accelerator: Any, rows: int, device: torch.device | str) -> torch.Tensor:
    """A boolean mask of this rank's `rows` batch rows that are no padding (all true in one process). A
    collective: every rank calls it for each evaluation batch (they have equally many)."""
    tags = torch.arange(rows, device=device) + rank() * _TAG_STRIDE
    kept = accelerator.gather_for_metrics(tags).cpu()
    mine = kept[kept // _TAG_STRIDE == rank()] % _TAG_STRIDE
    mask = torch.zeros(rows, dtype=torch.bool)
    mask[mine] = True
    return mask


class EvalSums:
    """This rank's sums of each loss part and of its count (LM tokens, weighted safety rows, PET triples)."""

    def __init__(self) -> None:
        self.values = torch.zeros(6, dtype=torch.float64)

    def reset(self) -> None:
        self.values.zero_()

    def add(self, output: Any, counts: Any) -> None:
        parts = (output.lm_loss_sum, output.safety_loss_sum, output.pet_sum)
        pairs = zip(parts, (counts.lm, counts.safety, counts.pet), strict=True)
        self.values += torch.tensor(
            [x for s, c in pairs for x in (float(s.detach()), c)], dtype=torch.float64
        )

    def totals(self, device: torch.device | str) -> list[float]:
        """[lm sum, lm count, safety sum, safety count, pet sum, pet count] over all ranks."""
        return sum_over_ranks(self.values, device).tolist()
