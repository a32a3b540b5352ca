"""Training tokens/s of So8tTrainer against plain peft LoRA + HF Trainer, same base, data and batch, same run.

The SO8T extras (rotations in every attention layer, the gate, head B, PET, loss normalisation over the
accumulated batch) should cost little: the goal is a ratio of at least 0.95. Both runs train the same
number of steps after a few warm-up steps that are not timed; the order alternates over repeats and the
median is reported.

    python benchmarks/bench_train_throughput.py [--base embedded:tiny] [--steps 30] [--batch-size 8] [--repeats 3]
    python benchmarks/bench_train_throughput.py --breakdown    # where the SO8T cost goes, without Trainer
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig

WARMUP_STEPS = 3


class _Timer:
    """A TrainerCallback counting tokens and wall time after the warm-up steps."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from transformers import TrainerCallback

        class Timer(TrainerCallback):
            def __init__(self) -> None:
                self.start = None
                self.tokens = 0
                self.pending = 0

            def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if state.global_step == WARMUP_STEPS:
                    self.start = time.perf_counter()

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if self.start is not None:
                    self.tokens += self.pending
                self.pending = 0
                if state.global_step == state.max_steps:
                    self.seconds = time.perf_counter() - self.start

        return Timer()


def _counting_collator(collate: Any, timer: Any, drop: tuple[str, ...] = ()) -> Any:
    def collate_and_count(rows: list[dict]) -> dict:
        batch = collate(rows)
        timer.pending += int(batch["attention_mask"].sum())
        return {k: v for k, v in batch.items() if k not in drop}

    return collate_and_count


def _config(base: str, steps: int, batch_size: int) -> RunConfig:
    from so8t.config import RunConfig

    return RunConfig.model_validate(
        {
            "model": {
                "base": base,
                "pretrain": {"enabled": False},
                "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
            },
            "data": {
                "train": [{"builtin": "synthetic_gsm8k", "n": 400}, {"builtin": "safety"}],
                "max_length": 128,
            },
            "train": {
                "max_steps": steps + WARMUP_STEPS,
                "per_device_batch_size": batch_size,
                "eval_strategy": "no",
                "save_steps": 10_000,
                "logging_steps": 10_000,
                "warmup_ratio": 0.0,
            },
            "logging": {"wandb": {"mode": "disabled"}},
        }
    )


def _so8t_tokens_per_s(cfg: RunConfig, out_dir: str) -> float:
    from transformers import set_seed

    from so8t.train.run import build_model, build_trainer

    set_seed(0)
    model, tokenizer, _ = build_model(cfg)
    trainer, _ = build_trainer(cfg, __import__("pathlib").Path(out_dir), model, tokenizer)
    timer = _Timer()
    trainer.data_collator = _counting_collator(trainer.data_collator, timer)
    trainer.add_callback(timer)
    trainer.args.save_strategy = "no"
    trainer.train()
    return timer.tokens / timer.seconds


def _peft_tokens_per_s(cfg: RunConfig, out_dir: str) -> float:
    from transformers import Trainer, set_seed

    from so8t.data.config import materialize
    from so8t.model.base import add_lora, load_base
    from so8t.train.arguments import training_arguments
    from so8t.train.collate import So8tCollator, build_dataset

    set_seed(0)
    base, tokenizer = load_base(cfg.model, for_training=True)
    model = add_lora(base, cfg.model.lora)
    split = materialize(cfg.data, "train", cfg.seed)
    ds = build_dataset(
        tokenizer,
        split.gsm8k,
        split.safety,
        max_length=cfg.data.max_length,
        safety_fraction=cfg.data.safety_fraction,
        seed=cfg.seed,
    )
    timer = _Timer()
    collate = _counting_collator(
        So8tCollator(pad_token_id=tokenizer.pad_token_id), timer, drop=("pool_index", "safety_labels")
    )
    args = training_arguments(cfg, __import__("pathlib").Path(out_dir), ["none"])
    args.save_strategy = "no"
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=collate, callbacks=[timer])
    trainer.train()
    return timer.tokens / timer.seconds


def _breakdown(cfg: RunConfig, batches: int = 10, repeats: int = 3) -> dict[str, float]:
    """Forward + backward of the same batches, best of `repeats`, for plain peft LoRA, the SO8T model's peft
    base alone (attention rotations on, gate / head B / PET off) and the whole SO8T model."""
    from pathlib import Path

    from so8t.model.base import add_lora, load_base
    from so8t.model.so8 import shared_exponential
    from so8t.train.run import build_model, build_trainer

    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, _ = build_model(cfg)
        trainer, _ = build_trainer(cfg, Path(tmp), model, tokenizer)
        data = [b for _, b in zip(range(batches), trainer.get_train_dataloader(), strict=False)]
    base, _ = load_base(cfg.model, for_training=True)
    plain = add_lora(base, cfg.model.lora)
    model.train()
    plain.train()

    def lm_only(net: Any, rotations: list | None = None) -> Any:
        def step(b: dict) -> None:
            with shared_exponential(rotations or []):  # as SO8TModel.forward does: one exponential per pass
                out = net(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"])
            out.loss.backward()

        return step

    def whole_so8t(b: dict) -> None:
        out = model(
            **{k: b[k] for k in ("input_ids", "attention_mask", "labels", "safety_labels", "pool_index")}
        )
        (out.lm_loss_sum + out.safety_loss_sum + out.pet_sum).backward()

    def best_seconds(step: Any) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for batch in data:
                step(batch)
            times.append(time.perf_counter() - start)
        return min(times)

    seconds = {
        "peft_lora_s": best_seconds(lm_only(plain)),
        "with_attention_rotations_s": best_seconds(lm_only(model.base_model, list(model.rotations.values()))),
        "whole_so8t_s": best_seconds(whole_so8t),
    }
    return {
        **seconds,
        "attention_rotations_time_ratio": seconds["with_attention_rotations_s"] / seconds["peft_lora_s"],
        "whole_so8t_time_ratio": seconds["whole_so8t_s"] / seconds["peft_lora_s"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="embedded:tiny")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--breakdown", action="store_true", help="time forward + backward per part instead of Trainer runs"
    )
    args = parser.parse_args()
    import os

    os.environ.setdefault("WANDB_MODE", "disabled")
    cfg = _config(args.base, args.steps, args.batch_size)
    if args.breakdown:
        print(json.dumps({"base": args.base, **_breakdown(cfg, repeats=args.repeats)}, indent=2))
        return 0
    so8t, peft = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            order = [("so8t", _so8t_tokens_per_s), ("peft", _peft_tokens_per_s)]
            for name, fn in order if i % 2 == 0 else order[::-1]:
                (so8t if name == "so8t" else peft).append(fn(cfg, f"{tmp}/{name}{i}"))
    result = {
        "base": args.base,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "so8t_tokens_per_s": statistics.median(so8t),
        "peft_lora_tokens_per_s": statistics.median(peft),
    }
    result["ratio"] = result["so8t_tokens_per_s"] / result["peft_lora_tokens_per_s"]
    result["goal"] = ">= 0.95"
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
