"""What a loaded run config says about itself: the resolved YAML a run writes, and the one-paragraph
summary `so8t validate` and `so8t run` print."""

from __future__ import annotations

import yaml

from so8t.config.base_names import short_base_label
from so8t.config.model import EMBEDDED_BASES
from so8t.config.run import RunConfig
from so8t.config.secrets import redact_secrets
from so8t.data.safety import SPLITS
from so8t.data.sources import SourceSummary


def resolved_config_yaml(cfg: RunConfig) -> str:
    """The full config, every default filled in (written to config.resolved.yaml); never holds a secret."""
    return yaml.safe_dump(redact_secrets(cfg.model_dump(mode="json")), sort_keys=False, allow_unicode=True)


def _origin_text(entry: SourceSummary) -> str:
    return f"{entry.origin} x{entry.repeat}" if entry.repeat > 1 else entry.origin


def _count_text(entries: list[SourceSummary]) -> str:
    if not entries:
        return "none"
    parts = []
    for fmt, label in (("gsm8k", "GSM8K"), ("safety", "safety")):
        mine = [e for e in entries if e.format == fmt]
        if not mine:
            continue
        known = sum(e.count for e in mine if e.count is not None)
        origins = sorted({_origin_text(e) for e in mine})
        hub = any(e.count is None for e in mine)
        if hub and not known:
            parts.append(f"{label} ({', '.join(origins)}; counted when loaded)")
        else:
            parts.append(f"{known:,}{'+' if hub else ''} {label} ({', '.join(origins)})")
    return " + ".join(parts)


def skipped_summary(report: dict) -> str:
    """ "N bad record(s) skipped", then per split that lost any: how many of its records, and the first one's
    place and cause (a test split that lost half its rows should not read like a typo in the training set)."""
    total = sum(e.skipped for entries in report.values() for e in entries)
    parts = []
    for split in SPLITS:
        entries = [e for e in report.get(split, []) if e.skipped]
        if not entries:
            continue
        skipped = sum(e.skipped for e in entries)
        kept = sum(e.count // e.repeat for e in entries if e.count is not None)
        first = next((e.first_skipped for e in entries if e.first_skipped), None)
        parts.append(f"{split} {skipped} of {skipped + kept}" + (f", the first at {first}" if first else ""))
    return f"{total} bad record(s) skipped" + (f" ({'; '.join(parts)})" if parts else "")


def summarize(cfg: RunConfig) -> str:
    """One paragraph: model, data per split and format, steps, tasks (printed by `so8t validate` and `run`)."""
    report = cfg._data_report
    if report is None:
        report, _ = cfg.data.check()
    m, t = cfg.model, cfg.train
    layers = "all layers" if m.so8.layers == "all" else f"layers {m.so8.layers}"
    pretrain = ""
    if m.base in EMBEDDED_BASES and m.pretrain.enabled:
        pretrain = f", embedded base pretrained {m.pretrain.steps} steps"
    label = short_base_label(m.base)
    name = f"{m.base}: {label}" if label else m.base
    model = (
        f"Model {name} (dtype {m.dtype}, quantization {m.quantization}, LoRA r={m.lora.r} alpha={m.lora.alpha:g}, "
        f"SO(8) rotations in {layers}, safety head {cfg.safety.head}{pretrain})."
    )
    data = "; ".join(f"{split} {_count_text(report.get(split, []))}" for split in SPLITS)
    if cfg.data.validation_split:
        size = cfg.data.validation_split.size
        held_out = f"{size:.0%}" if size < 1 else f"{size:g} examples"
        data = data.replace("validation none", f"validation {held_out} of train (held out, stratified)")
    skipped_text = skipped_summary(report) if cfg.data.on_bad_record == "skip" else "bad records are errors"
    dropped = sum(e.dropped for entries in report.values() for e in entries)
    if dropped:
        skipped_text += f", {dropped} record(s) dropped by labels"
    if cfg.data.policy:
        skipped_text += f", labels checked against the policy {cfg.data.policy}"
    prompts = cfg.data.prompt_format
    if cfg.data.system_prompt:
        prompts += " with a system prompt"
    steps = f"{t.max_steps} steps" if t.max_steps else f"{t.num_epochs:g} epoch(s)"
    evaluation = (
        "no validation"
        if t.eval_strategy == "no"
        else f"validation every {t.eval_steps} steps"
        if t.eval_strategy == "steps"
        else "validation every epoch"
    )
    gates = "no gates" if cfg.gates is None else "gates configured"
    return (
        f"{model} Data: {data}; {skipped_text}; safety share of the training mix {cfg.data.safety_fraction:g}; "
        f"{prompts} prompts. "
        f"Training: {steps}, batch {t.per_device_batch_size} x {t.gradient_accumulation_steps} accumulation, "
        f"learning rate {t.learning_rate:g} (LoRA) / {t.safety_learning_rate:g} (rotations, head B), {evaluation}. "
        f"Tasks: {', '.join(cfg.eval.tasks)} (decisions from {cfg.eval.decision_source}); {gates}. "
        f"Output: {cfg.output_dir}."
    )
