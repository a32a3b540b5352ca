"""What a path a user gives is: a consolidated folder, a training checkpoint or a run directory, told apart
without loading anything (evaluation, predict and consolidation all start here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from so8t.errors import UserError
from so8t.layout import (
    ADAPTER_CONFIG,
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIR,
    CONSOLIDATED_DIR,
    HF_CONFIG,
    RunDir,
)
from so8t.layout.checkpoints import best_checkpoint, run_checkpoints
from so8t.layout.so8t_json import CHECKPOINT_FORMAT, CONSOLIDATED_FORMAT, SO8T_JSON, so8t_format

EXPECTED = (
    f"expected a so8t consolidated folder ({SO8T_JSON} format {CONSOLIDATED_FORMAT}), a training checkpoint "
    f"({SO8T_JSON} format {CHECKPOINT_FORMAT}) or a run directory (holding {CONSOLIDATED_DIR}/ or "
    f"{CHECKPOINTS_DIR}/{CHECKPOINT_PREFIX}-N/)"
)


class LocatedModel(NamedTuple):
    """A so8t model found at a user path: what it is, what the user named, and the folder to use (a
    consolidated folder or a training checkpoint)."""

    kind: str  # "consolidated" | "checkpoint" | "run directory"
    source: Path
    target: Path


def describe_folder(folder: Path) -> str:
    """What a folder that is no so8t model looks like, and how to evaluate it instead."""
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if HF_CONFIG in names:
        return f"a plain Hugging Face model ({HF_CONFIG}, no {SO8T_JSON}): evaluate it with --model hf"
    if ADAPTER_CONFIG in names:
        return f"a PEFT adapter without {SO8T_JSON}: evaluate it with --model hf,peft=..."
    if not names:
        return "an empty folder"
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"a folder with {shown}"


def locate_so8t_model(path: str | os.PathLike) -> LocatedModel:
    """Classify a user path without loading anything: a consolidated folder or a checkpoint is used as it
    is; a run directory gives its consolidated/ folder, else its best checkpoint (best_checkpoint)."""
    source = Path(path).expanduser()
    if not source.exists():
        raise UserError(f"pretrained={path}: nothing exists there; {EXPECTED}.")
    if not source.is_dir():
        raise UserError(f"pretrained={path} is a file; {EXPECTED}.")
    fmt = so8t_format(source)
    if fmt == CONSOLIDATED_FORMAT:
        return LocatedModel("consolidated", source, source)
    if fmt == CHECKPOINT_FORMAT:
        return LocatedModel("checkpoint", source, source)
    if fmt is not None:
        raise UserError(f"pretrained={path}: {SO8T_JSON} has format {fmt!r}; {EXPECTED}.")
    run = RunDir(source)
    if so8t_format(run.consolidated) == CONSOLIDATED_FORMAT:
        return LocatedModel("run directory", source, run.consolidated)
    checkpoints = run_checkpoints(source)
    if checkpoints:
        return LocatedModel("run directory", source, best_checkpoint(checkpoints))
    raise UserError(f"pretrained={path} is {describe_folder(source)}; {EXPECTED}.")
