"""The records of a local data file, whatever its kind: JSONL, CSV, Parquet, or a folder saved by `datasets`
(`Dataset.save_to_disk`). Each record comes with where it sits in its file (`line 14`, `row 3`), so every
problem found in it can name the place.

Torch-free and offline, so `so8t validate` can read everything a run will train on: CSV through the standard
library, Parquet and Arrow through pyarrow (installed with `datasets`), imported only when such a file is
read, never `datasets` itself.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from so8t.data.jsonl import iter_jsonl_lines

# file kinds by suffix; anything else is read as JSONL (the format so8t writes)
KIND_BY_SUFFIX = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# the files `Dataset.save_to_disk` / `DatasetDict.save_to_disk` write into their folder
SAVED_DATASET_STATE = "state.json"
SAVED_DATASET_DICT = "dataset_dict.json"
_CSV_DELIMITERS = (",", ";", "\t", "|")
_PARQUET_BATCH = 1024


@dataclass(frozen=True)
class RawRecord:
    """One record of a file as stored (`record`), or why it cannot be read (`reason`); `where` is its place
    in the file: `line N` (JSONL, CSV) or `row N` (Parquet, Arrow; counted from 1)."""

    where: str
    record: dict[str, Any] | None
    reason: str | None = None


def file_sha256(path: str | Path) -> str:
    """A file by content (a data source's identity)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_kind(path: str | Path) -> str:
    """jsonl, csv or parquet, from the file's suffix."""
    return KIND_BY_SUFFIX.get(Path(path).suffix.lower(), "jsonl")


def is_saved_dataset(folder: str | Path) -> bool:
    """A folder written by `datasets`' save_to_disk (one Dataset or a DatasetDict of splits)."""
    folder = Path(folder)
    return (folder / SAVED_DATASET_STATE).is_file() or (folder / SAVED_DATASET_DICT).is_file()


def file_columns(path: str | Path) -> list[str] | None:
    """The columns a CSV header or a Parquet schema declares; None for JSONL, whose records each bring their
    own keys."""
    kind = file_kind(path)
    if kind == "csv":
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle, delimiter=_csv_delimiter(Path(path))), None)
        return [name.strip() for name in header] if header else []
    if kind == "parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    return None


def iter_file_records(path: str | Path) -> Iterator[RawRecord]:
    """Every record of a JSONL, CSV or Parquet file, in order."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "csv":
        yield from _iter_csv(path)
    elif kind == "parquet":
        yield from _iter_parquet(path)
    else:
        for number, record, reason in iter_jsonl_lines(path):
            yield RawRecord(f"line {number}", record, reason)


# ----------------------------------------------------------------------------- CSV


def _csv_delimiter(path: Path) -> str:
    """Tab for .tsv; for .csv the most frequent of , ; tab | in the header line (spreadsheets export ; in
    locales whose decimal mark is a comma)."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    with open(path, encoding="utf-8-sig") as handle:
        header = handle.readline()
    return max(_CSV_DELIMITERS, key=header.count) if any(d in header for d in _CSV_DELIMITERS) else ","


def _iter_csv(path: Path) -> Iterator[RawRecord]:
    """CSV rows as records keyed by the header; an empty cell is a missing value. `line N` is the line on
    which the row starts (a quoted cell may span several)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=_csv_delimiter(path))
        header = next(reader, None)
        if header is None:
            return
        names = [name.strip() for name in header]
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RawRecord(f"line {start}", None, f"not readable as CSV ({exc})")
                return
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                yield RawRecord(
                    f"line {start}", None, f"{len(row)} cells, but the header has {len(names)} columns"
                )
                continue
            yield RawRecord(
                f"line {start}",
                {name: (cell if cell.strip() else None) for name, cell in zip(names, row, strict=True)},
            )


# ----------------------------------------------------------------------------- Parquet and Arrow


def _iter_parquet(path: Path) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH):
        for record in batch.to_pylist():
            row += 1
            yield RawRecord(f"row {row}", record)


def saved_dataset_files(folder: str | Path, split: str) -> tuple[list[Path], str]:
    """(the Arrow files of one split of a saved dataset, the split's folder as shown in messages).

    A DatasetDict folder holds one subfolder per split (named in dataset_dict.json); a Dataset folder is
    one split already, whatever `split` says. Raises ValueError with the reason when the folder is no
    saved dataset or lacks the split.
    """
    folder = Path(folder)
    if (folder / SAVED_DATASET_DICT).is_file():
        splits = json.loads((folder / SAVED_DATASET_DICT).read_text(encoding="utf-8")).get("splits", [])
        if split not in splits:
            raise ValueError(f"has no split {split!r} (its splits: {', '.join(splits) or 'none'})")
        folder = folder / split
    state_path = folder / SAVED_DATASET_STATE
    if not state_path.is_file():
        raise ValueError(
            f"is not a folder saved by datasets' save_to_disk (no {SAVED_DATASET_STATE} or {SAVED_DATASET_DICT})"
        )
    state = json.loads(state_path.read_text(encoding="utf-8"))
    files = [folder / entry["filename"] for entry in state.get("_data_files", [])]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"misses the data file(s) {', '.join(missing)} its {SAVED_DATASET_STATE} lists")
    return files, str(folder)


def saved_dataset_columns(files: list[Path]) -> list[str]:
    import pyarrow as pa

    if not files:
        return []
    with pa.memory_map(str(files[0])) as source:
        return list(pa.ipc.open_stream(source).schema.names)


def iter_saved_dataset(files: list[Path]) -> Iterator[RawRecord]:
    """The rows of a saved dataset's Arrow files (Arrow IPC streams), in order; `row N` counts from 1."""
    import pyarrow as pa

    row = 0
    for path in files:
        with pa.memory_map(str(path)) as source:
            for batch in pa.ipc.open_stream(source):
                for record in batch.to_pylist():
                    row += 1
                    yield RawRecord(f"row {row}", record)
