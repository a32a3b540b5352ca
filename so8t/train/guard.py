"""Stopping a run cleanly, on every rank at the same step: on SIGTERM/SIGINT, and on a non-finite loss.

A signal reaches one process (a scheduler's SIGTERM, Ctrl-C on one rank), and a NaN may appear in one rank's
share of the batch, but DDP ranks must take each step together or one waits forever in a collective. So
each rank only records what it saw, and once per optimizer step, after the backward pass and before the
update, the flags are maximised over ranks (one all-reduce of two numbers) and every rank acts on the same
answer:

- a non-finite loss or gradient: NonFiniteLossError before the update is applied, so the parameters and
  every checkpoint on disk stay finite (a gradient is checked unless a GradScaler, which skips such steps
  itself, is in charge);
- a signal: the step finishes, every rank saves checkpoint-N and stops; the caller exits 128 + signal.
  A second signal in the same process stops at once.
"""

from __future__ import annotations

import signal
from typing import Any

import torch
from transformers import TrainerCallback

from so8t.errors import UserError
from so8t.train.distributed import max_over_ranks


class NonFiniteLossError(UserError):
    """The training loss (or gradient, or a parameter) became NaN or infinite; training stopped before it
    reached the parameters or a checkpoint. `step`: the last step whose update was applied."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


def gradients_finite(model: torch.nn.Module) -> bool:
    """Whether every gradient of `model` is finite (after clipping a non-finite norm makes them all NaN)."""
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    return not norms or bool(torch.isfinite(torch.stack([n.float().cpu() for n in norms])).all())


class StopGuard(TrainerCallback):
    """The stop flags of one process, agreed with the other ranks once per step (see the module doc).

    `received`: the signal every rank stops on (None while running); `check_gradients`: False under a
    GradScaler. So8tTrainer.compute_loss calls `report_nonfinite` with a description of a bad loss.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.check_gradients = True
        self._caught: int | None = None
        self._nonfinite: str | None = None
        self._previous: dict[int, Any] = {}

    def report_nonfinite(self, description: str) -> None:
        if self._nonfinite is None:
            self._nonfinite = description

    def _handler(self, signum: int, frame: Any) -> None:
        if self._caught is not None:
            raise KeyboardInterrupt
        self._caught = signum

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread (e.g. a notebook worker): no handler
                pass

    def on_pre_optimizer_step(
        self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
    ) -> None:
        bad_gradients = self.check_gradients and model is not None and not gradients_finite(model)
        seen = torch.tensor([float(self._caught or 0), float(self._nonfinite is not None or bad_gradients)])
        signum, nonfinite = max_over_ranks(seen, args.device).tolist()
        if nonfinite:
            raise NonFiniteLossError(self._describe(state.global_step, bad_gradients), step=state.global_step)
        if signum and self.received is None:
            self.received = int(signum)

    def _describe(self, step: int, bad_gradients: bool) -> str:
        if self._nonfinite is not None:
            return self._nonfinite
        if bad_gradients:
            return f"The gradient became non-finite at step {step}; training stopped before applying it."
        return f"The training loss became non-finite on another rank at step {step}; training stopped before applying it."

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.restore_handlers()

    def restore_handlers(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
