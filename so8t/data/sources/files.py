"""Files: JSONL files or globs, in the GSM8K or safety format (declared, or detected from the records)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, model_validator

from so8t.data.gsm8k import read_gsm8k_counted
from so8t.data.jsonl import OnBadRecord, iter_jsonl_lines
from so8t.data.safety import read_safety_counted
from so8t.data.shards import FORMATS, check_pattern, detect_format, expand_pattern, resolve_local
from so8t.data.sources.base import SourceForm, SourceSummary, repeat_field
from so8t.data.split import SplitData
from so8t.errors import DataError


class PathSource(SourceForm):
    key: ClassVar[str] = "path"
    title: ClassVar[str] = "Files"
    from_string: ClassVar[bool] = True

    path: str = Field(
        description="A JSONL file or glob (`**` recursive); relative to the config file's folder."
    )
    format: Literal["auto", "gsm8k", "safety"] = Field(
        "auto",
        description="gsm8k ({question, answer}), safety ({prompt, decision}) or auto (from the records).",
    )
    repeat: int = repeat_field()

    # the path as the config wrote it, kept by resolved() for messages
    _written: str | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _plain_string(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    def declared_format(self) -> str | None:
        return None if self.format == "auto" else self.format

    def resolved(self, base_dir: Path) -> PathSource:
        copy = self.model_copy(update={"path": str(resolve_local(self.path, base_dir))})
        copy._written = self._written or self.path
        return copy

    def identity(self) -> dict[str, Any]:
        # the files by content, in the order they are read: the same data under another path is the same
        return {
            "files_sha256": [_sha256(path) for path in expand_pattern(self.path)],
            "format": self.format,
            "repeat": self.repeat,
        }

    def check(
        self, split: str, key: str, on_bad_record: OnBadRecord
    ) -> tuple[list[SourceSummary], list[str]]:
        reports, problems = check_pattern(
            self.path, self.format, on_bad_record, key=key, split=split, shown=self._written or self.path
        )
        summaries = []
        for fmt in FORMATS:
            mine = [r for r in reports if r.format == fmt]
            if mine:
                records, skipped = sum(r.records for r in mine), sum(r.skipped for r in mine)
                summaries.append(SourceSummary(fmt, "files", records, skipped))
        return summaries, problems

    def load(self, split: str, seed: int, on_bad_record: OnBadRecord) -> SplitData:
        out = SplitData(split=split)
        files = expand_pattern(self.path)
        if not files:
            raise DataError(
                f"{self.path}: matched 0 files; run `so8t validate` on the config to see how to fix it"
            )
        for path in files:
            if _file_format(path, self.format) == "gsm8k":
                examples, skipped = read_gsm8k_counted(path, on_bad_record)
                out.gsm8k += examples
            else:
                safety, skipped = read_safety_counted(path, on_bad_record)
                out.safety += safety
            out.skipped += skipped
        return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_format(path: Path, declared: str) -> str:
    """The declared format, or the format of the file's first JSON object record."""
    if declared != "auto":
        return declared
    for _, record, _ in iter_jsonl_lines(path):
        if record is not None and detect_format(record):
            return detect_format(record)  # type: ignore[return-value]
    raise DataError(
        f"{path}: no GSM8K ({{question, answer}}) or safety ({{prompt, decision}}) records found; "
        "fix the file or declare its format with {path: ..., format: gsm8k|safety}"
    )
