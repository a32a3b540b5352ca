"""One lm-eval results file: reading it, checking its format, and the facts the gate and leaderboard compare.

Any backend writes the same format (`--model so8t`, `hf`, `vllm`): per task `results[task]["metric,filter"]`
with `metric_stderr,filter` beside it ("N/A" when lm-eval has none), and per task its version, n-shot,
documents (`n-samples`), `higher_is_better` and the task config (with each metric's aggregation). Groups
appear under `results` too, their members under `group_subtasks`. Importable without torch or lm_eval.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from so8t.errors import UserError

BASELINE_KEY = "so8t_baseline"  # extra top-level key of a baseline file; lm-eval readers ignore it
# per-task keys lm-eval writes beside the metrics
NON_METRIC_KEYS = frozenset({"alias", "name", "sample_len", "samples"})
_DEF_NAME = re.compile(r"^\s*def\s+(\w+)\s*\(")


class ResultsFormatError(UserError):
    """A file that exists but is not a readable lm-eval results file."""


def load_results(path: str | Path) -> dict:
    """Read and check one lm-eval results file.

    Raises UserError when the path does not exist, ResultsFormatError (a UserError) when it is not valid
    JSON or not in lm-eval's results format.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"Results file not found: {path}. Pass the JSON file that `lm_eval --output_path` or "
            "`so8t eval --out` wrote (lm-eval names it results_<date>.json), or the folder it is in."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFormatError(
            f"{path} is not readable JSON ({exc}). Re-run the evaluation or point at the results_*.json "
            "file that lm-eval wrote."
        ) from exc
    problem = results_format_problem(data)
    if problem:
        raise ResultsFormatError(
            f"{path} is not an lm-eval results file: {problem}. Expected the JSON written by "
            "`lm_eval --output_path` (keys `results`, `versions`, `higher_is_better`, `config`)."
        )
    return data


def results_format_problem(data: Any) -> str | None:
    """Why `data` is not an lm-eval results dict, or None when it is one."""
    if not isinstance(data, dict):
        return f"the top level is a {type(data).__name__}, not an object"
    results = data.get("results")
    if not isinstance(results, dict):
        return "no `results` object"
    if not results:
        return "`results` is empty"
    groups = data.get("group_subtasks") if isinstance(data.get("group_subtasks"), dict) else {}
    for task, entry in results.items():
        if not isinstance(entry, dict):
            return f"`results.{task}` is a {type(entry).__name__}, not an object"
        if task not in groups and not any(is_metric_key(k) for k in entry):
            return f"`results.{task}` holds no `metric,filter` keys"
    for key in ("higher_is_better", "versions", "n-shot", "n-samples", "configs", "group_subtasks"):
        if key in data and not isinstance(data[key], dict):
            return f"`{key}` is not an object"
    return None


def is_metric_key(key: str) -> bool:
    """True for a `metric,filter` key of a task's results (not a stderr, alias or count)."""
    metric, sep, _ = key.partition(",")
    return bool(sep) and key not in NON_METRIC_KEYS and not metric.endswith("_stderr")


def parse_stderr(value: Any) -> float | None:
    """A usable standard error, or None ("N/A", missing, NaN, negative or not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def as_number(value: Any) -> tuple[float | None, str]:
    """(value, "") for a finite number, else (None, why it cannot be compared)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"is not a number ({value!r})"
    if math.isnan(value):
        return None, "is NaN"
    if math.isinf(value):
        return None, "is infinite"
    return float(value), ""


@dataclass(frozen=True)
class MetricValue:
    """One `metric,filter` entry of a results file, with its stderr (None when lm-eval wrote "N/A")."""

    task: str
    metric: str
    filter: str
    value: Any
    stderr: float | None

    @property
    def key(self) -> str:
        return f"{self.metric},{self.filter}"


def iter_metrics(data: dict) -> Iterator[MetricValue]:
    """Every metric of every task (and group) in an lm-eval results dict, in file order."""
    for task, entry in data.get("results", {}).items():
        if not isinstance(entry, dict):
            continue
        for key, value in entry.items():
            if not is_metric_key(key):
                continue
            metric, _, filter_name = key.partition(",")
            yield MetricValue(
                task, metric, filter_name, value, parse_stderr(entry.get(f"{metric}_stderr,{filter_name}"))
            )


def get_metric(data: dict, task: str, metric: str, filter_name: str) -> MetricValue | None:
    entry = data.get("results", {}).get(task)
    key = f"{metric},{filter_name}"
    if not isinstance(entry, dict) or key not in entry:
        return None
    return MetricValue(
        task, metric, filter_name, entry[key], parse_stderr(entry.get(f"{metric}_stderr,{filter_name}"))
    )


def metric_direction(data: dict, task: str, metric: str) -> bool | None:
    """lm-eval's `higher_is_better[task][metric]`, or None when the file does not say."""
    value = data.get("higher_is_better", {}).get(task, {})
    value = value.get(metric) if isinstance(value, dict) else None
    return value if isinstance(value, bool) else None


# ------------------------------------------------------------------------------- what makes runs comparable


def subtasks(data: dict, task: str) -> list[str]:
    """The leaf tasks a task stands for: itself, or every task below a group (nested groups expanded)."""
    groups = data.get("group_subtasks") if isinstance(data.get("group_subtasks"), dict) else {}
    if task not in groups:
        return [task]
    leaves: list[str] = []
    for member in groups[task] or []:
        leaves += [t for t in subtasks(data, member) if t not in leaves]
    return leaves


def group_of(data: dict) -> dict[str, str]:
    """task -> the top-level group it belongs to (tasks outside any group are absent)."""
    groups = data.get("group_subtasks") if isinstance(data.get("group_subtasks"), dict) else {}
    nested = {m for members in groups.values() for m in members or []}
    return {leaf: group for group in groups if group not in nested for leaf in subtasks(data, group)}


def task_version(data: dict, task: str) -> str | None:
    value = data.get("versions", {}).get(task)
    return None if value is None else str(value)


def task_n_shot(data: dict, task: str) -> int | None:
    value = data.get("n-shot", {}).get(task)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def task_documents(data: dict, task: str) -> int | None:
    """Documents evaluated (lm-eval's n-samples `effective`: after --limit), None when not recorded."""
    value = data.get("n-samples", {}).get(task)
    count = value.get("effective") if isinstance(value, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def recorded_limit(data: dict) -> Any:
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    return config.get("limit")


def callable_name(text: Any) -> str:
    """A metric or aggregation as lm-eval records it: a registered name, or a function's source text."""
    if not isinstance(text, str):
        return str(text)
    found = _DEF_NAME.match(text)
    return found.group(1) if found else text


def recorded_aggregation(data: dict, task: str, metric: str) -> str | None:
    """The aggregation a task's config names for `metric` ("mean", "nanmean" or a function's name)."""
    config = data.get("configs", {}).get(task)
    metric_list = config.get("metric_list") if isinstance(config, dict) else None
    for entry in metric_list or []:
        if isinstance(entry, dict) and callable_name(entry.get("metric")) == metric:
            aggregation = entry.get("aggregation")
            return None if aggregation is None else callable_name(aggregation)
    return None


def merge_results(loaded: Sequence[tuple[str, dict]]) -> dict:
    """Combine several results files (e.g. one per task) into one results dict.

    The same task in two files is ambiguous and raises UserError naming both files.
    """
    if len(loaded) == 1:
        return loaded[0][1]
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for source, data in loaded:
        for task in data["results"]:
            if task in owner:
                raise UserError(
                    f"Task {task!r} appears in both {owner[task]} and {source}; pass one results file per task "
                    "so the gate knows which value to check (a folder gives the newest run only)."
                )
            owner[task] = source
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(merged.get(key, {}), dict):
                merged.setdefault(key, {}).update(value)
            else:
                merged.setdefault(key, value)
    return merged
