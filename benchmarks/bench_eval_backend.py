"""lm-eval speed of `--model so8t` against `--model hf` on the same weights and tasks, in one run.

Measures, for loglikelihood (the safety task, decisions scored by the LM and by head B) and
generate_until (GSM8K local):
  * the stock `lm_eval` CLI's wall time per backend (median of --repeats, runs interleaved), and
  * requests/s of the backends' request methods in-process on identical requests (no start-up),
and prints so8t/hf time ratios (goal <= 1.02 where both do the same work). The one-off start-up
consolidation of a training checkpoint is timed separately with a fresh cache.

    python benchmarks/bench_eval_backend.py [--checkpoint DIR] [--limit 40] [--repeats 3] [--device cpu]

Without --checkpoint a tiny SO8T checkpoint is built (random rotations and LoRA, no training).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DISABLE_MULTIPROC", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_tiny_checkpoint(out_dir: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from so8t.model.base import default_lora_targets, resolve_base_path
    from so8t.model.so8t import SO8TModel

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(resolve_base_path("embedded:tiny"), dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=default_lora_targets(base), init_lora_weights=False)
    model = SO8TModel(get_peft_model(base, lora), safety_head_kind="linear", mlp_hidden=None, layers="all")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "generators" in name:
                param.normal_(0.0, 0.3)
    model.save_so8t(out_dir)
    return out_dir


def write_data(root: Path, n: int) -> dict[str, Path]:
    from so8t.data.safety import bundled_safety_path
    from so8t.data.synthetic import generate_problems

    gsm8k = root / "gsm8k.jsonl"
    gsm8k.write_text("".join(json.dumps(e.to_record()) + "\n" for e in generate_problems(n, seed=0)))
    safety = root / "safety.jsonl"
    bundled = bundled_safety_path("test")
    if bundled.is_file():
        safety.write_text("".join(bundled.read_text().splitlines(keepends=True)[:n]))
    else:
        decisions = ["ALLOW", "ESCALATE", "REFUSE"]
        safety.write_text(
            "".join(
                json.dumps({"prompt": f"request number {i}", "decision": decisions[i % 3]}) + "\n"
                for i in range(n)
            )
        )
    return {"so8t_gsm8k_local": gsm8k, "so8t_safety_local": safety}


def cli_seconds(
    model: str, model_args: str, task: str, data: dict, limit: int, device: str, batch_size: int, out: Path
) -> float:
    metadata = json.dumps({"data_files": {k: str(v) for k, v in data.items()}})
    command = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        model,
        "--model_args",
        model_args,
        "--tasks",
        task,
        "--limit",
        str(limit),
        "--device",
        device,
        "--batch_size",
        str(batch_size),
        "--metadata",
        metadata,
        "--gen_kwargs",
        "max_gen_toks=32",
        "--output_path",
        str(out),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"lm_eval failed ({model}, {task}):\n{result.stderr[-3000:]}")
    return seconds


def in_process_rates(
    consolidated: Path, data: dict, limit: int, device: str, batch_size: int, repeats: int
) -> dict:
    """Seconds and requests/s of each backend's request method on the same requests."""
    from lm_eval.models.huggingface import HFLM

    from so8t.lmeval.backend import So8tLM
    from so8t.lmeval.evaluate import task_manager

    manager = task_manager({"data_files": {k: str(v) for k, v in data.items()}})
    requests = {}
    for task_name in ("so8t_safety_local", "so8t_gsm8k_local"):
        task = manager.load([task_name])["tasks"][task_name]
        task.build_all_requests(limit=limit, rank=0, world_size=1)
        for instance in task.instances:
            if instance.request_type == "generate_until":
                instance.arguments = (instance.arguments[0], {**instance.arguments[1], "max_gen_toks": 32})
        requests[task_name] = task.instances
    makers = {
        "hf": lambda: HFLM(pretrained=str(consolidated), device=device, batch_size=batch_size),
        "so8t lm": lambda: So8tLM(
            pretrained=str(consolidated), device=device, batch_size=batch_size, decision_source="lm"
        ),
        "so8t head": lambda: So8tLM(
            pretrained=str(consolidated), device=device, batch_size=batch_size, decision_source="head"
        ),
    }
    backends, rows = {}, {}
    for name, make in makers.items():
        started = time.perf_counter()
        backends[name] = make()
        rows[("start-up", name)] = {
            "seconds": time.perf_counter() - started,
            "requests_per_s": float("nan"),
            "requests": 0,
        }
    for kind, task_name, method in (
        ("loglikelihood", "so8t_safety_local", "loglikelihood"),
        ("generate_until", "so8t_gsm8k_local", "generate_until"),
    ):
        reqs = requests[task_name]
        for name, lm in backends.items():
            if kind == "generate_until" and name == "so8t head":
                continue  # generation never uses head B
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                getattr(lm, method)(reqs, disable_tqdm=True)
                times.append(time.perf_counter() - started)
            seconds = statistics.median(times)
            rows[(kind, name)] = {
                "seconds": seconds,
                "requests_per_s": len(reqs) / seconds,
                "requests": len(reqs),
            }
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", type=Path, help="so8t training checkpoint (default: build a tiny one)"
    )
    parser.add_argument(
        "--consolidated", type=Path, help="time a consolidated folder instead (no consolidation step)"
    )
    parser.add_argument("--limit", type=int, default=40, help="documents per task")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from so8t.consolidate import resolve_model

    work = Path(tempfile.mkdtemp(prefix="so8t-bench-"))
    os.environ["SO8T_CACHE_DIR"] = str(work / "cache")
    if args.consolidated:
        checkpoint = args.consolidated
        resolved = resolve_model(checkpoint)
        print(f"consolidated folder {checkpoint}: no start-up consolidation")
    else:
        checkpoint = args.checkpoint or build_tiny_checkpoint(work / "checkpoint")
        resolved = resolve_model(checkpoint)  # fresh cache: the one-off consolidation
        print(
            f"start-up consolidation of {checkpoint}: {resolved.consolidation_seconds:.2f} s (once; cached in {resolved.folder})"
        )
        warm = resolve_model(checkpoint)
        print(f"later start-ups (cache hit): {warm.consolidation_seconds:.3f} s")
    data = write_data(work, args.limit)

    print(
        f"\nlm_eval CLI wall time, median of {args.repeats} (limit {args.limit}, batch {args.batch_size}, {args.device}):"
    )
    runs = {
        ("loglikelihood", "hf"): ("hf", f"pretrained={resolved.folder}"),
        ("loglikelihood", "so8t lm"): ("so8t", f"pretrained={checkpoint},decision_source=lm"),
        ("loglikelihood", "so8t head"): ("so8t", f"pretrained={checkpoint},decision_source=head"),
        ("generate_until", "hf"): ("hf", f"pretrained={resolved.folder}"),
        ("generate_until", "so8t"): ("so8t", f"pretrained={checkpoint}"),
    }
    walls: dict = {key: [] for key in runs}
    for _ in range(args.repeats):
        for (kind, name), (model, model_args) in runs.items():
            task = "so8t_safety_local" if kind == "loglikelihood" else "so8t_gsm8k_local"
            walls[(kind, name)].append(
                cli_seconds(
                    model, model_args, task, data, args.limit, args.device, args.batch_size, work / "out"
                )
            )
    for (kind, name), values in walls.items():
        print(f"  {kind:15s} {name:10s} {statistics.median(values):7.2f} s")
    for kind, ours in (
        ("loglikelihood", "so8t lm"),
        ("loglikelihood", "so8t head"),
        ("generate_until", "so8t"),
    ):
        ratio = statistics.median(walls[(kind, ours)]) / statistics.median(walls[(kind, "hf")])
        print(f"  ratio {kind} {ours}/hf: {ratio:.3f}")

    print(f"\nin-process request throughput, median of {args.repeats}:")
    rows = in_process_rates(resolved.folder, data, args.limit, args.device, args.batch_size, args.repeats)
    for (kind, name), row in rows.items():
        if kind == "start-up":
            print(
                f"  {kind:15s} {name:10s} backend construction (model load, head B) {row['seconds']:7.3f} s"
            )
            continue
        print(
            f"  {kind:15s} {name:10s} {row['requests']:4d} requests {row['seconds']:7.3f} s {row['requests_per_s']:9.1f} req/s"
        )
    for kind, ours in (
        ("loglikelihood", "so8t lm"),
        ("loglikelihood", "so8t head"),
        ("generate_until", "so8t lm"),
    ):
        ratio = rows[(kind, ours)]["seconds"] / rows[(kind, "hf")]["seconds"]
        goal = (
            "  (goal <= 1.02: same work)"
            if ours == "so8t lm"
            else "  (head B: one forward per doc instead of LM scoring)"
        )
        print(f"  ratio {kind} {ours}/hf time: {ratio:.3f}{goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
