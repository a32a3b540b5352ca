"""Regression-gate rules and benchmark suites: the pydantic models only, importable without torch.

The same `GateConfig` is read from three places: the `gates` section of a run config, the `gates` key of a
suite in `evals/suites/NAME.yaml`, and the file given to `so8t gate --rules`. A rule names one metric of an
lm-eval results file (task, metric, filter) and says what counts as a failure:

- `min` / `max`: an absolute floor / ceiling on the current value;
- `max_drop`: the allowed change against the baseline in the metric's bad direction (taken from the results'
  own `higher_is_better`), so for a lower-is-better metric it is the allowed *rise*;
- none of the three: the metric is compared with the baseline using `default_tolerance`.

A change against the baseline is a regression only when it exceeds both the tolerance and
`z * sqrt(se_baseline^2 + se_current^2)`, so evaluation noise on small test sets does not fail CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from so8t.errors import ConfigError

DEFAULT_TOLERANCE = 0.02
DEFAULT_Z = 2.0


class GateRule(BaseModel):
    """One gated metric: `results[task]["metric,filter"]` held to a floor, a ceiling and/or the baseline."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(
        description="lm-eval task (or group) name as it appears under `results`, e.g. so8t_safety."
    )
    metric: str = Field(description="Metric name without the filter, e.g. refuse_recall or exact_match.")
    filter: str = Field("none", description="lm-eval filter name; the results key is `metric,filter`.")
    min: float | None = Field(None, description="Absolute floor: fail when the current value is below it.")
    max: float | None = Field(None, description="Absolute ceiling: fail when the current value is above it.")
    max_drop: float | None = Field(
        None,
        ge=0,
        description="Allowed change against the baseline in the metric's bad direction (a rise for "
        "lower-is-better metrics). Implies a baseline comparison.",
    )
    z: float | None = Field(
        None,
        ge=0,
        description="Noise allowance for this rule in combined standard errors (null = the config's z).",
    )
    higher_is_better: bool | None = Field(
        None,
        description="Direction of the metric; null = read it from the results' `higher_is_better` "
        "(needed only for baseline comparisons).",
    )

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> GateRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max}): no value could pass")
        return self

    @property
    def key(self) -> str:
        """The results key of the metric, `metric,filter`, as lm-eval writes it."""
        return f"{self.metric},{self.filter}"

    @property
    def has_bounds(self) -> bool:
        return self.min is not None or self.max is not None

    @property
    def compares_with_baseline(self) -> bool:
        """True when the rule checks the change against the baseline (max_drop, or no bound at all)."""
        return self.max_drop is not None or not self.has_bounds


class GateConfig(BaseModel):
    """A baseline, a noise model and the rules of one gate."""

    model_config = ConfigDict(extra="forbid")

    baseline: str | None = Field(
        None,
        description="Path to the lm-eval results file to compare against (relative paths: the working "
        "directory first, then the folder of the file that names it).",
    )
    default_tolerance: float = Field(
        DEFAULT_TOLERANCE,
        ge=0,
        description="Allowed change in the bad direction when a rule gives no max_drop, and for every "
        "metric of the baseline when there are no rules.",
    )
    z: float = Field(
        DEFAULT_Z,
        ge=0,
        description="A change counts as a regression only when it also exceeds z x the combined "
        "standard error of baseline and current value (0 = ignore stderr).",
    )
    rules: list[GateRule] = Field(
        default_factory=list,
        description="Gated metrics. Empty = every metric of the baseline, with default_tolerance.",
    )

    @model_validator(mode="after")
    def _rules_have_something_to_check(self) -> GateConfig:
        if self.baseline is None:
            if not self.rules:
                raise ValueError("a gate needs a baseline or at least one rule with min/max")
            for rule in self.rules:
                if rule.compares_with_baseline:
                    what = "max_drop" if rule.max_drop is not None else "no min, max or max_drop"
                    raise ValueError(
                        f"rule {rule.task}/{rule.key} has {what}, which needs a baseline: set `baseline` "
                        "or give the rule a min or max"
                    )
        return self

    @field_validator("baseline")
    @classmethod
    def _baseline_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("baseline is an empty string; use null for no baseline")
        return value


class SuiteConfig(BaseModel):
    """A benchmark suite for CI: which tasks to evaluate, how, and the gate to apply."""

    model_config = ConfigDict(extra="forbid")

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


def _format_errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()]


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError([f"file not found: {path}"], source=str(path))
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], source=str(path)) from exc


def parse_gate_config(data: Any, *, source: str = "gate rules") -> GateConfig:
    """Validate a mapping as a GateConfig; a suite file's `gates` key is accepted too."""
    if isinstance(data, dict) and "gates" in data and "rules" not in data:
        data = data["gates"]
    if not isinstance(data, dict):
        raise ConfigError(
            [f"expected a mapping with rules/baseline, got {type(data).__name__}"], source=source
        )
    try:
        return GateConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc), source=source) from exc


def load_gate_config(path: str | Path, *, baseline: str | None = None) -> GateConfig:
    """Read gate rules from YAML (a GateConfig, or a suite whose `gates` key is one).

    `baseline` (from the command line) replaces the file's baseline before validation, so a rules file
    without a baseline of its own may still hold baseline comparisons.
    """
    path = Path(path)
    data = _read_yaml(path)
    if isinstance(data, dict) and "gates" in data and "rules" not in data:
        data = data["gates"]
    if isinstance(data, dict) and baseline is not None:
        data = {**data, "baseline": baseline}
    return parse_gate_config(data, source=str(path))


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and validate `evals/suites/NAME.yaml`; raises ConfigError listing every problem."""
    path = Path(path)
    data = _read_yaml(path)
    try:
        return SuiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc), source=str(path)) from exc
