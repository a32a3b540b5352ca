"""So8tTrainer: HF Trainer with the SO8T loss, two learning rates and adapter-only, atomic checkpoints.

Everything else (gradient accumulation, schedulers, clipping, evaluation, mixed precision, DDP, resume,
reporting) stays Trainer's. The loss is

    lm_sum / n_lm_tokens + safety.loss_weight * safety_sum / n_safety_rows + pet_weight(step) * pet_sum / n_triples

where every count is taken over the whole accumulated batch (all micro-batches of one optimizer step, all
ranks), so 4 x 1 accumulation gives the same update as 1 x 4 for every part. Each rank holds its share of
every figure; the logged ones (loss, each part, tokens/s, the evaluation parts) are summed over ranks at
log time, so they are the global values for any world size, and a checkpoint keeps the sums since the last
log line (so8t.train.log_sums), so a resumed run logs what an uninterrupted one logs.
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
from typing import Any

import torch
from torch import nn
from transformers import Trainer
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from so8t.layout import ADAPTER_WEIGHTS, STATE_FILE, TRAINER_STATE
from so8t.layout.atomic import replace_directory, staging_path
from so8t.layout.checkpoints import (
    BEST_METRIC,
    BEST_METRIC_KEY,
    best_evaluated_step,
    checkpoint_name,
    checkpoint_step,
    complete_checkpoints,
    read_trainer_state,
)
from so8t.model.quantized import kept_quantized_storage
from so8t.train.callbacks import (
    ProgressReport,
    ResumedSettings,
    ThroughputMetrics,
    TrainedScale,
    largest_trained_magnitude,
)
from so8t.train.distributed import barrier, max_over_ranks, rank, sum_over_ranks, world_size
from so8t.train.eval_sums import EvalSums, rows_counted_once
from so8t.train.guard import NonFiniteLossError, StopGuard
from so8t.train.log_sums import PARTS, LogSums
from so8t.train.loss_counts import LossCounts, count_loss_items
from so8t.train.param_groups import param_groups
from so8t.train.resume_point import trained_scale


def load_trainable_state(model: nn.Module, checkpoint_dir: str) -> None:
    """Load a checkpoint's peft adapter and so8t state (rotations, head B) into `model` in place."""
    from peft import PeftModel, set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter_file = os.path.join(checkpoint_dir, ADAPTER_WEIGHTS)
    peft_model = next((m for m in model.modules() if isinstance(m, PeftModel)), None)
    if peft_model is not None and os.path.isfile(adapter_file):
        result = set_peft_model_state_dict(peft_model, load_file(adapter_file))
        if result.unexpected_keys:
            raise RuntimeError(f"{adapter_file}: unexpected adapter keys {result.unexpected_keys[:5]}")
    state = load_file(os.path.join(checkpoint_dir, STATE_FILE))
    loaded = model.load_state_dict(state, strict=False)
    if loaded.unexpected_keys:
        raise RuntimeError(
            f"{checkpoint_dir}: so8t state keys not in the model: {loaded.unexpected_keys[:5]}"
        )


class So8tTrainer(Trainer):
    """HF Trainer for an SO8TModel. Extra arguments: the run config sections it reads.

    `loss_weights`: {"safety": safety.loss_weight, "pet": pet.weight, "pet_start": ..., "pet_full": ...};
    `safety_learning_rate`: learning rate of rotations and head B (LoRA uses args.learning_rate);
    `class_weights`: head-B class weights or None.

    Training logic goes through Trainer's public hooks (compute_loss, get_batch_samples, create_optimizer,
    log, evaluate, evaluation_loop, save_model, callbacks). Three private methods are overridden because
    transformers offers no public hook for what they do: `_save_checkpoint` and `_get_output_dir` write each
    checkpoint into a staging folder and rename it into place when complete (a crash never leaves a partial
    checkpoint-N), and `_load_from_checkpoint` loads only the adapter and so8t state on resume (the base is
    never saved). tests/test_train_checkpoint.py holds their behaviour on the installed transformers.
    """

    loss_is_scaled_for_ga = True  # each part is normalised by its count over the whole accumulated batch

    def __init__(
        self,
        *args: Any,
        safety_learning_rate: float,
        loss_weights: dict[str, float],
        class_weights: list[float] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False  # the model returns no loss of its own here; see compute_loss
        self.safety_learning_rate = safety_learning_rate
        self.loss_weights = loss_weights
        self.class_weights = (
            None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        )
        self._step_counts: LossCounts | None = None
        # this rank's shares since the last log line (kept in checkpoints, so a resume logs the same)
        self.log_sums = LogSums()
        # the trained parameters' scale now, before any step (a resume replaces it with the run's own start)
        self.trained_scale = TrainedScale(largest_trained_magnitude(self._so8t_model()))
        self._pet_weight = 0.0
        # this rank's evaluation sums and counts of each part, each validation row counted once
        self.eval_sums = EvalSums()
        self.stop_guard = StopGuard()
        self.throughput = ThroughputMetrics()
        # one progress display for the pipeline (so8t.progress) instead of Trainer's bar and printer
        self.remove_callback(ProgressCallback)
        self.remove_callback(PrinterCallback)
        for callback in (
            self.stop_guard,
            self.throughput,
            self.log_sums,
            self.trained_scale,
            ResumedSettings(self.param_group_settings()),
            ProgressReport(),
        ):
            self.add_callback(callback)

    # ---- loss ------------------------------------------------------------------------------------------

    def current_pet_weight(self) -> float:
        from so8t.model.pet import pet_weight

        total = max(int(self.state.max_steps or 1), 1)
        return float(
            pet_weight(
                self.state.global_step,
                total,
                self.loss_weights["pet"],
                self.loss_weights["pet_start"],
                self.loss_weights["pet_full"],
            )
        )

    def get_batch_samples(
        self, epoch_iterator: Any, num_batches: int, device: torch.device
    ) -> tuple[list, Any]:
        """Fetch the micro-batches of one optimizer step and count loss items over all of them (and all ranks)."""
        batch_samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        counts = [count_loss_items(b, self.class_weights) for b in batch_samples]
        totals = torch.tensor(
            [[c.lm, c.safety, c.pet] for c in counts] or [[0.0, 0.0, 0.0]], dtype=torch.float64
        )
        totals = sum_over_ranks(totals.sum(0), device)
        self._step_counts = LossCounts(*totals.tolist())
        self.log_sums.add_step(float(sum(int(b["attention_mask"].sum()) for b in batch_samples)))
        self.stop_guard.check_gradients = self.accelerator.scaler is None
        return batch_samples, num_items

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        # The model returns summed parts; dividing by counts of the whole accumulated batch is done here.
        output = self._forward(model, inputs)
        lm_sum, safety_sum, pet_sum = output.lm_loss_sum, output.safety_loss_sum, output.pet_sum
        training = model.training and self._step_counts is not None
        counts = self._step_counts if training else count_loss_items(inputs, self.class_weights)
        lm = lm_sum / max(counts.lm, 1.0)
        safety = safety_sum / max(counts.safety, 1e-12) if counts.safety > 0 else safety_sum
        pet = pet_sum / max(counts.pet, 1.0)
        pet_w = self.current_pet_weight()
        loss = lm + self.loss_weights["safety"] * safety + pet_w * pet
        if training:
            if not bool(torch.isfinite(loss.detach())):
                # every rank learns of it at the step's end (StopGuard) and stops before the update
                self.stop_guard.report_nonfinite(
                    f"The training loss became {loss.item()} at step {self.state.global_step} (lm {lm.item():.4g}, "
                    f"safety {safety.item():.4g}, pet {pet.item():.4g}); training stopped before applying it."
                )
            self.log_sums.add_micro_batch(
                float(loss.detach()), [float(p.detach()) for p in (lm, safety, pet)]
            )
            self._pet_weight = pet_w
            # DDP averages gradients over ranks while the counts already span all ranks. Trainer averages
            # this returned value over ranks at log time, so each rank's share times the world size logs as
            # the global loss.
            loss = loss * world_size()
        else:
            keep = rows_counted_once(self.accelerator, inputs["input_ids"].shape[0], self.args.device)
            if bool(keep.all()):
                self.eval_sums.add(output, counts)
            elif bool(keep.any()):  # the last batch of a rank holds padding rows: the others count alone
                kept = {key: value[keep.to(value.device)] for key, value in inputs.items()}
                self.eval_sums.add(self._forward(model, kept), count_loss_items(kept, self.class_weights))
        if return_outputs:  # a dict, which Trainer's prediction_step knows how to take apart
            return loss, {"logits": output.logits, "safety_logits": output.safety_logits}
        return loss

    @staticmethod
    def _forward(model: nn.Module, inputs: dict[str, torch.Tensor]) -> Any:
        return model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            labels=inputs["labels"],
            safety_labels=inputs["safety_labels"],
            pool_index=inputs["pool_index"],
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """A training log line's loss and its parts (per optimizer step, averaged since the last line, also
        across a resume: so8t.train.log_sums), tokens/s, learning rates and memory, each summed over ranks
        first. Every rank logs at the same step, so the sum is a collective they all reach."""
        if "loss" in logs:
            figures, tokens = self.log_sums.take(self.args.device)
            logs.update(figures)
            logs["pet_weight"] = self._pet_weight
            logs.update(self.throughput.collect(tokens))
        super().log(logs, start_time)

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Trainer's evaluation (validation loss, then the callbacks' sample generations) with the 4-bit
        layers' storage restored afterwards: bitsandbytes' CPU eval forward repacks it in place for an
        inference-only kernel that has no backward, so training after an evaluation would otherwise get
        wrong gradients for everything before a quantised layer."""
        with kept_quantized_storage(self.model):
            return super().evaluate(*args, **kwargs)

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        """Trainer's loop, plus the eval loss parts (`<prefix>_lm_loss`, `_safety_loss`, `_pet`) and
        `<prefix>_task_loss` (layout.BEST_METRIC), the loss without PET. Each part is its sum over the whole
        validation set (all ranks) divided by its count, as the training loss is, so it does not depend on
        how the set is split into batches or ranks."""
        self.eval_sums.reset()
        output = super().evaluation_loop(*args, **kwargs)
        sums = self.eval_sums.totals(self.args.device)
        bound = inspect.signature(Trainer.evaluation_loop).bind(self, *args, **kwargs)
        bound.apply_defaults()
        prefix = bound.arguments["metric_key_prefix"]
        if sums[1] > 0 or sums[3] > 0:
            for index, key in enumerate(PARTS):
                total, count = sums[2 * index], sums[2 * index + 1]
                output.metrics[f"{prefix}_{key}"] = total / count if count > 0 else 0.0
            # The best checkpoint is chosen on this: PET's weight grows with the step, so a loss that holds it
            # would favour early checkpoints for no reason of quality.
            output.metrics[f"{prefix}_{BEST_METRIC}"] = (
                output.metrics[f"{prefix}_lm_loss"]
                + self.loss_weights["safety"] * output.metrics[f"{prefix}_safety_loss"]
            )
        return output

    # ---- optimizer -------------------------------------------------------------------------------------

    def param_group_settings(self) -> dict[str, dict[str, float]]:
        """Learning rate and weight decay of each param group, from the current config (also re-applied
        after a resume by callbacks.ResumedSettings)."""
        wd = self.args.weight_decay
        return {
            "lora": {"lr": self.args.learning_rate, "weight_decay": wd},
            "so8t": {"lr": self.safety_learning_rate, "weight_decay": wd},
            "so8t_no_decay": {"lr": self.safety_learning_rate, "weight_decay": 0.0},
        }

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """AdamW (or args.optim) over so8t.train.param_groups: LoRA at args.learning_rate, rotations and head B
        at safety_learning_rate; every trainable parameter must land in exactly one group."""
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, opt_model)
        optimizer_kwargs.pop("lr", None)
        self.optimizer = optimizer_cls(
            param_groups(opt_model, self.param_group_settings()), **optimizer_kwargs
        )
        in_optimizer = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        missing = [
            n for n, p in opt_model.named_parameters() if p.requires_grad and id(p) not in in_optimizer
        ]
        assert not missing, f"trainable parameters missing from the optimizer: {missing[:5]}"
        return self.optimizer

    # ---- checkpoints -----------------------------------------------------------------------------------

    def _so8t_model(self) -> Any:
        return self.accelerator.unwrap_model(self.model, keep_torch_compile=False)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Adapter + so8t state + so8t.json (+ tokenizer), from the main process; never the base weights.
        (Trainer's own saves the whole wrapped model; checkpoints call this too.)"""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        self._so8t_model().save_so8t(output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def _get_output_dir(self, trial: Any) -> str:
        staging = getattr(self, "_staging_dir", None)
        return staging if staging else super()._get_output_dir(trial)

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """Trainer's checkpoint, written into a staging folder and renamed to checkpoint-N when complete.

        A checkpoint is never written with a non-finite parameter: the ranks agree on that first (the
        gradients of every applied update were checked by the StopGuard), and the run stops instead.
        """
        run_dir = super()._get_output_dir(trial)
        step = self.state.global_step
        self._check_parameters_finite(step)
        name = checkpoint_name(step)
        final = os.path.join(run_dir, name)
        staging_root = str(staging_path(final))
        if self.args.should_save:
            shutil.rmtree(staging_root, ignore_errors=True)
        self._staging_dir = staging_root
        self.log_sums.record_for_checkpoint(self.args.device)
        for exported in (self.log_sums, self.trained_scale):
            # a state resumed from a checkpoint of an older so8t has no slot for them yet
            self.state.stateful_callbacks.setdefault(type(exported).__name__, {})
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_dir = None
        # every rank has written its own RNG state into the staging folder
        barrier()
        if self.args.should_save:
            # the same step may be saved again (an emergency save after a regular one): the new one replaces
            # it, the old one moved aside first so a crash leaves one of them whole
            replace_directory(os.path.join(staging_root, name), final)
            shutil.rmtree(staging_root, ignore_errors=True)
            self._record_best_checkpoint(run_dir, final)
            from transformers.trainer_utils import rotate_checkpoints

            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=False,
            )
        barrier()

    def _record_best_checkpoint(self, run_dir: str, final: str) -> None:
        """Trainer's best counts every evaluation, also those of steps never saved, and would protect a worse
        checkpoint from rotation in its place: the best is the best of the saved ones (best_evaluated_step),
        recorded in the checkpoint just written before rotation keeps it."""
        saved = {checkpoint_step(path): path for path in complete_checkpoints(run_dir)}
        step = best_evaluated_step(self.state.log_history, set(saved))
        if step is None or not self.args.metric_for_best_model:
            return
        value = next(
            e[BEST_METRIC_KEY]
            for e in self.state.log_history
            if e.get("step") == step and BEST_METRIC_KEY in e
        )
        self.state.best_model_checkpoint, self.state.best_global_step = str(saved[step]), step
        self.state.best_metric = float(value)
        self.state.save_to_json(os.path.join(final, TRAINER_STATE))

    def _check_parameters_finite(self, step: int) -> None:
        """Stop rather than save a non-finite parameter; record the parameters' scale for the resume rule."""
        self.trained_scale.max_abs = largest_trained_magnitude(self._so8t_model())
        bad = float(not math.isfinite(self.trained_scale.max_abs))
        if max_over_ranks(torch.tensor([bad]), self.args.device).item():
            raise NonFiniteLossError(
                f"The trained parameters became non-finite at step {step}; {checkpoint_name(step)} was not "
                "written and training stopped.",
                step=step,
            )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        """Load the adapter and so8t state of a checkpoint into the model being trained (the base stays)."""
        load_trainable_state(self._so8t_model() if model is None else model, resume_from_checkpoint)
        state = read_trainer_state(resume_from_checkpoint)
        self.log_sums.resume_from(state, first_rank=rank() == 0)
        start = trained_scale(state)["start_max_abs"]
        if start is None:  # a checkpoint of an older so8t: its own scale is the reference
            start = largest_trained_magnitude(self._so8t_model() if model is None else model)
        self.trained_scale.start_max_abs = start

    def save_emergency_checkpoint(self) -> str | None:
        """Save a checkpoint of the current step now (signal, OOM); returns its folder, None off the main rank."""
        self._save_checkpoint(self.model_wrapped, trial=None)
        if not self.args.should_save:
            return None
        return os.path.join(super()._get_output_dir(None), checkpoint_name(self.state.global_step))
