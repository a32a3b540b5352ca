"""The checks a run config passes before any model loads: pure functions of a config whose paths are
resolved (resolve.py), returning one-line problems; none of them changes the config."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from so8t.config.base_names import is_gguf_base, is_short_base, short_base_file
from so8t.config.grpo import grpo_problems
from so8t.config.model import EMBEDDED_BASES, ModelConfig
from so8t.config.resolve import baseline_candidates, looks_like_hub_id
from so8t.config.run import RunConfig
from so8t.data.safety import SPLITS
from so8t.data.sources import SourceSummary
from so8t.errors import UserError
from so8t.layout import LOCAL_TASK_FORMATS

DataReport = dict[str, list[SourceSummary]]


def run_checks(cfg: RunConfig, base_dir: Path) -> tuple[DataReport, list[str]]:
    """Every check of a validated, resolved config: (what each split's sources give, problems)."""
    problems = model_problems(cfg.model)
    problems += gate_problems(cfg, base_dir)
    report, data_problems = cfg.data.check()
    problems += data_problems
    problems += cross_problems(cfg, report)
    problems += grpo_problems(cfg)
    return report, problems


def model_problems(model: ModelConfig) -> list[str]:
    """The base must be known; a local base (absolute after resolution) must be a Hugging Face folder whose
    rotated widths are multiples of 8."""
    base = model.base
    if base.startswith("embedded:"):
        if base not in EMBEDDED_BASES:
            return [
                f"model.base: unknown embedded base {base!r}; the embedded base is {', '.join(EMBEDDED_BASES)}"
            ]
        return []
    if is_short_base(base):
        try:
            short_base_file(base)
        except UserError as exc:
            return [str(exc)]
        return []
    if is_gguf_base(base):
        if not Path(base).is_file():
            return [f"model.base: GGUF file {base} does not exist; point it at a .gguf file"]
        return []
    if not os.path.isabs(base):
        if not looks_like_hub_id(base):
            return [f"model.base: {base!r} is neither a local folder nor a hub id (owner/name)"]
        # a hub id: checked when the model loads
        return []
    folder = Path(base)
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        return [
            f"model.base: {folder} {what}; point it at a Hugging Face model folder (config.json + weights), "
            "a hub id or embedded:tiny"
        ]
    config_path = folder / "config.json"
    try:
        hf_config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"model.base: {folder} has no config.json; point it at a Hugging Face model folder"]
    except (OSError, ValueError) as exc:
        return [f"model.base: {config_path} cannot be read as JSON ({exc})"]
    return rotated_width_problems(hf_config, config_path, model.so8.layers)


def rotated_width_problems(
    hf_config: dict[str, Any], config_path: Path | str, layers: Any = "all"
) -> list[str]:
    """Every width an SO(8) rotation acts on must be a multiple of 8 (hidden size, heads x head_dim)."""
    text = hf_config.get("text_config") if isinstance(hf_config.get("text_config"), dict) else hf_config
    hidden = next(
        (text[k] for k in ("hidden_size", "n_embd", "d_model") if isinstance(text.get(k), int)), None
    )
    heads = next((text[k] for k in ("num_attention_heads", "n_head") if isinstance(text.get(k), int)), None)
    problems = []
    rule = "SO(8) rotations act on 8-dim blocks, so every rotated width must be a multiple of 8; pick another base"
    if hidden is not None and hidden % 8:
        problems.append(f"model.base: {config_path} has hidden size {hidden}, not a multiple of 8; {rule}")
    if hidden is not None and heads:
        head_dim = text.get("head_dim") if isinstance(text.get("head_dim"), int) else hidden // heads
        width = heads * head_dim
        if width % 8:
            problems.append(
                f"model.base: {config_path} has an attention output projection input width of "
                f"{heads} heads x {head_dim} head_dim = {width}, not a multiple of 8; {rule}"
            )
    n_layers = next((text[k] for k in ("num_hidden_layers", "n_layer") if isinstance(text.get(k), int)), None)
    if isinstance(layers, list) and n_layers is not None:
        outside = [i for i in layers if i >= n_layers]
        if outside:
            problems.append(
                f"model.so8.layers: {outside} out of range; {config_path} has {n_layers} layers "
                f"(indices 0 to {n_layers - 1})"
            )
    return problems


def gate_problems(cfg: RunConfig, base_dir: Path) -> list[str]:
    """A gate baseline must exist now, not after training (resolution made a found one absolute)."""
    baseline = cfg.gates.baseline if cfg.gates is not None else None
    if not baseline or Path(baseline).exists():
        return []
    candidates = baseline_candidates(baseline, base_dir)
    return [
        f"gates.baseline: {baseline!r} is not a file or folder (looked in {candidates[0].parent} and "
        f"{candidates[1].parent}); point it at an lm-eval results file, or remove gates.baseline and "
        "use min/max rules only"
    ]


def cross_problems(cfg: RunConfig, report: DataReport) -> list[str]:
    """Checks across sections: validation data for validation, the formats the mix and local tasks read,
    repeats in training only, checkpoints on evaluated steps."""
    problems = []
    formats = {split: {e.format for e in entries} for split, entries in report.items()}
    if not cfg.data.train:
        problems.append("data.train: is empty; add at least one training source")
    if cfg.train.eval_strategy != "no" and not cfg.data.validation:
        problems.append(
            f"data.validation: is empty but train.eval_strategy is {cfg.train.eval_strategy!r}; add a "
            "validation source, or set train.eval_strategy: no to train without validation"
        )
    declared = {split: {s.declared_format() for s in cfg.data.sources(split)} for split in SPLITS}
    if (
        cfg.data.train
        and cfg.data.safety_fraction > 0
        and "safety" not in formats["train"] | declared["train"]
    ):
        problems.append(
            f"data.safety_fraction: is {cfg.data.safety_fraction} but data.train has no safety source; "
            "add {builtin: safety}, {builtin: synthetic_safety, n: N} or safety files to data.train, or set "
            "data.safety_fraction: 0"
        )
    for task, fmt in LOCAL_TASK_FORMATS.items():
        if task in cfg.eval.tasks and cfg.data.test and fmt not in formats["test"] | declared["test"]:
            problems.append(
                f"eval.tasks: {task} reads the {fmt} examples of data.test, which has none; add a "
                f"{fmt} source to data.test or remove {task} from eval.tasks"
            )
    for split in ("validation", "test"):
        for index, source in enumerate(cfg.data.sources(split)):
            if source.repeat > 1:
                problems.append(
                    f"data.{split}[{index}].repeat: got {source.repeat}; repeats weigh the training mix only, "
                    f"and a repeated {split} record would count twice in the metrics; remove repeat here"
                )
    if cfg.train.eval_strategy == "steps" and cfg.train.save_steps % cfg.train.eval_steps:
        problems.append(
            f"train.save_steps: got {cfg.train.save_steps}, must be a multiple of train.eval_steps "
            f"({cfg.train.eval_steps}) so the best checkpoint is one that was evaluated"
        )
    return problems
