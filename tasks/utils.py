"""Python hooks for the so8t lm-eval tasks: what the YAML files cannot say.

Prompt text comes from so8t.data.templates and scoring from so8t.lmeval.scoring, so training,
evaluation and predict share one implementation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from so8t.data.templates import DECISION_CHOICES, gsm8k_prompt, safety_prompt
from so8t.errors import DataError
from so8t.layout import GSM8K_LOCAL_TASK, LOCAL_TASKS, SAFETY_LOCAL_TASK
from so8t.lmeval import scoring

# ----------------------------------------------------------------------------- data


def local_data_path(task: str, metadata: dict[str, Any]) -> Path:
    """The JSONL file a local task reads: `--metadata '{"data_files": PATH}'` (or a {task: PATH} mapping),
    else the task's environment variable. Relative paths are taken from the working directory."""
    given = metadata.get("data_files")
    if isinstance(given, dict):
        given = given.get(task)
    if isinstance(given, (list, tuple)):
        if len(given) != 1:
            raise DataError(f"{task}: data_files names {len(given)} files; give exactly one JSONL path.")
        given = given[0]
    env_name = LOCAL_TASKS[task].env_var
    source = "--metadata data_files"
    if not given:
        given, source = os.environ.get(env_name), f"${env_name}"
    if not given:
        raise DataError(
            f'{task} needs a local JSONL file: pass --metadata \'{{"data_files": "PATH"}}\' '
            f'(or {{"data_files": {{"{task}": "PATH"}}}} when several local tasks run together), '
            f"or set {env_name}=PATH."
        )
    path = Path(str(given)).expanduser()
    if not path.is_file():
        raise DataError(
            f"{task}: {source} names {path.resolve()}, which is not a file; give an existing JSONL path."
        )
    return path


def _dataset(rows: list[dict[str, Any]]):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


# what one record of each data format holds, for the message about an empty file
RECORD_KEYS = {"gsm8k": '{"question", "answer"}', "safety": '{"prompt", "decision"}'}


def read_local(task: str, path: Path, reader: Callable[[Path], list], data_format: str) -> list:
    """The records of a local task's file; DataError naming the file when it cannot be read or holds none."""
    try:
        records = reader(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else (exc.strerror or str(exc))
        raise DataError(
            f"{task}: cannot read {path.resolve()} ({reason}); give a readable UTF-8 JSONL file."
        ) from exc
    if not records:
        raise DataError(
            f"{task}: {path.resolve()} holds no records; give a JSONL file with one record per line "
            f"({RECORD_KEYS[data_format]})."
        )
    return records


def load_gsm8k_local(**metadata: Any):
    """custom_dataset of so8t_gsm8k_local: a GSM8K-format JSONL file as the test split."""
    from so8t.data.gsm8k import read_gsm8k

    path = local_data_path(GSM8K_LOCAL_TASK, metadata)
    examples = read_local(GSM8K_LOCAL_TASK, path, read_gsm8k, "gsm8k")
    return _dataset([{"question": e.question, "answer": e.answer} for e in examples])


def _safety_rows(path: Path, task: str) -> list[dict[str, Any]]:
    from so8t.data.safety import read_safety

    return [
        {"prompt": e.prompt, "decision": e.decision, "category": e.category or ""}
        for e in read_local(task, path, read_safety, "safety")
    ]


def load_safety_bundled(**metadata: Any):
    """custom_dataset of so8t_safety: the bundled held-out safety split."""
    from so8t.data.safety import bundled_safety_path

    path = bundled_safety_path("test")
    if not path.is_file():
        raise DataError(f"so8t_safety: the bundled test split {path} is missing; reinstall so8t.")
    return _dataset(_safety_rows(path, "so8t_safety"))


def load_safety_local(**metadata: Any):
    """custom_dataset of so8t_safety_local: a safety-format JSONL file as the test split."""
    return _dataset(_safety_rows(local_data_path(SAFETY_LOCAL_TASK, metadata), SAFETY_LOCAL_TASK))


# ----------------------------------------------------------------------------- GSM8K


def gsm8k_doc_to_text(doc: dict) -> str:
    return gsm8k_prompt(doc["question"])


def numeric_match(references: list[str], predictions: list[str], **kwargs: Any) -> float:
    """Numeric equivalence of the completion's answer and the gold answer (so8t.data.gsm8k parsing)."""
    return scoring.gsm8k_numeric_match(predictions[0], references[0])


# ----------------------------------------------------------------------------- safety


def process_safety_docs(dataset):
    """Mark every doc as a decision request, so the so8t backend can answer it with head B."""
    return dataset.map(lambda _: {"so8t_decision": True})


def safety_doc_to_text(doc: dict) -> str:
    return safety_prompt(doc["prompt"])


def safety_doc_to_choice(doc: dict) -> list[str]:
    return list(DECISION_CHOICES)


def safety_doc_to_target(doc: dict) -> int:
    return scoring.decision_index(doc["decision"])


def process_safety_results(doc: dict, results: list[tuple[float, bool]]) -> dict[str, Any]:
    """Per-doc values of the safety metrics. The decision is the fail-closed argmax of the per-choice scores
    (non-finite -> REFUSE and counted in non_finite_decisions, ties -> the stricter class), for the so8t
    backend's head-B scores and for any other backend's log-likelihoods alike."""
    return scoring.safety_doc_metrics_from_scores(safety_doc_to_target(doc), [score for score, _ in results])


# aggregations named in the task YAML; each carries the standard error so8t reports for it
macro_f1 = scoring.macro_f1
ratio = scoring.ratio
count = scoring.count


def _teach_lm_eval_so8t_stderrs() -> None:
    """The startup hook patches lm-eval's stderr lookup when lm-eval loads; the tasks repeat it (idempotent),
    so their standard errors are reported with the hook switched off (SO8T_LM_EVAL_HOOK=0) too."""
    import lm_eval.api.metrics

    from so8t.lmeval.plugin import patch_stderr_lookup

    patch_stderr_lookup(lm_eval.api.metrics)


_teach_lm_eval_so8t_stderrs()
