"""The counts each loss part is divided by: LM target tokens, (weighted) safety rows, PET triples.

Training divides the sums of every micro-batch by the counts of its whole optimizer step (all micro-batches,
all ranks), evaluation by those of the whole validation set, so neither depends on how rows are split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100


@dataclass
class LossCounts:
    """Normalisers of the three loss parts: LM target tokens, (weighted) safety rows, PET triples."""

    lm: float
    safety: float
    pet: float


def count_loss_items(batch: dict[str, torch.Tensor], class_weights: torch.Tensor | None) -> LossCounts:
    """Counts of one micro-batch, as SO8TModel counts them (position 0 is never an LM target)."""
    from so8t.model.pet import pet_triples

    labels = batch["labels"][:, 1:]
    safety = batch["safety_labels"]
    valid = safety.ne(IGNORE_INDEX)
    if class_weights is None:
        n_safety = float(valid.sum())
    else:  # weighted cross-entropy normalises by the summed weights of its rows
        n_safety = float(class_weights.cpu()[safety[valid].cpu()].sum())
    return LossCounts(
        float(labels.ne(IGNORE_INDEX).sum()), n_safety, float(pet_triples(batch["attention_mask"]).sum())
    )
