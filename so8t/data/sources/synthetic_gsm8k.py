"""Synthetic GSM8K: seeded GSM8K-style problems, generated for each split (splits stay disjoint)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from so8t.data.jsonl import OnBadRecord
from so8t.data.sources.base import SourceForm, SourceSummary, repeat_field
from so8t.data.split import SplitData
from so8t.data.synthetic import synthetic_split


class SyntheticSource(SourceForm):
    key: ClassVar[str] = "builtin"
    title: ClassVar[str] = "Synthetic GSM8K"

    builtin: Literal["synthetic_gsm8k"] = Field(description="Generated GSM8K-style problems.")
    n: int = Field(gt=0, description="Number of problems for this split.")
    seed: int | None = Field(
        None, description="Generator seed; null uses the run seed. Splits stay disjoint."
    )
    repeat: int = repeat_field()

    def declared_format(self) -> str | None:
        return "gsm8k"

    def check(
        self, split: str, key: str, on_bad_record: OnBadRecord
    ) -> tuple[list[SourceSummary], list[str]]:
        return [SourceSummary("gsm8k", "synthetic", self.n)], []

    def load(self, split: str, seed: int, on_bad_record: OnBadRecord) -> SplitData:
        return SplitData(
            gsm8k=synthetic_split(split, self.n, seed if self.seed is None else self.seed), split=split
        )
