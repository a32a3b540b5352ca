"""Per-document values of a results file: what lm-eval's `--log_samples` wrote beside it, or what a baseline
carries inside itself.

lm-eval logs one sample per document and filter, in `samples_<task>_<id>.jsonl` with the same `<id>` as the
results file: `doc_hash`, `filter`, the names of its `metrics` and each metric's value for that document
(1.0 / 0.0, NaN outside a ratio's denominator, a (gold, pred) pair for macro F1...). Two runs are compared
document by document when they hold the same documents, matched as the sorted multiset of
`(doc_hash, filter)`: the order of samples differs between runs and processes, the documents do not.

A baseline written by `so8t gate --update-baseline` embeds these values under `so8t_baseline.documents`,
one entry per sample: `doc_id`, `doc_hash`, `filter` and each metric's value (NaN stored as null, since a
baseline is strict JSON), so it needs no samples files beside it.
Importable without torch or lm_eval.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from so8t.errors import UserError
from so8t.layout import date_id_of, samples_file_for
from so8t.results.results_file import BASELINE_KEY

DocumentKey = tuple[str, str]  # (doc_hash, filter)


@dataclass(frozen=True)
class DocumentValue:
    """One logged sample reduced to what a comparison needs."""

    doc_hash: str
    filter: str
    doc_id: int
    values: dict[str, Any]

    @property
    def key(self) -> DocumentKey:
        return (self.doc_hash, self.filter)


@dataclass(frozen=True)
class TaskDocuments:
    """The per-document values of one task, and where they were read."""

    task: str
    entries: tuple[DocumentValue, ...]
    source: str

    def keys(self) -> Counter[DocumentKey]:
        return Counter(e.key for e in self.entries)

    def values(self, metric: str, filter_name: str) -> list[Any] | None:
        """The metric's values in document order (doc_hash, then doc_id); None when a sample lacks it."""
        chosen = sorted(
            (e for e in self.entries if e.filter == filter_name), key=lambda e: (e.doc_hash, e.doc_id)
        )
        if not chosen or any(metric not in e.values for e in chosen):
            return None
        return [e.values[metric] for e in chosen]


ENTRY_KEYS = ("doc_id", "doc_hash", "filter")


def _from_sample(sample: dict) -> DocumentValue | None:
    """A logged sample (its `metrics` name the values) or an embedded entry (every other key is a value)."""
    if not isinstance(sample, dict) or not isinstance(sample.get("doc_hash"), str):
        return None
    if isinstance(sample.get("metrics"), list):
        names = sample["metrics"]
    else:
        names = [k for k in sample if k not in ENTRY_KEYS]
    values = {str(name): _restore(sample[name]) for name in names if name in sample}
    doc_id = sample.get("doc_id")
    return DocumentValue(
        sample["doc_hash"],
        str(sample.get("filter", "none")),
        doc_id if isinstance(doc_id, int) else -1,
        values,
    )


def _restore(value: Any) -> Any:
    """A logged value as scoring produced it: null (a baseline's NaN) back to NaN, lists to tuples."""
    if value is None:
        return math.nan
    if isinstance(value, list):
        return tuple(_restore(v) for v in value)
    return value


def _stored(value: Any) -> Any:
    """A value for strict JSON: NaN and infinities as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_stored(v) for v in value]
    return value


def read_samples_file(path: Path, task: str) -> TaskDocuments:
    """One lm-eval samples file; UserError naming the file and line when a line is not JSON."""
    entries = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"{path}:{number} is not a JSON line ({exc.msg}); the samples file is damaged, re-run "
                    "the evaluation with --log_samples."
                ) from exc
            entry = _from_sample(sample)
            if entry is not None:
                entries.append(entry)
    return TaskDocuments(task, tuple(entries), str(path))


def _leaf_tasks(data: dict) -> list[str]:
    configs = data.get("configs") if isinstance(data.get("configs"), dict) else {}
    return [t for t in data.get("results", {}) if t in configs] or list(configs)


def documents_of(data: dict, path: str | Path | None = None) -> dict[str, TaskDocuments]:
    """Per-document values of every task of a results file that has them: embedded in a baseline, else the
    samples files beside `path` with the same id (none for an undated name such as results.json)."""
    embedded = (
        (data.get(BASELINE_KEY) or {}).get("documents") if isinstance(data.get(BASELINE_KEY), dict) else None
    )
    found: dict[str, TaskDocuments] = {}
    if isinstance(embedded, dict):
        for task, samples in embedded.items():
            entries = tuple(e for e in map(_from_sample, samples or []) if e is not None)
            found[task] = TaskDocuments(task, entries, f"{path or 'baseline'} ({BASELINE_KEY}.documents)")
        return found
    if path is None or date_id_of(path) is None:
        return found
    for task in _leaf_tasks(data):
        samples = samples_file_for(path, task, date_id_of(path) or "")
        if samples.is_file():
            found[task] = read_samples_file(samples, task)
    return found


def embeddable(documents: dict[str, TaskDocuments]) -> dict[str, list[dict]]:
    """The `so8t_baseline.documents` form of per-document values (strict JSON)."""
    return {
        task: [
            {
                "doc_id": e.doc_id,
                "doc_hash": e.doc_hash,
                "filter": e.filter,
                **{name: _stored(value) for name, value in e.values.items()},
            }
            for e in sorted(docs.entries, key=lambda e: (e.doc_hash, e.filter, e.doc_id))
        ]
        for task, docs in sorted(documents.items())
    }


def document_difference(base: TaskDocuments, current: TaskDocuments) -> str | None:
    """Why two runs of a task did not score the same documents, or None when they did."""
    left, right = base.keys(), current.keys()
    if left == right:
        return None
    only_base = sum((left - right).values())
    only_current = sum((right - left).values())
    return (
        f"the runs scored different documents ({only_base} (document, filter) pairs only in the baseline, "
        f"{only_current} only in the results; compared by doc_hash)"
    )
