"""Multi-process training launched by `so8t run` itself (`train.processes: N` -> torchrun on this machine).

The processes run `python -m so8t.train.run CONFIG` (the same entry point as a hand-written torchrun line) on
the same run directory, so its contract is unchanged: one set of checkpoints, written by rank 0. `so8t run`
waits for them, then consolidates and evaluates once, in its own process.

Stopping: torchrun runs in a session of its own, so a terminal's Ctrl-C reaches only `so8t run`, which
forwards SIGTERM or SIGINT to torchrun once and keeps waiting (torchrun forwards it to every rank, which
finish the step, save and stop); a second signal kills the whole group at once. A clean stop on a signal,
whoever received it, leaves its number in a file the parent names (STOP_SIGNAL_FILE_ENV), and the parent
exits 128 + signal, as one process does, where torchrun itself would report a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.errors import UserError
from so8t.layout import RunDir
from so8t.layout.atomic import atomic_write_text
from so8t.layout.checkpoints import last_complete_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig
    from so8t.train.run import TrainResult


class TrainingProcessesFailed(UserError):
    """The launched training processes ended with an error (their output says which); the exit code is theirs."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# The file in which the training processes record the signal they stopped on (set by the launching parent).
STOP_SIGNAL_FILE_ENV = "SO8T_STOP_SIGNAL_FILE"
# Seconds torchrun gives its processes after forwarding a signal (finish the step, save) before it kills them.
SHUTDOWN_TIMEOUT_S = 600
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
        f"--shutdown_timeout={SHUTDOWN_TIMEOUT_S}",
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
    with tempfile.TemporaryDirectory(prefix="so8t-stop-") as folder:
        stop_file = Path(folder) / "signal"
        env = {
            **os.environ,
            "TOKENIZERS_PARALLELISM": "false",
            STOP_SIGNAL_FILE_ENV: str(stop_file),
            LAUNCHED_ENV: "1",
        }
        code, forwarded = run_forwarding_signals(command, env)
        saved = int(stop_file.read_text()) if stop_file.is_file() else None
    stopped_on = saved or forwarded
    if stopped_on:
        where = (
            "every process saved the step it stopped at"
            if saved
            else f"the run keeps its last complete checkpoint (exit code {code})"
        )
        print(
            f"training stopped by signal {stopped_on}: {where}; rerun the same command to resume",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(128 + stopped_on)
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


def run_forwarding_signals(command: list[str], env: dict[str, str]) -> tuple[int, int | None]:
    """Run `command` in a session of its own and wait for it; (its exit code, the signal forwarded to it).

    The first SIGTERM or SIGINT this process receives is sent on to the command, and the wait goes on; a
    second kills the command's whole process group.
    """
    received: list[int] = []
    process = subprocess.Popen(command, env=env, start_new_session=True)

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) == 1:
            process.send_signal(signum)
        else:
            os.killpg(process.pid, signal.SIGKILL)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code, (received[0] if received else None)


def record_stop_signal(signum: int) -> None:
    """Leave the signal a clean stop was made on where the launching parent reads it (no-op without one)."""
    path = os.environ.get(STOP_SIGNAL_FILE_ENV)
    if path:
        atomic_write_text(path, str(int(signum)))
