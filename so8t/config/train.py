"""The `train` section: optimisation, evaluation and checkpoint cadence, handed to HF TrainingArguments by
so8t.train.run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from so8t.config.section import Section

LR_SCHEDULERS = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "warmup_stable_decay",
]


class TrainConfig(Section):
    method: Literal["sft", "grpo"] = Field(
        "sft",
        description="sft: supervised fine-tuning on the data's targets; grpo: reinforcement on sampled "
        "completions scored by the suite's own scorers (the grpo section). PPO is not offered: TRL, which "
        "so8t trains RL through, no longer has a PPO trainer, and GRPO needs no value model.",
    )
    max_steps: int | None = Field(
        300, gt=0, description="Optimizer steps; null trains for num_epochs instead."
    )
    num_epochs: float = Field(1.0, gt=0, description="Epochs over the training mix when max_steps is null.")
    per_device_batch_size: int = Field(8, gt=0, description="Examples per device per forward pass.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Forward passes per optimizer step.")
    learning_rate: float = Field(2e-4, gt=0, description="Learning rate of the LoRA parameters.")
    safety_learning_rate: float = Field(
        1e-3, gt=0, description="Learning rate of the rotations and safety head B."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(
        0.05, ge=0, lt=1, description="Share of steps with a linear learning-rate warmup."
    )
    lr_scheduler: LR_SCHEDULERS = Field("cosine", description="Learning-rate schedule (HF Trainer names).")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    eval_strategy: Literal["steps", "epoch", "no"] = Field(
        "steps", description='When to evaluate on data.validation; "no" switches validation off.'
    )
    eval_steps: int = Field(100, gt=0, description="Steps between evaluations (eval_strategy: steps).")
    save_steps: int = Field(100, gt=0, description="Steps between checkpoints.")
    save_total_limit: int | None = Field(2, ge=1, description="Checkpoints kept on disk; null keeps all.")
    logging_steps: int = Field(10, gt=0, description="Steps between logged training metrics.")
    processes: int = Field(
        1,
        ge=1,
        description="Training processes on this machine: N > 1 makes `so8t run` launch torchrun (DDP, one "
        "process per GPU; gloo on the CPU). The global batch is per_device_batch_size x "
        "gradient_accumulation_steps x processes.",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Mixed precision; auto picks bf16 where the GPU supports it, else fp32."
    )

    @field_validator("eval_strategy", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `no` as false
        return "no" if value is False else value
