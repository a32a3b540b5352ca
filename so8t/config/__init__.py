"""The run config: one torch-free module per section (model, train, safety and PET, consolidate, eval, logging,
gates; the data section lives with the data in so8t.data), composed by RunConfig, loaded from YAML with
`--set` overrides, checked before any model loads, and documented in docs/config.md.

Importing this package never imports torch, transformers or datasets, so `so8t validate` stays fast.
"""

from __future__ import annotations

from so8t.config.consolidate import ConsolidateConfig
from so8t.config.eval import EvalConfig
from so8t.config.gates import GateConfig, GateRule
from so8t.config.identity import RESUMABLE_SETTINGS, eval_identity, identity_defaults, run_identity
from so8t.config.loading import load_config
from so8t.config.logging import LoggingConfig, WandbConfig
from so8t.config.messages import parse_mapping
from so8t.config.model import LoraConfig, ModelConfig, PretrainConfig, So8Config
from so8t.config.overrides import add_set_option, apply_overrides
from so8t.config.run import RunConfig
from so8t.config.safety import PetConfig, SafetyConfig
from so8t.config.summary import resolved_config_yaml, summarize
from so8t.config.train import TrainConfig
from so8t.config.yaml_file import read_yaml
from so8t.data.config import DataConfig

__all__ = [
    "RESUMABLE_SETTINGS",
    "ConsolidateConfig",
    "DataConfig",
    "EvalConfig",
    "GateConfig",
    "GateRule",
    "LoggingConfig",
    "LoraConfig",
    "ModelConfig",
    "PetConfig",
    "PretrainConfig",
    "RunConfig",
    "SafetyConfig",
    "So8Config",
    "TrainConfig",
    "WandbConfig",
    "add_set_option",
    "apply_overrides",
    "eval_identity",
    "identity_defaults",
    "load_config",
    "parse_mapping",
    "read_yaml",
    "resolved_config_yaml",
    "run_identity",
    "summarize",
]
