"""Every package of the source tree ships: pyproject.toml lists its packages by name, so a new subpackage
left off that list would import from a checkout and be missing from every built wheel."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]


def test_every_package_under_so8t_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "so8t").rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert "so8t.tasks" in listed and listed - found == {"so8t.tasks"}  # tasks/ ships as so8t.tasks
