"""Shard guard: every data pattern matches files, every file holds usable records of its format.

Runs at `so8t validate` time (no torch), so a bad glob or an empty validation shard stops a run in
seconds instead of after model loading. Each problem is one line naming the config key, the pattern or
file, what was found, and the fix.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from so8t.data.jsonl import OnBadRecord
from so8t.data.mapping import RecordMapping
from so8t.data.policy import Policy
from so8t.data.readers import file_columns, file_kind, is_saved_dataset, iter_file_records
from so8t.data.records import (
    IDENTITY,
    RecordTally,
    file_format,
    located,
    mapped_records,
    noting_keys,
    tally_problems,
)

FORMATS = ("gsm8k", "safety")


@dataclass
class ShardReport:
    """What one file holds: its (detected) format, good records, bad records skipped and records dropped on
    purpose (labels mapped to null)."""

    path: Path
    format: str
    records: int
    skipped: int
    dropped: int = 0
    # the first skipped record: FILE:LINE (or FILE row N): why
    first_skipped: str | None = None


class ShardProblem(Exception):
    """One file cannot be used; `whats` say what was found, one line per cause (the caller adds the key).

    `fix` is the fix the caller appends; None lets the caller choose it, "" means each line says its own.
    """

    def __init__(
        self, what: str, bad_record: bool = False, whats: list[str] | None = None, fix: str | None = None
    ) -> None:
        super().__init__(what)
        self.whats = whats or [what]
        self.what = self.whats[0]
        self.bad_record = bad_record
        self.fix = "" if bad_record and fix is None else fix


def detect_format(record: dict, mapping: RecordMapping = IDENTITY) -> str | None:
    """gsm8k for question/answer records, safety for prompt (or messages)/decision records, else None
    (the field names through `mapping`)."""
    return mapping.detect_format(list(record))


def has_glob_magic(pattern: str) -> bool:
    return glob.has_magic(pattern)


def expand_pattern(pattern: str | Path) -> list[Path]:
    """Files matching a path or glob (`**` recursive), sorted; folders are not files."""
    pattern = os.path.expanduser(str(pattern))
    if not has_glob_magic(pattern):
        return [Path(pattern)] if os.path.isfile(pattern) else []
    return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))


def resolve_local(path: str, base_dir: Path) -> Path:
    """A path as a config writes it: `~` expanded, relative to `base_dir` (the config's folder)."""
    candidate = Path(os.path.expanduser(path))
    return candidate if candidate.is_absolute() else base_dir / candidate


def header_where(path: Path) -> str:
    """Where a file declares its columns: the CSV header line, or a Parquet file's schema."""
    return "line 1" if file_kind(path) == "csv" else "schema"


def check_shard(
    path: str | Path,
    fmt: str = "auto",
    on_bad_record: OnBadRecord = "error",
    mapping: RecordMapping = IDENTITY,
    policy: Policy | None = None,
) -> ShardReport:
    """Scan a JSONL, CSV or Parquet file through its mapping; raises ShardProblem when it is empty,
    unreadable, lacks a column or has bad records (with on_bad_record="error"), or gives no usable record.

    The whole file is scanned so a bad record anywhere is found, and every cause is reported with its
    count and first place; with on_bad_record="skip" bad records are counted and only a file without any
    usable record is a problem.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise ShardProblem("empty file (0 bytes)")
    kind = file_kind(path)
    tally = RecordTally()
    try:
        detected, reason = file_format(path, fmt, mapping)
        if detected is None:
            if reason is None:
                raise ShardProblem("empty file (no records, only blank lines)")
            if kind == "jsonl" and on_bad_record == "skip":
                bad = sum(1 for _ in iter_file_records(path))
                raise ShardProblem(f"no well-formed records ({bad} bad; first: {reason})")
            raise ShardProblem(reason, fix=_columns_fix(mapping))
        names = file_columns(path)
        if names is not None:
            missing = mapping.missing_columns(detected, names)
            if missing:
                where = header_where(path)
                raise ShardProblem(missing[0], whats=[f"{where}: {m}" for m in missing], fix="")
        keys: dict[str, None] = {}
        for _ in mapped_records(noting_keys(iter_file_records(path), keys), detected, tally, mapping, policy):
            pass
        # JSONL has no header: a column the mapping names that no record holds is reported as a header's would be
        missing = mapping.missing_named_columns(detected, list(keys)) if names is None and keys else []
        if missing:
            raise ShardProblem(missing[0], whats=missing, fix="")
    except UnicodeDecodeError as exc:
        raise ShardProblem(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except (ValueError, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise
        raise ShardProblem(f"cannot be read as {kind.upper()} ({exc})") from exc
    problems = tally_problems(tally, on_bad_record, mapping)
    if problems:
        raise ShardProblem(problems[0], bad_record=tally.bad > 0 and on_bad_record == "error", whats=problems)
    if tally.good == 0:
        raise ShardProblem("empty file (no records, only blank lines)" if kind == "jsonl" else "no records")
    return ShardReport(
        path=path,
        format=detected,
        records=tally.good,
        skipped=tally.bad,
        dropped=tally.dropped,
        first_skipped=located(path, ": ".join(tally.first_bad)) if tally.first_bad else None,
    )


def _columns_fix(mapping: RecordMapping) -> str:
    return (
        f"name its fields with {mapping.prefix}columns (e.g. columns: {{request: text, decision: label}}), "
        "fix or delete the record, or set data.on_bad_record: skip to skip bad records (they are counted)"
    )


def _fix_hint(split: str, eval_key: str = "train.eval_strategy") -> str:
    if split == "validation":
        return f"; or, to train without validation, remove this source from data.validation and set {eval_key}: no"
    return ""


def check_pattern(
    pattern: str,
    fmt: str,
    on_bad_record: OnBadRecord,
    *,
    key: str,
    split: str,
    shown: str | None = None,
    mapping: RecordMapping = IDENTITY,
    policy: Policy | None = None,
) -> tuple[list[ShardReport], list[str]]:
    """Check every file of one data source; returns (reports of good files, one-line problems).

    `key` is the config location (e.g. "data.validation[0]"), `shown` the pattern as the user wrote it.
    """
    shown = shown or pattern
    hint = _fix_hint(split)
    if os.path.isdir(os.path.expanduser(pattern)):
        if is_saved_dataset(os.path.expanduser(pattern)):
            return [], [
                f"{key}: {shown!r} is a folder saved by datasets; read it with {{load_from_disk: {shown}}}{hint}"
            ]
        return [], [
            f"{key}: {shown!r} is a folder, not a file; name the files, e.g. {shown.rstrip('/')}/*.jsonl{hint}"
        ]
    files = expand_pattern(pattern)
    if not files:
        where = f" (resolved to {pattern})" if shown != pattern else ""
        return [], [
            f"{key}: pattern {shown!r}{where} matched 0 files; add files that match it or fix the pattern{hint}"
        ]
    reports: list[ShardReport] = []
    problems: list[str] = []
    for path in files:
        try:
            reports.append(check_shard(path, fmt, on_bad_record, mapping, policy))
        except ShardProblem as exc:
            fix = exc.fix
            if fix is None:
                fix = "add records to it or delete it" + (
                    " (or narrow the pattern)" if has_glob_magic(pattern) else ""
                )
            problems += [f"{key}: {path}: {what}{'; ' + fix if fix else ''}{hint}" for what in exc.whats]
        except OSError as exc:
            problems.append(
                f"{key}: {path}: cannot be read ({exc.strerror}); fix its permissions or remove it{hint}"
            )
    return reports, problems
