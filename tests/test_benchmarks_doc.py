"""BENCHMARKS.md cites only commands that exist: benchmark scripts with the flags it passes them, and configs
that are in the tree; every ablation config is cited by a row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
SCRIPT_COMMANDS = re.findall(r"python (benchmarks/\S+\.py)([^`\n#]*)", TEXT)
ABLATIONS = sorted(p.name for p in (ROOT / "configs" / "ablations").glob("*.yaml"))


def test_the_page_has_benchmark_commands():
    assert {script for script, _ in SCRIPT_COMMANDS} >= {
        "benchmarks/bench_validate.py",
        "benchmarks/bench_train_throughput.py",
        "benchmarks/bench_train_memory.py",
        "benchmarks/bench_eval_backend.py",
    }


@pytest.mark.parametrize(("script", "arguments"), SCRIPT_COMMANDS)
def test_each_benchmark_command_names_a_script_and_flags_it_has(script, arguments):
    source = (ROOT / script).read_text(encoding="utf-8")
    for flag in re.findall(r"--[a-z][a-z0-9-]*", arguments):
        assert f'"{flag}"' in source, f"{script} has no {flag} option"


def test_each_config_the_page_runs_exists():
    named = set(re.findall(r"so8t run (configs/[\w./-]+\.yaml)", TEXT)) - {"configs/ablations/NAME.yaml"}
    named |= set(re.findall(r"`(configs/[\w./-]+\.yaml)`", TEXT))
    assert named and all((ROOT / path).is_file() for path in named), named


def test_every_ablation_config_is_cited_by_a_row_and_every_cited_one_exists():
    rows = "\n".join(line for line in TEXT.splitlines() if line.startswith("|"))
    cited = set(re.findall(r"`(?:configs/ablations/)?([\w.-]+\.yaml)`", rows)) - {"quickstart.yaml"}
    assert cited == set(ABLATIONS)
