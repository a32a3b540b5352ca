"""Training callbacks: throughput/memory/learning-rate metrics, sample generations, the settings a resumed
run re-applies, and progress reporting into the pipeline's display.

Loss parts come from So8tTrainer.log; the stop on a signal or a non-finite loss is so8t.train.guard. W&B
logging goes through Trainer's `report_to`; see `configure_wandb`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from so8t.errors import UserError
from so8t.layout.atomic import atomic_write_text
from so8t.layout.checkpoints import checkpoint_name, checkpoint_step
from so8t.layout.run_record import wandb_run_id
from so8t.progress import current as current_progress

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from so8t.config import WandbConfig


def memory_metrics() -> dict[str, float]:
    """CUDA reserved/allocated (GiB) on a GPU; the process resident set size (GiB) otherwise."""
    if torch.cuda.is_available():
        return {
            "memory_allocated_gib": torch.cuda.memory_allocated() / 2**30,
            "memory_reserved_gib": torch.cuda.memory_reserved() / 2**30,
        }
    import psutil

    return {"memory_rss_gib": psutil.Process().memory_info().rss / 2**30}


def largest_trained_magnitude(model: torch.nn.Module) -> float:
    """The largest |value| of the trained parameters (inf when one is not finite)."""
    values = [float(p.detach().abs().max()) for p in model.parameters() if p.requires_grad and p.numel()]
    return math.inf if any(not math.isfinite(v) for v in values) else max(values, default=0.0)


class TrainedScale(TrainerCallback, ExportableState):
    """The largest magnitude of the trained parameters at a checkpoint (`max_abs`) and at the start of
    training (`start_max_abs`), kept in its trainer_state.json (Trainer's stateful_callbacks): the resume
    rule of so8t.train.resume_point passes over a checkpoint whose weights exploded. So8tTrainer measures."""

    def __init__(self, start_max_abs: float | None = None) -> None:
        self.start_max_abs = start_max_abs
        self.max_abs: float | None = None

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {"max_abs": self.max_abs, "start_max_abs": self.start_max_abs}}


class ThroughputMetrics(TrainerCallback):
    """Metrics the trainer adds to each training log: tokens/s since the last log (the tokens of every rank,
    summed by the trainer at log time), both learning rates and memory. The clock starts with training, so a
    resumed run's first figure does not count the time spent loading."""

    def __init__(self) -> None:
        self._last_time = time.perf_counter()
        self._learning_rates: dict[str, float] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last_time = time.perf_counter()

    def on_pre_optimizer_step(
        self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any
    ) -> None:
        # the rates this update uses (Trainer's own learning_rate is read at the same point)
        for group in optimizer.param_groups if optimizer is not None else []:
            name = group.get("name", "")
            if name == "lora":
                self._learning_rates["learning_rate_lora"] = float(group["lr"])
            elif name.startswith("so8t"):
                self._learning_rates["learning_rate_safety"] = float(group["lr"])

    def collect(self, tokens_since_last_log: float) -> dict[str, float]:
        now = time.perf_counter()
        out: dict[str, float] = {}
        if now > self._last_time:
            out["tokens_per_s"] = tokens_since_last_log / (now - self._last_time)
        self._last_time = now
        out.update(self._learning_rates)
        out.update(memory_metrics())
        return out


class SampleGenerationCallback(TrainerCallback):
    """At each evaluation, greedy-generate a few validation prompts and record them.

    Rows (step, kind, prompt, output, extracted answer, gold) go to `<run_dir>/samples.jsonl` always and to a
    W&B table when a W&B run is active.
    """

    def __init__(
        self,
        samples: list[dict[str, str]],
        tokenizer: PreTrainedTokenizerBase,
        out_path: Path,
        max_new_tokens: int = 64,
    ):
        self.samples = samples
        self.tokenizer = tokenizer
        self.out_path = Path(out_path)
        self.max_new_tokens = max_new_tokens

    def write_rows(self, rows: list[dict[str, Any]], step: int) -> None:
        """Append this evaluation's rows; rows of this step or later from before a resume are replaced, so a
        resumed run never repeats a step."""
        kept: list[str] = []
        if self.out_path.is_file():
            for line in self.out_path.read_text(encoding="utf-8").splitlines():
                if line.strip() and json.loads(line).get("step", -1) < step:
                    kept.append(line)
        kept += [json.dumps(row) for row in rows]
        atomic_write_text(self.out_path, "\n".join(kept) + "\n")

    @torch.no_grad()
    def _generate(self, model: Any, prompt: str) -> str:
        enc = self.tokenizer(prompt, return_tensors="pt")
        device = next(model.parameters()).device
        out = model.generate(
            input_ids=enc["input_ids"].to(device),
            attention_mask=enc["attention_mask"].to(device),
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)

    def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or model is None or not self.samples:
            return
        from so8t.data.gsm8k import completion_answer

        was_training = model.training
        model.eval()
        rows = []
        try:
            for sample in self.samples:
                output = self._generate(model, sample["prompt"])
                if sample["kind"] == "gsm8k":
                    extracted = completion_answer(output)
                else:
                    extracted = (output.strip().split() or [""])[0]
                rows.append(
                    {
                        "step": state.global_step,
                        "kind": sample["kind"],
                        "prompt": sample["prompt"],
                        "output": output,
                        "extracted": extracted,
                        "gold": sample["gold"],
                    }
                )
        finally:
            model.train(was_training)
        self.write_rows(rows, state.global_step)
        try:
            import wandb

            if wandb.run is not None:
                columns = list(rows[0])
                wandb.log(
                    {"samples": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])}
                )
        except ImportError:  # pragma: no cover - wandb is a dependency
            pass


class ResumedSettings(TrainerCallback):
    """Make a resumed run follow its current config where Trainer restores the checkpoint's.

    Loading a checkpoint restores the optimizer's param groups (learning rate, weight decay), the scheduler's
    `base_lrs` and the logging/eval/save cadence in trainer_state.json, and keeps the best checkpoint's path
    where it was written. A run resumed with a changed learning rate, schedule length or cadence (allowed,
    see so8t.config.identity) gets the new values here, after everything is loaded and before the first step;
    the best checkpoint is looked up by its step in this run directory, which may have been moved or copied.
    `group_settings`: param group name -> {"lr": ..., "weight_decay": ...} from the current config.
    """

    def __init__(self, group_settings: dict[str, dict[str, float]]):
        self.group_settings = group_settings

    def on_train_begin(
        self,
        args: Any,
        state: Any,
        control: Any,
        optimizer: Any = None,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        if state.global_step == 0:
            return
        state.compute_steps(args, state.max_steps)
        if optimizer is not None:
            self._apply_learning_rates(optimizer, lr_scheduler)
        if state.best_model_checkpoint:
            step = checkpoint_step(state.best_model_checkpoint)
            here = Path(args.output_dir) / checkpoint_name(step) if step is not None else None
            state.best_model_checkpoint = str(here) if here is not None and here.is_dir() else None

    def _apply_learning_rates(self, optimizer: Any, scheduler: Any) -> None:
        groups = optimizer.param_groups
        for group in groups:
            settings = self.group_settings.get(group.get("name", ""))
            if settings is not None:
                group["initial_lr"] = settings["lr"]
                group["weight_decay"] = settings["weight_decay"]
        base_lrs = [group.get("initial_lr", group["lr"]) for group in groups]
        lambdas = getattr(scheduler, "lr_lambdas", None)
        if scheduler is not None and hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs = list(base_lrs)
        if lambdas is not None and len(lambdas) == len(groups):
            # the schedule's factor at the restored step, applied to the new base rates
            for group, base, factor in zip(groups, base_lrs, lambdas, strict=True):
                group["lr"] = base * factor(scheduler.last_epoch)
        else:
            for group, base in zip(groups, base_lrs, strict=True):
                group["lr"] = base
        if scheduler is not None and hasattr(scheduler, "_last_lr"):
            scheduler._last_lr = [group["lr"] for group in groups]


class ProgressReport(TrainerCallback):
    """Training steps and log lines go to the pipeline's one display (so8t.progress), in place of Trainer's
    progress bar and printer; only the main process reports."""

    LOG_KEYS = ("loss", "lm_loss", "safety_loss", "pet", "grad_norm", "learning_rate", "tokens_per_s")

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            current_progress().update(state.global_step, state.max_steps, unit="step")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            current_progress().update(state.global_step, state.max_steps, unit="step")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        shown = {k: v for k, v in logs.items() if k in self.LOG_KEYS or k.startswith("eval_")}
        if not shown:
            return
        text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
        current_progress().note(f"step {state.global_step}/{state.max_steps}  {text}")


def configure_wandb(wandb_cfg: WandbConfig, run_dir: Path) -> list[str]:
    """Set W&B's environment for Trainer's WandbCallback and return `report_to`.

    offline (default) writes under the run directory; online needs WANDB_API_KEY in the environment;
    the run id is the run directory's own (layout.wandb_run_id), so a resumed run continues its W&B run;
    disabled (or WANDB_MODE=disabled in the environment, as in tests) reports nowhere.
    """
    mode = wandb_cfg.mode
    if os.environ.get("WANDB_MODE") == "disabled" or mode == "disabled":
        return ["none"]
    if mode == "online" and not os.environ.get("WANDB_API_KEY"):
        raise UserError(
            "logging.wandb.mode is online but WANDB_API_KEY is not set. Export WANDB_API_KEY in the environment "
            "(never put it in the config), or set logging.wandb.mode to offline or disabled."
        )
    os.environ["WANDB_MODE"] = mode
    os.environ["WANDB_DIR"] = str(run_dir)
    # one W&B run per run directory: every resume (and the evaluation) logs into it
    os.environ["WANDB_RUN_ID"] = wandb_run_id(run_dir)
    os.environ["WANDB_RESUME"] = "allow"
    os.environ["WANDB_PROJECT"] = wandb_cfg.project
    if wandb_cfg.entity:
        os.environ["WANDB_ENTITY"] = wandb_cfg.entity
    os.environ.setdefault("WANDB_LOG_MODEL", "false")  # checkpoints stay in the run directory
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is None:
        # W&B reads this environment once per process (its settings singleton): without a reset, a second
        # run directory trained in the same process would log into the first one's folder and run
        wandb.teardown()
    return ["wandb"]
