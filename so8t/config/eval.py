"""The `eval` section: the lm-eval tasks run after training and how the so8t backend answers them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from so8t.config.section import Section

# the local tasks read the examples of one format from the run's data.test split


class EvalConfig(Section):
    tasks: list[str] = Field(
        default_factory=lambda: ["so8t_gsm8k_local", "so8t_safety_local"],
        min_length=1,
        description="so8t task names or any lm-eval task name.",
    )
    limit: float | None = Field(
        None, gt=0, description="Examples per task: a count (>= 1) or a fraction (< 1); null evaluates all."
    )
    batch_size: int = Field(8, gt=0, description="Evaluation batch size.")
    max_gen_toks: int = Field(256, gt=0, description="Maximum generated tokens per GSM8K answer.")
    decision_source: Literal["head", "lm"] = Field(
        "head", description="Safety decisions from head B (head) or from the LM's decision word (lm)."
    )
    allow_threshold: float | None = Field(
        None, gt=0, lt=1, description="ALLOW only when its probability reaches this; null takes the argmax."
    )
    bootstrap_iters: int = Field(
        1000, ge=0, description="Bootstrap iterations for standard errors (0 = none)."
    )
    processes: int = Field(
        1,
        ge=1,
        description="Data-parallel evaluation processes (accelerate launch, lm-eval's own data parallelism): "
        "one per GPU, or CPU processes without one; point values equal one process's.",
    )

    @field_validator("limit")
    @classmethod
    def _count_or_fraction(cls, value: float | None) -> float | int | None:
        if value is not None and value >= 1:
            if value != int(value):
                raise ValueError(f"got {value}, must be a whole count (>= 1) or a fraction (< 1)")
            return int(value)
        return value
