"""The TrainingArguments of a run: what SFT and GRPO share (steps, schedule, checkpoints, logging, device,
precision) from one function, and SFT's own on top (validation cadence, the best-checkpoint rule)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.layout.checkpoints import BEST_METRIC, BEST_METRIC_GREATER_IS_BETTER

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig


def _precision_flags(precision: str) -> dict[str, bool]:
    import torch

    if precision == "auto":
        gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        precision = "bf16" if gpu_bf16 else "fp32"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def shared_arguments(cfg: RunConfig, checkpoint_root: Path, report_to: list[str]) -> dict[str, Any]:
    """The TrainingArguments keywords SFT and GRPO share (TRL's GRPOConfig is a TrainingArguments): steps,
    optimiser schedule, checkpoints, logging, device and precision from the config's `train` section."""
    import torch

    t = cfg.train
    return dict(
        output_dir=str(checkpoint_root),
        seed=cfg.seed,
        data_seed=cfg.seed,
        max_steps=t.max_steps if t.max_steps is not None else -1,
        num_train_epochs=t.num_epochs,
        per_device_train_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a share of the training steps
        lr_scheduler_type=t.lr_scheduler,
        max_grad_norm=t.max_grad_norm,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        remove_unused_columns=False,
        report_to=report_to,
        run_name=cfg.logging.wandb.run_name,
        # progress goes to so8t.progress (callbacks.ProgressReport), not to Trainer's bar
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),  # under torchrun on CPU, Trainer runs DDP only when told so
        **_precision_flags(t.precision),
    )


def training_arguments(cfg: RunConfig, checkpoint_root: Path, report_to: list[str]) -> Any:
    """HF TrainingArguments from the config's `train` section (Trainer keeps its own semantics for each)."""
    import torch
    from transformers import TrainingArguments

    t = cfg.train
    evaluate = t.eval_strategy != "no"
    on_cpu = not torch.cuda.is_available()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
        **shared_arguments(cfg, checkpoint_root, report_to),
        per_device_eval_batch_size=t.per_device_batch_size,
        eval_strategy=t.eval_strategy,
        eval_steps=t.eval_steps,
        metric_for_best_model=BEST_METRIC if evaluate else None,
        greater_is_better=BEST_METRIC_GREATER_IS_BETTER if evaluate else None,
        prediction_loss_only=True,
        label_names=["labels"],
        # Head B and the rotations are always used; LoRA on layers skipped by gradient checkpointing too.
        ddp_find_unused_parameters=False,
        ddp_backend="gloo" if on_cpu and distributed else None,
    )
