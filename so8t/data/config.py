"""DataConfig: the sources of each split and the training mix; its shard guard and the examples it yields.

Validation (`check`) reads files but never imports torch or goes online; `materialize` loads the examples
of one split when training or evaluation needs them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from so8t.data.policy import Policy, PolicyFileError, load_policy
from so8t.data.safety import SPLITS
from so8t.data.shards import resolve_local
from so8t.data.sources import SOURCES, DataSource, SourceForm, SourceSummary
from so8t.data.sources.bundled_safety import SafetySource
from so8t.data.sources.synthetic_gsm8k import SyntheticSource
from so8t.data.split import SplitData
from so8t.data.templates import PromptFormat
from so8t.errors import DataError


def _default_sources(n: int) -> list[SourceForm]:
    return [SyntheticSource(builtin="synthetic_gsm8k", n=n), SafetySource(builtin="safety")]


class DataConfig(BaseModel):
    """The `data` section of a run config."""

    model_config = ConfigDict(extra="forbid")

    train: list[DataSource] = Field(
        default_factory=lambda: _default_sources(2000), description="Training sources (see the source forms)."
    )
    validation: list[DataSource] = Field(
        default_factory=lambda: _default_sources(100),
        description="Validation sources; may be empty only with train.eval_strategy: no.",
    )
    test: list[DataSource] = Field(
        default_factory=lambda: _default_sources(200),
        description="Held-out sources evaluated after training.",
    )
    on_bad_record: Literal["error", "skip"] = Field(
        "error", description="A malformed record stops the run (error) or is skipped and counted (skip)."
    )
    max_length: int = Field(256, ge=16, description="Maximum tokens per example (prompt + completion).")
    safety_fraction: float = Field(
        0.5, ge=0, le=1, description="Share of safety examples in the training mix (the rest is GSM8K)."
    )
    prompt_format: Literal["plain", "chat"] = Field(
        "plain",
        description="How prompts reach the model: plain text (`Request: ...` then `Decision:`), or chat: that "
        "text as the user turn of the tokenizer's chat template (for instruct bases). Training records it with "
        "the model, and `so8t eval`, predict and the Python API follow it.",
    )
    system_prompt: str | None = Field(
        None,
        description="System prompt of the chat template (prompt_format: chat); null: the template's own.",
    )
    policy: str | None = Field(
        None,
        description="A policy file declaring the categories of requests and the decision each expects; "
        "`so8t validate` reports records whose label disagrees (relative to the config file's folder).",
    )

    @model_validator(mode="after")
    def _system_prompt_needs_chat(self) -> DataConfig:
        if self.system_prompt is not None and self.prompt_format != "chat":
            raise ValueError(
                "system_prompt is set but prompt_format is plain; a system prompt is part of the chat "
                "template, so set data.prompt_format: chat or remove data.system_prompt"
            )
        return self

    @property
    def prompt(self) -> PromptFormat:
        """The prompt format training renders with (recorded in so8t.json for evaluation and predict)."""
        return PromptFormat(self.prompt_format, self.system_prompt)

    def sources(self, split: str) -> list[SourceForm]:
        return getattr(self, split)

    def resolved(self, base_dir: Path) -> DataConfig:
        """A copy whose local paths are resolved against `base_dir` (the config's folder)."""
        update: dict[str, object] = {
            split: [s.resolved(base_dir) for s in self.sources(split)] for split in SPLITS
        }
        if self.policy:
            update["policy"] = str(resolve_local(self.policy, base_dir))
        return self.model_copy(update=update)

    def load_policy(self) -> Policy | None:
        """The user's policy (data.policy), or None; DataError naming every problem of the file."""
        if not self.policy:
            return None
        try:
            return load_policy(self.policy)
        except PolicyFileError as exc:
            raise DataError("data.policy: " + "; ".join(exc.problems)) from None

    def check(self) -> tuple[dict[str, list[SourceSummary]], list[str]]:
        """The shard guard over every source (paths already resolved): ({split: summaries}, problems)."""
        report: dict[str, list[SourceSummary]] = {}
        problems: list[str] = []
        policy = None
        if self.policy:
            try:
                policy = load_policy(self.policy)
            except PolicyFileError as exc:
                problems += [f"data.policy: {p}" for p in exc.problems]
        for split in SPLITS:
            entries = report.setdefault(split, [])
            for index, source in enumerate(self.sources(split)):
                source = source.under_policy(policy)
                summaries, found = source.check(split, f"data.{split}[{index}]", self.on_bad_record)
                problems += found
                entries += [_repeated(s, source.repeat) for s in summaries]
        return report, problems


def _repeated(summary: SourceSummary, repeat: int) -> SourceSummary:
    count = None if summary.count is None else summary.count * repeat
    return replace(summary, count=count, repeat=repeat)


def materialize(data: DataConfig, split: str, seed: int) -> SplitData:
    """All examples of `split` ("train", "validation" or "test") from its sources, in order; `seed` is the run
    seed. A source with `repeat: N` contributes each of its examples N times (the config allows that in train
    only)."""
    out = SplitData(split=split)
    policy = data.load_policy()
    for source in data.sources(split):
        mine = source.under_policy(policy).load(split, seed, data.on_bad_record)
        out.gsm8k += mine.gsm8k * source.repeat
        out.safety += mine.safety * source.repeat
        out.skipped += mine.skipped
    return out


# a form defined after this module (a plugin, a test) changes the union the split lists validate against
SOURCES.on_change(lambda: DataConfig.model_rebuild(force=True))
