"""Wall time of training and evaluation on 2 processes against 1, on the quickstart recipe, in the same run.

Two `so8t run configs/quickstart.yaml` runs into fresh run directories, identical but for `train.processes`
and `eval.processes` (1, then 2; the per-device batch halves on 2 processes, so the global batch is the same).
The embedded base's pretraining is cached by the first run (or an earlier one) and not counted: the figures are
the train and evaluate stage times each run records in run_record.json. On a machine without a GPU the
processes are CPU processes sharing its cores (torchrun and accelerate give each one thread), so the ratio shows
what data parallelism costs or saves here, not on GPUs.

    python benchmarks/bench_scaleout.py [--max-steps 400] [--out runs/bench_scaleout]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "quickstart.yaml"


def _stage_times(run_dir: Path, processes: int, max_steps: int, batch: int) -> dict[str, float]:
    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = {
        "train.processes": processes,
        "eval.processes": processes,
        "train.max_steps": max_steps,
        "train.per_device_batch_size": batch // processes,
        "logging.wandb.mode": "disabled",
    }
    command = [sys.executable, "-m", "so8t", "run", str(CONFIG), "--output-dir", str(run_dir)]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    timings = json.loads((run_dir / "run_record.json").read_text())["timings"]
    return {stage: float(timings[stage]) for stage in ("train", "evaluate")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=16, help="global batch (the quickstart's)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_scaleout")
    args = parser.parse_args()
    one = _stage_times(args.out / "p1", 1, args.max_steps, args.batch)
    two = _stage_times(args.out / "p2", 2, args.max_steps, args.batch)
    print(f"cpus: {os.cpu_count()}, steps: {args.max_steps}, global batch: {args.batch}")
    print("| stage | 1 process (s) | 2 processes (s) | 2 / 1 |")
    print("|---|---:|---:|---:|")
    for stage in ("train", "evaluate"):
        print(f"| {stage} | {one[stage]:.1f} | {two[stage]:.1f} | {two[stage] / one[stage]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
