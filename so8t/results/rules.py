"""The files `so8t gate` reads: gate rules files and benchmark suites (`evals/suites/NAME.yaml`), importable
without torch. Both go through the config's YAML reader and error path, so a misspelt key anywhere gets the
closest valid key. The gate schema itself (GateConfig, GateRule) is the config's (so8t.config.gates), shared
with the `gates` section of a run config.

A path in a rules or suite file (the baseline) is relative to that file, wherever the command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from so8t.config import GateConfig, parse_mapping, read_yaml
from so8t.config.section import Section
from so8t.data.shards import resolve_local
from so8t.errors import ConfigError

# keys only a suite has: a file with any of them is read (and checked) as a suite
SUITE_KEYS = frozenset({"name", "tasks", "gates", "description", "limit", "model_args", "baseline_command"})


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
    baseline_command: str | None = Field(
        None,
        description="The command (run from the repository root) that writes the suite's baseline when it "
        "is not shipped; shown when the baseline is missing.",
    )
    gates: GateConfig | None = Field(None, description="The regression gate applied to the suite's results.")

    @field_validator("limit")
    @classmethod
    def _limit_positive(cls, value: int | float | None) -> int | float | None:
        if value is not None and value <= 0:
            raise ValueError("limit must be positive (or null for the whole test set)")
        return value


def _with_baseline(gates: Any, baseline: str | None, path: Path) -> Any:
    """The gate mapping with the command line's baseline, or its own resolved against the file's folder."""
    if not isinstance(gates, dict):
        return gates
    if baseline is not None:
        return {**gates, "baseline": baseline}
    own = gates.get("baseline")
    if isinstance(own, str) and own.strip():
        return {**gates, "baseline": os.path.abspath(resolve_local(own, path.parent))}
    return gates


def read_suite(path: str | Path, *, baseline: str | None = None) -> SuiteConfig:
    """A suite file as a SuiteConfig, its baseline resolved (or replaced by `baseline`); ConfigError listing
    every problem otherwise."""
    path = Path(path)
    data = read_yaml(path, "suite file")
    if "gates" in data:
        data = {**data, "gates": _with_baseline(data["gates"], baseline, path)}
    return parse_mapping(data, SuiteConfig, source=str(path))


def load_gate_config(path: str | Path, *, baseline: str | None = None) -> GateConfig:
    """Read gate rules from YAML: a GateConfig, or a suite (checked whole) whose `gates` key is one.

    `baseline` (from the command line) replaces the file's baseline before validation, so a rules file
    without a baseline of its own may still hold baseline comparisons; the file's own baseline is relative
    to the file.
    """
    path = Path(path)
    data: dict[str, Any] = read_yaml(path, "rules file")
    if SUITE_KEYS & set(data):
        suite = read_suite(path, baseline=baseline)
        if suite.gates is None:
            raise ConfigError(["this suite has no `gates`, so there is nothing to check"], source=str(path))
        return suite.gates
    return parse_mapping(_with_baseline(data, baseline, path), GateConfig, source=str(path))


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and validate `evals/suites/NAME.yaml`; raises ConfigError listing every problem."""
    return read_suite(path)


def missing_baseline_hint(rules_path: str | Path | None) -> str:
    """The suite's own command for writing its baseline, when the rules file is a suite that names one."""
    if rules_path is None:
        return ""
    try:
        data = read_yaml(Path(rules_path), "rules file")
    except ConfigError:
        return ""
    command = data.get("baseline_command")
    return f" This suite's baseline is made with: {command}" if isinstance(command, str) and command else ""
