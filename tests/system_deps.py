"""System programs some tests need beyond pip (installed by tests/install_system_deps.sh).

Where one is missing a test skips on a developer's machine, but fails under CI (the `CI` environment variable,
which `.ci/run` and hosted CI services set): there a missing program means a broken install step, and a skip
would hide it.
"""

from __future__ import annotations

import os
import shutil

import pytest

INSTALL_HINT = "tests/install_system_deps.sh installs it"


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def system_program(*names: str, package: str) -> str:
    """The path of the first of `names` on PATH; else skip (fail under CI) naming the Debian package."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    reason = f"{' / '.join(names)} is not installed (Debian package `{package}`); {INSTALL_HINT}"
    if under_ci():
        pytest.fail(f"{reason}; under CI a missing system dependency is a failure, not a skip")
    pytest.skip(reason)
