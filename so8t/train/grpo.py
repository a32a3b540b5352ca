"""GRPO training of an SO8T model (`train.method: grpo`): the model to start from, the prompts, TRL's
arguments and the trainer. so8t.train.run trains it as it trains SFT (resume, signals, result).

Reads top to bottom: the start (a base with fresh LoRA, rotations and head B, or an SO8T checkpoint: the
usual path is SFT, then GRPO) -> prompts rendered as training and evaluation render them -> GRPOConfig with
CPU-friendly settings from the run config -> So8tGRPOTrainer.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.data import templates
from so8t.data.gsm8k import GSM8KExample
from so8t.data.safety import DECISIONS
from so8t.errors import UserError
from so8t.layout import RunDir
from so8t.layout.checkpoints import best_checkpoint, run_checkpoints
from so8t.layout.so8t_json import CHECKPOINT_FORMAT, so8t_format

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from so8t.config import RunConfig

IGNORE_INDEX = -100
# the row columns the rewards read (so8t.lmeval.rewards)
GSM8K, SAFETY = "gsm8k", "safety"
Rewards = tuple[list[Any], list[float]]


def start_checkpoint(init_from: str) -> Path:
    """The checkpoint `grpo.init_from` names: a training checkpoint, or a run directory's best one."""
    path = Path(init_from).expanduser()
    if so8t_format(path) == CHECKPOINT_FORMAT:
        return path
    found = run_checkpoints(path) if path.is_dir() else []
    if not found:
        raise UserError(
            f"grpo.init_from: {init_from} is no so8t training checkpoint and no run directory with one (looked "
            f"for checkpoint-N folders in {RunDir(path).checkpoints}). Run the SFT config first (e.g. `so8t run "
            "configs/quickstart.yaml`), or set grpo.init_from: null to start from model.base."
        )
    return best_checkpoint(found)


def build_grpo_model(cfg: RunConfig) -> tuple[Any, Any]:
    """(SO8TModel ready to train, tokenizer): model.base with fresh LoRA, rotations and head B (as SFT starts),
    or the checkpoint of grpo.init_from on the base its so8t.json records."""
    if cfg.grpo.init_from is None:
        from so8t.train.build import build_model

        model, tokenizer, _ = build_model(cfg)
        return model, tokenizer
    import torch
    from transformers import AutoTokenizer

    from so8t.model.so8t import SO8TModel

    checkpoint = start_checkpoint(cfg.grpo.init_from)
    torch.manual_seed(cfg.seed)
    model = SO8TModel.load_so8t(checkpoint, for_training=True, quantization=cfg.model.quantization)
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def grpo_row(example: Any, render: Any) -> dict[str, Any]:
    """A prompt row: the prompt as the model reads it, its kind, the gold answer or decision, head B's label
    (-100 on GSM8K rows)."""
    if isinstance(example, GSM8KExample):
        prompt = render(templates.gsm8k_prompt(example.question))
        return {
            "prompt": prompt,
            "kind": GSM8K,
            "answer": example.answer,
            "decision": "",
            "safety_label": IGNORE_INDEX,
        }
    prompt = render(templates.safety_prompt(example.prompt))
    label = DECISIONS.index(example.decision)
    return {
        "prompt": prompt,
        "kind": SAFETY,
        "answer": "",
        "decision": example.decision,
        "safety_label": label,
    }


def grpo_dataset(cfg: RunConfig, model: Any, tokenizer: PreTrainedTokenizerBase) -> Any:
    """The training prompts: data.train mixed as SFT mixes it (data.safety_fraction), rendered in the prompt
    format the model was trained with (so8t.json's record), as evaluation renders them."""
    from datasets import Dataset

    from so8t.data.config import materialize
    from so8t.train.collate import mix_examples

    split = materialize(cfg.data, "train", cfg.seed)
    if len(split) == 0:
        raise UserError("data.train yields no examples; add a source under data.train in the config.")
    mixed = mix_examples(split.gsm8k, split.safety, cfg.data.safety_fraction, cfg.seed)
    prompt_format = templates.PromptFormat.from_record(model.prompt_record)
    render = partial(prompt_format.render, tokenizer)
    return Dataset.from_list([grpo_row(example, render) for example in mixed])


def grpo_arguments(
    cfg: RunConfig, checkpoint_root: Path, report_to: list[str], reward_weights: list[float]
) -> Any:
    """TRL's GRPOConfig from the run config: TRL's CPU-hostile defaults (bf16, gradient checkpointing, 8
    generations, 512-token completions) replaced by the config's values; no KL reference (beta 0, TRL's
    default), so no second model is held."""
    from trl import GRPOConfig

    from so8t.train.arguments import shared_arguments

    g = cfg.grpo
    return GRPOConfig(
        **shared_arguments(cfg, checkpoint_root, report_to),
        eval_strategy="no",
        activation_checkpointing=cfg.model.gradient_checkpointing,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        num_iterations=g.num_iterations,
        epsilon=g.epsilon,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        beta=0.0,
        reward_weights=reward_weights,
        log_completions=g.log_rollouts,
        num_completions_to_print=0,
    )


def build_grpo_trainer(
    cfg: RunConfig, output_dir: Path, model: Any, tokenizer: PreTrainedTokenizerBase, rewards: Rewards
) -> tuple[Any, Any]:
    """(So8tGRPOTrainer, its StopGuard); `rewards`: (reward functions, weights), so8t.lmeval.rewards."""
    from so8t.train.callbacks import configure_wandb
    from so8t.train.grpo_trainer import So8tGRPOTrainer

    functions, weights = rewards
    if not functions:
        raise UserError("grpo.rewards: every weight is 0; give at least one reward a positive weight.")
    report_to = configure_wandb(cfg.logging.wandb, output_dir)
    tokenizer.padding_side = "left"
    trainer = So8tGRPOTrainer(
        model,
        reward_funcs=functions,
        args=grpo_arguments(cfg, RunDir(output_dir).checkpoints, report_to, weights),
        train_dataset=grpo_dataset(cfg, model, tokenizer),
        processing_class=tokenizer,
        safety_learning_rate=cfg.train.safety_learning_rate,
        safety_loss_weight=cfg.safety.loss_weight,
    )
    return trainer, trainer.stop_guard
