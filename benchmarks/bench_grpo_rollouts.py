"""GRPO rollouts per second: so8t's GRPO (SO8T model, SO8T forward in the loss) against TRL's own GRPOTrainer
with a plain peft LoRA on the same base, settings, prompts and rewards, in one run (goal: ratio >= 0.9).

Each repeat trains both for --steps optimizer steps from scratch, interleaved (so8t, plain, so8t, ...), and
reports completions sampled per second of training time (rollout and update together); the median over
repeats and the so8t/plain ratio are printed.

    python benchmarks/bench_grpo_rollouts.py [--base DIR] [--steps 4] [--repeats 3] [--generations 4] \
        [--completion-tokens 32] [--batch 8]

Without --base the embedded tiny base is used (built and cached locally).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_config(base: str, args: argparse.Namespace, output_dir: Path):
    from so8t.config import RunConfig

    return RunConfig.model_validate(
        {
            "output_dir": str(output_dir),
            "seed": 0,
            "model": {"base": base, "dtype": "float32", "lora": {"r": 16, "alpha": 32, "dropout": 0.0}},
            "data": {
                "train": [{"builtin": "synthetic_gsm8k", "n": 200}, {"builtin": "safety"}],
                "validation": [],
                "safety_fraction": 0.3,
            },
            "train": {
                "method": "grpo",
                "max_steps": args.steps,
                "per_device_batch_size": args.batch,
                "save_steps": 10_000,
                "logging_steps": 1,
                "eval_strategy": "no",
                "precision": "fp32",
            },
            "grpo": {"num_generations": args.generations, "max_completion_length": args.completion_tokens},
            "logging": {"wandb": {"mode": "disabled"}},
        }
    )


def so8t_trainer(cfg, out: Path):
    from so8t.lmeval.rewards import reward_functions
    from so8t.train.grpo import build_grpo_model, build_grpo_trainer

    model, tokenizer = build_grpo_model(cfg)
    trainer, _ = build_grpo_trainer(cfg, out, model, tokenizer, reward_functions(cfg.grpo))
    return trainer


def plain_trainer(cfg, out: Path):
    """TRL's GRPOTrainer, a plain peft LoRA of the same shape, the same arguments, prompts and rewards."""
    from trl import GRPOTrainer

    from so8t.lmeval.rewards import reward_functions
    from so8t.model.base import add_lora, load_base
    from so8t.train.grpo import grpo_arguments, grpo_dataset

    functions, weights = reward_functions(cfg.grpo)
    # the prompts rendered as so8t's GRPO renders them (the model's prompt record)
    prompt_record = SimpleNamespace(prompt_record=cfg.data.prompt.record())
    base, tokenizer = load_base(cfg.model, for_training=True)
    tokenizer.padding_side = "left"
    return GRPOTrainer(
        model=add_lora(base, cfg.model.lora),
        reward_funcs=functions,
        args=grpo_arguments(cfg, out / "checkpoints", [], weights),
        train_dataset=grpo_dataset(cfg, prompt_record, tokenizer),
        processing_class=tokenizer,
    )


def rollouts_per_s(make, cfg, args) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make(cfg, Path(tmp))
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return args.steps * args.batch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--completion-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    if args.base is None:
        from so8t.model.tiny import build_tiny_base

        args.base = str(build_tiny_base())
    cfg = run_config(args.base, args, Path("unused"))
    results: dict[str, list[float]] = {"so8t": [], "plain": []}
    for _ in range(args.repeats):
        results["so8t"].append(rollouts_per_s(so8t_trainer, cfg, args))
        results["plain"].append(rollouts_per_s(plain_trainer, cfg, args))
    so8t, plain = statistics.median(results["so8t"]), statistics.median(results["plain"])
    print(
        f"base {args.base}: {args.steps} steps x {args.batch} completions of <= {args.completion_tokens} tokens"
    )
    print(f"so8t GRPO   {so8t:.2f} rollouts/s  (runs: {', '.join(f'{v:.2f}' for v in results['so8t'])})")
    print(f"plain LoRA  {plain:.2f} rollouts/s  (runs: {', '.join(f'{v:.2f}' for v in results['plain'])})")
    print(f"ratio so8t/plain {so8t / plain:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
