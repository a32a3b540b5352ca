"""JSONL reading with one policy for bad records: stop with file:line and the reason, or skip and count."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from so8t.errors import DataError
from so8t.layout.atomic import atomic_write_text

OnBadRecord = Literal["error", "skip"]

SKIP_HINT = "Fix or delete the line, or set data.on_bad_record: skip to skip bad records (they are counted)."


@dataclass
class ReadResult:
    """Well-formed records of one file and how many bad ones were skipped."""

    records: list[dict] = field(default_factory=list)
    skipped: int = 0


def iter_jsonl_lines(path: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield (line number, record, None) or (line number, None, reason); blank lines are ignored."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"invalid JSON ({exc.msg} at column {exc.colno})"
                continue
            if not isinstance(record, dict):
                yield number, None, f"expected a JSON object, found {type(record).__name__}"
                continue
            yield number, record, None


def read_jsonl_records(
    path: str | Path,
    validate: Callable[[dict], str | None],
    on_bad_record: OnBadRecord = "error",
    fix_hint: str = SKIP_HINT,
) -> ReadResult:
    """Read every record of a JSONL file; `validate` returns None for a good record or the reason it is bad.

    Raises DataError("path:LINE: reason. fix_hint") at the first bad record when on_bad_record="error".
    """
    path = Path(path)
    result = ReadResult()
    for number, record, reason in iter_jsonl_lines(path):
        if reason is None and record is not None:
            reason = validate(record)
        if reason is None:
            result.records.append(record)  # type: ignore[arg-type]
        elif on_bad_record == "skip":
            result.skipped += 1
        else:
            raise DataError(f"{path}:{number}: {reason}. {fix_hint}")
    return result


def write_jsonl(records: list[dict], path: str | Path) -> Path:
    """Write records one per line (UTF-8, no ASCII escaping), atomically via a temporary file."""
    return atomic_write_text(
        path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    )
