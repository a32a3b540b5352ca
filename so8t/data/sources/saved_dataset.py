"""A dataset saved by `datasets` (`Dataset.save_to_disk` or `DatasetDict.save_to_disk`): read with pyarrow,
never `datasets`, so `so8t validate` checks it offline and without torch; fields and labels mapped by
`columns` and `labels`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr

from so8t.data.jsonl import OnBadRecord
from so8t.data.mapping import ColumnMap, LabelMap, columns_field, labels_field
from so8t.data.readers import file_sha256
from so8t.data.records import located, read_saved_dataset
from so8t.data.shards import resolve_local
from so8t.data.sources.base import SourceForm, SourceSummary, repeat_field
from so8t.data.split import SplitData, add_records
from so8t.errors import DataError


class SavedDatasetSource(SourceForm):
    key: ClassVar[str] = "load_from_disk"
    title: ClassVar[str] = "Saved datasets"
    takes_policy: ClassVar[bool] = True

    load_from_disk: str = Field(
        description="A folder written by `datasets`' save_to_disk (a Dataset, or a DatasetDict of splits); "
        "relative to the config file's folder."
    )
    split: str | None = Field(
        None,
        description="The split of a saved DatasetDict; null uses the list key (train, validation, test).",
    )
    format: Literal["auto", "gsm8k", "safety"] = Field(
        "auto", description="gsm8k, safety or auto (from the mapping or the columns)."
    )
    columns: ColumnMap | None = columns_field()
    labels: LabelMap = labels_field()
    repeat: int = repeat_field()

    # the folder as the config wrote it, kept by resolved() for messages
    _written: str | None = PrivateAttr(None)

    def declared_format(self) -> str | None:
        return self.record_mapping().implied_format() if self.format == "auto" else self.format

    def resolved(self, base_dir: Path) -> SavedDatasetSource:
        copy = self.model_copy(update={"load_from_disk": str(resolve_local(self.load_from_disk, base_dir))})
        copy._written = self._written or self.load_from_disk
        return copy

    def identity(self) -> dict[str, Any]:
        # the folder by content (its Arrow files), so the same dataset saved elsewhere is the same data
        identity = self.model_dump(mode="json", exclude={"load_from_disk"})
        folder = Path(self.load_from_disk)
        identity["files_sha256"] = {
            str(path.relative_to(folder)): file_sha256(path) for path in sorted(folder.rglob("*.arrow"))
        }
        return identity

    def _scan(self, split: str, on_bad_record: OnBadRecord, prefix: str) -> tuple[Any, ...]:
        """(format, canonical records, tally, problems)."""
        try:
            return read_saved_dataset(
                self.load_from_disk, self.split or split, self.format, on_bad_record,
                self.record_mapping(prefix), self._policy,
            )  # fmt: skip
        except (ValueError, OSError) as exc:
            return None, [], None, [f"{self._written or self.load_from_disk}: {exc}"]

    def check(
        self, split: str, key: str, on_bad_record: OnBadRecord
    ) -> tuple[list[SourceSummary], list[str]]:
        fmt, records, tally, problems = self._scan(split, on_bad_record, f"{key}.")
        if problems:
            return [], [f"{key}: {p}" for p in problems]
        first = (
            located(self._written or self.load_from_disk, ": ".join(tally.first_bad))
            if tally.first_bad
            else None
        )
        summary = SourceSummary(
            fmt, "saved dataset", len(records), tally.bad, dropped=tally.dropped, first_skipped=first
        )
        return [summary], []

    def load(self, split: str, seed: int, on_bad_record: OnBadRecord) -> SplitData:
        fmt, records, tally, problems = self._scan(split, on_bad_record, "")
        if problems:
            raise DataError(" ".join(problems))
        return add_records(SplitData(split=split), fmt, records, skipped=tally.bad)
