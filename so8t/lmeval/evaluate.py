"""`so8t eval`: lm-eval's simple_evaluate with the so8t backend and the so8t tasks, results in lm-eval's format.

No --include_path is needed (the so8t task folder is always included; --include_path adds a folder of
the user's own); any built-in lm-eval task name works too. The task index is built once per process and
reused; lm-eval's built-in tasks are indexed only when a run names one (task_manager). A model
trained with prompt_format chat is evaluated with lm-eval's --apply_chat_template, --fewshot_as_multiturn and
--system_instruction set from its so8t.json, so lm-eval renders the prompts training rendered.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from so8t.errors import UserError
from so8t.layout import evaluation_date_id, results_file_for, samples_file_for
from so8t.layout.atomic import atomic_write_json
from so8t.lmeval.flags import LmEvalFlags, add_lm_eval_arguments
from so8t.lmeval.prompt_flags import model_prompt_format

# keyed by (include_path, whether lm-eval's built-in tasks are indexed too)
_TASK_MANAGERS: dict[tuple[str | None, bool], Any] = {}

# Set for the processes `--processes N` launches (so8t.lmeval.processes): the launcher prints the results table
RELAUNCHED_ENV = "SO8T_EVAL_RELAUNCHED"
# who answers generation tasks in `so8t eval` (so8t.lmeval.generation_split)
GENERATION_BACKENDS = ("so8t", "vllm")


def task_manager(
    metadata: dict[str, Any] | None = None,
    include_path: str | None = None,
    tasks: list[str] | None = None,
) -> Any:
    """lm-eval's TaskManager with the so8t tasks (and `include_path`'s, as lm-eval's --include_path adds
    them), indexed once per process and folder, carrying this run's metadata.

    lm-eval's full index scans every built-in task YAML (seconds to tens of seconds); when every name in
    `tasks` is an so8t task or one of `include_path`'s, the index of those folders alone answers the same,
    so only a run that names a built-in task (or a task YAML file, which may name them) pays for the full one.
    """
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._factory import TaskFactory

    from so8t.lmeval.plugin import tasks_dir

    if include_path is not None and not Path(include_path).is_dir():
        raise UserError(f"--include_path {include_path}: no such folder; give a folder of task YAML files.")
    folders = [tasks_dir()] if include_path is None else [tasks_dir(), str(include_path)]
    narrow = (include_path, False)
    if tasks is not None and narrow not in _TASK_MANAGERS:
        _TASK_MANAGERS[narrow] = TaskManager(include_path=folders, include_defaults=False, metadata={})
    # a task YAML file may name built-in tasks (a group), so it is read with the full index
    if tasks is not None and all(t in _TASK_MANAGERS[narrow].all_tasks for t in tasks):
        key = narrow
    else:
        key = (include_path, True)
    if key not in _TASK_MANAGERS:
        _TASK_MANAGERS[key] = TaskManager(include_path=folders, metadata={})
    manager = copy.copy(_TASK_MANAGERS[key])
    # metadata reaches the tasks through the factory (e.g. data_files for the local tasks)
    manager.metadata = dict(metadata or {})
    manager._factory = TaskFactory(meta=manager.metadata)
    return manager


def _check_tasks(manager: Any, tasks: list[str]) -> None:
    unknown = [
        t for t in tasks if t not in manager.all_tasks and not (t.endswith(".yaml") and Path(t).is_file())
    ]
    if unknown:
        ours = ", ".join(t for t in manager.all_tasks if t.startswith("so8t_"))
        raise UserError(
            f"unknown task(s): {', '.join(unknown)}; use an so8t task ({ours}) or any lm-eval task name "
            "(`lm_eval ls tasks` lists them)."
        )


def evaluate(
    model: str,
    tasks: list[str],
    out: str | Path,
    *,
    limit: int | float | None = None,
    model_args: dict[str, Any] | None = None,
    batch_size: int | str = 8,
    bootstrap_iters: int = 1000,
    metadata: dict[str, Any] | None = None,
    log_samples: bool = True,
    max_gen_toks: int | None = None,
    device: str | None = None,
    flags: LmEvalFlags | None = None,
) -> dict:
    """Evaluate `model` (consolidated folder, checkpoint or run directory) with the so8t backend.

    `out` is lm-eval's `--output_path`, named the way lm-eval names it: `DIR/results.json` writes
    `DIR/results_<id>.json`, a folder `DIR` writes `DIR/<model>/results_<id>.json`; with `log_samples`
    (the default, so the gate can pair documents) lm-eval's `samples_<task>_<id>.jsonl` files go beside it
    with the same id. Returns the results dict as simple_evaluate gives it (with "samples" when logged)
    plus "so8t_results_file", the path written. The model's prompt format (so8t.json) sets lm-eval's chat
    template flags (PromptFormat.lm_eval_args); `flags` are lm-eval's own, given by the user, over them.
    """
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    from so8t.lmeval.plugin import register_model

    register_model()
    args = {"pretrained": str(model), **(model_args or {})}
    device = device or args.pop("device", None)
    args.pop("device", None)  # one place only: simple_evaluate passes it to the backend
    if device is None:  # HFLM's own default ("cuda") fails on machines without one
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    flags = flags or LmEvalFlags()
    passed = flags.simple_evaluate_kwargs(model_prompt_format(model), max_gen_toks)
    manager = task_manager({**args, **(metadata or {})}, flags.include_path, list(tasks))
    _check_tasks(manager, list(tasks))
    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(
        model="so8t",
        model_args=args,
        tasks=list(tasks),
        batch_size=batch_size,
        device=device,
        limit=limit,
        bootstrap_iters=bootstrap_iters,
        log_samples=log_samples,
        evaluation_tracker=tracker,
        task_manager=manager,
        metadata=metadata,
        **passed,
    )
    if results is None:  # a non-zero rank under data parallelism: rank 0 writes
        return {}
    results["so8t_results_file"] = str(write_evaluation(results, tracker, Path(out)))
    return results


def read_results(path: str | Path) -> dict:
    """A results file written earlier, read back as `evaluate` returns it (with "so8t_results_file")."""
    path = Path(path)
    return {**json.loads(path.read_text(encoding="utf-8")), "so8t_results_file": str(path)}


def write_evaluation(results: dict, tracker: Any, out: Path) -> Path:
    """Write the results file and its samples files with one id, as lm-eval's EvaluationTracker names them.

    The results file is written atomically (lm-eval's own writer logs and carries on when a write fails);
    its `task_hashes` are lm-eval's, computed from the samples when they were logged.
    """

    from lm_eval.utils import handle_non_serializable

    samples = results.get("samples")
    tracker.general_config_tracker.log_end_time()
    written = {k: v for k, v in results.items() if k != "samples"}
    written["task_hashes"] = _task_hashes(samples)
    written.update(asdict(tracker.general_config_tracker))
    tracker.date_id = evaluation_date_id()
    path = results_file_for(out, tracker.date_id, tracker.general_config_tracker.model_name_sanitized)
    path.parent.mkdir(parents=True, exist_ok=True)
    for task_name in results["configs"] if samples else ():
        # the tracker sanitises samples in place (numbers to strings); the caller keeps the originals
        tracker.save_results_samples(task_name=task_name, samples=copy.deepcopy(samples.get(task_name, [])))
        if not samples_file_for(path, task_name, tracker.date_id).is_file():
            raise UserError(
                f"lm-eval did not write the samples of {task_name} beside {path}; check that the folder is "
                "writable and has free space."
            )
    atomic_write_json(path, written, default=handle_non_serializable)
    return path


def _task_hashes(samples: dict | None) -> dict[str, str]:
    if not samples:
        return {}
    from lm_eval.utils import hash_string

    return {
        task: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in task_samples))
        for task, task_samples in samples.items()
    }


def parse_model_args_option(text: str | None) -> dict[str, Any]:
    """The --model-args option "k=v,k2=v2" -> dict, values typed the way lm-eval types them."""
    from lm_eval.utils import simple_parse_args_string

    return simple_parse_args_string(text) if text else {}


def parse_metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f'--metadata {text!r} is not JSON ({exc.msg}); e.g. \'{{"data_files": "test.jsonl"}}\'.'
        ) from exc
    if not isinstance(value, dict):
        raise UserError(f"--metadata must be a JSON object, got {type(value).__name__}.")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="consolidated folder, training checkpoint or run directory")
    parser.add_argument("--tasks", required=True, help="comma-separated so8t or lm-eval task names")
    parser.add_argument(
        "--out",
        required=True,
        help="lm-eval's --output_path: a NAME.json path writes NAME_<id>.json, a folder DIR writes "
        "DIR/<model>/results_<id>.json; the samples of each task beside it, with the same id",
    )
    parser.add_argument(
        "--limit", type=float, default=None, help="documents per task (an int, or a fraction < 1)"
    )
    parser.add_argument(
        "--model-args",
        default=None,
        help="so8t backend args k=v,... (decision_source, allow_threshold, base, quantization, dtype, ...)",
    )
    parser.add_argument("--batch-size", default="8", help="batch size (int or 'auto')")
    parser.add_argument(
        "--metadata",
        default=None,
        help='JSON passed to the tasks, e.g. \'{"data_files": "test.csv", "columns": {"request": "text", '
        '"decision": "label"}, "labels": {"safe": "ALLOW", "unsafe": "REFUSE"}}\'',
    )
    parser.add_argument(
        "--log-samples",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write lm-eval's per-document samples beside the results (default: on; the gate pairs "
        "documents with them)",
    )
    parser.add_argument(
        "--bootstrap-iters", type=int, default=1000, help="bootstrap resamples for standard errors"
    )
    parser.add_argument("--max-gen-toks", type=int, default=None, help="cap on generated tokens per request")
    parser.add_argument("--device", default=None, help="device (default: cuda when available, else cpu)")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="data-parallel processes: N > 1 relaunches this evaluation under `accelerate launch` (one per "
        "GPU; on the CPU without one); point values equal one process's",
    )
    add_lm_eval_arguments(parser)
    parser.add_argument(
        "--generation-backend",
        choices=GENERATION_BACKENDS,
        default="so8t",
        help="vllm: generation tasks run on `lm_eval --model vllm` in their own process (needs vllm and a GPU), "
        "the rest (head-B decisions, loglikelihoods) on the so8t backend; the results are merged",
    )


def run_cli(args: argparse.Namespace) -> int:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        raise UserError("--tasks is empty; name at least one task, e.g. --tasks so8t_safety.")
    limit = args.limit
    if limit is not None and limit >= 1:
        limit = int(limit)
    batch_size: int | str = int(args.batch_size) if str(args.batch_size).isdigit() else args.batch_size
    if args.processes < 1:
        raise UserError(f"--processes must be >= 1, got {args.processes}.")
    options: dict[str, Any] = {
        "limit": limit,
        "model_args": parse_model_args_option(args.model_args),
        "batch_size": batch_size,
        "bootstrap_iters": args.bootstrap_iters,
        "metadata": parse_metadata(args.metadata),
        "log_samples": args.log_samples,
        "max_gen_toks": args.max_gen_toks,
        "device": args.device,
        "flags": LmEvalFlags.from_args(args),
    }
    if args.generation_backend == "vllm":
        from so8t.lmeval.generation_split import evaluate_with_vllm_generation

        results = evaluate_with_vllm_generation(
            args.model, tasks, Path(args.out), processes=args.processes, **options
        )
    else:
        from so8t.lmeval.processes import evaluate_on

        results = evaluate_on(args.processes, args.model, tasks, Path(args.out), **options)
    print_results(results)
    return 0


def print_results(results: dict) -> None:
    """The results table and file, once: a process launched by `--processes N` leaves it to its launcher."""
    if not results or os.environ.get(RELAUNCHED_ENV):
        return
    from lm_eval.utils import make_table

    print(make_table(results))
    print(f"results: {results['so8t_results_file']}")
