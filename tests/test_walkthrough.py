"""The README's "Your own data" walkthrough, run as written on the example CSV, with the tiny-base flags the
README gives for a CPU trial added to `so8t run`."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from train_fixtures import subprocess_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Your own data, policy and instruct model"


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def walkthrough_commands() -> list[list[str]]:
    """The commands of the section's bash block, split as a shell would."""
    block = re.search(r"```bash\n(.*?)```", _section(), re.S)
    assert block, "the walkthrough has a bash block"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.startswith("so8t ")]


def cpu_trial_flags() -> list[str]:
    """The `--set` flags the section gives for a CPU trial of `so8t run`."""
    prose = " ".join(_section().split())
    found = re.search(r"check the plumbing on a CPU in minutes before the GPU run, add `([^`]+)`", prose)
    assert found, "the walkthrough names the flags of a CPU trial"
    return shlex.split(found.group(1))


def test_the_walkthrough_names_the_example_files_and_every_stage():
    commands = walkthrough_commands()
    assert [c[1] for c in commands] == ["validate", "run", "gate", "eval", "leaderboard", "predict"]
    assert "model.base=embedded:tiny" in cpu_trial_flags()


def test_the_walkthrough_runs_as_written_on_the_tiny_base(tmp_path, tiny_base_dir):
    for folder in ("configs", "examples", "evals"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    outputs = {}
    for command in walkthrough_commands():
        args = command[1:] + (cpu_trial_flags() if command[1] == "run" else [])
        proc = subprocess.run(
            [sys.executable, "-m", "so8t", *args],
            cwd=tmp_path,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=1200,
        )
        outputs[command[1]] = proc
        # the gate may fail the untrained tiny model (exit 1) but must judge it; everything else succeeds
        allowed = (0, 1) if command[1] == "gate" else (0,)
        assert proc.returncode in allowed, (command, proc.stdout[-4000:], proc.stderr[-4000:])
    assert "Data:" in outputs["validate"].stdout
    assert (tmp_path / "gate.md").is_file()
    evaluated = sorted((tmp_path / "eval_out").glob("test-csv_*.json"))
    assert evaluated, "so8t eval wrote its results"
    results = json.loads(evaluated[-1].read_text())
    assert results["n-samples"]["so8t_safety_local"]["effective"] == 8
    assert results.get("chat_template"), "the chat model was evaluated with its chat template"
    assert (tmp_path / "leaderboard" / "leaderboard.md").is_file()
    assert re.search(r"decision: (ALLOW|ESCALATE|REFUSE)", outputs["predict"].stdout)
