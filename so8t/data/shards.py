"""Shard guard: every data pattern matches files, every file holds well-formed records of its format.

Runs at `so8t validate` time (no torch), so a bad glob or an empty validation shard stops a run in
seconds instead of after model loading. Each problem is one line naming the config key, the pattern or
file, what was found, and the fix.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from so8t.data.gsm8k import gsm8k_record_problem
from so8t.data.jsonl import OnBadRecord, iter_jsonl_lines
from so8t.data.safety import safety_record_problem

RECORD_CHECKS = {"gsm8k": gsm8k_record_problem, "safety": safety_record_problem}
FORMATS = tuple(RECORD_CHECKS)


@dataclass
class ShardReport:
    """What one file holds: its (detected) format, good records and bad records skipped."""

    path: Path
    format: str
    records: int
    skipped: int


class ShardProblem(Exception):
    """One file cannot be used; `what` says what was found (the caller adds the key and the fix)."""

    def __init__(self, what: str, bad_record: bool = False) -> None:
        super().__init__(what)
        self.what = what
        self.bad_record = bad_record


def detect_format(record: dict) -> str | None:
    """gsm8k for question/answer records, safety for prompt/decision records, else None."""
    if "question" in record and "answer" in record:
        return "gsm8k"
    if "prompt" in record and "decision" in record:
        return "safety"
    return None


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


def check_shard(path: str | Path, fmt: str = "auto", on_bad_record: OnBadRecord = "error") -> ShardReport:
    """Scan a JSONL file; raises ShardProblem when it is empty, unreadable or has a bad record.

    The whole file is scanned so a bad line anywhere is found; with on_bad_record="skip" bad lines are
    counted and only a file without any good record is a problem.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise ShardProblem("empty file (0 bytes)")
    detected = None if fmt == "auto" else fmt
    good = bad = 0
    first_bad: str | None = None
    try:
        for number, record, reason in iter_jsonl_lines(path):
            if record is not None:
                if detected is None:
                    detected = detect_format(record)
                    if detected is None:
                        keys = ", ".join(sorted(record)) or "none"
                        reason = (
                            'neither a GSM8K record ("question", "answer") nor a safety record '
                            f'("prompt", "decision"); keys found: {keys}'
                        )
                if detected is not None:
                    reason = RECORD_CHECKS[detected](record)
                    other = detect_format(record)
                    if reason and other and other != detected:
                        reason = f"a {other} record in a {detected} source ({reason})"
            if reason is None:
                good += 1
                continue
            bad += 1
            if first_bad is None:
                first_bad = f"line {number}: {reason}"
    except UnicodeDecodeError as exc:
        raise ShardProblem(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if bad and on_bad_record == "error":
        more = f" (and {bad - 1} more bad line{'s' if bad > 2 else ''})" if bad > 1 else ""
        raise ShardProblem(first_bad + more, bad_record=True)  # type: ignore[operator]
    if good == 0:
        if bad:
            raise ShardProblem(f"no well-formed records ({bad} bad lines; first: {first_bad})")
        raise ShardProblem("empty file (no records, only blank lines)")
    assert detected is not None
    return ShardReport(path=path, format=detected, records=good, skipped=bad)


def _fix_hint(split: str, eval_key: str = "train.eval_strategy") -> str:
    if split == "validation":
        return f"; or, to train without validation, remove this source from data.validation and set {eval_key}: no"
    return ""


def check_pattern(
    pattern: str, fmt: str, on_bad_record: OnBadRecord, *, key: str, split: str, shown: str | None = None
) -> tuple[list[ShardReport], list[str]]:
    """Check every file of one data source; returns (reports of good files, one-line problems).

    `key` is the config location (e.g. "data.validation[0]"), `shown` the pattern as the user wrote it.
    """
    shown = shown or pattern
    hint = _fix_hint(split)
    if os.path.isdir(os.path.expanduser(pattern)):
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
            reports.append(check_shard(path, fmt, on_bad_record))
        except ShardProblem as exc:
            if exc.bad_record:
                fix = "fix or delete the line, or set data.on_bad_record: skip to skip bad records (they are counted)"
            else:
                fix = "add records to it or delete it" + (
                    " (or narrow the pattern)" if has_glob_magic(pattern) else ""
                )
            problems.append(f"{key}: {path}: {exc.what}; {fix}{hint}")
        except OSError as exc:
            problems.append(
                f"{key}: {path}: cannot be read ({exc.strerror}); fix its permissions or remove it{hint}"
            )
    return reports, problems
