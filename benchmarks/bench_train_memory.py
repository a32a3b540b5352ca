"""Peak training memory of So8tTrainer on an unquantised, 8-bit and 4-bit base, in the same run.

Each setting trains a few steps in a fresh process, so peaks don't mix: peak RSS (ru_maxrss) on CPU, and
CUDA max allocated when a GPU is present. Quantising the frozen base should lower the peak; on the tiny
default base the process baseline (torch, tokenizer) dominates, so use --base with a real model to see
the weight savings.

    python benchmarks/bench_train_memory.py [--base embedded:tiny] [--steps 10] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = """
import json, resource, sys, tempfile
from pathlib import Path
import torch
from transformers import set_seed
from so8t.config import RunConfig
from so8t.train.run import build_model, build_trainer

base, quantization, steps, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = RunConfig.model_validate({
    "model": {"base": base, "quantization": quantization, "pretrain": {"enabled": False},
              "lora": {"r": 16, "alpha": 32, "dropout": 0.0}},
    "data": {"train": [{"builtin": "synthetic_gsm8k", "n": 200}, {"builtin": "safety"}], "max_length": 128},
    "train": {"max_steps": steps, "per_device_batch_size": batch, "eval_strategy": "no", "save_steps": 10000},
    "logging": {"wandb": {"mode": "disabled"}},
})
set_seed(0)
model, tokenizer, _ = build_model(cfg)
with tempfile.TemporaryDirectory() as tmp:
    trainer, _ = build_trainer(cfg, Path(tmp), model, tokenizer)
    trainer.args.save_strategy = "no"
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
out = {"quantization": quantization, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if torch.cuda.is_available():
    out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
print("RESULT " + json.dumps(out))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="embedded:tiny")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    env = dict(os.environ, WANDB_MODE="disabled")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for quantization in ("none", "8bit", "4bit"):
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, args.base, quantization, str(args.steps), str(args.batch_size)],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp,
            )
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                rows.append({"quantization": quantization, "error": proc.stderr.strip().splitlines()[-1:]})
                continue
            rows.append(json.loads(line[len("RESULT ") :]))
    print(
        json.dumps(
            {"base": args.base, "steps": args.steps, "batch_size": args.batch_size, "runs": rows}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
