"""Where each bundled data file comes from: `bundled/sources.yaml`, one entry per file (source, licence,
number of records, and the licence notice a public set's rows must travel with).

Why: a package that ships data ships its licences too. Rows written for so8t are under the project's licence;
rows drawn from a public set keep their own licence, which must allow redistribution and whose notice must
travel with them. Listing every file, with its record count, keeps a file or a row from slipping in unlisted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

SOURCES_FILE = "sources.yaml"
PROJECT_LICENCE = "Apache-2.0"
# Licences under which rows may ship in the package (NC or SA licences may not: so8t is Apache-2.0).
REDISTRIBUTABLE = frozenset({"Apache-2.0", "MIT", "BSD-3-Clause", "CC-BY-4.0", "CC0-1.0"})
DATA_SUFFIXES = (".jsonl", ".csv", ".parquet", ".yaml")


@dataclass(frozen=True)
class FileSource:
    """One bundled file's entry: where its rows come from and the licence they ship under."""

    source: str
    licence: str
    records: int | None = None
    notice: str | None = None


def read_sources(folder: Path) -> dict[str, FileSource]:
    """The entries of `folder/sources.yaml` by file name; ValueError naming the entry that is malformed."""
    raw = yaml.safe_load((folder / SOURCES_FILE).read_text(encoding="utf-8")) or {}
    entries = {}
    for name, entry in raw.items():
        try:
            entries[name] = FileSource(**entry)
        except TypeError as exc:
            raise ValueError(f"{folder / SOURCES_FILE}: {name}: {exc}") from exc
    return entries


def _record_count(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def provenance_problems(folder: Path) -> list[str]:
    """What keeps `folder`'s data files from carrying their source and licence; empty when nothing does."""
    sources = read_sources(folder)
    files = sorted(p.name for p in folder.iterdir() if p.suffix in DATA_SUFFIXES and p.name != SOURCES_FILE)
    problems = [f"{name}: not listed in {SOURCES_FILE}" for name in files if name not in sources]
    problems += [
        f"{name}: listed in {SOURCES_FILE} but not in the folder" for name in sources if name not in files
    ]
    for name, entry in sources.items():
        if not entry.source.strip():
            problems.append(f"{name}: no source")
        if entry.licence not in REDISTRIBUTABLE:
            problems.append(f"{name}: licence {entry.licence!r} does not allow shipping it in so8t")
        if entry.licence != PROJECT_LICENCE and not (entry.notice and (folder / entry.notice).is_file()):
            problems.append(f"{name}: licence {entry.licence} needs its notice file beside it (notice: FILE)")
        if (
            entry.records is not None
            and (folder / name).is_file()
            and _record_count(folder / name) != entry.records
        ):
            problems.append(
                f"{name}: {_record_count(folder / name)} records, {SOURCES_FILE} says {entry.records}"
            )
    return problems
