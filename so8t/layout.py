"""The file contract of run directories, training checkpoints and consolidated folders, defined once.

Every name and format below, checkpoint discovery and the best-checkpoint rule live here (so8t.json's record
in so8t.so8t_json, atomic writes in so8t.atomic, both re-exported); training, consolidation, the lm-eval
backend, predict, the pipeline and the report import them, and a test fails when one of these literals
appears anywhere else in the package.
Nothing here imports torch or transformers, so the torch-free config checks (`so8t validate`) can use it.

    runs/<name>/                          a run directory (`so8t run`, `so8t train`)
      config.resolved.yaml                the config as last run (claim_run_dir)
      config_history.jsonl                the run's identity at its start and each accepted change on resume
      run_record.json                     what the consolidated model and the results were made from
      wandb_run_id                        the one W&B run id of this run directory
      data/{gsm8k,safety}_test.jsonl      the held-out split the local lm-eval tasks read (LOCAL_TASKS)
      checkpoints/checkpoint-N/           peft adapter, so8t_state.safetensors, so8t.json (so8t-checkpoint),
                                          tokenizer and Trainer's files (trainer_state.json, optimizer, RNG)
      checkpoints/.staging-checkpoint-N/  a checkpoint being written; renamed to checkpoint-N when complete
      checkpoints/.replaced-checkpoint-N/ an older save of the same step, moved aside while the new one moves in
      consolidated/                       plain HF model + tokenizer + so8t.json (so8t-consolidated) +
                                          so8t_head/so8t_safety_head.safetensors (head B)
      eval/results_<id>.json              lm-eval's results file, named as lm-eval names it
      eval/samples_<task>_<id>.jsonl      its per-document samples (the same <id>)
      eval/gate.md                        the gate's verdict
      samples.jsonl, report.md, report/curves.png
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, NamedTuple

from so8t.atomic import (  # noqa: F401  (re-exported: the run directory's writers import them from here)
    REPLACED_PREFIX,
    STAGING_PREFIX,
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    recover_replaced,
    remove_staging_leftovers,
    replace_directory,
    staging_path,
)
from so8t.errors import UserError
from so8t.so8t_json import (  # noqa: F401  (re-exported: so8t.json's names, defined in so8t.so8t_json)
    CHECKPOINT_FORMAT,
    CONSOLIDATED_FORMAT,
    FOLD_ONTO_ORIGINAL,
    FOLD_ONTO_TRAINED,
    FOLD_TARGETS,
    FORMAT_VERSION,
    FORMATS,
    SO8T_JSON,
    read_checkpoint_info,
    read_consolidated_info,
    read_so8t_json,
    so8t_format,
    so8t_version,
    write_so8t_json,
)

# ----------------------------------------------------------------------------- names and formats

STATE_FILE = "so8t_state.safetensors"
# Head B sits in a subfolder of a consolidated folder: a loader that takes every top-level *.safetensors as the
# model's weights (vLLM's default loader, when transformers saved the model without an index file) would
# reject its keys. Folders consolidated before keep it at the top level (LEGACY_SAFETY_HEAD_FILE), still read.
SAFETY_HEAD_FILE = "so8t_head/so8t_safety_head.safetensors"
LEGACY_SAFETY_HEAD_FILE = "so8t_safety_head.safetensors"

# Names other libraries own, restated because this module imports neither (a test pins them to theirs).
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAINER_STATE = "trainer_state.json"
CHECKPOINT_PREFIX = "checkpoint"
HF_CONFIG = "config.json"
# Either of these in a checkpoint means it carries its own tokenizer (else consolidation takes the base's).
TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer_config.json")

# What a consolidation reads from a checkpoint: a change to any of these files changes the consolidated
# model, a change to anything else (Trainer's optimizer and RNG state, a notes.txt) does not.
CONSOLIDATION_INPUTS = (
    SO8T_JSON,
    STATE_FILE,
    ADAPTER_CONFIG,
    "adapter_model.*",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template*",
    "vocab.*",
    "merges.txt",
    "*.model",
)

RESOLVED_CONFIG = "config.resolved.yaml"
CONFIG_HISTORY = "config_history.jsonl"
RUN_RECORD = "run_record.json"
WANDB_RUN_ID = "wandb_run_id"
CHECKPOINTS_DIR = "checkpoints"
CONSOLIDATED_DIR = "consolidated"
DATA_DIR = "data"
EVAL_DIR = "eval"
GATE_MARKDOWN = "gate.md"
SAMPLES_FILE = "samples.jsonl"
# data.validation: {split_from: train}: what was held out (data/validation_split.json)
VALIDATION_SPLIT_RECORD = "validation_split.json"
REPORT_FILE = "report.md"
CURVES_FILE = "report/curves.png"
_CHECKPOINT_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def resolved_config(self) -> Path:
        return self.root / RESOLVED_CONFIG

    @property
    def config_history(self) -> Path:
        return self.root / CONFIG_HISTORY

    @property
    def run_record(self) -> Path:
        return self.root / RUN_RECORD

    @property
    def wandb_run_id(self) -> Path:
        return self.root / WANDB_RUN_ID

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def consolidated(self) -> Path:
        return self.root / CONSOLIDATED_DIR

    @property
    def data(self) -> Path:
        return self.root / DATA_DIR

    @property
    def eval(self) -> Path:
        return self.root / EVAL_DIR

    @property
    def results_output_path(self) -> Path:
        """The output path evaluation is given; lm-eval's naming makes it eval/results_<id>.json."""
        return self.eval / RESULTS_OUTPUT_NAME

    def latest_results(self) -> Path | None:
        """The newest eval/results_<id>.json, or None before the first evaluation."""
        return newest_results_file(results_files_in(self.eval))

    @property
    def gate_markdown(self) -> Path:
        return self.eval / GATE_MARKDOWN

    @property
    def samples(self) -> Path:
        return self.root / SAMPLES_FILE

    @property
    def validation_split(self) -> Path:
        return self.data / VALIDATION_SPLIT_RECORD

    @property
    def report(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def curves(self) -> Path:
        return self.root / CURVES_FILE


# ----------------------------------------------------------------------------- lm-eval's output files

# lm-eval's own naming (EvaluationTracker), restated because this module imports no lm_eval; a test pins
# these to the files lm-eval writes and to its helpers (get_results_filenames, get_latest_filename):
#   --output_path DIR       DIR/<model_name_sanitized>/results_<id>.json
#   --output_path NAME.json NAME_<id>.json beside it
# and in both cases samples_<task>_<id>.jsonl in the same folder, with the same <id> (an ISO date, ':' as '-').
# An undated name (results.json) is skipped by lm-eval's helpers, so every results file carries its id.
RESULTS_OUTPUT_NAME = "results.json"
RESULTS_PREFIX = "results_"
SAMPLES_PREFIX = "samples_"
RESULTS_GLOB = "results_*.json"
SAMPLES_GLOB = "samples_*.jsonl"
_DATE_ID = re.compile(r"^\d{4}-\d{2}-\d{2}T[\d.-]+$")


def evaluation_date_id(moment: datetime | None = None) -> str:
    """The id lm-eval gives one evaluation's files: its local start time, ISO format, ':' replaced by '-'."""
    return (moment or datetime.now()).isoformat().replace(":", "-")


def results_file_for(output_path: str | os.PathLike, date_id: str, model_name_sanitized: str) -> Path:
    """Where lm-eval writes the results of `--output_path output_path` (see the naming above)."""
    path = Path(output_path)
    if path.suffix == ".json":
        return path.with_name(f"{path.stem}_{date_id}.json")
    return path / model_name_sanitized / f"{RESULTS_PREFIX}{date_id}.json"


def samples_file_for(results_file: str | os.PathLike, task: str, date_id: str) -> Path:
    """The samples file of `task` beside a results file, as lm-eval names it."""
    return Path(results_file).parent / f"{SAMPLES_PREFIX}{task}_{date_id}.jsonl"


def date_id_of(path: str | os.PathLike) -> str | None:
    """The <id> of a results or samples file name (the text after its last '_'), None for an undated name."""
    stem = Path(path).name.removesuffix(".jsonl").removesuffix(".json")
    _, sep, tail = stem.rpartition("_")
    return tail if sep and _DATE_ID.match(tail) else None


def samples_task_of(path: str | os.PathLike) -> str | None:
    """The task of a samples_<task>_<id>.jsonl file name, None for another name."""
    name = Path(path).name
    if not (name.startswith(SAMPLES_PREFIX) and name.endswith(".jsonl")) or date_id_of(name) is None:
        return None
    return name[len(SAMPLES_PREFIX) :].rpartition("_")[0] or None


def results_files_in(folder: str | os.PathLike) -> list[Path]:
    """The dated results files directly in `folder` (what lm-eval wrote there), oldest first."""
    found = [p for p in Path(folder).glob("*.json") if date_id_of(p) is not None and p.is_file()]
    return sorted(found, key=lambda p: (date_id_of(p) or "", p.name))


def newest_results_file(files: list[Path]) -> Path | None:
    """The most recent of dated results files (ids sort in time order), None when there is none."""
    return max(files, key=lambda p: (date_id_of(p) or "", p.name), default=None)


# ----------------------------------------------------------------------------- local evaluation data


def split_file_name(data_format: str, split: str) -> str:
    """`gsm8k_test.jsonl`: how a split's examples of one format are written into a run's data/ folder."""
    return f"{data_format}_{split}.jsonl"


@dataclass(frozen=True)
class LocalTask:
    """An so8t lm-eval task that reads a JSONL file: its data format and the variable naming the file."""

    data_format: str
    env_var: str

    @property
    def file_name(self) -> str:
        """The file of the run's test split this task reads in `so8t run`."""
        return split_file_name(self.data_format, "test")


GSM8K_LOCAL_TASK = "so8t_gsm8k_local"
SAFETY_LOCAL_TASK = "so8t_safety_local"
LOCAL_TASKS = {
    GSM8K_LOCAL_TASK: LocalTask("gsm8k", "SO8T_GSM8K_DATA"),
    SAFETY_LOCAL_TASK: LocalTask("safety", "SO8T_SAFETY_DATA"),
}
LOCAL_TASK_FORMATS = {task: spec.data_format for task, spec in LOCAL_TASKS.items()}


# ----------------------------------------------------------------------------- head B's file


def safety_head_path(folder: str | os.PathLike) -> Path | None:
    """Head B's file in a consolidated folder: its subfolder, else the top-level name of older folders; None
    when the folder has neither."""
    for name in (SAFETY_HEAD_FILE, LEGACY_SAFETY_HEAD_FILE):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


# ----------------------------------------------------------------------------- the run directory's claim

_UNSET = "<unset>"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b": leaf}: mappings are walked, lists and scalars are leaves."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def config_changes(previous: dict, current: dict) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (previous value, current value)} for every leaf that differs; a missing side is "<unset>"."""
    old, new = _flatten(previous), _flatten(current)
    keys = sorted(set(old) | set(new))
    return {
        k: (old.get(k, _UNSET), new.get(k, _UNSET)) for k in keys if old.get(k, _UNSET) != new.get(k, _UNSET)
    }


def _may_change(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == prefix or key.startswith(prefix + ".") for prefix in allowed)


def _shown(old: Any, new: Any, width: int = 160) -> tuple[str, str]:
    """Both values as JSON, each cut to `width` around where they first differ, so the diff shows that part."""
    texts = [json.dumps(value, ensure_ascii=False, sort_keys=True) for value in (old, new)]
    first = next(
        (i for i, pair in enumerate(zip(*texts, strict=False)) if pair[0] != pair[1]), min(map(len, texts))
    )
    start = max(0, min(first - 40, max(map(len, texts)) - width))
    return tuple(  # type: ignore[return-value]
        ("..." if start else "") + t[start : start + width] + ("..." if len(t) > start + width else "")
        for t in texts
    )


def read_config_history(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a run's config history, oldest first ([] when it has none)."""
    path = RunDir(Path(run_dir)).config_history
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _without_output_dir(config: Any) -> dict:
    config = dict(config or {})
    config.pop("output_dir", None)
    return config


def claim_run_dir(
    run_dir: str | os.PathLike,
    resolved_yaml: str,
    identity: dict[str, Any] | None = None,
    may_change: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
) -> dict[str, tuple[Any, Any]]:
    """Claim `run_dir` for a config; returns the settings it changes in a run already there ({} otherwise).

    `identity` is what makes two configs the same run (the resolved config without output_dir, data named by
    content; default: the resolved YAML without output_dir), compared with the identity the run last
    recorded, so a moved or copied run directory and another spelling of the same paths are still the same
    run. Changes to keys under `may_change` (settings that steer optimisation or bookkeeping) are accepted and
    appended to config_history.jsonl, and config.resolved.yaml becomes the new config; any other change is
    refused with the difference. A setting the recorded run lacks (added to so8t since) is no change when it
    has its default (`defaults`: dotted key -> default): the run was made with what is now the default.
    Claiming with the same run writes nothing. Every write renames a whole
    file, so torchrun ranks claiming at once each succeed.
    """
    run = RunDir(Path(run_dir))
    current = identity if identity is not None else _without_output_dir(_yaml_load(resolved_yaml))
    history = read_config_history(run_dir)
    if history:
        previous: dict | None = history[-1]["identity"]
    elif run.resolved_config.exists():
        # a run recorded before the history existed: its resolved YAML is all there is to compare with
        previous = _without_output_dir(_yaml_load(run.resolved_config.read_text()))
        current = _without_output_dir(_yaml_load(resolved_yaml))
    else:
        previous = None
    changes = {} if previous is None else config_changes(previous, current)
    changes = {
        key: (old, new)
        for key, (old, new) in changes.items()
        if not (old == _UNSET and defaults is not None and key in defaults and new == defaults[key])
    }
    refused = {key: values for key, values in changes.items() if not _may_change(key, may_change)}
    if refused:
        shown = {key: _shown(old, new) for key, (old, new) in refused.items()}
        lines = "\n".join(f"-{key}: {old}\n+{key}: {new}" for key, (old, new) in shown.items())
        allowed = ", ".join(may_change) or "none"
        raise UserError(
            f"{run_dir} holds a run made with a different config, and these changes alter what is trained, so "
            f"it cannot be resumed with them:\n{lines}\nA resumed run may change only optimisation and "
            f"bookkeeping settings ({allowed}). Use another --output-dir, restore the previous values, or "
            f"delete {run_dir} to start over."
        )
    if previous is None or changes or not history:
        found = complete_checkpoints(run.checkpoints)
        entry = {
            "time": _now(),
            "from_step": checkpoint_step(found[-1]) if found else 0,
            "changed": {key: [old, new] for key, (old, new) in changes.items()},
            "identity": identity if identity is not None else current,
        }
        lines = [json.dumps(e, ensure_ascii=False, sort_keys=True) for e in [*history, entry]]
        atomic_write_text(run.config_history, "\n".join(lines) + "\n")
    if previous is None or changes:
        atomic_write_text(run.resolved_config, resolved_yaml)
    return changes


def _yaml_load(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- the run record


def read_run_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What `so8t run` last made in this run directory ({} when nothing, or when the file is unreadable)."""
    path = RunDir(Path(run_dir)).run_record
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_run_record(run_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    return atomic_write_json(RunDir(Path(run_dir)).run_record, record, sort_keys=True)


def checkpoint_digest(checkpoint: str | os.PathLike) -> str:
    """Hash of the files of a checkpoint that consolidation reads (names and contents): equal digests give
    the same consolidated model, wherever the run directory lies."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(
        p for p in Path(checkpoint).iterdir() if p.is_file() and is_consolidation_input(p.name)
    ):
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- the W&B run id


def wandb_run_id(run_dir: str | os.PathLike) -> str:
    """The W&B run id of this run directory, made on first use: every resume, rank and the evaluation log
    into the one run. The first writer wins (a hard link cannot replace a file), the others read its id.

    A copy is a new W&B run: the file records the folder its id belongs to, and a run directory found
    elsewhere while that folder still holds the same id takes an id of its own, derived from both (so every
    rank derives the same). A moved run directory (nothing left at the old place) keeps its id.
    """
    import hashlib
    import uuid

    run = Path(run_dir).resolve()
    path = RunDir(run).wandb_run_id
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{uuid.uuid4().hex[:16]}\n{run}\n")
        os.chmod(tmp, 0o644)
        with suppress(FileExistsError):
            os.link(tmp, path)
        os.unlink(tmp)
    run_id, home = _wandb_id_record(path)
    if home != str(run):
        if home and _wandb_id_record(RunDir(Path(home)).wandb_run_id)[0] == run_id:
            run_id = hashlib.sha256(f"{run_id}\0{run}".encode()).hexdigest()[:16]
        atomic_write_text(path, f"{run_id}\n{run}\n")
    return run_id


def _wandb_id_record(path: Path) -> tuple[str, str]:
    """(run id, the run directory it belongs to; "" when unrecorded or unreadable) of a wandb_run_id file."""
    try:
        run_id, _, home = path.read_text(encoding="utf-8").partition("\n")
    except OSError:
        return "", ""
    return run_id.strip(), home.strip()


# ----------------------------------------------------------------------------- checkpoint discovery


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


# ----------------------------------------------------------------------------- what a user path is

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
