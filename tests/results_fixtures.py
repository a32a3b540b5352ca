"""The real results fixtures (tests/fixtures/results, made by its regenerate.py): lm-eval runs of the project's
tiny models with their per-document samples, addressed by run name."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "results"


def run_file(name: str) -> Path:
    """The results file of one fixture run (an lm-eval output folder holding one dated results file)."""
    (found,) = sorted((FIXTURES / name).glob("*_*.json"))
    return found


def run_data(name: str) -> dict:
    return json.loads(run_file(name).read_text(encoding="utf-8"))


def copy_without_samples(name: str, folder: Path, edit=None) -> Path:
    """The run's results file copied alone into `folder` (so it has no samples), optionally edited first."""
    data = run_data(name)
    if edit is not None:
        edit(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def copy_with_samples(name: str, folder: Path, edit=None) -> Path:
    """The run's folder copied (results file and samples, same id), the results file optionally edited."""
    import shutil

    target = folder / name
    shutil.copytree(FIXTURES / name, target)
    (path,) = sorted(target.glob("*_*.json"))
    if edit is not None:
        data = json.loads(path.read_text(encoding="utf-8"))
        edit(data)
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def documents(name: str, task: str) -> int:
    """How many documents the fixture run scored for `task` (read, so a regenerated fixture needs no edit)."""
    from so8t.results.results_file import task_documents

    count = task_documents(run_data(name), task)
    assert count is not None
    return count


def version(name: str, task: str) -> str | None:
    from so8t.results.results_file import task_version

    return task_version(run_data(name), task)


def column(name: str, task: str) -> str:
    """The board's label of the fixture run's column: `v<version> · <n>-shot · <documents> docs`."""
    from so8t.results.results_file import task_n_shot

    return f"v{version(name, task)} · {task_n_shot(run_data(name), task)}-shot · {documents(name, task)} docs"
