"""RunConfig: the run config, composed of the sections that sit beside the code they configure."""

from __future__ import annotations

from pydantic import Field, PrivateAttr

from so8t.config.consolidate import ConsolidateConfig
from so8t.config.eval import EvalConfig
from so8t.config.export import ExportConfig
from so8t.config.gates import GateConfig
from so8t.config.grpo import GrpoConfig
from so8t.config.logging import LoggingConfig
from so8t.config.model import ModelConfig
from so8t.config.safety import PetConfig, SafetyConfig
from so8t.config.section import Section
from so8t.config.train import TrainConfig
from so8t.data.config import DataConfig
from so8t.data.sources import SOURCES, SourceSummary


class RunConfig(Section):
    output_dir: str = Field(
        "runs/quickstart", description="Run directory (checkpoints, model, results, report)."
    )
    seed: int = Field(0, description="Seed for data order, synthetic data and initialisation.")
    model: ModelConfig = Field(
        default_factory=ModelConfig, description="Base model, quantisation, LoRA, rotations."
    )
    data: DataConfig = Field(
        default_factory=DataConfig, description="Data sources per split and the training mix."
    )
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation (HF Trainer).")
    grpo: GrpoConfig = Field(
        default_factory=GrpoConfig, description="GRPO (train.method: grpo): rollouts, rewards, the start."
    )
    safety: SafetyConfig = Field(default_factory=SafetyConfig, description="Safety head B and its loss.")
    pet: PetConfig = Field(
        default_factory=PetConfig, description="PET curvature regulariser and its schedule."
    )
    consolidate: ConsolidateConfig = Field(
        default_factory=ConsolidateConfig,
        description="Consolidation of the best checkpoint into a plain model.",
    )
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation with lm-evaluation-harness.")
    export: ExportConfig = Field(
        default_factory=ExportConfig, description="Exports after consolidation (GGUF for llama.cpp)."
    )
    gates: GateConfig | None = Field(
        None, description="Regression gates applied to the evaluation (null = none)."
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Experiment tracking.")

    # what the shard guard found, per split (set by load_config; summarize reads it)
    _data_report: dict[str, list[SourceSummary]] | None = PrivateAttr(None)


# a data source form defined later (a plugin, a test) reaches the run config too
SOURCES.on_change(lambda: RunConfig.model_rebuild(force=True))
