"""What makes two run configs the same run, and which settings a resumed run may change.

A run directory is claimed with the identity of its config (so8t.layout.claim_run_dir): the resolved config
with every default filled in, `output_dir` left out (a run directory moved or copied elsewhere is the same
run) and each data source named by what it gives (files by content, not by path). Resuming with a changed
identity is allowed only for RESUMABLE_SETTINGS, which steer optimisation or bookkeeping; the trainer
re-applies them after loading a checkpoint (so8t.train.callbacks.ResumedSettings). Anything else (base,
LoRA shape, rotated layers, data, seed, batch, loss weights) changes what is trained and is refused.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from so8t.config.run import RunConfig
from so8t.config.secrets import redact_secrets
from so8t.data.policy import policy_digest
from so8t.data.safety import SPLITS

RESUMABLE_SETTINGS = (
    "train.learning_rate",
    "train.safety_learning_rate",
    "train.max_steps",
    "train.num_epochs",
    "train.warmup_ratio",
    "train.weight_decay",
    "train.max_grad_norm",
    "train.eval_strategy",
    "train.eval_steps",
    "train.save_steps",
    "train.save_total_limit",
    "train.logging_steps",
    "grpo.log_rollouts",
    "eval",
    "gates",
    "export",
    "logging",
)


def identity_defaults(model: type[BaseModel] = RunConfig, prefix: str = "") -> dict[str, Any]:
    """{dotted key: default (JSON form)} of every setting with a default: a run directory recorded before a
    setting existed was made with what is now its default, so resuming it is no change (layout.claim_run_dir)."""
    defaults: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            defaults.update(identity_defaults(field.annotation, key + "."))
        elif not field.is_required():
            defaults[key] = to_jsonable_python(field.get_default(call_default_factory=True))
    return defaults


def run_identity(cfg: RunConfig) -> dict[str, Any]:
    """The config as the run directory's claim compares it (never holds a secret)."""
    identity = redact_secrets(cfg.model_dump(mode="json"))
    identity.pop("output_dir", None)
    identity["data"] = {
        **identity["data"],
        **{split: [source.identity() for source in cfg.data.sources(split)] for split in SPLITS},
    }
    if cfg.data.policy:
        identity["data"]["policy"] = policy_digest(cfg.data.policy)
    return identity


def eval_identity(cfg: RunConfig) -> dict[str, Any]:
    """The settings an evaluation's results depend on, beside the model: a change re-evaluates."""
    # the number of processes does not change the point values (lm-eval gathers every document)
    return {
        "eval": cfg.eval.model_dump(mode="json", exclude={"processes"}),
        "test": run_identity(cfg)["data"]["test"],
    }
