"""Training checkpoints in a run directory: their names, which are complete, the last one to resume from, and
the best one (the rule evaluation and consolidation use when given a run directory).
"""

from __future__ import annotations

import json
import math
import os
import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from so8t.layout import (
    CHECKPOINT_PREFIX,
    CONSOLIDATION_INPUTS,
    STATE_FILE,
    TRAINER_STATE,
    RunDir,
)
from so8t.layout.atomic import recover_replaced, remove_staging_leftovers
from so8t.layout.so8t_json import CHECKPOINT_FORMAT, SO8T_JSON, so8t_format

_CHECKPOINT_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")


def checkpoint_name(step: int) -> str:
    """`checkpoint-N`, Trainer's name for the checkpoint of step N."""
    return f"{CHECKPOINT_PREFIX}-{step}"


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """N for a folder named checkpoint-N, else None."""
    match = _CHECKPOINT_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def checkpoint_dirs(folder: str | os.PathLike) -> list[Path]:
    """The checkpoint-N folders directly in `folder`, by step (their contents unchecked)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=checkpoint_step)


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """A checkpoint folder with everything resume and consolidation read (saves are atomic renames)."""
    return all((Path(path) / name).is_file() for name in (SO8T_JSON, STATE_FILE, TRAINER_STATE))


def is_consolidation_input(name: str) -> bool:
    """Whether a checkpoint file of this name is read by consolidation (CONSOLIDATION_INPUTS)."""
    return any(fnmatch(name, pattern) for pattern in CONSOLIDATION_INPUTS)


def complete_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """The complete checkpoint-N folders in `folder`, by step."""
    return [path for path in checkpoint_dirs(folder) if is_complete_checkpoint(path)]


def last_complete_checkpoint(checkpoint_root: str | os.PathLike) -> Path | None:
    """The highest-step complete checkpoint-N in the folder, after undoing what a crashed save left: a
    replaced checkpoint moved aside goes back (recover_replaced) and staging folders are removed."""
    if not Path(checkpoint_root).is_dir():
        return None
    recover_replaced(checkpoint_root)
    remove_staging_leftovers(checkpoint_root)
    found = complete_checkpoints(checkpoint_root)
    return found[-1] if found else None


def run_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The so8t checkpoints of a run directory (in checkpoints/, or the folder itself when it is Trainer's
    output folder), by step: checkpoint-N folders whose so8t.json has the checkpoint format."""
    run_dir = Path(run_dir)
    found = [
        path
        for parent in (RunDir(run_dir).checkpoints, run_dir)
        for path in checkpoint_dirs(parent)
        if so8t_format(path) == CHECKPOINT_FORMAT
    ]
    return sorted(found, key=checkpoint_step)


def read_trainer_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Trainer's trainer_state.json of a checkpoint ({} when it has none)."""
    path = Path(checkpoint) / TRAINER_STATE
    return json.loads(path.read_text()) if path.is_file() else {}


def log_history(run_dir: str | os.PathLike) -> list[dict]:
    """Trainer's log history of a run: the one in its latest checkpoint's trainer_state.json."""
    run_dir = Path(run_dir)
    final = run_dir / TRAINER_STATE
    states = [p for p in checkpoint_dirs(RunDir(run_dir).checkpoints) if (p / TRAINER_STATE).is_file()]
    source = run_dir if final.is_file() else (states[-1] if states else None)
    return read_trainer_state(source).get("log_history", []) if source else []


# ----------------------------------------------------------------------------- the best checkpoint

# The metric Trainer selects the best checkpoint on (TrainingArguments.metric_for_best_model), lower is
# better; Trainer logs it with the `eval_` prefix.
BEST_METRIC = "task_loss"
BEST_METRIC_GREATER_IS_BETTER = False
BEST_METRIC_KEY = f"eval_{BEST_METRIC}"
BEST_CHECKPOINT_RULE = (
    "the checkpoint with the lowest validation task loss (eval_task_loss: the LM loss plus the weighted "
    "safety loss, without PET, whose weight grows with the step); the last one when the run does not validate"
)


def best_checkpoint(checkpoints: list[Path]) -> Path:
    """The best of `checkpoints` (one run's, sorted by step, not empty) by BEST_CHECKPOINT_RULE.

    Trainer applies the rule while it trains (metric_for_best_model=BEST_METRIC) and records its choice as
    `best_model_checkpoint` in trainer_state.json; that record is used when it names one of `checkpoints`.
    Without it the rule is applied here to the latest checkpoint's log history, exactly as Trainer does:
    the lowest BEST_METRIC_KEY among the evaluations that have a checkpoint, a tie going to the earlier
    step (Trainer replaces its best only on a strictly lower value). No evaluation: the last checkpoint.
    """
    latest = checkpoints[-1]
    state = read_trainer_state(latest)
    by_step = {checkpoint_step(path): path for path in checkpoints}
    recorded = state.get("best_model_checkpoint")
    if recorded and checkpoint_step(recorded) in by_step:
        return by_step[checkpoint_step(recorded)]
    step = best_evaluated_step(state.get("log_history", []), set(by_step))
    return by_step[step] if step is not None else latest


def best_evaluated_step(history: list[dict], saved_steps: set[int]) -> int | None:
    """The step among `saved_steps` whose finite BEST_METRIC_KEY in a log history is lowest, a tie going to
    the earlier step (None when none was evaluated): BEST_CHECKPOINT_RULE, also while training rotates."""
    scored = [
        (float(entry[BEST_METRIC_KEY]), int(entry["step"]))
        for entry in history
        if BEST_METRIC_KEY in entry and "step" in entry and int(entry["step"]) in saved_steps
    ]
    scored = [(value, step) for value, step in scored if math.isfinite(value)]
    return min(scored)[1] if scored else None
