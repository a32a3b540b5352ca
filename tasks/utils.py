"""Python hooks for the so8t lm-eval tasks: what the YAML files cannot say.

Prompt text comes from so8t.data.templates and scoring from so8t.lmeval.scoring, so training,
evaluation and predict share one implementation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from so8t.data.mapping import ColumnMap, RecordMapping, checked_labels
from so8t.data.readers import is_saved_dataset
from so8t.data.records import located, read_records, read_saved_dataset
from so8t.data.templates import (
    DECISION_CHOICES,
    Conversation,
    conversation_messages,
    gsm8k_prompt,
    safety_prompt,
)
from so8t.errors import DataError
from so8t.layout import GSM8K_LOCAL_TASK, LOCAL_TASKS, SAFETY_LOCAL_TASK
from so8t.lmeval import scoring

# ----------------------------------------------------------------------------- data


def local_data_patterns(task: str, metadata: dict[str, Any]) -> tuple[list[str], str]:
    """(the paths or globs a local task reads, where they came from): `--metadata '{"data_files": ...}'` as a
    path, a glob or a list of them (or a {task: ...} mapping), else the task's environment variable."""
    given = metadata.get("data_files")
    if isinstance(given, dict):
        given = given.get(task)
    source = "--metadata data_files"
    env_name = LOCAL_TASKS[task].env_var
    if not given:
        given, source = os.environ.get(env_name), f"${env_name}"
    if not given:
        raise DataError(
            f'{task} needs a local data file: pass --metadata \'{{"data_files": "PATH"}}\' (a path, a glob '
            f'or a list of them; {{"data_files": {{"{task}": "PATH"}}}} when several local tasks run together), '
            f"or set {env_name}=PATH."
        )
    patterns = [str(p) for p in given] if isinstance(given, (list, tuple)) else [str(given)]
    return patterns, source


def local_data_files(task: str, metadata: dict[str, Any], data_format: str) -> list[Path]:
    """The files (or one folder saved by datasets) a local task reads, through the shard guard a run config's
    sources pass: a glob that matches nothing or an empty or bad shard is a DataError naming it. Relative
    paths are taken from the working directory."""
    from so8t.data.shards import check_pattern

    patterns, source = local_data_patterns(task, metadata)
    if len(patterns) == 1 and is_saved_dataset(Path(patterns[0]).expanduser()):
        return [Path(patterns[0]).expanduser()]
    on_bad_record = _on_bad_record(task, metadata)
    mapping = metadata_mapping(task, metadata)
    files: list[Path] = []
    problems: list[str] = []
    for index, pattern in enumerate(patterns):
        key = f"{task}: {source}" + (f"[{index}]" if len(patterns) > 1 else "")
        reports, found = check_pattern(
            pattern, data_format, on_bad_record, key=key, split="test", mapping=mapping
        )
        files += [r.path for r in reports]
        problems += found
    if problems:
        raise DataError(" ".join(problems))
    return files


def _on_bad_record(task: str, metadata: dict[str, Any]) -> str:
    on_bad_record = metadata.get("on_bad_record") or "error"
    if on_bad_record not in ("error", "skip"):
        raise DataError(f'{task}: --metadata on_bad_record is {on_bad_record!r}; use "error" or "skip".')
    return on_bad_record


def _dataset(rows: list[dict[str, Any]]):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


# what one record of each data format holds, for the message about an empty file
RECORD_KEYS = {"gsm8k": '{"question", "answer"}', "safety": '{"prompt", "decision"}'}
METADATA_SKIP_FIX = 'or pass "on_bad_record": "skip" in --metadata to skip bad records (they are counted)'


def metadata_mapping(task: str, metadata: dict[str, Any]) -> RecordMapping:
    """The `columns` and `labels` of --metadata (the same mapping a data source takes in a run config)."""
    from pydantic import ValidationError

    problems = []
    try:
        columns = ColumnMap.model_validate(metadata.get("columns") or {})
    except ValidationError as exc:
        columns = ColumnMap()
        problems += [f"columns.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    try:
        labels = checked_labels(metadata.get("labels"))
    except ValueError as exc:
        labels = None
        problems.append(f"labels: {exc}")
    if problems:
        raise DataError(
            f"{task}: --metadata {'; '.join(problems)}. columns takes {', '.join(ColumnMap.model_fields)}; "
            'labels maps raw labels to ALLOW, ESCALATE or REFUSE, e.g. {"columns": {"request": "text", '
            '"decision": "label"}, "labels": {"safe": "ALLOW", "unsafe": "REFUSE"}}.'
        )
    return RecordMapping(columns, labels, prefix="--metadata ")


def read_local(task: str, path: Path, data_format: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The canonical records of a local task's file through the --metadata mapping; DataError naming the file
    (and the line of a bad record) when it cannot be read or gives none."""
    mapping = metadata_mapping(task, metadata)
    on_bad_record = _on_bad_record(task, metadata)
    try:
        if path.is_dir():
            split = str(metadata.get("split") or "test")
            _, records, _, problems = read_saved_dataset(
                path, split, data_format, on_bad_record, mapping, skip_fix=METADATA_SKIP_FIX
            )
        else:
            records, _, problems = read_records(
                path, data_format, on_bad_record, mapping, skip_fix=METADATA_SKIP_FIX
            )
            problems = [located(path.resolve(), p) for p in problems]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = (
            exc.reason
            if isinstance(exc, UnicodeDecodeError)
            else (getattr(exc, "strerror", None) or str(exc))
        )
        raise DataError(
            f"{task}: cannot read {path.resolve()} ({reason}); give a readable UTF-8 JSONL, CSV or Parquet file."
        ) from exc
    if problems:
        raise DataError(f"{task}: " + " ".join(problems))
    if not records:
        raise DataError(
            f"{task}: {path.resolve()} holds no records; give a file with one record per line or row "
            f"({RECORD_KEYS[data_format]}, or other names mapped with --metadata columns)."
        )
    return records


def load_gsm8k_local(**metadata: Any):
    """custom_dataset of so8t_gsm8k_local: a GSM8K-format file as the test split."""
    files = local_data_files(GSM8K_LOCAL_TASK, metadata, "gsm8k")
    records = [r for path in files for r in read_local(GSM8K_LOCAL_TASK, path, "gsm8k", metadata)]
    return _dataset([{"question": r["question"], "answer": r["answer"]} for r in records])


def _safety_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        {"prompt": r["prompt"], "decision": r["decision"], "category": r.get("category") or ""}
        for r in records
    ]
    if any(
        r.get("system") or r.get("turns") for r in records
    ):  # conversations: ConversationTask renders them
        for row, record in zip(rows, records, strict=True):
            row["system"] = record.get("system") or ""
            row["turns"] = list(record.get("turns") or [])
    return rows


def load_safety_bundled(**metadata: Any):
    """custom_dataset of so8t_safety: the bundled held-out safety split."""
    from so8t.data.safety import bundled_safety_path, read_safety

    path = bundled_safety_path("test")
    if not path.is_file():
        raise DataError(f"so8t_safety: the bundled test split {path} is missing; reinstall so8t.")
    return _dataset(_safety_rows([e.to_record() for e in read_safety(path)]))


def load_safety_local(**metadata: Any):
    """custom_dataset of so8t_safety_local: a safety-format file (through --metadata columns and labels) as
    the test split."""
    files = local_data_files(SAFETY_LOCAL_TASK, metadata, "safety")
    records = [r for path in files for r in read_local(SAFETY_LOCAL_TASK, path, "safety", metadata)]
    return _dataset(_safety_rows(records))


def load_xstest(**metadata: Any):
    """custom_dataset of so8t_xstest: XSTest's prompts (safe -> ALLOW, unsafe -> REFUSE) from the file
    so8t.data.xstest finds; so8t does not ship it."""
    from so8t.data.xstest import read_xstest, require_xstest

    return _dataset(_safety_rows(read_xstest(require_xstest(metadata))))


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


# ----------------------------------------------------------------------------- conversations


def _conversation(doc: dict) -> Conversation:
    turns = tuple((t["role"], t["content"]) for t in doc.get("turns") or ())
    return Conversation(doc.get("system") or None, turns)


def _task_base() -> type:
    from lm_eval.api.task import ConfigurableTask

    return ConfigurableTask


class ConversationTask(_task_base()):  # type: ignore[misc]
    """so8t_safety_local: a document from a `messages` record is rendered under --apply_chat_template as the
    conversation it is ([its own system turn, else --system_instruction], its earlier turns, then the request),
    the messages training renders (so8t.data.templates.conversation_messages); every other document as lm-eval
    renders it."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        # the YAML's `class:` key picks this class; it is not a task setting
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"}, **kwargs)

    def fewshot_context(self, doc, num_fewshot, *args, **kwargs):  # type: ignore[override]
        conversation = _conversation(doc) if isinstance(doc, dict) else Conversation()
        chat_template = kwargs.get("chat_template")
        if not (conversation and kwargs.get("apply_chat_template") and chat_template):
            return super().fewshot_context(doc, num_fewshot, *args, **kwargs)
        if num_fewshot:
            raise DataError(
                f"{self.config.task}: a conversation document takes no few-shot examples; run without "
                "--num_fewshot (its earlier turns are its context)."
            )
        messages = conversation_messages(
            self.doc_to_text(doc), conversation, kwargs.get("system_instruction")
        )
        return chat_template(messages, add_generation_prompt=True)
