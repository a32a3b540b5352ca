"""The run config: pydantic models, YAML loading with `--set` overrides, and every check a run needs
before any model loads (unknown keys, values, secrets, data shards, base model widths).

Importing this module never imports torch, transformers or datasets, so `so8t validate` stays fast.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import os
import re
import sys
import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from so8t.data.safety import bundled_safety_path
from so8t.data.shards import ShardProblem, ShardReport, check_pattern, check_shard
from so8t.errors import ConfigError
from so8t.layout import LOCAL_TASK_FORMATS, RESOLVED_CONFIG

try:  # the gate rules live with the gate; the config only embeds them
    from so8t.results.rules import GateConfig
except ImportError:  # pragma: no cover - only while so8t.results.rules is not installed
    GateConfig = dict[str, Any]  # type: ignore[misc,assignment]

SPLITS = ("train", "validation", "test")
EMBEDDED_BASES = ("embedded:tiny",)
DTYPES = Literal["auto", "float32", "bfloat16", "float16"]
LR_SCHEDULERS = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "warmup_stable_decay",
]


class _Section(BaseModel):
    """Base of every config section: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------------------------- model


class LoraConfig(_Section):
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: float = Field(32, gt=0, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA branch input.")
    target_modules: list[str] | None = Field(
        None, description="Module names that get LoRA adapters; null picks the default for the architecture."
    )


class So8Config(_Section):
    layers: Literal["all"] | list[int] = Field(
        "all",
        description='Layers whose attention output projection input is rotated: "all" or a list of indices.',
    )

    @field_validator("layers", mode="before")
    @classmethod
    def _layers_all_or_indices(cls, value: Any) -> Any:
        if value == "all":
            return value
        if isinstance(value, list) and all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value
        ):
            if len(set(value)) != len(value):
                raise ValueError(f"got {value}, layer indices must not repeat")
            return value
        raise ValueError(f'got {value!r}, must be "all" or a list of layer indices (integers >= 0)')


class PretrainConfig(_Section):
    enabled: bool = Field(
        True, description="Briefly pretrain the embedded base on the synthetic corpus (cached)."
    )
    steps: int = Field(400, gt=0, description="Pretraining optimizer steps.")
    batch_size: int = Field(16, gt=0, description="Pretraining batch size.")
    learning_rate: float = Field(3e-3, gt=0, description="Pretraining learning rate.")
    examples: int = Field(4000, gt=0, description="Synthetic problems in the pretraining corpus.")
    safety_examples: int = Field(
        0,
        ge=0,
        description="Synthetic safety requests (with their decisions) in the pretraining corpus, beside the "
        "bundled safety train split.",
    )


class ModelConfig(_Section):
    base: str = Field(
        "embedded:tiny",
        description='Base model: "embedded:tiny" (built locally), a local Hugging Face folder, or a hub id.',
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of a hub base.")
    trust_remote_code: bool = Field(
        False, description="Run model code shipped with the base (off unless you trust it)."
    )
    dtype: DTYPES = Field("auto", description="Weights dtype of the base; auto keeps the checkpoint's own.")
    quantization: Literal["none", "8bit", "4bit"] = Field(
        "none",
        description="Load the frozen base in 8-bit or 4-bit (bitsandbytes; 4bit = QLoRA) or unquantised.",
    )
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field(
        "nf4", description="4-bit data type (quantization: 4bit)."
    )
    bnb_4bit_use_double_quant: bool = Field(
        True, description="Quantise the 4-bit scales too (quantization: 4bit)."
    )
    bnb_compute_dtype: DTYPES = Field(
        "auto", description="Compute dtype of bitsandbytes layers; auto follows dtype."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward to save memory."
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters on the frozen base.")
    so8: So8Config = Field(default_factory=So8Config, description="SO(8) rotations inside attention.")
    pretrain: PretrainConfig = Field(
        default_factory=PretrainConfig,
        description="Pretraining of the embedded base (ignored for other bases).",
    )

    @field_validator("quantization", mode="before")
    @classmethod
    def _quantization_spellings(cls, value: Any) -> Any:
        # YAML reads `none` as a string but `null`/`false` as None/False; 8 and 4 mean bits.
        if value is None or value is False:
            return "none"
        if isinstance(value, int) and not isinstance(value, bool) and value in (8, 4):
            return f"{value}bit"
        return value


# ------------------------------------------------------------------------------------------------ data

DataFormat = Literal["auto", "gsm8k", "safety"]


def _repeat_field() -> Any:
    """`repeat`, the last key of every data source form."""
    return Field(
        1,
        ge=1,
        description="Times each record of this source enters the training mix: weighs a small hand-labelled "
        "set up next to a large generated one. Training sources only (a repeated validation or test record "
        "would count twice in the metrics).",
    )


class PathSource(_Section):
    path: str = Field(
        description="A JSONL file or glob (`**` recursive); relative to the config file's folder."
    )
    format: DataFormat = Field(
        "auto",
        description="gsm8k ({question, answer}), safety ({prompt, decision}) or auto (from the records).",
    )
    repeat: int = _repeat_field()

    @model_validator(mode="before")
    @classmethod
    def _plain_string(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class HubSource(_Section):
    hub: str = Field(
        description='A dataset on the Hugging Face hub, e.g. "openai/gsm8k" (loaded by `datasets`).'
    )
    name: str | None = Field(None, description='Dataset configuration name, e.g. "main".')
    split: str | None = Field(
        None, description='Dataset split with optional slicing, e.g. "train[:95%]"; null uses the list key.'
    )
    revision: str | None = Field(None, description="Dataset revision (branch, tag or commit).")
    format: Literal["gsm8k", "safety"] = Field("gsm8k", description="Record format of the dataset rows.")
    repeat: int = _repeat_field()


class SyntheticSource(_Section):
    builtin: Literal["synthetic_gsm8k"] = Field(description="Generated GSM8K-style problems.")
    n: int = Field(gt=0, description="Number of problems for this split.")
    seed: int | None = Field(
        None, description="Generator seed; null uses the run seed. Splits stay disjoint."
    )
    repeat: int = _repeat_field()


class SafetySource(_Section):
    builtin: Literal["safety"] = Field(
        description="The safety set bundled with so8t, for the split of the list key."
    )
    repeat: int = _repeat_field()


class SyntheticSafetySource(_Section):
    builtin: Literal["synthetic_safety"] = Field(
        description="Generated safety-decision requests (ALLOW / ESCALATE / REFUSE in equal thirds, every "
        "category of the bundled policy), never equal to a bundled prompt."
    )
    n: int = Field(gt=0, description="Number of requests for this split.")
    seed: int | None = Field(
        None, description="Generator seed; null uses the run seed. Splits stay disjoint."
    )
    repeat: int = _repeat_field()


SOURCE_FORMS: dict[str, type[_Section]] = {
    "path": PathSource,
    "hub": HubSource,
    "synthetic_gsm8k": SyntheticSource,
    "safety": SafetySource,
    "synthetic_safety": SyntheticSafetySource,
}
BUILTINS = ("synthetic_gsm8k", "safety", "synthetic_safety")


def _source_form(value: Any) -> str | None:
    """Which form a data source item takes (the discriminator of DataSource)."""
    if isinstance(value, str):
        return "path"
    if isinstance(value, dict):
        if "builtin" in value:
            return value["builtin"] if value["builtin"] in BUILTINS else None
        if "hub" in value:
            return "hub"
        if "path" in value:
            return "path"
        return None
    if isinstance(value, BaseModel):
        return next(form for form, cls in SOURCE_FORMS.items() if isinstance(value, cls))
    return None


DataSource = Annotated[
    Union[  # noqa: UP007 - tagged union members need Annotated tags
        Annotated[PathSource, Tag("path")],
        Annotated[HubSource, Tag("hub")],
        Annotated[SyntheticSource, Tag("synthetic_gsm8k")],
        Annotated[SafetySource, Tag("safety")],
        Annotated[SyntheticSafetySource, Tag("synthetic_safety")],
    ],
    Discriminator(
        _source_form,
        custom_error_type="data_source",
        custom_error_message="a data source is a path string or a mapping with path, hub or builtin",
    ),
]


def _default_sources(n: int) -> list[Any]:
    return [SyntheticSource(builtin="synthetic_gsm8k", n=n), SafetySource(builtin="safety")]


class DataConfig(_Section):
    train: list[DataSource] = Field(
        default_factory=lambda: _default_sources(2000), description="Training sources (see the source forms)."
    )
    validation: list[DataSource] = Field(
        default_factory=lambda: _default_sources(100),
        description="Validation sources; may be empty only with train.eval_strategy: no.",
    )
    test: list[DataSource] = Field(
        default_factory=lambda: _default_sources(200),
        description="Held-out sources evaluated after training.",
    )
    on_bad_record: Literal["error", "skip"] = Field(
        "error", description="A malformed record stops the run (error) or is skipped and counted (skip)."
    )
    max_length: int = Field(256, ge=16, description="Maximum tokens per example (prompt + completion).")
    safety_fraction: float = Field(
        0.5, ge=0, le=1, description="Share of safety examples in the training mix (the rest is GSM8K)."
    )


# ----------------------------------------------------------------------------------------------- train


class TrainConfig(_Section):
    max_steps: int | None = Field(
        300, gt=0, description="Optimizer steps; null trains for num_epochs instead."
    )
    num_epochs: float = Field(1.0, gt=0, description="Epochs over the training mix when max_steps is null.")
    per_device_batch_size: int = Field(8, gt=0, description="Examples per device per forward pass.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Forward passes per optimizer step.")
    learning_rate: float = Field(2e-4, gt=0, description="Learning rate of the LoRA parameters.")
    safety_learning_rate: float = Field(
        1e-3, gt=0, description="Learning rate of the rotations and safety head B."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(
        0.05, ge=0, lt=1, description="Share of steps with a linear learning-rate warmup."
    )
    lr_scheduler: LR_SCHEDULERS = Field("cosine", description="Learning-rate schedule (HF Trainer names).")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    eval_strategy: Literal["steps", "epoch", "no"] = Field(
        "steps", description='When to evaluate on data.validation; "no" switches validation off.'
    )
    eval_steps: int = Field(100, gt=0, description="Steps between evaluations (eval_strategy: steps).")
    save_steps: int = Field(100, gt=0, description="Steps between checkpoints.")
    save_total_limit: int | None = Field(2, ge=1, description="Checkpoints kept on disk; null keeps all.")
    logging_steps: int = Field(10, gt=0, description="Steps between logged training metrics.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Mixed precision; auto picks bf16 where the GPU supports it, else fp32."
    )

    @field_validator("eval_strategy", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        return "no" if value is False else value  # YAML 1.1 reads a bare `no` as false


class SafetyConfig(_Section):
    loss_weight: float = Field(1.0, ge=0, description="Weight of head B's cross-entropy in the loss.")
    class_weights: list[float] | None = Field(
        None,
        description="Cross-entropy class weights [w_allow, w_escalate, w_refuse]; null weighs them equally.",
    )
    head: Literal["linear", "mlp"] = Field(
        "linear", description="Safety head B: a linear layer or a small MLP."
    )
    mlp_hidden: int | None = Field(
        None, gt=0, description="Hidden width of the MLP head; null uses the model width."
    )
    init_from_decision_words: bool = Field(
        True,
        description="Start a linear head B as the LM head's logits for the words ALLOW, ESCALATE and "
        "REFUSE at the pooled token (what the base already knows) instead of at random; MLP heads start "
        "at random.",
    )

    @field_validator("class_weights")
    @classmethod
    def _three_positive_weights(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) != 3 or any(w <= 0 for w in value)):
            raise ValueError(f"got {value}, must be 3 positive numbers [w_allow, w_escalate, w_refuse]")
        return value

    @model_validator(mode="after")
    def _mlp_hidden_needs_mlp(self) -> SafetyConfig:
        if self.mlp_hidden is not None and self.head != "mlp":
            raise ValueError(
                f"mlp_hidden is {self.mlp_hidden} but head is {self.head}; set safety.head: mlp "
                "or remove safety.mlp_hidden"
            )
        return self


class PetConfig(_Section):
    weight: float = Field(0.01, ge=0, description="Final weight of the PET curvature penalty.")
    start_fraction: float = Field(0.5, ge=0, le=1, description="Share of training before PET switches on.")
    full_fraction: float = Field(
        1.0, ge=0, le=1, description="Share of training at which PET reaches its weight."
    )

    @model_validator(mode="after")
    def _ramp_in_order(self) -> PetConfig:
        if self.start_fraction > self.full_fraction:
            raise ValueError(
                f"start_fraction {self.start_fraction} is after full_fraction {self.full_fraction}; "
                "the ramp must start before it ends"
            )
        return self


class EvalConfig(_Section):
    tasks: list[str] = Field(
        default_factory=lambda: ["so8t_gsm8k_local", "so8t_safety_local"],
        min_length=1,
        description="so8t task names or any lm-eval task name.",
    )
    limit: float | None = Field(
        None, gt=0, description="Examples per task: a count (>= 1) or a fraction (< 1); null evaluates all."
    )
    batch_size: int = Field(8, gt=0, description="Evaluation batch size.")
    max_gen_toks: int = Field(256, gt=0, description="Maximum generated tokens per GSM8K answer.")
    decision_source: Literal["head", "lm"] = Field(
        "head", description="Safety decisions from head B (head) or from the LM's decision word (lm)."
    )
    allow_threshold: float | None = Field(
        None, gt=0, lt=1, description="ALLOW only when its probability reaches this; null takes the argmax."
    )
    bootstrap_iters: int = Field(
        1000, ge=0, description="Bootstrap iterations for standard errors (0 = none)."
    )

    @field_validator("limit")
    @classmethod
    def _count_or_fraction(cls, value: float | None) -> float | int | None:
        if value is not None and value >= 1:
            if value != int(value):
                raise ValueError(f"got {value}, must be a whole count (>= 1) or a fraction (< 1)")
            return int(value)
        return value


class WandbConfig(_Section):
    mode: Literal["online", "offline", "disabled"] = Field(
        "offline", description="W&B mode; the API key comes only from WANDB_API_KEY in the environment."
    )
    project: str = Field("so8t", description="W&B project.")
    entity: str | None = Field(None, description="W&B entity (user or team).")
    run_name: str | None = Field(None, description="W&B run name; null lets W&B choose.")


class LoggingConfig(_Section):
    wandb: WandbConfig = Field(default_factory=WandbConfig, description="Weights & Biases tracking.")


class RunConfig(_Section):
    output_dir: str = Field(
        "runs/quickstart", description="Run directory (checkpoints, model, results, report)."
    )
    seed: int = Field(0, description="Seed for data order, synthetic data and initialisation.")
    model: ModelConfig = Field(
        default_factory=ModelConfig, description="Base model, quantisation, LoRA, rotations."
    )
    data: DataConfig = Field(
        default_factory=DataConfig, description="Data sources per split and the training mix."
    )
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation (HF Trainer).")
    safety: SafetyConfig = Field(default_factory=SafetyConfig, description="Safety head B and its loss.")
    pet: PetConfig = Field(
        default_factory=PetConfig, description="PET curvature regulariser and its schedule."
    )
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation with lm-evaluation-harness.")
    gates: GateConfig | None = Field(
        None, description="Regression gates applied to the evaluation (null = none)."
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Experiment tracking.")

    _source: str | None = PrivateAttr(None)
    _data_report: dict[str, list[dict[str, Any]]] | None = PrivateAttr(None)


# -------------------------------------------------------------------------------------- raw YAML checks

_SECRET_WORDS = {"token", "secret", "secrets", "password", "passwd", "apikey", "credential", "credentials"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("auth", "key")}
_WANDB_KEY_RE = re.compile(r"[0-9a-fA-F]{40}")
_REVISION_KEYS = {"revision"}  # a 40-hex commit id is the normal value of a revision
LEGACY_QUANT_KEYS = ("load_in_8bit", "load_in_4bit")
SECRET_FIX = (
    f"secrets never go in a config file (it is copied to {RESOLVED_CONFIG}); remove it and set "
    "WANDB_API_KEY (or HF_TOKEN for the hub) in the environment instead"
)


def _is_secret_key(key: str) -> bool:
    parts = [p for p in re.split(r"[_\-.\s]+", key.lower()) if p]
    return bool(_SECRET_WORDS & set(parts)) or any(
        pair in _SECRET_PAIRS for pair in zip(parts, parts[1:], strict=False)
    )


def _looks_like_wandb_key(value: Any) -> bool:
    return isinstance(value, str) and bool(_WANDB_KEY_RE.fullmatch(value.strip()))


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _scrub_secrets(node: Any, path: str, errors: list[str], reported: set[str]) -> Any:
    """Report secret-looking keys and values; return a copy without them (so nothing echoes them)."""
    if isinstance(node, dict):
        clean = {}
        for key, value in node.items():
            where = _join(path, key)
            if isinstance(key, str) and _is_secret_key(key):
                errors.append(f"{where}: looks like a secret; {SECRET_FIX}")
                reported.add(where)
                continue
            if _looks_like_wandb_key(value) and str(key) not in _REVISION_KEYS:
                errors.append(
                    f"{where}: the value looks like a W&B API key (40 hex characters); {SECRET_FIX}"
                )
                reported.add(where)
                clean[key] = "<redacted>"
                continue
            clean[key] = _scrub_secrets(value, where, errors, reported)
        return clean
    if isinstance(node, list):
        out = []
        for index, value in enumerate(node):
            where = _join(path, index)
            if _looks_like_wandb_key(value):
                errors.append(
                    f"{where}: the value looks like a W&B API key (40 hex characters); {SECRET_FIX}"
                )
                reported.add(where)
                out.append("<redacted>")
            else:
                out.append(_scrub_secrets(value, where, errors, reported))
        return out
    return node


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation can hold (through Optional, list, dict and Annotated)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (list, tuple, set, dict) or origin in (Union, types.UnionType):
        return [cls for arg in get_args(annotation) for cls in _unwrap(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _all_key_paths(cls: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, info in cls.model_fields.items():
        path = _join(prefix, name)
        paths.append(path)
        models = _unwrap(info.annotation)
        if len(models) == 1 and cls is not DataConfig:
            paths += _all_key_paths(models[0], path)
    return paths


def _suggest(key: str, path: str, fields: Sequence[str]) -> str:
    """', did you mean X?' from the siblings, else from anywhere in the config."""
    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
    if close:
        return f", did you mean {_join(path, close[0])}?"
    everywhere = _all_key_paths(RunConfig)
    same_name = [p for p in everywhere if p.rsplit(".", 1)[-1] == key]
    if same_name:
        return f", did you mean {' or '.join(same_name)}?"
    anywhere = difflib.get_close_matches(key, [p.rsplit(".", 1)[-1] for p in everywhere], n=1, cutoff=0.75)
    if anywhere:
        match = next(p for p in everywhere if p.rsplit(".", 1)[-1] == anywhere[0])
        return f", did you mean {match}?"
    return f"; valid keys here: {', '.join(fields)}"


def _check_keys(node: Any, cls: type[BaseModel], path: str, errors: list[str], reported: set[str]) -> None:
    """Unknown keys (with the closest valid key), legacy quantisation keys and malformed data sources."""
    if not isinstance(node, dict):
        return
    fields = list(cls.model_fields)
    legacy = {k: node[k] for k in LEGACY_QUANT_KEYS if k in node}
    if len(legacy) == 2 and all(v is True for v in legacy.values()):
        errors.append(
            f"{_join(path, 'load_in_8bit')} and {_join(path, 'load_in_4bit')} are both true: a base is quantised "
            "to 8 bit or to 4 bit, not both; remove both keys and set model.quantization: 8bit or 4bit"
        )
        reported.update(_join(path, k) for k in legacy)
    else:
        for key, value in legacy.items():
            errors.append(
                f"{_join(path, key)}: not a so8t key; quantisation is one field, set model.quantization: "
                f"{'none' if value is not True else key[-4:]} (none, 8bit or 4bit) instead"
            )
            reported.add(_join(path, key))
    for key, value in node.items():
        where = _join(path, key)
        if key in LEGACY_QUANT_KEYS:
            continue
        if key not in cls.model_fields:
            errors.append(f"{where}: unknown key{_suggest(str(key), path, fields)}")
            reported.add(where)
            continue
        if cls is DataConfig and key in SPLITS:
            _check_sources(value, where, errors, reported)
            continue
        models = _unwrap(cls.model_fields[key].annotation)
        if len(models) == 1:
            if isinstance(value, list):
                for index, item in enumerate(value):
                    _check_keys(item, models[0], _join(where, index), errors, reported)
            elif isinstance(value, dict) and get_origin(cls.model_fields[key].annotation) is dict:
                for sub_key, item in value.items():
                    _check_keys(item, models[0], _join(where, sub_key), errors, reported)
            else:
                _check_keys(value, models[0], where, errors, reported)


def _check_sources(value: Any, path: str, errors: list[str], reported: set[str]) -> None:
    if value is None:
        errors.append(f"{path}: must be a list of data sources (use [] for none)")
        reported.add(path)
        return
    if not isinstance(value, list):
        errors.append(
            f"{path}: got {_short(value)}, must be a list of data sources; write it as a YAML list "
            "(`- item` lines or [item, ...])"
        )
        reported.add(path)
        return
    for index, item in enumerate(value):
        where = _join(path, index)
        if isinstance(item, str):
            continue
        if not isinstance(item, dict):
            errors.append(
                f"{where}: got {item!r}; a data source is a path string or a mapping "
                "({path, format}, {hub, ...} or {builtin, ...})"
            )
            reported.add(where)
            continue
        if "builtin" in item and item["builtin"] not in BUILTINS:
            close = difflib.get_close_matches(str(item["builtin"]), BUILTINS, n=1, cutoff=0.5)
            hint = f", did you mean {close[0]}?" if close else ""
            errors.append(
                f"{where}.builtin: unknown builtin {item['builtin']!r}{hint} (builtins: {', '.join(BUILTINS)})"
            )
            reported.add(where)
            continue
        form = _source_form(item)
        if form is None:
            keys = ", ".join(map(str, item)) or "none"
            errors.append(
                f"{where}: a data source mapping needs one of path, hub or builtin (found keys: {keys})"
            )
            reported.add(where)
            continue
        _check_keys(item, SOURCE_FORMS[form], where, errors, reported)


# ------------------------------------------------------------------------------ pydantic error messages


_UNION_MEMBER_TAGS = {
    "int",
    "float",
    "str",
    "bool",
    "none",
    "list",
    "dict",
}  # pydantic names union members in locs


def _loc_path(loc: tuple[Any, ...]) -> str:
    """Display path of a pydantic error location (drops tagged-union tags and type names)."""
    parts = list(loc)
    if len(parts) >= 4 and parts[0] == "data" and parts[1] in SPLITS and isinstance(parts[2], int):
        del parts[3]  # the data-source form tag
    path = ""
    for part in parts:
        if isinstance(part, str) and (
            "[" in part or "(" in part or part.startswith("function-") or part in _UNION_MEMBER_TAGS
        ):
            continue
        path = _join(path, part)
    return path


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pydantic_messages(exc: ValidationError, reported: set[str]) -> list[str]:
    messages, seen = [], set()
    for error in exc.errors(include_url=False):
        path = _loc_path(tuple(error["loc"])) or "(top level)"
        if any(path == r or path.startswith(r + ".") or path.startswith(r + "[") for r in reported):
            continue
        if path in seen:
            continue
        if error["type"] == "value_error" and any(r.startswith((path + ".", path + "[")) for r in reported):
            continue  # a cross-field check of a section that has a misspelt key: the typo is the problem
        seen.add(path)
        kind, msg = error["type"], error["msg"]
        msg = msg.removeprefix("Value error, ").replace("Input should be", "must be")
        if kind == "missing":
            messages.append(f"{path}: required key is missing")
        elif kind == "extra_forbidden":
            messages.append(f"{path}: unknown key")
        elif kind in ("value_error", "assertion_error") or msg.startswith("got "):
            messages.append(f"{path}: {msg}")
        else:
            messages.append(f"{path}: got {_short(error.get('input'))}, {msg}")
    return messages


# ---------------------------------------------------------------------------------------------- loading


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            [f"config file not found: {path}" + (" (it is a folder)" if path.is_dir() else "")],
            source=str(path),
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"not valid YAML{where}: {problem}"], source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text ({exc.reason})"], source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"the top level must be a mapping of keys, found {type(data).__name__}"], source=str(path)
        )
    return data


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> list[str]:
    """Apply `a.b=c` overrides in place (values typed by YAML); returns the problems found.

    A key the file leaves out is filled from the defaults first, so `data.train.0.n=50` works on a config
    that keeps the default sources.
    """
    problems = []
    defaults: Any = RunConfig().model_dump(mode="json", exclude_none=False)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.max_steps=50")
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node: Any = raw
        default: Any = defaults
        parts = key.split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[:depth]) or "(top level)"
            if isinstance(node, list):
                if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                    problems.append(
                        f"--set {key}: {where} is a list of {len(node)}; {part!r} is not an index in it"
                    )
                    break
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
                    default = (
                        default[int(part)] if isinstance(default, list) and int(part) < len(default) else None
                    )
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    known = isinstance(default, dict) and default.get(part) is not None
                    default = default.get(part) if isinstance(default, dict) else None
                    if node.get(part) is None:
                        node[part] = copy.deepcopy(default) if known else {}
                    node = node[part]
            else:
                problems.append(f"--set {key}: {where} is {_short(node)}, not a mapping")
                break
    return problems


def _resolve_local(path: str, base_dir: Path) -> Path:
    candidate = Path(os.path.expanduser(path))
    return candidate if candidate.is_absolute() else base_dir / candidate


def _base_is_local(base: str, base_dir: Path) -> bool:
    if base.startswith(("/", "./", "../", "~", ".\\")) or base in (".", ".."):
        return True
    return _resolve_local(base, base_dir).exists()


def _model_checks(cfg: RunConfig, base_dir: Path) -> list[str]:
    """The base must be known; a local base's rotated widths must be multiples of 8."""
    base = cfg.model.base
    if base.startswith("embedded:"):
        if base not in EMBEDDED_BASES:
            return [
                f"model.base: unknown embedded base {base!r}; the embedded base is {', '.join(EMBEDDED_BASES)}"
            ]
        return []
    if not _base_is_local(base, base_dir):
        if not re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", base):
            return [f"model.base: {base!r} is neither a local folder nor a hub id (owner/name)"]
        return []  # a hub id: checked when the model loads
    folder = _resolve_local(base, base_dir).resolve()
    cfg.model.base = str(folder)
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
    return rotated_width_problems(hf_config, config_path, cfg.model.so8.layers)


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


def _gate_checks(cfg: RunConfig, base_dir: Path) -> list[str]:
    """A gate baseline must exist now, not after training; it is found from the working directory first,
    then from the config's folder, and stored as an absolute path."""
    baseline = getattr(cfg.gates, "baseline", None)
    if not baseline:
        return []
    candidates = [Path(os.path.expanduser(baseline)).resolve(), _resolve_local(baseline, base_dir).resolve()]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        return [
            f"gates.baseline: {baseline!r} is not a file (looked in {candidates[0].parent} and "
            f"{candidates[1].parent}); point it at an lm-eval results file, or remove gates.baseline and "
            "use min/max rules only"
        ]
    cfg.gates.baseline = str(found)
    return []


def _check_data(data: DataConfig, shown: dict[str, str] | None = None) -> tuple[dict, list[str]]:
    """Shard guard over every source (paths already resolved): returns ({split: [source summaries]}, problems)."""
    report: dict[str, list[dict[str, Any]]] = {}
    problems: list[str] = []
    shown = shown or {}
    for split in SPLITS:
        entries = report.setdefault(split, [])
        for index, source in enumerate(getattr(data, split)):
            key = f"data.{split}[{index}]"
            first_entry = len(entries)
            if isinstance(source, PathSource):
                reports, found = check_pattern(
                    source.path,
                    source.format,
                    data.on_bad_record,
                    key=key,
                    split=split,
                    shown=shown.get(key, source.path),
                )
                problems += found
                for fmt in ("gsm8k", "safety"):
                    mine = [r for r in reports if r.format == fmt]
                    if mine:
                        entries.append(
                            {
                                "format": fmt,
                                "origin": "files",
                                "count": sum(r.records for r in mine),
                                "skipped": sum(r.skipped for r in mine),
                                "files": len(mine),
                            }
                        )
            elif isinstance(source, SyntheticSource):
                entries.append({"format": "gsm8k", "origin": "synthetic", "count": source.n, "skipped": 0})
            elif isinstance(source, SyntheticSafetySource):
                entries.append({"format": "safety", "origin": "synthetic", "count": source.n, "skipped": 0})
            elif isinstance(source, SafetySource):
                path = bundled_safety_path(split)
                try:
                    shard: ShardReport = check_shard(path, "safety", "error")
                except FileNotFoundError:
                    problems.append(f"{key}: the bundled safety split is missing ({path}); reinstall so8t")
                    continue
                except ShardProblem as exc:
                    problems.append(
                        f"{key}: the bundled safety split {path} is unusable ({exc.what}); reinstall so8t"
                    )
                    continue
                entries.append(
                    {"format": "safety", "origin": "bundled", "count": shard.records, "skipped": 0}
                )
            elif isinstance(source, HubSource):
                entries.append(
                    {
                        "format": source.format,
                        "origin": "hub",
                        "count": None,
                        "skipped": 0,
                        "hub": f"{source.hub} {source.split or split}",
                    }
                )
            for entry in entries[first_entry:]:
                entry["repeat"] = source.repeat
                if entry["count"] is not None:
                    entry["count"] *= source.repeat
    return report, problems


def _cross_checks(cfg: RunConfig, report: dict[str, list[dict[str, Any]]]) -> list[str]:
    problems = []
    formats = {split: {e["format"] for e in entries} for split, entries in report.items()}
    if not cfg.data.train:
        problems.append("data.train: is empty; add at least one training source")
    if cfg.train.eval_strategy != "no" and not cfg.data.validation:
        problems.append(
            f"data.validation: is empty but train.eval_strategy is {cfg.train.eval_strategy!r}; add a "
            "validation source, or set train.eval_strategy: no to train without validation"
        )
    declared = {split: {_declared_format(s) for s in getattr(cfg.data, split)} for split in SPLITS}
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
        for index, source in enumerate(getattr(cfg.data, split)):
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


def _declared_format(source: Any) -> str | None:
    if isinstance(source, (SyntheticSource,)):
        return "gsm8k"
    if isinstance(source, (SafetySource, SyntheticSafetySource)):
        return "safety"
    if isinstance(source, HubSource):
        return source.format
    return None if source.format == "auto" else source.format


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Load, override, validate and check a run config; raises ConfigError listing every problem."""
    path = Path(path)
    source = str(path)
    raw = _read_yaml(path)
    base_dir = path.resolve().parent
    errors = apply_overrides(raw, overrides)
    reported: set[str] = set()
    raw = _scrub_secrets(raw, "", errors, reported)
    _check_keys(raw, RunConfig, "", errors, reported)
    clean = _without(raw, reported)
    try:
        cfg = RunConfig.model_validate(clean)
    except ValidationError as exc:
        errors += _pydantic_messages(exc, reported)
        errors += _data_problems_alone(clean.get("data"), base_dir, reported)
        raise ConfigError(errors, source=source) from None
    if errors:
        errors += _check_data(cfg.data, _resolve_data_paths(cfg.data, base_dir))[1]
        raise ConfigError(errors, source=source)

    shown = _resolve_data_paths(cfg.data, base_dir)
    errors += _model_checks(cfg, base_dir)
    errors += _gate_checks(cfg, base_dir)
    report, data_problems = _check_data(cfg.data, shown)
    errors += data_problems
    errors += _cross_checks(cfg, report)
    if errors:
        raise ConfigError(errors, source=source)
    cfg._source = str(path.resolve())
    cfg._data_report = report
    return cfg


def _resolve_data_paths(data: DataConfig, base_dir: Path) -> dict[str, str]:
    """Resolve relative file sources against the config folder; returns {key: path as written}."""
    shown: dict[str, str] = {}
    for split in SPLITS:
        for index, item in enumerate(getattr(data, split)):
            if isinstance(item, PathSource):
                shown[f"data.{split}[{index}]"] = item.path
                item.path = str(_resolve_local(item.path, base_dir))
    return shown


def _data_problems_alone(raw_data: Any, base_dir: Path, reported: set[str]) -> list[str]:
    """Shard problems even when another section failed, so one run of validate shows them all."""
    if raw_data is not None and not isinstance(raw_data, dict):
        return []
    if "data" in reported:
        return []
    # sections with problems already reported are left out; the rest is still checked
    sound = {
        k: v
        for k, v in (raw_data or {}).items()
        if not any(r == f"data.{k}" or r.startswith((f"data.{k}.", f"data.{k}[")) for r in reported)
    }
    sound.update({split: [] for split in SPLITS if split in (raw_data or {}) and split not in sound})
    try:
        data = DataConfig.model_validate(sound)
    except ValidationError:
        return []  # already reported by the full validation
    return _check_data(data, _resolve_data_paths(data, base_dir))[1]


def _without(raw: dict[str, Any], reported: set[str]) -> dict[str, Any]:
    """A copy of the raw config without keys already reported (so pydantic does not report them twice)."""
    raw = copy.deepcopy(raw)

    def drop(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: drop(v, _join(path, k)) for k, v in node.items() if _join(path, k) not in reported}
        if isinstance(node, list):
            return [drop(v, _join(path, i)) for i, v in enumerate(node)]
        return node

    return drop(raw, "")


# ------------------------------------------------------------------------------------- outputs of a config


def resolved_config_yaml(cfg: RunConfig) -> str:
    """The full config with every default filled in (written to config.resolved.yaml); never holds a secret."""
    data = cfg.model_dump(mode="json")
    env_secrets = {os.environ.get(k) for k in ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")} - {
        None,
        "",
    }

    def redact(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {
                k: ("<redacted>" if isinstance(k, str) and _is_secret_key(k) else redact(v, str(k)))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [redact(v) for v in node]
        if isinstance(node, str) and (
            node in env_secrets or (_looks_like_wandb_key(node) and key not in _REVISION_KEYS)
        ):
            return "<redacted>"
        return node

    return yaml.safe_dump(redact(data), sort_keys=False, allow_unicode=True)


def _origin_text(entry: dict[str, Any]) -> str:
    origin = entry["origin"] if entry["origin"] != "hub" else f"hub {entry['hub']}"
    repeat = entry.get("repeat", 1)
    return f"{origin} x{repeat}" if repeat > 1 else origin


def _count_text(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "none"
    parts = []
    for fmt, label in (("gsm8k", "GSM8K"), ("safety", "safety")):
        mine = [e for e in entries if e["format"] == fmt]
        if not mine:
            continue
        known = sum(e["count"] for e in mine if e["count"] is not None)
        origins = sorted({_origin_text(e) for e in mine})
        hub = any(e["count"] is None for e in mine)
        if hub and not known:
            parts.append(f"{label} ({', '.join(origins)}; counted when loaded)")
        else:
            parts.append(f"{known:,}{'+' if hub else ''} {label} ({', '.join(origins)})")
    return " + ".join(parts)


def summarize(cfg: RunConfig) -> str:
    """One paragraph: model, data per split and format, steps, tasks (printed by `so8t validate` and `run`)."""
    report = cfg._data_report
    if report is None:
        report, _ = _check_data(cfg.data)
    m, t = cfg.model, cfg.train
    layers = "all layers" if m.so8.layers == "all" else f"layers {m.so8.layers}"
    pretrain = ""
    if m.base in EMBEDDED_BASES and m.pretrain.enabled:
        pretrain = f", embedded base pretrained {m.pretrain.steps} steps"
    model = (
        f"Model {m.base} (dtype {m.dtype}, quantization {m.quantization}, LoRA r={m.lora.r} alpha={m.lora.alpha:g}, "
        f"SO(8) rotations in {layers}, safety head {cfg.safety.head}{pretrain})."
    )
    data = "; ".join(f"{split} {_count_text(report.get(split, []))}" for split in SPLITS)
    skipped = sum(e["skipped"] for entries in report.values() for e in entries)
    skipped_text = (
        f"{skipped} bad record(s) skipped" if cfg.data.on_bad_record == "skip" else "bad records are errors"
    )
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
        f"{model} Data: {data}; {skipped_text}; safety share of the training mix {cfg.data.safety_fraction:g}. "
        f"Training: {steps}, batch {t.per_device_batch_size} x {t.gradient_accumulation_steps} accumulation, "
        f"learning rate {t.learning_rate:g} (LoRA) / {t.safety_learning_rate:g} (rotations, head B), {evaluation}. "
        f"Tasks: {', '.join(cfg.eval.tasks)} (decisions from {cfg.eval.decision_source}); {gates}. "
        f"Output: {cfg.output_dir}."
    )


# ------------------------------------------------------------------------------------ reference document


def _type_text(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        if any(isinstance(m, Discriminator) for m in args[1:]):
            return "data source"
        return _type_text(args[0])
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        parts = [a for a in args if a is not type(None)]
        text = " or ".join(_type_text(a) for a in parts)
        return text + (" or null" if len(parts) < len(args) else "")
    if origin is list:
        if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return "list of mappings"
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _constraints(info: Any) -> str:
    words = []
    for meta in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >=")):
            value = getattr(meta, attr, None)
            if value is not None:
                words.append(f"{sign} {value}")
    return f" ({', '.join(words)})" if words else ""


def _default_text(info: Any) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list):
        value = [v.model_dump(exclude_defaults=True) if isinstance(v, BaseModel) else v for v in value]
    return f"`{json.dumps(value)}`"


def _rows(cls: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, info in cls.model_fields.items():
        path = _join(prefix, name)
        models = _unwrap(info.annotation)
        description = (info.description or "").replace("|", "\\|")
        rows.append(
            f"| `{path}` | {_type_text(info.annotation)}{_constraints(info)} | {_default_text(info)} | "
            f"{description} |"
        )
        if len(models) == 1 and cls is not DataConfig and get_origin(info.annotation) is not list:
            rows += _rows(models[0], path)
        elif len(models) == 1 and get_origin(info.annotation) is list:
            rows += _rows(models[0], f"{path}[]")
    return rows


def config_reference_markdown() -> str:
    """docs/config.md: every key with its type, default and description, generated from the models."""
    header = "| key | type | default | description |\n|---|---|---|---|"
    lines = [
        "# Run config reference",
        "",
        "Generated from the pydantic models in `so8t/config.py`; regenerate with",
        "`python -m so8t.config --reference > docs/config.md`. Unknown keys are errors. Override any key on the",
        "command line with `--set a.b=c` (values are read as YAML). Relative paths are resolved against the",
        "config file's folder. Secrets never go in a config: set `WANDB_API_KEY` (and `HF_TOKEN`) in the environment.",
        "",
        header,
        *_rows(RunConfig, ""),
        "",
        "## Data sources",
        "",
        "Each item of `data.train`, `data.validation` and `data.test` takes one of these forms. A plain string",
        "is a path or glob whose format is detected from the records (`{question, answer}` is GSM8K,",
        "`{prompt, decision}` is safety). Every pattern must match at least one non-empty file of well-formed",
        "records; `so8t validate` checks this before any model loads.",
        "",
    ]
    for title, cls in (
        ("Files", PathSource),
        ("Hugging Face hub", HubSource),
        ("Synthetic GSM8K", SyntheticSource),
        ("Bundled safety set", SafetySource),
        ("Synthetic safety decisions", SyntheticSafetySource),
    ):
        lines += [f"### {title}", "", header, *_rows(cls, ""), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="run config (YAML)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.max_steps=50 (repeatable; values are read as YAML)",
    )


def run_cli(args: argparse.Namespace) -> int:
    """`so8t validate`: OK and the summary (exit 0), or ConfigError with every problem (exit 2)."""
    cfg = load_config(args.config, args.overrides)
    print("OK")
    print(summarize(cfg))
    return 0


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m so8t.config")
    parser.add_argument(
        "--reference", action="store_true", help="print the config reference (docs/config.md)"
    )
    args = parser.parse_args(argv)
    if args.reference:
        sys.stdout.write(config_reference_markdown() + "\n")
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
