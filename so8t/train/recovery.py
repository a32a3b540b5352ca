"""What a stopped training says and does to be continued: the command after a divergence, the emergency save
after running out of memory."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.layout import RunDir

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig


def diverged_message(exc: Exception, cfg: RunConfig, output_dir: Path, relaunch: Sequence[str] | None) -> str:
    """The stop's own words, the last finite checkpoint and the exact command that continues from it with
    lower learning rates: ten times lower, and no higher than the defaults, so an absurd rate does not take
    several tries (a resumed run may change them; so8t.config.identity)."""
    from so8t.train.resume_point import judged_checkpoints

    sound, exploded = judged_checkpoints(RunDir(output_dir).checkpoints)
    last = sound[-1] if sound else None
    where = (
        f"The last checkpoint, {last}, is finite (no non-finite checkpoint is ever written); the run resumes "
        "from it."
        if last is not None
        else "No sound checkpoint was written before it; the run starts again from the beginning."
    )
    if exploded:
        names = ", ".join(f"{path.name} ({why})" for path, why in exploded.items())
        where += f" Exploded checkpoints are never resumed from: {names}."
    lower = {
        f"train.{key}": min(getattr(cfg.train, key) / 10, type(cfg.train).model_fields[key].default)
        for key in ("learning_rate", "safety_learning_rate")
    }
    command = _without_settings(list(relaunch or ["so8t", "train", "CONFIG"]), set(lower))
    command += [part for key, value in lower.items() for part in ("--set", f"{key}={value:g}")]
    return (
        f"{exc} {where} Continue with lower learning rates (or use precision: fp32 or bf16 instead of fp16, "
        f"or check the data):\n  {shlex.join(command)}"
    )


def _without_settings(command: list[str], keys: set[str]) -> list[str]:
    """`command` without its `--set KEY=...` options for `keys` (the new values replace them)."""
    out: list[str] = []
    skip = False
    for index, part in enumerate(command):
        if skip:
            skip = False
            continue
        following = command[index + 1] if index + 1 < len(command) else ""
        if part == "--set" and following.split("=", 1)[0] in keys:
            skip = True
            continue
        if part.startswith("--set=") and part[len("--set=") :].split("=", 1)[0] in keys:
            continue
        out.append(part)
    return out


def after_out_of_memory(trainer: Any) -> str:
    """Save the step reached, in one process; under DDP write nothing: the other ranks are inside this step's
    collectives (the backward's gradient all-reduce), so any save that agrees with them would wait forever,
    and this rank's exit stops them instead."""
    from so8t.train.distributed import world_size

    if world_size() > 1:
        return (
            "No emergency checkpoint was written (the other processes are inside this step's collectives); "
            "the run resumes from its last checkpoint."
        )
    saved = trainer.save_emergency_checkpoint()
    return f"An emergency checkpoint was written to {saved}; the run resumes from it."
