"""Regression-gate rules: the schema of a gate, shared by the `gates` section of a run config and the files
that `so8t gate --rules` reads (rules files, and suites through their `gates` key).

A rule names one metric of an lm-eval results file (task, metric, filter) and says what counts as a failure:

- `min` / `max`: an absolute floor / ceiling on the current value;
- `max_drop`: the allowed change against the baseline in the metric's bad direction (taken from the results'
  own `higher_is_better`), so for a lower-is-better metric it is the allowed *rise*;
- none of the three: the metric is compared with the baseline using `default_tolerance`.

A change against the baseline is a regression only when it exceeds both the tolerance and z times the
standard error of the change: paired over the documents when both runs carry per-document values of the
same documents, else `sqrt(se_baseline^2 + se_current^2)` (so8t.results.paired). A comparison between runs
of different task versions, n-shot or documents, or whose files disagree on the metric's direction, fails
unless the rule allows it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from so8t.config.section import Section

DEFAULT_TOLERANCE = 0.02
DEFAULT_Z = 2.0
DEFAULT_BOOTSTRAP_ITERS = 1000
# what may differ between baseline and results when a rule says so
Difference = Literal["version", "n_shot", "documents"]


class GateRule(Section):
    """One gated metric: `results[task]["metric,filter"]` held to a floor, a ceiling and/or the baseline."""

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
        description="Noise allowance for this rule in standard errors of the change (null = the config's z).",
    )
    higher_is_better: bool | None = Field(
        None,
        description="Direction of the metric; null = read it from the files' `higher_is_better`, which "
        "must agree (needed only for baseline comparisons).",
    )
    allow: list[Difference] = Field(
        default_factory=list,
        description="Differences between baseline and results this rule still compares across: `version` "
        "(task version), `n_shot`, `documents` (--limit or other documents; compared with the independent "
        "formula). Any other difference fails the comparison with its reason.",
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


class GateConfig(Section):
    """A baseline, a noise model and the rules of one gate."""

    baseline: str | None = Field(
        None,
        description="The lm-eval results file to compare against, or the folder lm-eval wrote it to "
        "(newest run). In a rules or suite file a relative path is relative to that file; in a run config "
        "the working directory first, then the config's folder.",
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
        description="A change counts as a regression only when it also exceeds z x the standard error of "
        "the change (paired over documents when both runs have per-document values, else the two files' "
        "stderrs combined; 0 = ignore stderr).",
    )
    bootstrap_iters: int = Field(
        DEFAULT_BOOTSTRAP_ITERS,
        ge=100,
        description="Resamples of the paired bootstrap (precisions, macro F1) when both runs carry "
        "per-document values; the seed is fixed, so the gate is reproducible.",
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


class IncludedRules(Section):
    """Another rules file whose rules join this gate's (rules files and suite files only)."""

    file: str = Field(
        description="The rules file (YAML), relative to the folder of the file that includes it."
    )
    rename_tasks: dict[str, str] = Field(
        default_factory=dict,
        description="Task names of the included rules mapped to the task they gate here, e.g. "
        "{so8t_safety: so8t_safety_local} to apply the safety rules to the local safety task.",
    )


class RulesFile(GateConfig):
    """A gate rules file, or the `gates` of a suite file: a gate that may include other rules files.

    The includes are read by so8t.results.rules, which checks the whole gate (own and included rules) as a
    GateConfig; an included file contributes its rules only (baseline, tolerance and z are the includer's).
    """

    include: list[IncludedRules] = Field(
        default_factory=list,
        description="Rules files whose rules are added before this file's own (a plain path is short for "
        "{file: PATH}).",
    )

    @field_validator("include", mode="before")
    @classmethod
    def _paths_are_short_for_files(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"file": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _rules_have_something_to_check(self) -> RulesFile:
        # checked on the whole gate, once the includes are read (so8t.results.rules)
        return self
