"""Hugging Face hub datasets, loaded by `datasets` when training starts (validation never goes online)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from so8t.data.gsm8k import GSM8KExample, gsm8k_record_problem, load_hub_gsm8k
from so8t.data.jsonl import OnBadRecord
from so8t.data.safety import safety_example_from_record, safety_record_problem
from so8t.data.sources.base import SourceForm, SourceSummary, repeat_field
from so8t.data.split import SplitData
from so8t.errors import DataError


class HubSource(SourceForm):
    key: ClassVar[str] = "hub"
    title: ClassVar[str] = "Hugging Face hub"

    hub: str = Field(
        description='A dataset on the Hugging Face hub, e.g. "openai/gsm8k" (loaded by `datasets`).'
    )
    name: str | None = Field(None, description='Dataset configuration name, e.g. "main".')
    split: str | None = Field(
        None, description='Dataset split with optional slicing, e.g. "train[:95%]"; null uses the list key.'
    )
    revision: str | None = Field(None, description="Dataset revision (branch, tag or commit).")
    format: Literal["gsm8k", "safety"] = Field("gsm8k", description="Record format of the dataset rows.")
    repeat: int = repeat_field()

    def declared_format(self) -> str | None:
        return self.format

    def check(
        self, split: str, key: str, on_bad_record: OnBadRecord
    ) -> tuple[list[SourceSummary], list[str]]:
        # counted when loaded: validation stays offline
        return [SourceSummary(self.format, f"hub {self.hub} {self.split or split}", None)], []

    def load(self, split: str, seed: int, on_bad_record: OnBadRecord) -> SplitData:
        out = SplitData(split=split)
        hub_split = self.split or split
        if self.format == "gsm8k" and self.hub == "openai/gsm8k":
            out.gsm8k += load_hub_gsm8k(self.name or "main", hub_split, repo=self.hub, revision=self.revision)
            return out
        import datasets

        rows = datasets.load_dataset(self.hub, self.name, split=hub_split, revision=self.revision)
        check = gsm8k_record_problem if self.format == "gsm8k" else safety_record_problem
        for index, row in enumerate(rows):
            reason = check(dict(row))
            if reason:
                if on_bad_record == "skip":
                    out.skipped += 1
                    continue
                raise DataError(
                    f"{self.hub} ({hub_split}) row {index}: {reason}; fix the dataset or set "
                    "data.on_bad_record: skip"
                )
            if self.format == "gsm8k":
                out.gsm8k.append(GSM8KExample(row["question"], row["answer"]))
            else:
                out.safety.append(safety_example_from_record(dict(row)))
        return out
