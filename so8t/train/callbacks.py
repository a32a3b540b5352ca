"""Training callbacks: throughput/memory/learning-rate metrics, sample generations, and the safety nets.

Progress bars are Trainer's own (tqdm); loss parts come from So8tTrainer.log. W&B logging goes through
Trainer's `report_to`; see `configure_wandb`.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import TrainerCallback

from so8t.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
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


class ThroughputMetrics:
    """Metrics the trainer adds to each training log: tokens/s since the last log, both learning rates, memory."""

    def __init__(self) -> None:
        self._last_time = time.perf_counter()
        self._last_tokens = 0

    def collect(self, trainer: Any) -> dict[str, float]:
        now = time.perf_counter()
        tokens = trainer.tokens_seen
        out: dict[str, float] = {}
        if now > self._last_time and tokens >= self._last_tokens:
            out["tokens_per_s"] = (tokens - self._last_tokens) / (now - self._last_time)
        self._last_time, self._last_tokens = now, tokens
        if trainer.optimizer is not None:
            for group in trainer.optimizer.param_groups:
                name = group.get("name", "")
                if name == "lora":
                    out["learning_rate_lora"] = float(group["lr"])
                elif name.startswith("so8t"):
                    out["learning_rate_safety"] = float(group["lr"])
        out.update(memory_metrics())
        return out


class SampleGenerationCallback(TrainerCallback):
    """At each evaluation, greedy-generate a few validation prompts and record them.

    Rows (step, kind, prompt, output, extracted answer, gold) go to `<run_dir>/samples.jsonl` always and to a
    W&B table when a W&B run is active.
    """

    def __init__(
        self, samples: list[dict[str, str]], tokenizer: Any, out_path: Path, max_new_tokens: int = 64
    ):
        self.samples = samples
        self.tokenizer = tokenizer
        self.out_path = Path(out_path)
        self.max_new_tokens = max_new_tokens

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
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        with self.out_path.open("a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        try:
            import wandb

            if wandb.run is not None:
                columns = list(rows[0])
                wandb.log(
                    {"samples": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])}
                )
        except ImportError:  # pragma: no cover - wandb is a dependency
            pass


class SignalCheckpointCallback(TrainerCallback):
    """SIGTERM/SIGINT ask for a checkpoint of the current step and a clean stop (Trainer saves it atomically).

    The handler only sets a flag; the step in flight finishes, Trainer saves and stops. `received` holds the
    signal number so the caller can exit with 128 + signal.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.received is not None:  # a second signal: stop at once
            raise KeyboardInterrupt
        self.received = signum

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread (e.g. a notebook worker): no handler
                pass

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}


def configure_wandb(wandb_cfg: WandbConfig, run_dir: Path) -> list[str]:
    """Set W&B's environment for Trainer's WandbCallback and return `report_to`.

    offline (default) writes under the run directory; online needs WANDB_API_KEY in the environment;
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
    os.environ["WANDB_PROJECT"] = wandb_cfg.project
    if wandb_cfg.entity:
        os.environ["WANDB_ENTITY"] = wandb_cfg.entity
    os.environ.setdefault("WANDB_LOG_MODEL", "false")  # checkpoints stay in the run directory
    return ["wandb"]
