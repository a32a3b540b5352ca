"""Files: JSONL, CSV or Parquet files or globs, in the GSM8K or safety format (declared, implied by the
mapping, or detected from the records), their fields and labels mapped by `columns` and `labels`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, model_validator

from so8t.data.jsonl import OnBadRecord
from so8t.data.mapping import ColumnMap, LabelMap, columns_field, labels_field
from so8t.data.readers import file_sha256
from so8t.data.records import file_format, located, read_records
from so8t.data.shards import FORMATS, check_pattern, expand_pattern, resolve_local
from so8t.data.sources.base import SourceForm, SourceSummary, repeat_field
from so8t.data.split import SplitData, add_records
from so8t.errors import DataError


class PathSource(SourceForm):
    key: ClassVar[str] = "path"
    title: ClassVar[str] = "Files"
    from_string: ClassVar[bool] = True
    takes_policy: ClassVar[bool] = True

    path: str = Field(
        description="A JSONL, CSV (.csv, .tsv) or Parquet (.parquet) file, or a glob of them (`**` recursive); "
        "relative to the config file's folder."
    )
    format: Literal["auto", "gsm8k", "safety"] = Field(
        "auto",
        description="gsm8k ({question, answer}), safety ({prompt, decision}) or auto (from the mapping or the "
        "records).",
    )
    columns: ColumnMap | None = columns_field()
    labels: LabelMap = labels_field()
    repeat: int = repeat_field()

    # the path as the config wrote it, kept by resolved() for messages
    _written: str | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _plain_string(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    def declared_format(self) -> str | None:
        return self.record_mapping().implied_format() if self.format == "auto" else self.format

    def resolved(self, base_dir: Path) -> PathSource:
        copy = self.model_copy(update={"path": str(resolve_local(self.path, base_dir))})
        copy._written = self._written or self.path
        return copy

    def identity(self) -> dict[str, Any]:
        # the files by content, in the order they are read: the same data under another path is the same
        identity: dict[str, Any] = {
            "files_sha256": [file_sha256(path) for path in expand_pattern(self.path)],
            "format": self.format,
            "repeat": self.repeat,
        }
        # the mapping changes what the files give (only when set: an unmapped source keeps its identity)
        if self.columns is not None:
            identity["columns"] = self.columns.model_dump(mode="json")
        if self.labels is not None:
            identity["labels"] = self.labels
        return identity

    def check(
        self, split: str, key: str, on_bad_record: OnBadRecord
    ) -> tuple[list[SourceSummary], list[str]]:
        reports, problems = check_pattern(
            self.path,
            self.format,
            on_bad_record,
            key=key,
            split=split,
            shown=self._written or self.path,
            mapping=self.record_mapping(f"{key}."),
            policy=self._policy,
        )
        summaries = []
        for fmt in FORMATS:
            mine = [r for r in reports if r.format == fmt]
            if mine:
                records, skipped = sum(r.records for r in mine), sum(r.skipped for r in mine)
                first = next((r.first_skipped for r in mine if r.first_skipped), None)
                dropped = sum(r.dropped for r in mine)
                summaries.append(
                    SourceSummary(fmt, "files", records, skipped, dropped=dropped, first_skipped=first)
                )
        return summaries, problems

    def load(self, split: str, seed: int, on_bad_record: OnBadRecord) -> SplitData:
        out = SplitData(split=split)
        files = expand_pattern(self.path)
        if not files:
            raise DataError(
                f"{self.path}: matched 0 files; run `so8t validate` on the config to see how to fix it"
            )
        mapping = self.record_mapping()
        for path in files:
            fmt, reason = file_format(path, self.format, mapping)
            if fmt is None:
                raise DataError(
                    f"{path}: {reason or 'no records'}; name its fields with columns: or declare its format "
                    "with {path: ..., format: gsm8k|safety}"
                )
            records, tally, problems = read_records(path, fmt, on_bad_record, mapping, self._policy)
            if problems:
                raise DataError(" ".join(located(path, p) for p in problems))
            add_records(out, fmt, records, skipped=tally.bad)
        return out
