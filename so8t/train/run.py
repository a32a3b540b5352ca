"""`so8t train`: build the SO8T model and data from a run config and train it with So8tTrainer.

Reads top to bottom: base (pretrained tiny for embedded:tiny) -> LoRA -> SO8TModel -> data -> trainer ->
train (resuming from the last complete checkpoint of the run) -> TrainResult.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.errors import UserError
from so8t.layout import RunDir
from so8t.layout.checkpoints import (
    BEST_METRIC_KEY,
    best_checkpoint,
    checkpoint_name,
    complete_checkpoints,
    is_complete_checkpoint,
    read_trainer_state,
)
from so8t.layout.run_claim import claim_run_dir
from so8t.train.build import build_model, build_trainer

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """Where training left its checkpoints, and the final training/evaluation metrics."""

    checkpoint_dir: Path
    best_checkpoint: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


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
