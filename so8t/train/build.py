"""Build what `so8t train` trains from a run config: the SO8T model on its base (LoRA, rotations, head B, the
ablation switches) and So8tTrainer with its data, optimizer groups and callbacks."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.errors import UserError
from so8t.layout import RunDir
from so8t.train.arguments import training_arguments

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from so8t.config import RunConfig

logger = logging.getLogger(__name__)

EMBEDDED_TINY = "embedded:tiny"
SAMPLE_PROMPTS = 4  # GSM8K + safety prompts generated at each evaluation


def _sample_prompts(validation: Any, render: Callable[[str], str]) -> list[dict[str, str]]:
    """Validation prompts for the samples callback, rendered as training renders them."""
    from so8t.data import templates
    from so8t.data.gsm8k import extract_gold

    half = SAMPLE_PROMPTS // 2
    rows = [
        {
            "kind": "gsm8k",
            "prompt": render(templates.gsm8k_prompt(e.question)),
            "gold": extract_gold(e.answer) or "",
        }
        for e in validation.gsm8k[:half]
    ]
    rows += [
        {"kind": "safety", "prompt": render(templates.safety_prompt(e.prompt)), "gold": e.decision}
        for e in validation.safety[:half]
    ]
    return rows


def process_device_map(quantization: str, cuda: bool, env: Mapping[str, str]) -> dict[str, int] | None:
    """Where this training process loads an 8/4-bit base: its own GPU (LOCAL_RANK) under torchrun or
    accelerate. bitsandbytes places quantised weights at load time and the Trainer cannot move them later, so
    without this every process would load its copy onto GPU 0. None (the default placement) otherwise."""
    if quantization == "none" or not cuda or int(env.get("WORLD_SIZE", "1")) <= 1:
        return None
    return {"": int(env.get("LOCAL_RANK", "0"))}


def build_model(cfg: RunConfig) -> tuple[Any, Any, str]:
    """(SO8TModel ready to train, tokenizer, base reference recorded for the checkpoint)."""
    import torch

    from so8t.model.base import add_lora, load_base
    from so8t.model.so8t import SO8TModel

    model_cfg = cfg.model
    if model_cfg.base == EMBEDDED_TINY and model_cfg.pretrain.enabled:
        from so8t.train.pretrain import pretrained_tiny_base

        base_dir = pretrained_tiny_base(model_cfg.pretrain, seed=cfg.seed, max_length=cfg.data.max_length)
        model_cfg = model_cfg.model_copy(update={"base": str(base_dir)})
    torch.manual_seed(cfg.seed)
    device_map = process_device_map(model_cfg.quantization, torch.cuda.is_available(), os.environ)
    base, tokenizer = load_base(model_cfg, for_training=True, device_map=device_map)
    if cfg.data.chat_template:  # saved with the tokenizer: evaluation and predict render with it too
        tokenizer.chat_template = cfg.data.chat_template_text()
    if cfg.data.prompt.is_chat:
        from so8t.data.templates import ChatTemplateMissing, check_chat_template

        try:
            check_chat_template(tokenizer, model_cfg.base)
        except ChatTemplateMissing as exc:
            raise UserError(str(exc)) from None
    peft_model = add_lora(base, model_cfg.lora)
    model = SO8TModel(
        peft_model,
        safety_head_kind=cfg.safety.head,
        mlp_hidden=cfg.safety.mlp_hidden,
        layers=model_cfg.so8.layers,
        safety_class_weights=cfg.safety.class_weights,
    )
    if cfg.safety.init_from_decision_words:
        _init_head_from_decision_words(model, peft_model, tokenizer, cfg.data.prompt)
    _freeze_ablated_parts(model, model_cfg)
    model.base_reference = model_cfg.base  # recorded in so8t.json: consolidation reloads this base
    model.prompt_record = cfg.data.prompt.record()  # so8t.json: evaluation and predict render the same
    return model, tokenizer, model_cfg.base


def _freeze_ablated_parts(model: Any, model_cfg: Any) -> None:
    """model.lora.trainable: false keeps the adapters at zero, model.so8.gate: false the gate at the
    identity: frozen parameters stay out of the optimizer, so both fold into the consolidated model as
    nothing."""
    if not model_cfg.lora.trainable:
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.requires_grad_(False)
    if not model_cfg.so8.gate:
        model.gate.requires_grad_(False)


def _init_head_from_decision_words(
    model: Any, peft_model: Any, tokenizer: PreTrainedTokenizerBase, prompt_format: Any
) -> None:
    from so8t.model.heads import init_from_decision_words

    word_ids = prompt_format.decision_token_ids(tokenizer)
    weight = peft_model.get_output_embeddings().weight
    if not init_from_decision_words(model.safety_head, weight, word_ids):
        logger.warning("safety head B starts at random: the decision words cannot seed it for this base")


def build_trainer(
    cfg: RunConfig, output_dir: Path, model: Any, tokenizer: PreTrainedTokenizerBase
) -> tuple[Any, Any]:
    """(So8tTrainer, its StopGuard) with datasets from the config's sources."""
    from so8t.data.config import materialize
    from so8t.train.callbacks import SampleGenerationCallback, configure_wandb
    from so8t.train.collate import So8tCollator, build_dataset
    from so8t.train.trainer import So8tTrainer

    report_to = configure_wandb(cfg.logging.wandb, output_dir)
    train_split = materialize(cfg.data, "train", cfg.seed)
    if len(train_split) == 0:
        raise UserError("data.train yields no examples; add a source under data.train in the config.")
    train_ds = build_dataset(
        tokenizer,
        train_split.gsm8k,
        train_split.safety,
        max_length=cfg.data.max_length,
        safety_fraction=cfg.data.safety_fraction,
        seed=cfg.seed,
        prompt_format=cfg.data.prompt,
    )
    eval_ds, samples = None, []
    if cfg.train.eval_strategy != "no":
        validation = materialize(cfg.data, "validation", cfg.seed)
        if len(validation) == 0:
            raise UserError(
                "data.validation yields no examples while train.eval_strategy is on; add validation "
                "sources or set train.eval_strategy: no."
            )
        if cfg.data.validation_split:
            from so8t.data.validation_split import record_split

            record_split(cfg.data.validation_split, cfg.seed, validation, RunDir(output_dir))
        eval_ds = build_dataset(
            tokenizer,
            validation.gsm8k,
            validation.safety,
            max_length=cfg.data.max_length,
            prompt_format=cfg.data.prompt,
        )
        samples = _sample_prompts(validation, partial(cfg.data.prompt.render, tokenizer))
    callbacks = []
    if samples:
        callbacks.append(SampleGenerationCallback(samples, tokenizer, RunDir(output_dir).samples))
    trainer = So8tTrainer(
        model=model,
        args=training_arguments(cfg, RunDir(output_dir).checkpoints, report_to),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=So8tCollator(pad_token_id=tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=callbacks,
        safety_learning_rate=cfg.train.safety_learning_rate,
        loss_weights={
            "safety": cfg.safety.loss_weight,
            "pet": cfg.pet.weight,
            "pet_start": cfg.pet.start_fraction,
            "pet_full": cfg.pet.full_fraction,
        },
        class_weights=cfg.safety.class_weights,
    )
    return trainer, trainer.stop_guard
