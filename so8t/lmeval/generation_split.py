"""`so8t eval --generation-backend vllm`: generation tasks on vLLM, everything else on the so8t backend.

A consolidated folder is a plain HF model (LoRA merged, rotations folded into head A), so
`lm_eval --model vllm --model_args pretrained=<consolidated>` serves its generations as it is; head-B decisions
exist only on the so8t backend. vLLM reserves most of a GPU's memory, so the two run one after the other in
separate processes: vLLM first (its process ends and frees the GPU), then the so8t backend. The two results
files are merged into one, in lm-eval's format, whose `so8t_backends` records which backend produced each task;
the samples of both sides go beside it under the merged file's id, so the gate pairs documents as usual.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from so8t.errors import UserError
from so8t.layout import (
    RESULTS_OUTPUT_NAME,
    date_id_of,
    evaluation_date_id,
    results_file_for,
    samples_file_for,
)
from so8t.layout.atomic import atomic_write_json
from so8t.lmeval.flags import LmEvalFlags

GENERATION_OUTPUT_TYPE = "generate_until"
# the keys of a results file that hold one entry per task (or group)
PER_TASK_KEYS = ("results", "groups", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better")
PER_TASK_KEYS += ("n-samples", "task_hashes")
BACKENDS_KEY = "so8t_backends"


def output_types(manager: Any, name: str) -> set[str]:
    """The output types of a task, group, tag or task YAML path (a group's or tag's: all of its tasks')."""
    from lm_eval.tasks._index import Kind, TaskIndex

    entry = manager.task_index.get(name) or TaskIndex.entry_from_path(Path(name))
    if entry is None:
        raise UserError(f"unknown task {name!r}; `lm_eval ls tasks` lists them.")
    if entry.kind == Kind.TAG:
        members = [n for n, e in manager.task_index.items() if name in e.tags]
        return set().union(*(output_types(manager, m) for m in members))
    cfg = entry.cfg
    if cfg is None and entry.yaml_path is not None:  # a YAML path outside the index carries no config yet
        from lm_eval.tasks._yaml_loader import load_yaml

        cfg = load_yaml(entry.yaml_path, resolve_func=False)
    cfg = cfg or {}
    if entry.kind == Kind.GROUP:
        members = [m if isinstance(m, str) else m.get("task") or m.get("group") for m in cfg.get("task", [])]
        return set().union(*(output_types(manager, m) for m in members if m))
    if entry.kind == Kind.PY_TASK:  # a Python-defined task: its type is known only once it is built
        return {"python"}
    return {cfg.get("output_type", GENERATION_OUTPUT_TYPE)}


def split_tasks(manager: Any, tasks: list[str]) -> tuple[list[str], list[str]]:
    """(generation tasks, the rest): what vLLM runs and what stays on the so8t backend."""
    generation, rest = [], []
    for task in tasks:
        types = output_types(manager, task)
        if types == {GENERATION_OUTPUT_TYPE}:
            generation.append(task)
        elif GENERATION_OUTPUT_TYPE in types:
            raise UserError(
                f"{task} mixes generation and scoring tasks; name its tasks one by one in --tasks so each runs "
                "on the backend it needs."
            )
        else:
            rest.append(task)
    return generation, rest


def check_vllm() -> None:
    """A clear error before anything runs where vLLM cannot."""
    if importlib.util.find_spec("vllm") is None:
        raise UserError(
            "--generation-backend vllm needs vLLM: `pip install vllm` on a machine with a CUDA GPU (or drop "
            "the option: the so8t backend generates too, more slowly)."
        )
    import torch

    if not torch.cuda.is_available():
        raise UserError(
            "--generation-backend vllm needs a CUDA GPU and none is visible; drop the option to generate with "
            "the so8t backend on this machine."
        )


def generation_command(
    backend: str,
    folder: Path,
    tasks: list[str],
    out: Path,
    *,
    limit: int | float | None,
    metadata: dict[str, Any] | None,
    max_gen_toks: int | None,
    log_samples: bool,
    batch_size: int | str = "auto",
    device: str | None = None,
    prompt_flags: Sequence[str] = (),
    flags: LmEvalFlags | None = None,
) -> list[str]:
    """The stock `lm_eval` command line that runs the generation tasks on `backend` (vllm) over `folder`;
    `prompt_flags` render the prompts as the model was trained (PromptFormat.lm_eval_cli_flags), unless the
    user's lm-eval `flags` set the chat template themselves."""
    command = [sys.executable, "-m", "lm_eval", "--model", backend, "--model_args", f"pretrained={folder}"]
    command += ["--tasks", ",".join(tasks), "--output_path", str(out), "--batch_size", str(batch_size)]
    if limit is not None:
        command += ["--limit", str(limit)]
    if metadata:
        command += ["--metadata", json.dumps(metadata)]
    flags = flags or LmEvalFlags()
    gen_kwargs = {**flags.gen_kwargs, **({"max_gen_toks": int(max_gen_toks)} if max_gen_toks else {})}
    if gen_kwargs:
        command += ["--gen_kwargs", json.dumps(gen_kwargs)]
    prompt_flags = _chat_flags(list(prompt_flags), flags.apply_chat_template)
    passed = replace(flags, gen_kwargs={}, apply_chat_template=None).argv()
    if log_samples:
        command.append("--log_samples")
    if device:
        command += ["--device", device]
    return [*command, *passed, *prompt_flags]


def _chat_flags(model_flags: list[str], chosen: bool | str | None) -> list[str]:
    """The model's chat flags (`--apply_chat_template` first), or the user's choice over them."""
    if chosen is None:
        return model_flags
    if chosen is False:
        return []
    rest = model_flags[1:] if model_flags else ["--fewshot_as_multiturn"]
    return ["--apply_chat_template", *([] if chosen is True else [str(chosen)]), *rest]


def evaluate_with_vllm_generation(
    model: str,
    tasks: list[str],
    out: Path,
    *,
    processes: int = 1,
    generation_backend: str = "vllm",
    **options: Any,
) -> dict:
    """Generation tasks through `lm_eval --model <generation_backend>` in its own process, the rest through the
    so8t backend (on `processes` processes), merged into one results file under `out` (lm-eval's naming).

    `generation_backend` is vllm for users; any lm-eval model name that loads a plain HF folder works the
    same way (the CPU tests use hf).
    """
    from so8t.consolidate.resolve import resolve_model
    from so8t.lmeval.evaluate import task_manager
    from so8t.lmeval.processes import evaluate_on, newest_results_since
    from so8t.lmeval.prompt_flags import model_prompt_format

    if generation_backend == "vllm":
        check_vllm()
    metadata = options.get("metadata") or {}
    include_path = (options.get("flags") or LmEvalFlags()).include_path
    manager = task_manager({**(options.get("model_args") or {}), **metadata}, include_path, list(tasks))
    generation, rest = split_tasks(manager, tasks)
    folder = resolve_model(model, base=(options.get("model_args") or {}).get("base")).folder
    parts_dir = (out.parent if out.suffix == ".json" else out) / f".parts-{evaluation_date_id()}"
    parts: list[tuple[str, Path]] = []
    try:
        if generation:
            started = time.time()
            command = generation_command(
                generation_backend,
                folder,
                generation,
                parts_dir / "generation" / RESULTS_OUTPUT_NAME,
                limit=options.get("limit"),
                metadata=metadata,
                max_gen_toks=options.get("max_gen_toks"),
                log_samples=options.get("log_samples", True),
                device=options.get("device") if generation_backend != "vllm" else None,
                prompt_flags=model_prompt_format(folder).lm_eval_cli_flags(),
                flags=options.get("flags"),
            )
            if subprocess.run(command).returncode != 0:
                raise RuntimeError(f"the {generation_backend} generation run failed: {' '.join(command)}")
            written = newest_results_since(parts_dir / "generation" / RESULTS_OUTPUT_NAME, started)
            if written is None:
                raise RuntimeError(
                    f"the {generation_backend} generation run wrote no results under {parts_dir}"
                )
            parts.append((generation_backend, written))
        if rest:
            target = parts_dir / "so8t" / RESULTS_OUTPUT_NAME
            result = evaluate_on(processes, model, rest, target, **options)
            parts.append(("so8t", Path(result["so8t_results_file"])))
        return merge_results_files(parts, out)
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)


def merge_results_files(parts: list[tuple[str, Path]], out: Path) -> dict:
    """One lm-eval results file (and its samples files, one id) from results files of disjoint tasks, each
    produced by the named backend; the last part's general fields (model, config, dates) are kept."""
    merged: dict[str, Any] = {}
    backends: dict[str, str] = {}
    for backend, path in parts:
        data = json.loads(path.read_text(encoding="utf-8"))
        per_task = {key: {**merged.get(key, {}), **data.get(key, {})} for key in PER_TASK_KEYS if key in data}
        merged.update(data, **per_task)
        backends.update({task: backend for task in data.get("results", {})})
    merged[BACKENDS_KEY] = backends
    date_id = evaluation_date_id()
    target = results_file_for(out, date_id, str(merged.get("model_name_sanitized") or "model"))
    target.parent.mkdir(parents=True, exist_ok=True)
    for _, path in parts:
        part_id = date_id_of(path) or ""
        for task in json.loads(path.read_text(encoding="utf-8")).get("configs", {}):
            samples = samples_file_for(path, task, part_id)
            if samples.is_file():
                shutil.copyfile(samples, samples_file_for(target, task, date_id))
    atomic_write_json(target, merged)
    return {**merged, "so8t_results_file": str(target)}
