"""`so8t train`: build the SO8T model and data from a run config and train it with So8tTrainer.

Reads top to bottom: base (pretrained tiny for embedded:tiny) -> LoRA -> SO8TModel -> data -> trainer ->
train (resuming from the last complete checkpoint of the run) -> TrainResult.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.errors import UserError
from so8t.layout import RunDir
from so8t.layout.checkpoints import (
    BEST_METRIC,
    BEST_METRIC_GREATER_IS_BETTER,
    BEST_METRIC_KEY,
    best_checkpoint,
    checkpoint_name,
    complete_checkpoints,
    is_complete_checkpoint,
    read_trainer_state,
)
from so8t.layout.run_claim import claim_run_dir

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig

logger = logging.getLogger(__name__)

EMBEDDED_TINY = "embedded:tiny"
SAMPLE_PROMPTS = 4  # GSM8K + safety prompts generated at each evaluation


@dataclass
class TrainResult:
    """Where training left its checkpoints, and the final training/evaluation metrics."""

    checkpoint_dir: Path
    best_checkpoint: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def _precision_flags(precision: str) -> dict[str, bool]:
    import torch

    if precision == "auto":
        gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        precision = "bf16" if gpu_bf16 else "fp32"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def shared_arguments(cfg: RunConfig, checkpoint_root: Path, report_to: list[str]) -> dict[str, Any]:
    """The TrainingArguments keywords SFT and GRPO share (TRL's GRPOConfig is a TrainingArguments): steps,
    optimiser schedule, checkpoints, logging, device and precision from the config's `train` section."""
    import torch

    t = cfg.train
    return dict(
        output_dir=str(checkpoint_root),
        seed=cfg.seed,
        data_seed=cfg.seed,
        max_steps=t.max_steps if t.max_steps is not None else -1,
        num_train_epochs=t.num_epochs,
        per_device_train_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a share of the training steps
        lr_scheduler_type=t.lr_scheduler,
        max_grad_norm=t.max_grad_norm,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        remove_unused_columns=False,
        report_to=report_to,
        run_name=cfg.logging.wandb.run_name,
        # progress goes to so8t.progress (callbacks.ProgressReport), not to Trainer's bar
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),  # under torchrun on CPU, Trainer runs DDP only when told so
        **_precision_flags(t.precision),
    )


def training_arguments(cfg: RunConfig, checkpoint_root: Path, report_to: list[str]) -> Any:
    """HF TrainingArguments from the config's `train` section (Trainer keeps its own semantics for each)."""
    import torch
    from transformers import TrainingArguments

    t = cfg.train
    evaluate = t.eval_strategy != "no"
    on_cpu = not torch.cuda.is_available()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
        **shared_arguments(cfg, checkpoint_root, report_to),
        per_device_eval_batch_size=t.per_device_batch_size,
        eval_strategy=t.eval_strategy,
        eval_steps=t.eval_steps,
        metric_for_best_model=BEST_METRIC if evaluate else None,
        greater_is_better=BEST_METRIC_GREATER_IS_BETTER if evaluate else None,
        prediction_loss_only=True,
        label_names=["labels"],
        # Head B and the rotations are always used; LoRA on layers skipped by gradient checkpointing too.
        ddp_find_unused_parameters=False,
        ddp_backend="gloo" if on_cpu and distributed else None,
    )


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


def _init_head_from_decision_words(model: Any, peft_model: Any, tokenizer: Any, prompt_format: Any) -> None:
    from so8t.model.heads import init_from_decision_words

    word_ids = prompt_format.decision_token_ids(tokenizer)
    weight = peft_model.get_output_embeddings().weight
    if not init_from_decision_words(model.safety_head, weight, word_ids):
        logger.warning("safety head B starts at random: the decision words cannot seed it for this base")


def build_trainer(cfg: RunConfig, output_dir: Path, model: Any, tokenizer: Any) -> tuple[Any, Any]:
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


def train_from_config(
    cfg: RunConfig,
    output_dir: str | Path,
    relaunch: Sequence[str] | None = None,
    rewards: Callable[[Any], tuple[list[Any], list[float]]] | None = None,
) -> TrainResult:
    """Train an SO8T model as the config says; resume from the last complete checkpoint in the run directory.

    `relaunch`: the command line that runs this training again (the CLI's own); a stop on a non-finite
    loss prints it with lower learning rates, to continue from the last checkpoint. `rewards`: grpo section ->
    (reward functions, weights), so8t.lmeval.rewards.reward_functions, for `train.method: grpo`.
    """
    import torch
    from transformers import set_seed

    from so8t.train.distributed import barrier, rank
    from so8t.train.guard import NonFiniteLossError
    from so8t.train.recovery import after_out_of_memory, diverged_message
    from so8t.train.resume_point import remove_exploded_after, resume_checkpoint

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume = resume_checkpoint(RunDir(output_dir).checkpoints)
    if resume is not None and (finished := finished_result(resume, cfg)) is not None:
        logger.info("training already finished at %s", resume)
        return finished
    set_seed(cfg.seed)
    if cfg.train.method == "grpo":
        from so8t.train.grpo import build_grpo_model, build_grpo_trainer

        if rewards is None:
            raise UserError(
                "train.method: grpo runs through `so8t run` or `so8t train`, which give it the suite's scorers "
                "as rewards (so8t.lmeval.rewards)."
            )
        model, tokenizer = build_grpo_model(cfg)
        trainer, guard = build_grpo_trainer(cfg, output_dir, model, tokenizer, rewards(cfg.grpo))
    else:
        model, tokenizer, _ = build_model(cfg)
        trainer, guard = build_trainer(cfg, output_dir, model, tokenizer)
    # once the ranks can agree (the trainer's arguments set up the process group): training from `resume`
    # replaces the exploded checkpoints after it, and none may pass for the run's last or best meanwhile
    if rank() == 0:
        remove_exploded_after(RunDir(output_dir).checkpoints, resume)
    barrier()
    if resume is not None:
        logger.info("resuming from %s", resume)
    try:
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except NonFiniteLossError as exc:
        raise NonFiniteLossError(diverged_message(exc, cfg, output_dir, relaunch), step=exc.step) from exc
    except torch.OutOfMemoryError as exc:
        raise UserError(
            f"Training ran out of memory at step {trainer.state.global_step} ({exc}). {after_out_of_memory(trainer)} "
            "Lower train.per_device_batch_size (raising train.gradient_accumulation_steps keeps the effective "
            "batch), data.max_length, or enable model.gradient_checkpointing or model.quantization: 4bit."
        ) from exc
    finally:
        guard.restore_handlers()
        _finish_wandb()
    if guard.received is not None:
        step = trainer.state.global_step
        # every rank stopped at this step (the flag is agreed across ranks); each says so before any exits
        print(
            f"rank {rank()}: stopped by signal {guard.received} at step {step}; {checkpoint_name(step)} saved, "
            "rerun the same command to resume",
            flush=True,
        )
        barrier()
        if rank() == 0:
            from so8t.train.launch import record_stop_signal

            record_stop_signal(guard.received)
        raise SystemExit(128 + int(guard.received))
    final = RunDir(output_dir).checkpoints / checkpoint_name(trainer.state.global_step)
    if not is_complete_checkpoint(final):
        trainer.save_emergency_checkpoint()
    metrics = dict(output.metrics)
    if trainer.state.best_metric is not None:
        metrics[f"best_{BEST_METRIC_KEY}"] = trainer.state.best_metric
    metrics["global_step"] = trainer.state.global_step
    for entry in reversed(trainer.state.log_history):
        if "eval_loss" in entry:
            metrics.update({k: v for k, v in entry.items() if k.startswith("eval_")})
            break
    best = best_checkpoint(complete_checkpoints(RunDir(output_dir).checkpoints))
    return TrainResult(checkpoint_dir=final, best_checkpoint=best, metrics=metrics)


def planned_steps_reached(checkpoint: Path, cfg: RunConfig) -> bool:
    """Whether the checkpoint's step already reaches what the config plans: train.max_steps, or with
    max_steps null the recorded plan for the same number of epochs (a raised plan trains on)."""
    state = read_trainer_state(checkpoint)
    step = int(state.get("global_step", 0))
    if cfg.train.max_steps is not None:
        return step >= cfg.train.max_steps
    same_epochs = float(state.get("num_train_epochs") or 0) >= cfg.train.num_epochs
    return bool(state.get("max_steps")) and step >= int(state["max_steps"]) and same_epochs


def finished_result(checkpoint: Path, cfg: RunConfig) -> TrainResult | None:
    """The result of a run whose last checkpoint already reached its planned steps (nothing left to train),
    read from files alone; the best checkpoint is looked up in this run directory by step."""
    if not planned_steps_reached(checkpoint, cfg):
        return None
    state = read_trainer_state(checkpoint)
    metrics: dict[str, Any] = {}
    for entry in state.get("log_history", []):
        metrics.update({k: v for k, v in entry.items() if k.startswith(("eval_", "train_"))})
    if state.get("best_metric") is not None:
        metrics[f"best_{BEST_METRIC_KEY}"] = state["best_metric"]
    metrics["global_step"] = state["global_step"]
    best = best_checkpoint(complete_checkpoints(checkpoint.parent))
    return TrainResult(checkpoint_dir=checkpoint, best_checkpoint=best, metrics=metrics)


def _finish_wandb() -> None:
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except ImportError:  # pragma: no cover
        pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from so8t.config import add_set_option

    parser.add_argument("config", help="run config (YAML)")
    parser.add_argument("--output-dir", default=None, help="run directory (default: the config's output_dir)")
    add_set_option(parser)


def relaunch_command(program: Sequence[str], args: argparse.Namespace) -> list[str]:
    """The command line that runs `program` (e.g. ["so8t", "train"]) again with the same arguments."""
    command = [*program, str(args.config)]
    if args.output_dir:
        command += ["--output-dir", str(args.output_dir)]
    for override in args.overrides:
        command += ["--set", override]
    return command


def claim(cfg: RunConfig) -> dict[str, tuple[Any, Any]]:
    """Claim the config's run directory (so8t.layout.claim_run_dir with the config's identity); returns the
    accepted changes of a resumed run."""
    from so8t.config import RESUMABLE_SETTINGS, identity_defaults, resolved_config_yaml, run_identity

    return claim_run_dir(
        Path(cfg.output_dir),
        resolved_config_yaml(cfg),
        run_identity(cfg),
        RESUMABLE_SETTINGS,
        defaults=identity_defaults(),
    )


def run_cli(
    args: argparse.Namespace,
    program: Sequence[str] = ("so8t", "train"),
    rewards: Callable[[Any], tuple[list[Any], list[float]]] | None = None,
) -> int:
    """`so8t train`; `rewards` as train_from_config takes them (given by so8t.train_command)."""
    from so8t.config import load_config

    overrides = list(args.overrides) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    cfg = load_config(args.config, overrides)
    output_dir = Path(cfg.output_dir)
    claim(cfg)
    if cfg.train.processes > 1 and "WORLD_SIZE" not in os.environ:
        from so8t.train.launch import config_arguments, train_in_processes

        result = train_in_processes(cfg, output_dir, config_arguments(args.config, overrides))
    else:
        result = train_from_config(cfg, output_dir, relaunch=relaunch_command(program, args), rewards=rewards)
    report_result(result)
    return 0


def report_result(result: TrainResult) -> None:
    """Print where the checkpoints are, once: by the launcher when so8t launched the processes, else by rank 0
    (every rank of a torchrun runs this entry point)."""
    from so8t.train.launch import LAUNCHED_ENV

    if os.environ.get(LAUNCHED_ENV) or int(os.environ.get("RANK", "0")) != 0:
        return
    print(f"checkpoint: {result.checkpoint_dir}")
    if result.best_checkpoint:
        print(f"best checkpoint: {result.best_checkpoint}")


def _ddp_main() -> int:  # pragma: no cover - entry point for `torchrun -m so8t.train.run CONFIG`
    parser = argparse.ArgumentParser(prog="python -m so8t.train.run")
    add_arguments(parser)
    nproc = os.environ.get("LOCAL_WORLD_SIZE", "1")
    try:
        return run_cli(
            parser.parse_args(), program=("torchrun", f"--nproc_per_node={nproc}", "-m", "so8t.train.run")
        )
    except UserError as exc:
        # every rank stops with the same error; one says it
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(_ddp_main())
