"""Fold a training checkpoint into a plain HF causal LM and the safety head (docs/architecture.md, Consolidation).

The base is loaded unquantised in its own dtype (even when training ran on 8/4-bit), LoRA is merged, each
layer rotation folds into its attention output projection (nn.Linear: W' = W R^T; GPT-2 Conv1D: W' = R W),
the gate folds into the LM head (W_lm' = W_lm (R_safe R_cmd)^T, embeddings untied first) and R_safe into
head B's first layer (W_B' = W_B R_safe^T). `AutoModelForCausalLM.from_pretrained(out)` then needs no so8t code.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

# Imported first so bitsandbytes is quieted before peft imports it (see so8t/model/__init__.py).
import so8t.model  # noqa: F401
from so8t.errors import UserError
from so8t.layout import (
    ADAPTER_CONFIG,
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIR,
    CONSOLIDATED_FORMAT,
    FORMAT_VERSION,
    SAFETY_HEAD_FILE,
    SO8T_JSON,
    STATE_FILE,
    TOKENIZER_MARKERS,
    atomic_directory,
    read_checkpoint_info,
    write_so8t_json,
)


def _fold_linear_input(module: Any, rotation) -> None:
    """Make module(x) == old_module(x R): nn.Linear W' = W R^T, Conv1D (y = x W + b) W' = R W."""
    import torch

    weight = module.weight
    with torch.no_grad():
        if type(module).__name__ == "Conv1D":
            weight.copy_((rotation.to(weight.device) @ weight.float()).to(weight.dtype))
        else:
            weight.copy_((weight.float() @ rotation.to(weight.device).T).to(weight.dtype))


def _untie_output_embeddings(model: Any) -> None:
    """Give the LM head its own weight and record tie_word_embeddings: false (nested text configs too)."""
    from torch import nn

    lm_head = model.get_output_embeddings()
    embed = model.get_input_embeddings()
    if lm_head.weight is embed.weight or lm_head.weight.data_ptr() == embed.weight.data_ptr():
        lm_head.weight = nn.Parameter(lm_head.weight.detach().clone())
    configs = [model.config] + [
        getattr(model.config, k)
        for k in ("text_config", "decoder")
        if getattr(model.config, k, None) is not None and hasattr(getattr(model.config, k), "to_dict")
    ]
    for cfg in configs:
        cfg.tie_word_embeddings = False
    if hasattr(model, "_tied_weights_keys"):
        model._tied_weights_keys = None if not isinstance(model._tied_weights_keys, dict) else {}


def consolidate_checkpoint(
    checkpoint_dir: str | os.PathLike, out_dir: str | os.PathLike, base: str | None = None
) -> Path:
    """Write the consolidated folder (HF model + tokenizer + generation config + head B + so8t.json); returns it."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    from so8t.config import ModelConfig
    from so8t.model.base import checkpoint_base, load_base, resolve_base_path
    from so8t.model.heads import SafetyHead
    from so8t.model.so8 import SO8Gate, SO8Rotation, _layer_index, find_attention_output_projections

    ckpt = Path(checkpoint_dir)
    info = read_checkpoint_info(ckpt)
    base_path = checkpoint_base(
        ckpt / SO8T_JSON,
        info.get("base_model"),
        base,
        "--base",
        fix="pass --base PATH (the base model the checkpoint was trained on)",
    )
    base_path = resolve_base_path(base_path)
    model, tokenizer = load_base(ModelConfig(base=base_path), for_training=False)
    if (ckpt / ADAPTER_CONFIG).is_file():
        model = PeftModel.from_pretrained(model, str(ckpt)).merge_and_unload()
    state = load_file(str(ckpt / STATE_FILE))

    with torch.no_grad():
        projections = {
            _layer_index(n, i): m for i, (n, m) in enumerate(find_attention_output_projections(model))
        }
        for layer in info.get("rotated_layers", []):
            module = projections[int(layer)]
            rotation = SO8Rotation(state[f"rotations.{layer}.generators"].shape[0] * 8)
            rotation.generators.copy_(state[f"rotations.{layer}.generators"])
            _fold_linear_input(module, rotation.dense())

        _untie_output_embeddings(model)
        lm_head = model.get_output_embeddings()
        gate = SO8Gate(int(lm_head.weight.shape[1]))
        gate.load_state_dict({k[len("gate.") :]: v for k, v in state.items() if k.startswith("gate.")})
        _fold_linear_input(lm_head, gate.dense())

        head_info = info.get("safety_head") or {}
        head = SafetyHead(
            gate.R_safe.width,
            len(info.get("classes", [0, 0, 0])),
            head_info.get("kind", "linear"),
            head_info.get("mlp_hidden"),
        )
        head.load_state_dict(
            {k[len("safety_head.") :]: v for k, v in state.items() if k.startswith("safety_head.")}
        )
        _fold_linear_input(head.first_layer, gate.R_safe.dense())

    if any((ckpt / name).is_file() for name in TOKENIZER_MARKERS):
        tokenizer = AutoTokenizer.from_pretrained(str(ckpt))
    target = Path(out_dir)
    with atomic_directory(target) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp / SAFETY_HEAD_FILE))
        write_so8t_json(tmp, _consolidated_info(ckpt, info, head, gate.R_safe.width, base_path))
    return target


def _consolidated_info(ckpt: Path, info: dict, head: Any, hidden_size: int, base_path: str) -> dict:
    """so8t.json of the consolidated folder: what head B reads and where the model came from."""
    return {
        "format": CONSOLIDATED_FORMAT,
        "version": FORMAT_VERSION,
        "classes": info.get("classes"),
        "pooling": info.get("pooling", "last_prompt_token"),
        "safety_head": {
            "kind": head.kind,
            "mlp_hidden": head.mlp_hidden,
            "hidden_size": hidden_size,
            "reads": "lm_head_input",
        },
        "source_checkpoint": str(ckpt.resolve()),
        "base_model": str(info.get("base_model") or base_path),
        "trained_model": info.get("model"),
        "rotated_layers": info.get("rotated_layers"),
        "so8t_version": info.get("so8t_version"),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", help=f"training checkpoint folder ({CHECKPOINTS_DIR}/{CHECKPOINT_PREFIX}-N)"
    )
    parser.add_argument("--out", required=True, help="folder to write the consolidated model into")
    parser.add_argument("--base", default=None, help=f"base model path overriding the one in {SO8T_JSON}")


def run_cli(args: argparse.Namespace) -> int:
    if not Path(args.checkpoint).is_dir():
        raise UserError(
            f"checkpoint {args.checkpoint} is not a folder; give {CHECKPOINTS_DIR}/{CHECKPOINT_PREFIX}-N of a run."
        )
    out = consolidate_checkpoint(args.checkpoint, args.out, base=args.base)
    print(out)
    return 0
