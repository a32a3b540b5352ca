"""Fold a training checkpoint into a plain HF causal LM and the safety head (docs/architecture.md, Consolidation).

The base is loaded unquantised in its own dtype (even when training ran on 8/4-bit), LoRA is merged, each
layer rotation folds into its attention output projection (nn.Linear: W' = W R^T; GPT-2 Conv1D: W' = R W),
the gate folds into the LM head (W_lm' = W_lm (R_safe R_cmd)^T, embeddings untied first) and R_safe into
head B's first layer (W_B' = W_B R_safe^T). `AutoModelForCausalLM.from_pretrained(out)` then needs no so8t code.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from so8t.errors import UserError

CONSOLIDATED_FORMAT = "so8t-consolidated"
SAFETY_HEAD_FILE = "so8t_safety_head.safetensors"
SO8T_JSON = "so8t.json"


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

    from so8t.model.base import checkpoint_base, load_base, resolve_base_path
    from so8t.model.heads import SafetyHead
    from so8t.model.so8 import SO8Gate, SO8Rotation, _layer_index, find_attention_output_projections
    from so8t.model.so8t import STATE_FILE, atomic_directory, read_checkpoint_info

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
    model, tokenizer = load_base(
        {"base": base_path, "dtype": "auto", "quantization": "none"}, for_training=False
    )
    if (ckpt / "adapter_config.json").is_file():
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

    if any((ckpt / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        tokenizer = AutoTokenizer.from_pretrained(str(ckpt))
    target = Path(out_dir)
    tmp, finish = atomic_directory(target)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp / SAFETY_HEAD_FILE))
    meta = {
        "format": CONSOLIDATED_FORMAT,
        "version": 1,
        "classes": info.get("classes"),
        "pooling": info.get("pooling", "last_prompt_token"),
        "safety_head": {
            "kind": head.kind,
            "mlp_hidden": head.mlp_hidden,
            "hidden_size": gate.R_safe.width,
            "reads": "lm_head_input",
        },
        "source_checkpoint": str(ckpt.resolve()),
        "base_model": str(info.get("base_model") or base_path),
        "trained_model": info.get("model"),
        "rotated_layers": info.get("rotated_layers"),
        "so8t_version": info.get("so8t_version"),
    }
    (tmp / SO8T_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    finish()
    return target


def load_consolidated_safety_head(folder: str | os.PathLike):
    """Head B of a consolidated folder (fp32, eval mode); it reads the LM head's input h directly."""
    from safetensors.torch import load_file

    from so8t.model.heads import SafetyHead

    folder = Path(folder)
    path = folder / SAFETY_HEAD_FILE
    if not path.is_file():
        raise UserError(
            f"{folder} has no {SAFETY_HEAD_FILE}: it is not a so8t consolidated folder. "
            f"Run `so8t consolidate CHECKPOINT --out DIR` first."
        )
    meta = json.loads((folder / SO8T_JSON).read_text()) if (folder / SO8T_JSON).is_file() else {}
    head_info = meta.get("safety_head") or {}
    state = load_file(str(path))
    hidden = int(state["net.0.weight"].shape[1])
    classes = meta.get("classes") or ["ALLOW", "ESCALATE", "REFUSE"]
    head = SafetyHead(hidden, len(classes), head_info.get("kind", "linear"), head_info.get("mlp_hidden"))
    head.load_state_dict(state)
    return head.eval()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="training checkpoint folder (checkpoints/checkpoint-N)")
    parser.add_argument("--out", required=True, help="folder to write the consolidated model into")
    parser.add_argument("--base", default=None, help="base model path overriding the one in so8t.json")


def run_cli(args: argparse.Namespace) -> int:
    if not Path(args.checkpoint).is_dir():
        raise UserError(
            f"checkpoint {args.checkpoint} is not a folder; give checkpoints/checkpoint-N of a run."
        )
    out = consolidate_checkpoint(args.checkpoint, args.out, base=args.base)
    print(out)
    return 0
