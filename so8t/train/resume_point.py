"""Which checkpoint a run resumes from: the last complete one whose weights and validation loss are sound.

An update can be finite but huge (a learning rate far too high): its checkpoint is written, the loss turns
non-finite a step or two later, and a resume from it fails again whatever the new learning rate. Such an
exploded checkpoint is never a resume point. Walking the complete checkpoints by step, each is judged against
the last sound one before it (the parameters at the start of training for the first); it exploded when

- the largest magnitude of its trained parameters (LoRA, rotations, head B) is more than WEIGHT_GROWTH times
  the reference's (recorded at each save in trainer_state.json, callbacks.TrainedScale), or
- its validation task loss (BEST_METRIC_KEY at its step) is not finite, or more than LOSS_GROWTH times the
  lowest validation task loss logged before it (and at least LOSS_GROWTH).

Healthy training moves its parameters by a few learning rates per step and lowers its validation loss; both
rules leave it alone, while a learning rate of 1e6 multiplies the weights by a million in one step. No torch
here: `so8t run` decides whether training is finished before it imports torch.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

from so8t.layout.checkpoints import (
    BEST_METRIC_KEY,
    checkpoint_step,
    complete_checkpoints,
    last_complete_checkpoint,
    read_trainer_state,
)

logger = logging.getLogger(__name__)

WEIGHT_GROWTH = 1000.0
LOSS_GROWTH = 100.0
TRAINED_SCALE = "TrainedScale"  # its record in trainer_state.json's stateful_callbacks


def trained_scale(state: dict[str, Any]) -> dict[str, float | None]:
    """{"max_abs": at the checkpoint, "start_max_abs": at the start of training} from a trainer state (None:
    not recorded, as in checkpoints of older so8t versions)."""
    record = state.get("stateful_callbacks", {}).get(TRAINED_SCALE, {})
    attributes = (record.get("attributes") or {}) if isinstance(record, dict) else {}
    return {key: attributes.get(key) for key in ("max_abs", "start_max_abs")}


def _validation_loss(state: dict[str, Any], step: int) -> tuple[float | None, float | None]:
    """(the validation task loss at `step`, the lowest one logged before it); None where there is none."""
    losses = [
        (int(e["step"]), float(e[BEST_METRIC_KEY]))
        for e in state.get("log_history", [])
        if BEST_METRIC_KEY in e and "step" in e
    ]
    at = next((value for s, value in losses if s == step), None)
    earlier = [value for s, value in losses if s < step and math.isfinite(value)]
    return at, (min(earlier) if earlier else None)


def explosion(checkpoint: Path, reference_max_abs: float | None) -> tuple[str | None, float | None]:
    """(why the checkpoint exploded, or None; its parameters' largest magnitude, when recorded)."""
    state = read_trainer_state(checkpoint)
    scale = trained_scale(state)
    max_abs = scale["max_abs"]
    reference = reference_max_abs if reference_max_abs is not None else scale["start_max_abs"]
    if max_abs is not None and (
        not math.isfinite(max_abs) or (reference and max_abs > WEIGHT_GROWTH * reference)
    ):
        return (
            f"its largest trained parameter is {max_abs:.3g}, over {WEIGHT_GROWTH:g} times the "
            f"{reference:.3g} of the last sound parameters",
            max_abs,
        )
    loss, lowest = _validation_loss(state, checkpoint_step(checkpoint) or 0)
    if loss is not None and (
        not math.isfinite(loss) or loss > LOSS_GROWTH * max(lowest if lowest is not None else 1.0, 1.0)
    ):
        return f"its validation {BEST_METRIC_KEY} is {loss:.3g}", max_abs
    return None, max_abs


def judged_checkpoints(checkpoint_root: str | Path) -> tuple[list[Path], dict[Path, str]]:
    """(the sound complete checkpoints, {exploded checkpoint: why}), by step, after undoing what a crashed
    save left (layout.last_complete_checkpoint)."""
    last_complete_checkpoint(checkpoint_root)
    sound: list[Path] = []
    exploded: dict[Path, str] = {}
    reference: float | None = None
    for checkpoint in complete_checkpoints(checkpoint_root):
        why, max_abs = explosion(checkpoint, reference)
        if why is None:
            sound.append(checkpoint)
            reference = max_abs if max_abs is not None else reference
        else:
            exploded[checkpoint] = why
    return sound, exploded


def resume_checkpoint(checkpoint_root: str | Path) -> Path | None:
    """The checkpoint a run resumes from: the last sound complete one (None: start from the beginning)."""
    sound, _ = judged_checkpoints(checkpoint_root)
    return sound[-1] if sound else None


def remove_exploded_after(checkpoint_root: str | Path, resume: Path | None) -> list[Path]:
    """Delete the exploded checkpoints later than the resume point (training from it replaces them, and
    none may be mistaken for the run's last or best); returns them."""
    _, exploded = judged_checkpoints(checkpoint_root)
    after = checkpoint_step(resume) if resume is not None else -1
    removed = [path for path in exploded if (checkpoint_step(path) or 0) > after]
    for path in removed:
        logger.warning("%s exploded (%s): removed, training resumes before it", path.name, exploded[path])
        shutil.rmtree(path)
    return removed
