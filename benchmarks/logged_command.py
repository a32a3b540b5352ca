"""The benchmarks' way of running a step in its own process: output kept in a log file, W&B off, and a failure
that stops the benchmark naming that log."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def benchmark_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with W&B off and tokenizers single-threaded, plus `extra`."""
    return {**os.environ, "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false", **(extra or {})}


def run_logged(command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    """Run `command` in the repository with its output in `log`; exits naming the log when it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        proc = subprocess.run(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env or benchmark_env(), cwd=REPO
        )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... exited {proc.returncode}; see {log}")
