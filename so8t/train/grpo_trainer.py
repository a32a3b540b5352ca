"""So8tGRPOTrainer: TRL's GRPOTrainer on an SO8T model, the whole SO8T structure in the loss.

TRL keeps its GRPO loss, sampling, advantages and reward plumbing. What changes, and why:

- Per-token log-probs come from the SO8T model's own forward (`_get_per_token_logps_and_entropies`, the
  trainer's one log-prob hook): TRL's fused LM head reads `lm_head.weight` directly and never calls the
  LM head, so the gate (a pre-hook on the LM head's input) would shape the rollouts but not the loss.
- Rotations, gate and head B are attached to the peft model as the module `so8t`, so Trainer moves,
  clips and counts them, and `create_optimizer` gives them `train.safety_learning_rate`.
- A rollout computes every rotation once (`fixed_rotations`), not at every decode step.
- Head B keeps its cross-entropy as an auxiliary term on safety prompts (`safety.loss_weight`), read at the
  last prompt token of each rollout row, so the decision head stays trained while GRPO moves the stated
  decisions.
- Checkpoints are so8t's: adapter + so8t_state.safetensors + so8t.json, written to a staging folder and
  renamed when complete.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl import GRPOTrainer
from trl.trainer.utils import entropy_from_logits, selective_log_softmax

from so8t.layout.atomic import replace_directory, staging_path
from so8t.layout.checkpoints import checkpoint_name
from so8t.model.base import quiet_checkpointing_alias
from so8t.model.so8 import fixed_rotations
from so8t.train.callbacks import ProgressReport
from so8t.train.guard import StopGuard
from so8t.train.trainer import load_trainable_state

IGNORE_INDEX = -100
SAFETY_LABELS = "safety_labels"
SO8T_MODULE = "so8t"


class So8tGRPOTrainer(GRPOTrainer):
    """GRPOTrainer for an SO8TModel (`so8t_model`); the other arguments are GRPOTrainer's.

    `safety_learning_rate`: rotations, gate and head B (LoRA uses args.learning_rate);
    `safety_loss_weight`: weight of head B's cross-entropy on the safety rows of each batch.
    Dataset rows carry `safety_label` (a class index, -100 on GSM8K rows).
    """

    def __init__(
        self,
        so8t_model: nn.Module,
        *args: Any,
        safety_learning_rate: float,
        safety_loss_weight: float,
        **kwargs: Any,
    ):
        self.so8t_model = so8t_model
        self.safety_learning_rate = safety_learning_rate
        self.safety_loss_weight = safety_loss_weight
        self._safety_logits: torch.Tensor | None = None
        self._staging_dir: str | None = None
        peft_model = so8t_model.base_model
        peft_model.add_module(
            SO8T_MODULE,
            nn.ModuleDict(
                {
                    "rotations": so8t_model.rotations,
                    "gate": so8t_model.gate,
                    "safety_head": so8t_model.safety_head,
                }
            ),
        )
        super().__init__(peft_model, *args, **kwargs)
        self.stop_guard = StopGuard()
        self.remove_callback(ProgressCallback)
        self.remove_callback(PrinterCallback)
        self.add_callback(self.stop_guard)
        self.add_callback(ProgressReport())

    # ---- the SO8T forward in the loss ------------------------------------------------------------------

    def _get_per_token_logps_and_entropies(
        self,
        model: nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **multimodal: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, None]:
        """(B, logits_to_keep) log-probs of the completion tokens under the SO8T forward (rotations and gate),
        at the sampling temperature, and their entropies; head B's logits at the last prompt token are kept
        for the auxiliary loss. Prompts are left-padded, so that token is the one before the completion."""
        batch_size = batch_size or input_ids.size(0)
        pool = input_ids.size(1) - logits_to_keep - 1
        logps, entropies, safety = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids = input_ids[start : start + batch_size]
            mask = attention_mask[start : start + batch_size]
            pool_index = torch.full((ids.size(0),), pool, dtype=torch.long, device=ids.device)
            with self.accelerator.autocast():
                out = self.so8t_model(input_ids=ids, attention_mask=mask, pool_index=pool_index)
            logits = out.logits[:, -logits_to_keep - 1 : -1].float() / self.temperature
            logps.append(selective_log_softmax(logits, ids[:, -logits_to_keep:]))
            if compute_entropy:
                with torch.no_grad():
                    entropies.append(entropy_from_logits(logits))
            safety.append(out.safety_logits)
        self._safety_logits = torch.cat(safety)
        return torch.cat(logps), torch.cat(entropies) if compute_entropy else None, None

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> torch.Tensor:
        """TRL's GRPO loss + safety.loss_weight x head B's cross-entropy on this batch's safety rows (scaled
        for gradient accumulation as TRL scales its own)."""
        self._safety_logits = None
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.get(SAFETY_LABELS)
        if self._safety_logits is None or labels is None or self.safety_loss_weight == 0:
            return loss
        labels = labels.to(self._safety_logits.device)
        valid = labels.ne(IGNORE_INDEX)
        if valid.any():
            aux = F.cross_entropy(self._safety_logits[valid].float(), labels[valid])
        else:  # head B stays in the graph with a zero contribution
            aux = self._safety_logits.sum() * 0.0
        mode = "train" if self.model.training else "eval"
        if valid.any():
            self._metrics[mode]["safety_loss"].append(float(aux.detach()))
        normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1
        return loss + self.safety_loss_weight * aux / normalizer

    # ---- rollouts --------------------------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """TRL's rollout with the rotations computed once for it; each row's safety label travels with it."""
        with fixed_rotations(self.so8t_model.all_rotations()), quiet_checkpointing_alias():
            output = super()._generate_and_score_completions(inputs)
        output[SAFETY_LABELS] = torch.tensor(
            [int(row.get("safety_label", IGNORE_INDEX)) for row in inputs], device=self.accelerator.device
        )
        return output

    # ---- optimizer -------------------------------------------------------------------------------------

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """AdamW: LoRA at args.learning_rate; rotations, gate and head B at safety_learning_rate (generators
        and biases without weight decay). Every trainable parameter lands in exactly one group."""
        if self.optimizer is not None:
            return self.optimizer
        wd = self.args.weight_decay
        groups: dict[str, dict[str, Any]] = {
            "lora": {"params": [], "lr": self.args.learning_rate, "weight_decay": wd},
            "so8t": {"params": [], "lr": self.safety_learning_rate, "weight_decay": wd},
            "so8t_no_decay": {"params": [], "lr": self.safety_learning_rate, "weight_decay": 0.0},
        }
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        for name, param in trainable:
            if "lora_" in name:
                groups["lora"]["params"].append(param)
            elif "generators" in name or param.ndim < 2:
                groups["so8t_no_decay"]["params"].append(param)
            else:
                groups["so8t"]["params"].append(param)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
        optimizer_kwargs.pop("lr", None)
        self.optimizer = optimizer_cls(
            [dict(g, name=k) for k, g in groups.items() if g["params"]], **optimizer_kwargs
        )
        expected = {id(p) for p in self.so8t_model.parameters() if p.requires_grad}
        in_optimizer = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        assert expected <= in_optimizer, "SO8T parameters missing from the GRPO optimizer"
        return self.optimizer

    # ---- checkpoints -----------------------------------------------------------------------------------

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Adapter + so8t state + so8t.json (+ tokenizer), from the main process; never the base weights."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        self.so8t_model.save_so8t(output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """No README.md model card in the checkpoints folder: a checkpoint records itself in so8t.json."""

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        load_trainable_state(self.so8t_model, resume_from_checkpoint)

    def _get_output_dir(self, trial: Any) -> str:
        return self._staging_dir or super()._get_output_dir(trial)

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """Trainer's checkpoint written into a staging folder, renamed to checkpoint-N when complete."""
        from transformers.trainer_utils import rotate_checkpoints

        run_dir = super()._get_output_dir(trial)
        name = checkpoint_name(self.state.global_step)
        final = os.path.join(run_dir, name)
        staging_root = str(staging_path(final))
        shutil.rmtree(staging_root, ignore_errors=True)
        self._staging_dir = staging_root
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_dir = None
        replace_directory(os.path.join(staging_root, name), final)
        shutil.rmtree(staging_root, ignore_errors=True)
        rotate_checkpoints(
            output_dir=run_dir,
            save_total_limit=self.args.save_total_limit,
            best_model_checkpoint=None,
            use_mtime=False,
        )

    def save_emergency_checkpoint(self) -> str:
        """Save a checkpoint of the current step now (signal); returns its folder."""
        self._save_checkpoint(self.model_wrapped, trial=None)
        return os.path.join(super()._get_output_dir(None), checkpoint_name(self.state.global_step))
