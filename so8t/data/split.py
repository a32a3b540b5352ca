"""The examples of one split, by format, and writing them as the JSONL files the local lm-eval tasks read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from so8t.data.gsm8k import GSM8KExample
from so8t.data.jsonl import write_jsonl
from so8t.data.safety import SafetyExample, safety_example_from_record
from so8t.layout import split_file_name


@dataclass
class SplitData:
    """The examples of one split, by format, and how many bad records were skipped reading them."""

    gsm8k: list[GSM8KExample] = field(default_factory=list)
    safety: list[SafetyExample] = field(default_factory=list)
    skipped: int = 0
    split: str = "test"

    def __len__(self) -> int:
        return len(self.gsm8k) + len(self.safety)


def add_records(out: SplitData, fmt: str, records: list[dict[str, Any]], skipped: int = 0) -> SplitData:
    """Append canonical records (so8t.data.mapping) of one format to `out` as examples."""
    if fmt == "gsm8k":
        out.gsm8k += [GSM8KExample(r["question"], r["answer"]) for r in records]
    else:
        out.safety += [safety_example_from_record(r) for r in records]
    out.skipped += skipped
    return out


def write_split_jsonl(split_data: SplitData, out_dir: str | Path) -> dict[str, Path]:
    """Write `gsm8k_<split>.jsonl` and `safety_<split>.jsonl` (only formats the split has) into out_dir."""
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    for fmt, examples in (("gsm8k", split_data.gsm8k), ("safety", split_data.safety)):
        if examples:
            written[fmt] = write_jsonl(
                [e.to_record() for e in examples], out_dir / split_file_name(fmt, split_data.split)
            )
    return written
