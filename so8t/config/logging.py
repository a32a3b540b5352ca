"""The `logging` section: experiment tracking with Weights & Biases (read by so8t.train.callbacks and the
pipeline's eval run). The API key never goes in a config: WANDB_API_KEY comes from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from so8t.config.section import Section


class WandbConfig(Section):
    mode: Literal["online", "offline", "disabled"] = Field(
        "offline", description="W&B mode; the API key comes only from WANDB_API_KEY in the environment."
    )
    project: str = Field("so8t", description="W&B project.")
    entity: str | None = Field(None, description="W&B entity (user or team).")
    run_name: str | None = Field(None, description="W&B run name; null lets W&B choose.")


class LoggingConfig(Section):
    wandb: WandbConfig = Field(default_factory=WandbConfig, description="Weights & Biases tracking.")
