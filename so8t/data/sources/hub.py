"""Hugging Face hub datasets, loaded by `datasets` when training starts (validation never goes online); their
fields and labels mapped by `columns` and `labels` like local files."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from so8t.data.gsm8k import load_hub_gsm8k
from so8t.data.jsonl import OnBadRecord
from so8t.data.mapping import ColumnMap, LabelMap, RecordMapping, columns_field, labels_field
from so8t.data.readers import RawRecord
from so8t.data.records import RecordTally, located, mapped_records, tally_problems
from so8t.data.sources.base import SourceForm, SourceSummary, repeat_field
from so8t.data.split import SplitData, add_records
from so8t.errors import DataError


class HubSource(SourceForm):
    key: ClassVar[str] = "hub"
    title: ClassVar[str] = "Hugging Face hub"
    takes_policy: ClassVar[bool] = True

    hub: str = Field(
        description='A dataset on the Hugging Face hub, e.g. "openai/gsm8k" (loaded by `datasets`).'
    )
    name: str | None = Field(None, description='Dataset configuration name, e.g. "main".')
    split: str | None = Field(
        None, description='Dataset split with optional slicing, e.g. "train[:95%]"; null uses the list key.'
    )
    revision: str | None = Field(None, description="Dataset revision (branch, tag or commit).")
    format: Literal["gsm8k", "safety"] = Field(
        "gsm8k",
        description="Record format of the dataset rows (safety when only safety columns or labels are mapped).",
    )
    columns: ColumnMap | None = columns_field()
    labels: LabelMap = labels_field()
    repeat: int = repeat_field()

    @model_validator(mode="before")
    @classmethod
    def _format_from_the_mapping(cls, value: Any) -> Any:
        # {hub: x, labels: {...}} means safety rows without saying format: safety
        if isinstance(value, dict) and "format" not in value:
            columns = value.get("columns") if isinstance(value.get("columns"), dict) else {}
            named = {k for k, v in columns.items() if v is not None}
            if value.get("labels") is not None or named & {"request", "decision", "category"}:
                return {**value, "format": "safety"}
        return value

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
        mapping = self.record_mapping()
        if self.format == "gsm8k" and self.hub == "openai/gsm8k" and mapping.is_identity:
            out.gsm8k += load_hub_gsm8k(self.name or "main", hub_split, repo=self.hub, revision=self.revision)
            return out
        import datasets

        rows = datasets.load_dataset(self.hub, self.name, split=hub_split, revision=self.revision)
        return load_rows(
            rows, f"{self.hub} ({hub_split})", self.format, mapping, self._policy, on_bad_record, out
        )


def load_rows(
    rows: Any,
    shown: str,
    fmt: str,
    mapping: RecordMapping,
    policy: Any,
    on_bad_record: OnBadRecord,
    out: SplitData,
) -> SplitData:
    """Rows of a loaded dataset through the mapping into `out`; DataError naming each cause of bad rows (row
    N counts from 1) unless skipping, and when no row is usable."""
    raw = (RawRecord(f"row {index}", dict(row)) for index, row in enumerate(rows, start=1))
    tally = RecordTally()
    records = list(mapped_records(raw, fmt, tally, mapping, policy))
    problems = tally_problems(tally, on_bad_record, mapping)
    if problems:
        raise DataError(" ".join(located(shown, p) for p in problems) + " (or fix the dataset)")
    return add_records(out, fmt, records, skipped=tally.bad)
