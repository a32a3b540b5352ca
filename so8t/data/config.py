"""DataConfig: the sources of each split and the training mix; its shard guard and the examples it yields.

Validation (`check`) reads files but never imports torch or goes online; `materialize` loads the examples
of one split when training or evaluation needs them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from so8t.data.safety import SPLITS
from so8t.data.sources import SOURCES, DataSource, SourceForm, SourceSummary
from so8t.data.sources.bundled_safety import SafetySource
from so8t.data.sources.synthetic_gsm8k import SyntheticSource
from so8t.data.split import SplitData


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

    def sources(self, split: str) -> list[SourceForm]:
        return getattr(self, split)

    def resolved(self, base_dir: Path) -> DataConfig:
        """A copy whose local paths are resolved against `base_dir` (the config's folder)."""
        return self.model_copy(
            update={split: [s.resolved(base_dir) for s in self.sources(split)] for split in SPLITS}
        )

    def check(self) -> tuple[dict[str, list[SourceSummary]], list[str]]:
        """The shard guard over every source (paths already resolved): ({split: summaries}, problems)."""
        report: dict[str, list[SourceSummary]] = {}
        problems: list[str] = []
        for split in SPLITS:
            entries = report.setdefault(split, [])
            for index, source in enumerate(self.sources(split)):
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
    for source in data.sources(split):
        mine = source.load(split, seed, data.on_bad_record)
        out.gsm8k += mine.gsm8k * source.repeat
        out.safety += mine.safety * source.repeat
        out.skipped += mine.skipped
    return out


# a form defined after this module (a plugin, a test) changes the union the split lists validate against
SOURCES.on_change(lambda: DataConfig.model_rebuild(force=True))
