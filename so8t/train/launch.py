"""Multi-process training launched by `so8t run` itself (`train.processes: N` -> torchrun on this machine).

The processes run `python -m so8t.train.run CONFIG` (the same entry point as a hand-written torchrun line) on
the same run directory, so its contract is unchanged: one set of checkpoints, written by rank 0. `so8t run`
waits for them, then consolidates and evaluates once, in its own process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from so8t.errors import UserError
from so8t.layout import RunDir, last_complete_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig
    from so8t.train.run import TrainResult


class TrainingProcessesFailed(UserError):
    """The launched training processes ended with an error (their output says which); the exit code is theirs."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def config_arguments(config: str | Path, overrides: list[str]) -> list[str]:
    """`CONFIG --set k=v ...`: the arguments that make `python -m so8t.train.run` load the same config."""
    return [str(config), *(part for override in overrides for part in ("--set", override))]


def torchrun_command(processes: int, config_argv: list[str]) -> list[str]:
    """The torchrun line of `processes` local training processes; `config_argv` is `CONFIG [--set k=v ...]`."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "so8t.train.run",
        *config_argv,
    ]


def check_processes(processes: int) -> None:
    """More processes than GPUs would share a GPU: refused with the fix."""
    import torch

    if torch.cuda.is_available() and processes > torch.cuda.device_count():
        raise UserError(
            f"train.processes is {processes} but {torch.cuda.device_count()} GPU(s) are visible; use one process "
            "per GPU (for several machines, run torchrun on each as docs/scaling.md shows)."
        )


# Set for the processes `train_in_processes` launches: the launcher reports the result, they do not.
LAUNCHED_ENV = "SO8T_TRAIN_LAUNCHED"


def train_in_processes(cfg: RunConfig, run_dir: Path, config_argv: list[str]) -> TrainResult:
    """Train on `cfg.train.processes` processes and return the TrainResult read from the run directory."""
    from so8t.train.run import finished_result

    processes = cfg.train.processes
    check_processes(processes)
    command = torchrun_command(processes, config_argv)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", LAUNCHED_ENV: "1"}
    code = subprocess.run(command, env=env).returncode
    if code != 0:
        raise TrainingProcessesFailed(
            f"the {processes} training processes exited with {code} (their output is above); the run directory "
            f"keeps its last complete checkpoint, and the same `so8t run` resumes from it. Command: "
            f"{' '.join(command)}",
            exit_code=code,
        )
    checkpoint = last_complete_checkpoint(RunDir(run_dir).checkpoints)
    result = finished_result(checkpoint, cfg) if checkpoint is not None else None
    if result is None:
        raise UserError(
            f"the training processes ended without a final checkpoint in {RunDir(run_dir).checkpoints}"
        )
    return result
