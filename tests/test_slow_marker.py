"""`-m "not slow"` is for local runs only: CI and tox run every test, slow ones included."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_tox_and_the_default_options_deselect_nothing():
    tomllib = pytest.importorskip("tomllib")
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]
    assert "slow" in " ".join(options["ini_options"]["markers"])
    assert "-m" not in options["ini_options"]["addopts"].split()
    for path in (ROOT / ".ci" / "run", ROOT / "tox.ini"):
        text = path.read_text(encoding="utf-8")
        assert "python -m pytest" in text and "not slow" not in text and " -m slow" not in text, path


def test_the_readme_shows_the_fast_loop():
    assert 'python -m pytest -m "not slow"' in (ROOT / "README.md").read_text(encoding="utf-8")
