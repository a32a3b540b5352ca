"""The README's "Python API" section, run as written on the tiny SO8T model standing in for runs/quickstart."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Python API"


def python_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    section = text[start : text.index("\n## ", start + len(SECTION))]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, "the Python API section has a python block"
    return block.group(1)


@pytest.mark.slow
def test_the_readme_python_api_runs_as_written(tiny_so8t, tmp_path, monkeypatch):
    _, _, run_dir = tiny_so8t
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "quickstart").symlink_to(run_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(python_block(), "README.md:Python API", "exec"), {})
    decided, answered, batch = printed.getvalue().splitlines()
    assert decided.split()[0] in {"ALLOW", "ESCALATE", "REFUSE"} and "'REFUSE':" in decided
    decision, generated = answered.split()[:2]
    assert generated == str(decision == "ALLOW")
    assert re.fullmatch(r"\['(ALLOW|ESCALATE|REFUSE)', '(ALLOW|ESCALATE|REFUSE)'\]", batch)
