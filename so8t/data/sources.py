"""Turn a split's configured sources into examples: files, hub datasets, synthetic data, the bundled set."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.data.gsm8k import GSM8KExample, gsm8k_record_problem, load_hub_gsm8k, read_gsm8k_counted
from so8t.data.jsonl import iter_jsonl_lines, write_jsonl
from so8t.data.safety import (
    SafetyExample,
    bundled_safety_path,
    read_safety_counted,
    safety_example_from_record,
    safety_record_problem,
)
from so8t.data.shards import detect_format, expand_pattern
from so8t.data.synthetic import synthetic_split
from so8t.data.synthetic_safety import synthetic_safety_split
from so8t.errors import DataError
from so8t.layout import split_file_name

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig


@dataclass
class SplitData:
    """The examples of one split, by format, and how many bad records were skipped reading them."""

    gsm8k: list[GSM8KExample] = field(default_factory=list)
    safety: list[SafetyExample] = field(default_factory=list)
    skipped: int = 0
    split: str = "test"

    def __len__(self) -> int:
        return len(self.gsm8k) + len(self.safety)


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


def _read_files(source: Any, on_bad_record: str, out: SplitData) -> None:
    files = expand_pattern(source.path)
    if not files:
        raise DataError(
            f"{source.path}: matched 0 files; run `so8t validate` on the config to see how to fix it"
        )
    for path in files:
        if _file_format(path, source.format) == "gsm8k":
            examples, skipped = read_gsm8k_counted(path, on_bad_record)  # type: ignore[arg-type]
            out.gsm8k += examples
        else:
            safety, skipped = read_safety_counted(path, on_bad_record)  # type: ignore[arg-type]
            out.safety += safety
        out.skipped += skipped


def _read_hub(source: Any, split: str, on_bad_record: str, out: SplitData) -> None:
    hub_split = source.split or split
    if source.format == "gsm8k" and source.hub == "openai/gsm8k":
        out.gsm8k += load_hub_gsm8k(
            source.name or "main", hub_split, repo=source.hub, revision=source.revision
        )
        return
    import datasets

    rows = datasets.load_dataset(source.hub, source.name, split=hub_split, revision=source.revision)
    check = gsm8k_record_problem if source.format == "gsm8k" else safety_record_problem
    for index, row in enumerate(rows):
        reason = check(dict(row))
        if reason:
            if on_bad_record == "skip":
                out.skipped += 1
                continue
            raise DataError(
                f"{source.hub} ({hub_split}) row {index}: {reason}; fix the dataset or set "
                "data.on_bad_record: skip"
            )
        if source.format == "gsm8k":
            out.gsm8k.append(GSM8KExample(row["question"], row["answer"]))
        else:
            out.safety.append(safety_example_from_record(dict(row)))


def materialize(cfg: RunConfig, split: str) -> SplitData:
    """All examples of `split` ("train", "validation" or "test") from the config's sources, in order; a
    source with `repeat: N` contributes each of its examples N times (the config allows that in train only)."""
    out = SplitData(split=split)
    for source in getattr(cfg.data, split):
        mine = SplitData(split=split)
        _read_source(cfg, source, split, mine)
        out.gsm8k += mine.gsm8k * source.repeat
        out.safety += mine.safety * source.repeat
        out.skipped += mine.skipped
    return out


def _read_source(cfg: RunConfig, source: Any, split: str, out: SplitData) -> None:
    from so8t.config import HubSource, PathSource, SafetySource, SyntheticSafetySource, SyntheticSource

    on_bad_record = cfg.data.on_bad_record
    if isinstance(source, PathSource):
        _read_files(source, on_bad_record, out)
    elif isinstance(source, SyntheticSource):
        seed = cfg.seed if source.seed is None else source.seed
        out.gsm8k += synthetic_split(split, source.n, seed)
    elif isinstance(source, SyntheticSafetySource):
        seed = cfg.seed if source.seed is None else source.seed
        out.safety += synthetic_safety_split(split, source.n, seed)
    elif isinstance(source, SafetySource):
        examples, skipped = read_safety_counted(bundled_safety_path(split), "error")
        out.safety += examples
        out.skipped += skipped
    elif isinstance(source, HubSource):
        _read_hub(source, split, on_bad_record, out)
    else:  # pragma: no cover - the config admits only the forms above
        raise TypeError(f"unknown data source {source!r}")


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
