"""The figures a training log line averages, summed since the last line, and carried across a resume.

A log line averages the loss and its parts over the optimizer steps since the previous line. A run stopped
between two lines (a signal's checkpoint, or save_steps off the logging cadence) would start the next line
afresh after its resume, averaging fewer steps than the uninterrupted run. So every checkpoint records the
pending sums, over all ranks, in its trainer_state.json (Trainer's `stateful_callbacks`, through
ExportableState), and a resumed run starts from them: its log lines are the uninterrupted run's.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from so8t.train.distributed import sum_over_ranks

PARTS = ("lm_loss", "safety_loss", "pet")


class LogSums(TrainerCallback, ExportableState):
    """This rank's share of the loss and each part (summed per optimizer step) and of the tokens read since
    the last log line, and the number of steps since it (the same on every rank)."""

    def __init__(self) -> None:
        self.shares = torch.zeros(1 + len(PARTS), dtype=torch.float64)
        self.tokens = 0.0
        self.steps = 0
        self.recorded: dict[str, Any] | None = None

    def add_micro_batch(self, loss: float, parts: list[float]) -> None:
        self.shares += torch.tensor([loss, *parts], dtype=torch.float64)

    def add_step(self, tokens: float) -> None:
        self.tokens += tokens
        self.steps += 1

    def take(self, device: Any) -> tuple[dict[str, float], float]:
        """({"loss", and each part: averaged per step, summed over ranks}, tokens over ranks); then zero.
        A collective: every rank logs at the same step."""
        *sums, tokens = sum_over_ranks(torch.cat([self.shares, torch.tensor([self.tokens])]), device).tolist()
        steps = max(self.steps, 1)
        figures = {key: value / steps for key, value in zip(("loss", *PARTS), sums, strict=True)}
        self.shares.zero_()
        self.tokens, self.steps = 0.0, 0
        return figures, tokens

    def record_for_checkpoint(self, device: Any, collectives: bool = True) -> None:
        """Sum the pending shares over ranks for the checkpoint being saved; without collectives (a save on
        one rank alone) only a single process can record them."""
        if collectives:
            self.recorded = {"sums": sum_over_ranks(self.shares, device).tolist(), "steps": self.steps}
        else:
            self.recorded = None

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {"pending": self.recorded}}

    def resume_from(self, trainer_state: dict[str, Any], first_rank: bool) -> None:
        """Start from the sums a checkpoint's trainer_state.json recorded (none: from zero). The global sums go
        to the first rank only, since log lines sum the ranks' shares."""
        stored = trainer_state.get("stateful_callbacks", {}).get(type(self).__name__, {})
        pending = (stored.get("attributes") or {}).get("pending") if isinstance(stored, dict) else None
        if not pending:
            return
        self.steps = int(pending["steps"])
        if first_rank:
            self.shares = torch.tensor(pending["sums"], dtype=torch.float64)
