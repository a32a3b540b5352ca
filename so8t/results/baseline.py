"""Writing a baseline on purpose (`so8t gate RESULTS --update-baseline FILE`).

A baseline stays an lm-eval results file, so any reader takes it. One extra top-level key, `so8t_baseline`,
records where it came from (source paths and sha256, evaluation date, model, git commit) and carries the
per-document values of every task (`documents`), so later gates compare document by document without the
samples files (see so8t.results.documents).
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from so8t.errors import UserError
from so8t.layout.atomic import atomic_write_text
from so8t.results.documents import documents_of, embeddable
from so8t.results.inputs import expand_inputs
from so8t.results.results_file import BASELINE_KEY, as_number, iter_metrics, load_results, merge_results


def _git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def model_description(data: dict) -> dict[str, Any]:
    """Backend, model name and model_args of a results file (lm-eval's `config` and `model_name`)."""
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    return {
        "backend": config.get("model"),
        "model_name": data.get("model_name"),
        "model_args": config.get("model_args"),
    }


def write_baseline(sources: Sequence[str | Path], out: str | Path) -> tuple[Path, list[str]]:
    """Write a new baseline from results files (paths, folders or globs); returns it and notes for the user.

    Infinite or non-numeric metrics are refused: a baseline that cannot be compared with would fail every
    later gate. A NaN metric is undefined rather than wrong (a precision with no document decided that class,
    say): it is left out with a note, so a rule on it fails later as missing from the baseline. A task without
    per-document values is noted: gates against it use the independent formula.
    """
    files = expand_inputs(sources).files
    loaded = [(str(path), load_results(path)) for path in files]
    data = dict(merge_results(loaded))
    data.pop(BASELINE_KEY, None)
    metrics = list(iter_metrics(data))
    undefined = [m for m in metrics if _is_nan(m.value)]
    bad = [
        f"{m.task} {m.key} {as_number(m.value)[1]}"
        for m in metrics
        if not _is_nan(m.value) and as_number(m.value)[0] is None
    ]
    if bad or len(undefined) == len(metrics):
        raise UserError(
            f"Refusing to write a baseline from {', '.join(map(str, files))}: "
            + "; ".join(bad or [f"{m.task} {m.key} is NaN" for m in undefined] or ["no metrics"])
            + ". Fix the evaluation first; a baseline must hold finite numbers."
        )
    for m in undefined:
        data["results"][m.task].pop(m.key, None)
        data["results"][m.task].pop(f"{m.metric}_stderr,{m.filter}", None)
    notes = (
        [
            "left out, undefined on these results (NaN, e.g. a ratio with an empty denominator): "
            + ", ".join(f"{m.task} {m.key}" for m in undefined)
            + "; a rule on one of them fails against this baseline as missing from it"
        ]
        if undefined
        else []
    )
    documents = {}
    for path, results in loaded:
        documents.update(documents_of(results, path))
    tasks = [t for t in data.get("configs", {}) if t in data["results"]] or sorted(data["results"])
    missing = [t for t in tasks if t not in documents]
    notes += (
        [
            f"no per-document samples for {', '.join(missing)}: gates against this baseline compare those "
            "tasks with the independent formula (evaluate with samples: so8t eval logs them by default, "
            "lm_eval needs --log_samples)"
        ]
        if missing
        else []
    )
    evaluated = data.get("date")
    data[BASELINE_KEY] = {
        "sources": [str(p.resolve()) for p in files],
        "sources_sha256": {str(p.resolve()): hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "evaluated_at": (
            datetime.fromtimestamp(evaluated, timezone.utc).isoformat(timespec="seconds")
            if isinstance(evaluated, (int, float))
            else evaluated
        ),
        "model": model_description(data),
        "git_commit": _git_commit(Path.cwd()),
        "results_git_hash": data.get("git_hash"),
        "tasks": sorted(data["results"]),
        "documents": DOCUMENTS_PLACEHOLDER,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, _dumps(_finite(data), embeddable(documents)))
    return out, notes


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


DOCUMENTS_PLACEHOLDER = "<so8t per-document values>"


def _finite(value: Any) -> Any:
    """A copy for strict JSON: NaN and infinities (an undefined bootstrap stderr, say) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _dumps(data: dict, documents: dict[str, list[dict]]) -> str:
    """The baseline as indented JSON, with one line per document so the file stays readable in a diff."""
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    blocks = []
    for task, entries in documents.items():
        lines = ",\n".join("        " + json.dumps(e, ensure_ascii=False, allow_nan=False) for e in entries)
        blocks.append(
            f"      {json.dumps(task)}: [\n{lines}\n      ]" if entries else f"      {json.dumps(task)}: []"
        )
    rendered = "{\n" + ",\n".join(blocks) + "\n    }" if blocks else "{}"
    return text.replace(json.dumps(DOCUMENTS_PLACEHOLDER), rendered, 1) + "\n"
