"""The leaderboard's data: model rows, their runs, and the columns that keep runs comparable apart.

A row is one model (backend + the model_args that change what is measured). A column is one comparable run
of a task (RunKey): task version, n-shot, the documents evaluated (their count, and their hashes when
samples were logged and two runs disagree). Identical runs of a model (same column) keep the newest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from so8t.layout import CONSOLIDATED_DIR
from so8t.layout.so8t_json import SO8T_JSON
from so8t.results.documents import TaskDocuments, documents_of
from so8t.results.headlines import Headline
from so8t.results.inputs import expand_inputs
from so8t.results.results_file import (
    MetricValue,
    get_metric,
    group_of,
    iter_metrics,
    load_results,
    subtasks,
    task_documents,
    task_n_shot,
    task_version,
)

MISSING = "—"
# model_args that change how fast an evaluation runs, not what it measures: they do not split rows
RUN_ONLY_ARGS = frozenset(
    {
        "batch_size",
        "max_batch_size",
        "device",
        "device_map",
        "parallelize",
        "gpu_memory_utilization",
        "tensor_parallel_size",
        "data_parallel_size",
    }
)
# path components that name a kind of folder, not a model: a short name skips them
GENERIC_PARTS = re.compile(r"^(consolidated|checkpoint-\d+|checkpoints|model|merged|final|eval|results)$")
HUB_ID = re.compile(r"^[\w.\-]+/[\w.\-]+$")


def recorded_model_args(model_args: Any) -> dict[str, Any]:
    """A results file's config.model_args as a dict: simple_evaluate records a "k=v,k=v" string or a dict."""
    if isinstance(model_args, dict):
        return dict(model_args)
    if not model_args:
        return {}
    from lm_eval.utils import simple_parse_args_string

    return simple_parse_args_string(str(model_args))


def short_name(name: str) -> str:
    """A name as short as it can be told from the results alone: a hub-style `org/name` as it is (a hub id,
    or a path that short); a longer path by its last meaningful part (runs/quickstart/consolidated ->
    quickstart). The filesystem is not consulted, so a board reads the same on every machine."""
    if HUB_ID.match(name):
        return name
    parts = [p for p in Path(name).parts if p not in ("/", "")]
    meaningful = [p for p in parts if not GENERIC_PARTS.match(p)]
    return (meaningful or parts or [name])[-1]


# ------------------------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunKey:
    """What makes runs of a task comparable: one column of the board."""

    task: str
    version: str | None
    n_shot: int | None
    documents: int | None
    digest: str | None = None

    @property
    def label(self) -> str:
        parts = [f"v{self.version}" if self.version is not None else "v?"]
        parts.append(f"{self.n_shot}-shot" if self.n_shot is not None else "n-shot ?")
        parts.append(f"{self.documents} docs" if self.documents is not None else "docs ?")
        if self.digest:
            parts.append(f"docs #{self.digest[:8]}")
        return " · ".join(parts)


@dataclass
class TaskRun:
    """One task (or group) of one results file."""

    task: str
    data: dict
    source: Path
    date: float
    documents: TaskDocuments | None
    members: list[str] = field(default_factory=list)
    key: RunKey | None = None

    @property
    def is_group(self) -> bool:
        return bool(self.members)

    def metric(self, metric: str, filter_name: str) -> MetricValue | None:
        return get_metric(self.data, self.task, metric, filter_name)


def _digest(documents: TaskDocuments | None) -> str | None:
    if documents is None or not documents.entries:
        return None
    keys = sorted(f"{h}\t{f}" for (h, f), n in documents.keys().items() for _ in range(n))
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


@dataclass
class ModelRow:
    """One model on the board: who it is, and its runs keyed by column."""

    name: str
    full_name: str
    backend: str
    args: dict[str, Any]
    base: str | None = None
    base_full: str | None = None
    quantization: str = "none"
    parameters: int | None = None
    date: float | None = None
    sources: list[str] = field(default_factory=list)
    runs: dict[RunKey, TaskRun] = field(default_factory=dict)
    score: float | None = None
    score_stderr: float | None = None
    rank: int | None = None
    coverage: str = ""

    @property
    def date_text(self) -> str:
        if self.date is None:
            return MISSING
        return datetime.fromtimestamp(self.date, timezone.utc).strftime("%Y-%m-%d %H:%M")

    @property
    def parameters_text(self) -> str:
        if not self.parameters:
            return MISSING
        for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if self.parameters >= size:
                return f"{self.parameters / size:.3g}{unit}"
        return str(self.parameters)


def _so8t_metadata(pretrained: str, results_dir: Path) -> dict:
    """so8t.json beside the model (a consolidated folder, or a run directory's consolidated/), if any."""
    if not pretrained:
        return {}
    for folder in (Path(pretrained), results_dir / pretrained):
        for candidate in (folder / SO8T_JSON, folder / CONSOLIDATED_DIR / SO8T_JSON):
            try:
                if candidate.is_file():
                    meta = json.loads(candidate.read_text(encoding="utf-8"))
                    return meta if isinstance(meta, dict) else {}
            except (OSError, ValueError):
                return {}
    return {}


def _quantization(args: dict[str, Any]) -> str:
    if args.get("quantization") not in (None, "", "none", False):
        return str(args["quantization"])
    for flag, label in (("load_in_4bit", "4bit"), ("load_in_8bit", "8bit")):
        if str(args.get(flag)).lower() == "true":
            return label
    return "none"


def _describe_model(data: dict, source: Path) -> tuple[tuple, dict[str, Any]]:
    """(row key, row fields) for one results file."""
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    backend = str(config.get("model") or data.get("model_source") or "unknown")
    args = recorded_model_args(config.get("model_args"))
    pretrained = str(args.get("pretrained") or args.get("model") or data.get("model_name") or source.stem)
    meta = _so8t_metadata(pretrained, source.parent)
    parameters = config.get("model_num_parameters")
    if not isinstance(parameters, int) or isinstance(parameters, bool) or parameters <= 0:
        parameters = next(
            (
                meta[k]
                for k in ("num_parameters", "parameters", "model_num_parameters")
                if isinstance(meta.get(k), int)
            ),
            None,
        )
    recorded = config.get("so8t") if isinstance(config.get("so8t"), dict) else {}
    base = (
        recorded.get("base_model") or meta.get("base_model") or args.get("base") or config.get("base_model")
    )
    identity = {k: v for k, v in args.items() if k not in RUN_ONLY_ARGS and k not in ("pretrained", "model")}
    key = (backend, pretrained, tuple(sorted((k, str(v)) for k, v in identity.items())))
    full_name = str(data.get("model_name") or pretrained)
    return key, {
        "name": short_name(full_name),
        "full_name": full_name,
        "backend": backend,
        "args": identity,
        "base": short_name(str(base)) if base else None,
        "base_full": str(base) if base else None,
        "quantization": _quantization(args),
        "parameters": parameters,
    }


def _date(data: dict) -> float | None:
    value = data.get("date")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def stable_name(row: ModelRow) -> str:
    """A row's name from the model alone, never from the other rows: the short name, the backend unless it
    is so8t's own, and the model_args that change what is measured (`quickstart [hf] dtype=float32`)."""
    name = short_name(row.full_name)
    if row.backend != "so8t":
        name += f" [{row.backend}]"
    if row.args:
        name += " " + ",".join(f"{k}={v}" for k, v in sorted(row.args.items()))
    return name


def _unique_names(rows: list[ModelRow]) -> None:
    """Every row named by stable_name; two different models with the same short path (runs/a/model and
    runs/b/model) are told apart by their full names instead."""
    for row in rows:
        row.name = stable_name(row)
    groups: dict[str, list[ModelRow]] = {}
    for row in rows:
        groups.setdefault(row.name, []).append(row)
    for group in groups.values():
        if len(group) > 1:
            for row in group:
                row.name = stable_name(row).replace(short_name(row.full_name), row.full_name, 1)


def _task_runs(data: dict, path: Path, tasks: Sequence[str] | None) -> list[TaskRun]:
    """Every task and group of one file, groups with their members; only `tasks` (and their members)."""
    documents = documents_of(data, path)
    groups = group_of(data)
    date = _date(data) or 0.0
    runs = []
    for task in data.get("results", {}):
        members = [t for t in subtasks(data, task) if t != task]
        wanted = tasks is None or task in tasks or groups.get(task) in tasks
        if wanted:
            runs.append(TaskRun(task, data, path, date, documents.get(task), members))
    return runs


def _run_key(run: TaskRun, digest: str | None) -> RunKey:
    data, task = run.data, run.task
    if not run.is_group:
        return RunKey(
            task, task_version(data, task), task_n_shot(data, task), task_documents(data, task), digest
        )
    shots = {task_n_shot(data, t) for t in run.members}
    counts = [task_documents(data, t) for t in run.members]
    total = None if None in counts else sum(c for c in counts if c is not None)
    return RunKey(task, task_version(data, task), shots.pop() if len(shots) == 1 else None, total, digest)


def _assign_keys(runs: list[TaskRun]) -> None:
    """Key every run; document hashes split a column only where two runs with hashes disagree."""
    base: dict[RunKey, list[TaskRun]] = {}
    for run in runs:
        base.setdefault(_run_key(run, None), []).append(run)
    digests: dict[int, str | None] = {}
    for run in runs:
        if run.is_group:
            parts = [_digest(r.documents) for r in runs if r.source == run.source and r.task in run.members]
            known = [part for part in parts if part is not None]
            whole = len(known) == len(parts) and bool(parts)
            digests[id(run)] = hashlib.sha256("".join(known).encode()).hexdigest() if whole else None
        else:
            digests[id(run)] = _digest(run.documents)
    for key, members in base.items():
        seen = {digests[id(r)] for r in members} - {None}
        for run in members:
            run.key = _run_key(run, digests[id(run)]) if len(seen) > 1 else key


@dataclass
class Leaderboard:
    title: str
    rows: list[ModelRow]
    apart: list[ModelRow]
    keys: list[RunKey]
    ranked: list[RunKey]
    headlines: dict[str, Headline]
    members: dict[RunKey, list[RunKey]]
    notes: list[str]
    generated: str
    z: float
    # (row, column) -> its unit score, computed once (a bootstrap when the file has no stderr)
    units: dict[tuple[int, RunKey], Any] = field(default_factory=dict)
    # why the ranked columns depend on the models shown (empty when every one was declared in full)
    inferred: list[str] = field(default_factory=list)

    @property
    def all_rows(self) -> list[ModelRow]:
        return self.rows + self.apart


def read_rows(inputs: Sequence[str], tasks: Sequence[str] | None, notes: list[str]) -> list[ModelRow]:
    """Model rows from results files, each run under its column key (the newest of identical runs)."""
    selection = expand_inputs(inputs)
    notes += selection.notes()
    rows: dict[tuple, ModelRow] = {}
    all_runs: list[tuple[ModelRow, TaskRun]] = []
    for path in selection.files:
        data = load_results(path)  # UserError naming the file when it is not lm-eval results
        key, fields_ = _describe_model(data, path)
        row = rows.setdefault(key, ModelRow(**fields_))
        row.sources.append(str(path))
        date = _date(data)
        if date is not None:
            row.date = max(row.date or date, date)
        all_runs += [(row, run) for run in _task_runs(data, path, tasks)]
    _assign_keys([run for _, run in all_runs])
    for row, run in all_runs:
        assert run.key is not None
        previous = row.runs.get(run.key)
        if previous is not None:
            newer, older = (run, previous) if run.date >= previous.date else (previous, run)
            notes.append(
                f"{row.full_name} [{row.backend}]: {run.task} ({run.key.label}) is in {older.source} and "
                f"{newer.source}: the newest is shown."
            )
            run = newer
        row.runs[run.key] = run
    board_rows = list(rows.values())
    _unique_names(board_rows)
    return board_rows


def is_member(key: RunKey, group: RunKey, rows: list[ModelRow]) -> bool:
    """True when `key` is a subtask run inside some model's run of `group`."""
    for row in rows:
        run = row.runs.get(group)
        if run is not None and key.task in run.members and row.runs.get(key) is not None:
            if row.runs[key].source == run.source:
                return True
    return False


def ordered_keys(rows: list[ModelRow]) -> list[RunKey]:
    """Columns in first-seen task order, a task's runs by n-shot then documents."""
    order: list[str] = []
    keys: set[RunKey] = set()
    for row in rows:
        for key in row.runs:
            if key.task not in order:
                order.append(key.task)
            keys.add(key)
    return sorted(
        keys,
        key=lambda k: (order.index(k.task), k.n_shot or 0, k.documents or 0, k.version or "", k.digest or ""),
    )


def metrics_of(board: Leaderboard, key: RunKey) -> list[tuple[str, str]]:
    """Every (metric, filter) any model has for a column, in file order."""
    seen: dict[tuple[str, str], None] = {}
    for row in board.all_rows:
        run = row.runs.get(key)
        if run is not None:
            for m in iter_metrics(run.data):
                if m.task == key.task:
                    seen[(m.metric, m.filter)] = None
    return list(seen)
