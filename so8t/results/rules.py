"""The files `so8t gate` reads: gate rules files and benchmark suites (`evals/suites/NAME.yaml`), importable
without torch. Both go through the config's YAML reader and error path, so a misspelt key gets the closest
valid key. The gate schema itself (GateConfig, GateRule) is the config's (so8t.config.gates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from so8t.config import GateConfig, parse_mapping, read_yaml
from so8t.config.section import Section
from so8t.errors import ConfigError


class SuiteConfig(Section):
    """A benchmark suite for CI: which tasks to evaluate, how, and the gate to apply."""

    name: str = Field(description="Suite name (usually the file name without .yaml).")
    description: str = Field("", description="What the suite checks, in a sentence or two.")
    tasks: list[str] = Field(min_length=1, description="lm-eval task names (so8t tasks or any lm-eval task).")
    limit: int | float | None = Field(
        None, description="lm-eval --limit: documents per task (int) or a fraction (float); null = all."
    )
    model_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra lm-eval model_args for the so8t backend, e.g. decision_source.",
    )
    gates: GateConfig | None = Field(None, description="The regression gate applied to the suite's results.")

    @field_validator("limit")
    @classmethod
    def _limit_positive(cls, value: int | float | None) -> int | float | None:
        if value is not None and value <= 0:
            raise ValueError("limit must be positive (or null for the whole test set)")
        return value


def load_gate_config(path: str | Path, *, baseline: str | None = None) -> GateConfig:
    """Read gate rules from YAML (a GateConfig, or a suite whose `gates` key is one).

    `baseline` (from the command line) replaces the file's baseline before validation, so a rules file
    without a baseline of its own may still hold baseline comparisons.
    """
    path = Path(path)
    data: Any = read_yaml(path, "rules file")
    if "gates" in data and "rules" not in data:
        data = data["gates"]
    if not isinstance(data, dict):
        raise ConfigError(
            [f"expected a mapping with rules/baseline, got {type(data).__name__}"], source=str(path)
        )
    if baseline is not None:
        data = {**data, "baseline": baseline}
    return parse_mapping(data, GateConfig, source=str(path))


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and validate `evals/suites/NAME.yaml`; raises ConfigError listing every problem."""
    path = Path(path)
    return parse_mapping(read_yaml(path, "suite file"), SuiteConfig, source=str(path))
