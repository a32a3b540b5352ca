"""The file contract of run directories, training checkpoints and consolidated folders, defined once.

This package holds every name a run directory, checkpoint or consolidated folder uses, one module per
contract; training, consolidation, the lm-eval backend, predict, the pipeline and the report import them, and
a test fails when one of these literals appears anywhere else in the package:

    so8t.layout               the names and formats below, RunDir, lm-eval's results and samples names, the
                              local tasks' data files, head B's file
    so8t.layout.so8t_json     so8t.json: the typed, versioned record of a checkpoint or consolidated folder
    so8t.layout.atomic        atomic writes of files and folders (staging names, recovery after a crash)
    so8t.layout.checkpoints   checkpoint names, discovery, the last complete one and the best-checkpoint rule
    so8t.layout.run_claim     a run directory's claim on its config and the config history
    so8t.layout.run_record    the run record and the run's one W&B id
    so8t.layout.locate        what a user's path is: consolidated folder, checkpoint or run directory

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

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# so8t.json's own module imports nothing from this package, so it can be read during its import
from so8t.layout.so8t_json import SO8T_JSON

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
