"""A source's records through its mapping: the canonical records, and a tally of every record left out.

One implementation for `so8t validate` (the shard guard), training's loaders and the local lm-eval tasks: each
raw record (readers.py) is mapped (mapping.py), checked against the user's policy (policy.py) when there is
one, and either kept or counted by cause. The tally turns what was left out into one line per cause (an
unmapped label with its count and first place, a policy disagreement, the first malformed record), so a
problem names the file and the line whichever of them reports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from so8t.data.jsonl import OnBadRecord
from so8t.data.mapping import RecordMapping
from so8t.data.policy import Policy
from so8t.data.readers import (
    RawRecord,
    file_columns,
    iter_file_records,
    iter_saved_dataset,
    saved_dataset_columns,
    saved_dataset_files,
)
from so8t.data.requests import RecordProblem

IDENTITY = RecordMapping()
SKIP_FIX = "or set data.on_bad_record: skip to skip bad records (they are counted)"


@dataclass
class _Group:
    count: int = 0
    first: str = ""
    message: str = ""


@dataclass
class RecordTally:
    """What a scan kept and left out, by cause. `unit` is what `where` counts (line or row)."""

    good: int = 0
    dropped: int = 0
    bad: int = 0
    first_bad: tuple[str, str] | None = None
    first_dropped: tuple[str, str] | None = None
    unmapped: dict[str, _Group] = field(default_factory=dict)
    policy: dict[Any, _Group] = field(default_factory=dict)
    other: int = 0
    first_other: tuple[str, str] | None = None

    def add(self, where: str, problem: RecordProblem) -> None:
        if problem.kind == "dropped":
            self.dropped += 1
            self.first_dropped = self.first_dropped or (where, problem.message)
            return
        self.bad += 1
        self.first_bad = self.first_bad or (where, problem.message)
        groups = {"unmapped": self.unmapped, "policy": self.policy}.get(problem.kind)
        if groups is None:
            self.other += 1
            self.first_other = self.first_other or (where, problem.message)
            return
        group = groups.setdefault(problem.value, _Group(first=where, message=problem.message))
        group.count += 1

    def bad_record_lines(self, mapping: RecordMapping, skip_fix: str = SKIP_FIX) -> list[str]:
        """One line per cause of bad records, each with its count, its first place and its fix."""
        lines = []
        if self.first_other is not None:
            where, reason = self.first_other
            more = self.other - 1
            extra = f" (and {more} more bad record{'s' if more > 1 else ''})" if more else ""
            unit = where.split()[0]
            lines.append(f"{where}: {reason}{extra}; fix or delete the {unit}, {skip_fix}")
        for label, group in self.unmapped.items():
            lines.append(
                f"{group.message}: {_records(group.count)}, the first at {group.first}; map it in "
                f'{mapping.prefix}labels (e.g. "{label}": ESCALATE), drop its records with "{label}": null, '
                f"{skip_fix}"
            )
        for group in self.policy.values():
            lines.append(f"{group.message}: {_records(group.count)}, the first at {group.first}; {skip_fix}")
        return lines

    def nothing_usable(self) -> str:
        """Why a file gave no record at all (every one bad or dropped), naming the first."""
        parts = [f"{self.bad} bad"] if self.bad else []
        if self.dropped:
            parts.append(f"{self.dropped} dropped by labels")
        first = self.first_bad or self.first_dropped
        shown = f"; first: {first[0]}: {first[1]}" if first else ""
        return f"no well-formed records ({', '.join(parts)}{shown})"


def _records(count: int) -> str:
    return f"{count} record{'s' if count != 1 else ''}"


def mapped_records(
    raw: Iterable[RawRecord],
    fmt: str,
    tally: RecordTally,
    mapping: RecordMapping = IDENTITY,
    policy: Policy | None = None,
) -> Iterator[dict[str, Any]]:
    """The canonical records of `fmt` in `raw`; everything else is counted in `tally`."""
    for item in raw:
        if item.record is None:
            tally.add(item.where, RecordProblem("record", item.reason or "unreadable"))
            continue
        canonical = mapping.canonical(item.record, fmt)
        if isinstance(canonical, dict) and fmt == "safety" and policy is not None:
            canonical = policy.problem(canonical) or canonical
        if isinstance(canonical, RecordProblem) and canonical.kind in ("record", "missing"):
            other = mapping.detect_format(list(item.record))
            if other is not None and other != fmt:
                canonical = RecordProblem(
                    "record", f"a {other} record in a {fmt} source ({canonical.message})"
                )
        if isinstance(canonical, RecordProblem):
            tally.add(item.where, canonical)
            continue
        tally.good += 1
        yield canonical


def file_format(path: Path, declared: str, mapping: RecordMapping) -> tuple[str | None, str | None]:
    """(the format of a file, or None with the reason): the declared one, else what the mapping implies,
    else what the header (CSV, Parquet) or the first readable record (JSONL) holds."""
    if declared != "auto":
        return declared, None
    if mapping.implied_format():
        return mapping.implied_format(), None
    names = file_columns(path)
    if names is not None:
        detected = mapping.detect_format(names)
        if detected is None:
            return None, f"{mapping.describe_formats()}; columns found: {', '.join(names) or 'none'}"
        return detected, None
    first: tuple[str, list[str]] | None = None
    for item in iter_file_records(path):
        if item.record is not None:
            detected = mapping.detect_format(list(item.record))
            if detected is not None:
                return detected, None
            first = first or (item.where, list(item.record))
    if first is None:
        return None, None
    return None, f"{first[0]}: {mapping.describe_formats()}; keys found: {', '.join(first[1]) or 'none'}"


def read_records(
    path: Path,
    fmt: str,
    on_bad_record: OnBadRecord,
    mapping: RecordMapping = IDENTITY,
    policy: Policy | None = None,
    skip_fix: str = SKIP_FIX,
) -> tuple[list[dict[str, Any]], RecordTally, list[str]]:
    """(canonical records of a local file, the tally, problems): problems are the missing columns of a
    header, every cause of bad records when on_bad_record is error, and a file that gave no record."""
    names = file_columns(path)
    if names is not None:
        missing = mapping.missing_columns(fmt, names)
        if missing:
            return [], RecordTally(), [f"line 1: {m}" if path.suffix.lower() in (".csv", ".tsv") else m
                                       for m in missing]  # fmt: skip
    tally = RecordTally()
    keys: dict[str, None] = {}
    records = list(mapped_records(noting_keys(iter_file_records(path), keys), fmt, tally, mapping, policy))
    # JSONL has no header: a column the mapping names that no record holds is reported as a header's would be
    missing = mapping.missing_named_columns(fmt, list(keys)) if names is None and keys else []
    if missing:
        return [], tally, missing
    return records, tally, tally_problems(tally, on_bad_record, mapping, skip_fix)


def noting_keys(raw: Iterable[RawRecord], keys: dict[str, None]) -> Iterator[RawRecord]:
    """`raw` unchanged, every readable record's keys added to `keys` (in order of appearance)."""
    for item in raw:
        if item.record is not None:
            keys.update(dict.fromkeys(item.record))
        yield item


def located(source: str | Path, problem: str) -> str:
    """A problem line placed in its file: "line 7: ..." -> "FILE:7: ...", "row 3: ..." -> "FILE row 3: ...",
    anything else -> "FILE: ..." (the form of errors raised while loading)."""
    head, _, rest = problem.partition(": ")
    unit, _, number = head.partition(" ")
    if number.isdigit() and unit == "line":
        return f"{source}:{number}: {rest}"
    if number.isdigit() and unit == "row":
        return f"{source} row {number}: {rest}"
    return f"{source}: {problem}"


def tally_problems(
    tally: RecordTally, on_bad_record: OnBadRecord, mapping: RecordMapping, skip_fix: str = SKIP_FIX
) -> list[str]:
    if tally.bad and on_bad_record == "error":
        return tally.bad_record_lines(mapping, skip_fix)
    if tally.good == 0 and (tally.bad or tally.dropped):
        return [tally.nothing_usable()]
    return []


def read_saved_dataset(
    folder: str | Path,
    split: str,
    declared: str,
    on_bad_record: OnBadRecord,
    mapping: RecordMapping = IDENTITY,
    policy: Policy | None = None,
    skip_fix: str = SKIP_FIX,
) -> tuple[str | None, list[dict[str, Any]], RecordTally, list[str]]:
    """(format, canonical records, tally, problems) of one split of a folder saved by datasets; problems
    start with the split's folder. ValueError when the folder is no saved dataset or lacks the split."""
    files, shown = saved_dataset_files(folder, split)
    names = saved_dataset_columns(files)
    # the declared format, else the one the mapping implies (so a missing column is named), else the columns'
    fmt = declared if declared != "auto" else mapping.implied_format() or mapping.detect_format(names)
    if fmt is None:
        return (
            None,
            [],
            RecordTally(),
            [f"{shown}: {mapping.describe_formats()}; columns found: {', '.join(names) or 'none'}"],
        )
    missing = mapping.missing_columns(fmt, names)
    if missing:
        return fmt, [], RecordTally(), [f"{shown}: {m}" for m in missing]
    tally = RecordTally()
    records = list(mapped_records(iter_saved_dataset(files), fmt, tally, mapping, policy))
    problems = [located(shown, p) for p in tally_problems(tally, on_bad_record, mapping, skip_fix)]
    if not records and not problems:
        problems = [f"{shown}: no records"]
    return fmt, records, tally, problems
