"""The results fixtures are what tests/fixtures/results/regenerate.py writes from today's code: of today's task
versions and documents, and the recipe's own task names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _regenerate():
    spec = importlib.util.spec_from_file_location("regenerate", REPO / "tests/fixtures/results/regenerate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tiny_gpt2_fixture_holds_the_task_its_recipe_defines(monkeypatch):
    monkeypatch.chdir(REPO)
    assert not [p for p in _regenerate().stale_fixtures() if "real_hf_tiny_gpt2" in p]


def test_every_fixture_is_of_todays_tasks(monkeypatch):
    monkeypatch.chdir(REPO)
    assert _regenerate().stale_fixtures() == []
