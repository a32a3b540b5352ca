"""Data-parallel evaluation: `so8t eval --processes N` relaunches the same evaluation under `accelerate launch`.

That is lm-eval's own data parallelism: HFLM (and so the so8t backend) shards the requests over the processes,
rank 0 gathers every document and writes the results, so point values equal one process's exactly (bootstrap
standard errors follow the gathered sample order and may differ slightly). On a machine without a GPU the
processes run on the CPU (`--cpu`, gloo); with GPUs each process takes one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from so8t.errors import UserError
from so8t.layout import RESULTS_GLOB, date_id_of
from so8t.lmeval.evaluate import RELAUNCHED_ENV, evaluate, read_results
from so8t.lmeval.flags import LmEvalFlags


def evaluation_argv(
    model: str,
    tasks: list[str],
    out: str | Path,
    *,
    limit: int | float | None = None,
    model_args: dict[str, Any] | None = None,
    batch_size: int | str = 8,
    bootstrap_iters: int = 1000,
    metadata: dict[str, Any] | None = None,
    log_samples: bool = True,
    max_gen_toks: int | None = None,
    device: str | None = None,
    flags: LmEvalFlags | None = None,
) -> list[str]:
    """The `so8t eval` arguments of an evaluation (the inverse of its parser), for a relaunched process."""
    argv = [str(model), "--tasks", ",".join(tasks), "--out", str(out), "--batch-size", str(batch_size)]
    argv += ["--bootstrap-iters", str(bootstrap_iters)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    if model_args:
        argv += ["--model-args", ",".join(f"{k}={v}" for k, v in model_args.items())]
    if metadata:
        argv += ["--metadata", json.dumps(metadata)]
    if not log_samples:
        argv.append("--no-log-samples")
    if max_gen_toks:
        argv += ["--max-gen-toks", str(max_gen_toks)]
    if device:
        argv += ["--device", device]
    return argv + (flags.argv() if flags else [])


def launch_command(processes: int, program: list[str], cpu: bool) -> list[str]:
    """`accelerate launch` of `program` (a `-m module ...` list) on `processes` local processes."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes)]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    if cpu:
        command.append("--cpu")
    return [*command, *program]


def check_processes(processes: int, device: str | None) -> bool:
    """Whether the processes run on the CPU; a clear error when more GPU processes are asked than GPUs."""
    import torch

    on_cpu = device == "cpu" or not torch.cuda.is_available()
    if not on_cpu and processes > torch.cuda.device_count():
        raise UserError(
            f"{processes} evaluation processes asked for, but {torch.cuda.device_count()} GPU(s) are visible; "
            "use at most one process per GPU (eval.processes / --processes), or --device cpu."
        )
    return on_cpu


def evaluate_in_processes(
    processes: int, model: str, tasks: list[str], out: str | Path, **options: Any
) -> dict:
    """Run `so8t eval` on `processes` processes and return the results file rank 0 wrote, read back.

    The launched processes inherit the environment (the local tasks' data variables included).
    """
    on_cpu = check_processes(processes, options.get("device"))
    argv = evaluation_argv(model, tasks, out, **options)
    command = launch_command(processes, ["-m", "so8t.cli", "eval", *argv], cpu=on_cpu)
    started = time.time()
    env = {**os.environ, "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM", "false")}
    env[RELAUNCHED_ENV] = "1"
    proc = subprocess.run(command, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"the {processes}-process evaluation exited with {proc.returncode}; its output is above. "
            f"Command: {' '.join(command)}"
        )
    written = newest_results_since(Path(out), started)
    if written is None:
        raise RuntimeError(f"the {processes}-process evaluation wrote no results file under {out}")
    return read_results(written)


def evaluate_on(processes: int, model: str, tasks: list[str], out: str | Path, **options: Any) -> dict:
    """`evaluate` in this process, or on `processes` data-parallel processes: the same results either way."""
    if processes > 1:
        return evaluate_in_processes(processes, model, tasks, out, **options)
    return evaluate(model, tasks, out, **options)


def newest_results_since(out: Path, started: float) -> Path | None:
    """The newest lm-eval results file under an `--output_path` (a NAME.json path or a folder) written after
    `started` (a time.time())."""
    if out.suffix == ".json":
        candidates = out.parent.glob(f"{out.stem}_*.json")
    else:
        candidates = out.rglob(RESULTS_GLOB)
    fresh = [p for p in candidates if date_id_of(p) is not None and p.stat().st_mtime >= started - 1]
    return max(fresh, key=lambda p: p.stat().st_mtime, default=None)
