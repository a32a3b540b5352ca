"""SO8TModel: a (LoRA-wrapped) causal LM with SO(8) rotations inside attention, the gate and safety head B.

The final hidden state h is captured as the input of the LM head (`get_output_embeddings()`), which makes the
gate architecture-agnostic: a forward pre-hook stores h and h_safe = h R_safe and hands the LM head
h_task = h R_safe R_cmd. Rotations and head B keep fp32 parameters on the base's device; rotations cast R to
the activation dtype, head B reads h_safe in fp32, so 8/4-bit and bf16 bases need no dtype juggling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from so8t.data.safety import DECISIONS
from so8t.data.templates import PromptFormat
from so8t.errors import UserError
from so8t.layout import ADAPTER_CONFIG, STATE_FILE
from so8t.layout.so8t_json import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    LAST_PROMPT_TOKEN,
    SO8T_JSON,
    LoadingRecord,
    SafetyHeadRecord,
    So8tRecord,
    read_checkpoint_info,
    so8t_version,
    write_so8t_json,
)
from so8t.model.heads import SafetyHead, pool_last_prompt_token
from so8t.model.pet import pet_sum
from so8t.model.quantized import quantization_settings, quantized_weights_checksum
from so8t.model.so8 import SO8Gate, SO8Rotation, attach_attention_rotations, shared_exponential

IGNORE_INDEX = -100
_STATE_PREFIXES = ("rotations.", "gate.", "safety_head.")


@dataclass
class SO8TOutput(ModelOutput):
    """Means (lm_loss, safety_loss, pet) and their sums and counts, so a trainer can normalise over a whole
    accumulated batch: mean = sum / count. Losses are None when their labels were not given."""

    logits: torch.Tensor | None = None
    safety_logits: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    safety_loss: torch.Tensor | None = None
    pet: torch.Tensor | None = None
    lm_loss_sum: torch.Tensor | None = None
    lm_tokens: torch.Tensor | None = None
    safety_loss_sum: torch.Tensor | None = None
    safety_count: torch.Tensor | None = None
    pet_sum: torch.Tensor | None = None
    pet_count: torch.Tensor | None = None


class SO8TModel(nn.Module):
    """The SO8T structure around a base causal LM (plain or peft-wrapped); math as in docs/architecture.md."""

    def __init__(
        self,
        base_model: nn.Module,
        *,
        safety_head_kind: str = "linear",
        mlp_hidden: int | None = None,
        layers: str | list[int] = "all",
        safety_class_weights: list[float] | None = None,
    ):
        super().__init__()
        self.base_model = base_model
        lm_head = base_model.get_output_embeddings()
        if lm_head is None:
            raise UserError(
                f"{type(base_model).__name__} has no output embeddings (LM head); SO8T needs a causal LM."
            )
        hidden_size = int(lm_head.weight.shape[1])
        device = lm_head.weight.device
        self.rotations = attach_attention_rotations(base_model, layers).to(device)
        self.rotated_layers = [int(k) for k in self.rotations.keys()]
        self.gate = SO8Gate(hidden_size).to(device)
        self.safety_head = SafetyHead(hidden_size, len(DECISIONS), safety_head_kind, mlp_hidden).to(device)
        self.safety_class_weights = safety_class_weights
        self.base_reference: str | None = None
        # how training rendered prompts (so8t.data.templates.PromptFormat.record), kept in so8t.json
        self.prompt_record: dict[str, Any] = PromptFormat().record()
        # taken now, before an eval forward on the CPU can repack 4-bit weights (so8t/model/quantized.py)
        self.quantized_weights = quantized_weights_checksum(self.hf_model)
        self._captured: dict[str, torch.Tensor] = {}
        self._gate_hook_handle = lm_head.register_forward_pre_hook(self._gate_hook)

    # --- the gate on the LM head's input -------------------------------------------------------------------
    def _gate_hook(self, _module, args):
        h = args[0]
        h_safe, h_task = self.gate(h)
        self._captured = {"h": h, "h_safe": h_safe}
        return (h_task,) + tuple(args[1:])

    def remove_hooks(self) -> None:
        """Take the rotations and the gate out of the base's forward (consolidation, once they are folded)."""
        self._gate_hook_handle.remove()
        for rotation in self.rotations.values():
            if rotation.hook_handle is not None:
                rotation.hook_handle.remove()

    @property
    def hf_model(self) -> nn.Module:
        """The plain transformers model under any peft wrapper."""
        get = getattr(self.base_model, "get_base_model", None)
        return get() if callable(get) else self.base_model

    @property
    def config(self):
        return self.hf_model.config

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        safety_labels: torch.Tensor | None = None,
        pool_index: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SO8TOutput:
        """Logits of task head A, safety logits of head B (B, 3) and the loss parts.

        lm_loss: completion-only CE, logits[:, t] predicts labels[:, t+1], tokens with label -100 ignored.
        safety_loss: CE of head B (class weights optional), rows with safety label -100 ignored.
        pool_index (B,): last prompt token per row; default the last non-padding token (right padding).
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs.pop("num_items_in_batch", None)
        # One batched exponential per forward; not under activation checkpointing, whose recomputation in
        # backward must see the same tensors saved as the first forward did.
        shared = [] if self._activation_checkpointing() else self.all_rotations()
        with shared_exponential(shared):
            out = self.base_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        h, h_safe = self._captured.pop("h"), self._captured.pop("h_safe")
        if pool_index is None:
            pool_index = attention_mask.long().sum(-1) - 1
        safety_logits = self.safety_head(pool_last_prompt_token(h_safe, pool_index).float())
        result = SO8TOutput(logits=out.logits, safety_logits=safety_logits, hidden=h)
        p_sum, p_count = pet_sum(h, attention_mask)
        result.pet_sum, result.pet_count, result.pet = p_sum, p_count, p_sum / p_count.clamp_min(1.0)
        if labels is not None:
            # Shift the labels, not the logits (as transformers' own loss does): slicing the logits would copy
            # the largest activation of the step, forward and backward.
            logits = out.logits.float()
            shifted = F.pad(labels.to(logits.device), (0, 1), value=IGNORE_INDEX)[:, 1:]
            total = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                shifted.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
            count = shifted.ne(IGNORE_INDEX).sum().float()
            result.lm_loss_sum, result.lm_tokens, result.lm_loss = total, count, total / count.clamp_min(1.0)
        if safety_labels is not None:
            s_sum, s_count = self._safety_sum(safety_logits, safety_labels.to(safety_logits.device))
            result.safety_loss_sum, result.safety_count = s_sum, s_count
            result.safety_loss = s_sum / s_count if s_count > 0 else s_sum
        return result

    def all_rotations(self) -> list[SO8Rotation]:
        """Every rotation of the model: the attention ones, then R_safe and R_cmd."""
        return [*self.rotations.values(), self.gate.R_safe, self.gate.R_cmd]

    def _activation_checkpointing(self) -> bool:
        return bool(getattr(self.base_model, "is_activation_checkpointing", False))

    def _safety_sum(self, safety_logits: torch.Tensor, safety_labels: torch.Tensor):
        valid = safety_labels.ne(IGNORE_INDEX)
        weight = None
        if self.safety_class_weights is not None:
            weight = torch.tensor(self.safety_class_weights, dtype=torch.float32, device=safety_logits.device)
        if (
            not valid.any()
        ):  # keep head B in the graph with a zero contribution (DDP wants every parameter used)
            return safety_logits.sum() * 0.0, torch.zeros((), device=safety_logits.device)
        total = F.cross_entropy(
            safety_logits, safety_labels, weight=weight, ignore_index=IGNORE_INDEX, reduction="sum"
        )
        count = valid.sum().float() if weight is None else weight[safety_labels[valid]].sum()
        return total, count

    def generate(self, **kwargs: Any):
        """The base's generate with the gate and rotations active (task head A on h_task)."""
        return self.base_model.generate(**kwargs)

    def activation_checkpointing_enable(
        self, activation_checkpointing_kwargs: dict | None = None, **kwargs: Any
    ) -> None:
        """Trainer's hook (`activation_checkpointing` in the training arguments): the base recomputes its
        activations in the backward."""
        self.hf_model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=activation_checkpointing_kwargs, **kwargs
        )

    # --- checkpoints ----------------------------------------------------------------------------------------
    def so8t_state_dict(self) -> dict[str, torch.Tensor]:
        """Rotations, gate and head B parameters (keys as in this module's state_dict)."""
        return {
            k: v.detach().float().contiguous().cpu()
            for k, v in self.state_dict().items()
            if k.startswith(_STATE_PREFIXES)
        }

    def checkpoint_info(self) -> So8tRecord:
        cfg = self.config
        quant = getattr(cfg, "quantization_config", None)
        if quant is not None and not isinstance(quant, dict):
            quant = quant.to_dict()
        quantization = "none"
        if quant:
            quantization = (
                "8bit" if quant.get("load_in_8bit") else "4bit" if quant.get("load_in_4bit") else "none"
            )
        dtype = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None)
        loading = getattr(self.hf_model, "so8t_loading", None) or {}
        return So8tRecord(
            format=CHECKPOINT_FORMAT,
            version=FORMAT_VERSION,
            classes=list(DECISIONS),
            pooling=LAST_PROMPT_TOKEN,
            base_model=self.base_reference or getattr(cfg, "_name_or_path", None),
            base_revision=loading.get("revision"),
            base_commit=getattr(cfg, "_commit_hash", None),
            trust_remote_code=bool(loading.get("trust_remote_code", False)),
            model=LoadingRecord(
                dtype=str(dtype).replace("torch.", "") if dtype else None,
                quantization=quantization,
                quantization_config=quantization_settings(cfg),
                quantized_weights=self.quantized_weights,
                model_type=getattr(cfg, "model_type", None),
                hidden_size=self.gate.R_safe.width,
                gguf=loading.get("gguf"),
            ),
            rotated_layers=self.rotated_layers,
            safety_head=SafetyHeadRecord(kind=self.safety_head.kind, mlp_hidden=self.safety_head.mlp_hidden),
            safety_class_weights=self.safety_class_weights,
            prompt=self.prompt_record,
            so8t_version=so8t_version(),
        )

    def save_so8t(self, out_dir: str | os.PathLike) -> Path:
        """Write the peft adapter, so8t_state.safetensors and so8t.json into out_dir (never the base weights)."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if hasattr(self.base_model, "peft_config"):
            self.base_model.save_pretrained(str(out), safe_serialization=True)
        save_file(self.so8t_state_dict(), str(out / STATE_FILE))
        write_so8t_json(out, self.checkpoint_info())
        return out

    @classmethod
    def load_so8t(
        cls,
        ckpt_dir: str | os.PathLike,
        base: str | None = None,
        quantization: str | None = None,
        for_training: bool = False,
        dtype: str | None = None,
        device_map: Any = None,
        compute_dtype: str | None = None,
    ) -> SO8TModel:
        """The checkpoint's adapter on a freshly loaded base, loaded as so8t.json records it (revision,
        trust_remote_code, dtype, bitsandbytes settings); `base`, `quantization` (default "none": unquantised),
        `dtype` and `compute_dtype` (of 4-bit layers) override the recorded ones."""
        from peft import PeftModel
        from safetensors.torch import load_file

        from so8t.model.base import (
            checkpoint_base,
            checkpoint_model_config,
            load_base,
            quiet_checkpointing_alias,
        )

        ckpt = Path(ckpt_dir)
        info = read_checkpoint_info(ckpt)
        base_path = checkpoint_base(
            ckpt / SO8T_JSON,
            info.base_model,
            base,
            "base=",
            fix="pass base=PATH (the base model the checkpoint was trained on)",
        )
        model_cfg = checkpoint_model_config(
            info, base_path, quantization=quantization, dtype=dtype, compute_dtype=compute_dtype
        )
        hf, _ = load_base(model_cfg, for_training=for_training, device_map=device_map)
        if (ckpt / ADAPTER_CONFIG).is_file():
            with quiet_checkpointing_alias():
                hf = PeftModel.from_pretrained(hf, str(ckpt), is_trainable=for_training)
        model = cls(
            hf,
            safety_head_kind=info.safety_head.kind,
            mlp_hidden=info.safety_head.mlp_hidden,
            layers="all" if info.rotated_layers is None else info.rotated_layers,
            safety_class_weights=info.safety_class_weights,
        )
        model.base_reference = str(base_path)
        model.prompt_record = PromptFormat.from_record(info.prompt).record()
        missing = model.load_state_dict(load_file(str(ckpt / STATE_FILE)), strict=False)
        if missing.unexpected_keys:
            raise UserError(f"{ckpt / STATE_FILE}: keys {missing.unexpected_keys[:5]} do not fit this model.")
        return model.train(for_training)
