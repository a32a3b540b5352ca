"""Synthetic safety decisions: generated requests in equal thirds, never equal to a bundled prompt."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from so8t.data.jsonl import OnBadRecord
from so8t.data.sources.base import SourceForm, SourceSummary, repeat_field
from so8t.data.split import SplitData
from so8t.data.synthetic_safety import synthetic_safety_split


class SyntheticSafetySource(SourceForm):
    key: ClassVar[str] = "builtin"
    title: ClassVar[str] = "Synthetic safety decisions"

    builtin: Literal["synthetic_safety"] = Field(
        description="Generated safety-decision requests (ALLOW / ESCALATE / REFUSE in equal thirds, every "
        "category of the bundled policy), never equal to a bundled prompt."
    )
    n: int = Field(gt=0, description="Number of requests for this split.")
    seed: int | None = Field(
        None, description="Generator seed; null uses the run seed. Splits stay disjoint."
    )
    repeat: int = repeat_field()

    def declared_format(self) -> str | None:
        return "safety"

    def check(
        self, split: str, key: str, on_bad_record: OnBadRecord
    ) -> tuple[list[SourceSummary], list[str]]:
        return [SourceSummary("safety", "synthetic", self.n)], []

    def load(self, split: str, seed: int, on_bad_record: OnBadRecord) -> SplitData:
        examples = synthetic_safety_split(split, self.n, seed if self.seed is None else self.seed)
        return SplitData(safety=examples, split=split)
