"""The configs under configs/: each opens with the command that runs it, validates, and an ablation changes
only the keys its header names, so a BENCHMARKS.md row that cites it measures exactly that change."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from so8t.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml"))
ABLATIONS = [name for name in CONFIGS if name.startswith("configs/ablations/")]
DIFFERS = re.compile(r"^# Differs from configs/quickstart\.yaml in: (.+)$", re.MULTILINE)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value; lists of mappings (data sources) by index, other lists as leaves."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        out = {}
        for index, item in enumerate(value):
            out.update(_flat(item, f"{prefix}{index}."))
        return out
    return {prefix.rstrip("."): value}


def test_there_are_recipes_and_ablations():
    assert "configs/quickstart.yaml" in CONFIGS and len(ABLATIONS) >= 20


@pytest.mark.parametrize("name", CONFIGS)
def test_each_config_opens_with_the_command_that_runs_it_and_an_override(name):
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    assert lines[0] == f"# so8t run {name}"
    assert lines[1].startswith("# Override any key on the command line")
    assert lines[2].startswith(f"#   so8t run {name} --set ")


@pytest.mark.parametrize("name", ABLATIONS)
def test_an_ablation_validates_and_changes_only_the_keys_it_names(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    (named,) = DIFFERS.findall(text)
    ablation = _flat(load_config(ROOT / name).model_dump(mode="json"))
    recipe = _flat(load_config(ROOT / "configs" / "quickstart.yaml").model_dump(mode="json"))
    changed = {key for key in ablation.keys() | recipe.keys() if ablation.get(key) != recipe.get(key)}
    assert changed == {"output_dir", *(key.strip() for key in named.split(","))}
    assert ablation["output_dir"] == f"runs/ablations/{Path(name).stem}"
