"""Fold a training checkpoint into a plain HF causal LM and the safety head (docs/architecture.md, Consolidation).

The checkpoint's model is rebuilt as it trained (base revision, dtype and, for an 8-bit or 4-bit base, the
same bitsandbytes quantisation), then folded: LoRA is merged, each layer rotation folds into its attention
output projection (nn.Linear: W' = W R^T; GPT-2 Conv1D: W' = R W), the gate folds into the LM head
(W_lm' = W_lm (R_safe R_cmd)^T, embeddings untied first) and R_safe into head B's first layer
(W_B' = W_B R_safe^T). Every fold is computed in fp32 and cast once to the output dtype (default: the base's).

For a k-bit base the fold target is a choice (`fold_onto`): "trained" (default) folds onto the dequantised
weights the model trained with, so the consolidated model reproduces the trained one; "original" merges onto
the base's unquantised weights, a model that was never trained as such. Either way so8t.json records the
target, the dtype and the measured drift against the trained model (so8t/consolidate/drift.py).
`AutoModelForCausalLM.from_pretrained(out)` then needs no so8t code.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Imported first so bitsandbytes is quieted before peft imports it (see so8t/model/__init__.py).
import so8t.model  # noqa: F401
from so8t.consolidate.weights_check import checked_quantized_weights
from so8t.data.templates import PromptFormat
from so8t.errors import UserError
from so8t.layout import CHECKPOINT_PREFIX, CHECKPOINTS_DIR, SAFETY_HEAD_FILE, TOKENIZER_MARKERS
from so8t.layout.atomic import atomic_directory
from so8t.layout.so8t_json import (
    CONSOLIDATED_FORMAT,
    FOLD_ONTO_ORIGINAL,
    FOLD_ONTO_TRAINED,
    FOLD_TARGETS,
    FORMAT_VERSION,
    SO8T_JSON,
    SafetyHeadRecord,
    So8tRecord,
    read_checkpoint_info,
    write_so8t_json,
)

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

FOLD_TARGET_MEANING = {
    FOLD_ONTO_TRAINED: "the weights the model trained with: bitsandbytes' dequantisation of the quantised "
    "weights",
    FOLD_ONTO_ORIGINAL: "the base's original unquantised weights",
}
UNQUANTISED_FOLD_TARGET = "the base's weights, which the model trained with unquantised"


def dtype_name(dtype: Any) -> str:
    """torch.bfloat16 -> 'bfloat16' (how so8t.json and configs spell dtypes)."""
    return str(dtype).replace("torch.", "")


def _fold_linear_input(module: Any, rotation) -> None:
    """Make module(x) == old_module(x R): nn.Linear W' = W R^T, Conv1D (y = x W + b) W' = R W."""
    import torch

    weight = module.weight
    with torch.no_grad():
        weight.copy_(
            _rotated(weight.float(), rotation.to(weight.device), _is_conv1d(module)).to(weight.dtype)
        )


def _is_conv1d(module: Any) -> bool:
    return type(module).__name__ == "Conv1D"


def _rotated(weight, rotation, conv1d: bool):
    """The fp32 weight of a layer whose input is first turned by `rotation` (see _fold_linear_input)."""
    return rotation @ weight if conv1d else weight @ rotation.T


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


def _lora_delta(module: Any):
    """The fp32 weight update of a peft LoRA layer's active adapters, in its base layer's weight layout."""
    delta = 0
    for adapter in module.active_adapters:
        if adapter not in module.lora_A and adapter not in getattr(module, "lora_embedding_A", {}):
            continue
        if getattr(module, "use_dora", {}).get(adapter):
            raise UserError(f"adapter {adapter!r} uses DoRA, which so8t does not consolidate.")
        delta = delta + module.get_delta_weight(adapter).float()
    return delta


def _plain_layer(base: Any, weight, dtype) -> Any:
    """`base` holding `weight` in `dtype`: a bitsandbytes layer becomes an nn.Linear, any other keeps its type."""
    import torch
    from torch import nn

    from so8t.model.quantized import is_quantized_linear

    if not is_quantized_linear(base):
        base.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
        return base
    layer = nn.Linear(
        base.in_features, base.out_features, bias=base.bias is not None, device=weight.device, dtype=dtype
    )
    with torch.no_grad():
        layer.weight.copy_(weight)
        if base.bias is not None:
            layer.bias.copy_(base.bias.float())
    return layer.requires_grad_(False)


def _fold_layers(hf: Any, rotations: dict[int, Any], dtype) -> None:
    """Replace every LoRA-wrapped, bitsandbytes or rotated layer of `hf` by a plain one with the merged
    weight `W (+ ΔW)`, turned by its rotation, computed in fp32 and cast once to `dtype`. `rotations` maps
    id(outer projection module) -> its fp32 rotation."""
    from so8t.model.quantized import dequantized_weight, is_quantized_linear

    for name, module in list(hf.named_modules()):
        if name.endswith(".base_layer") or ".base_layer." in name:
            continue
        lora = hasattr(module, "lora_A") and hasattr(module, "get_base_layer")
        rotation = rotations.get(id(module))
        if not (lora or rotation is not None or is_quantized_linear(module)):
            continue
        base = module.get_base_layer() if lora else module
        weight = dequantized_weight(base) if is_quantized_linear(base) else base.weight.detach().float()
        if lora:
            weight = weight + _lora_delta(module)
        if rotation is not None:
            weight = _rotated(weight, rotation.to(weight.device), _is_conv1d(base))
        hf.set_submodule(name, _plain_layer(base, weight, dtype))


def _drop_quantization(hf: Any) -> None:
    """Forget that `hf` was loaded through bitsandbytes (its layers are plain now), so it saves as a plain model."""
    quantizer = getattr(hf, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(hf)
    for flag in ("is_loaded_in_8bit", "is_loaded_in_4bit", "is_quantized"):
        if getattr(hf, flag, False):
            setattr(hf, flag, False)
    if hasattr(hf.config, "_pre_quantization_dtype"):
        del hf.config._pre_quantization_dtype


def fold_so8t_model(model: Any, dtype) -> tuple[Any, Any]:
    """(plain HF model, head B) with every SO8T part of `model` (an SO8TModel) folded into plain weights in
    `dtype` (head B stays fp32). `model` is consumed: its base becomes the plain model."""
    import torch

    from so8t.model.so8 import _layer_index, find_attention_output_projections

    hf = model.hf_model
    rotations: dict[int, Any] = {}
    if model.rotated_layers:
        projections = {
            _layer_index(n, i): m for i, (n, m) in enumerate(find_attention_output_projections(hf))
        }
        rotations = {
            id(projections[layer]): model.rotations[str(layer)].dense() for layer in model.rotated_layers
        }
    model.remove_hooks()
    with torch.no_grad():
        _fold_layers(hf, rotations, dtype)
        _untie_output_embeddings(hf)
        _fold_linear_input(hf.get_output_embeddings(), model.gate.dense())
        head = copy.deepcopy(model.safety_head).float().cpu().eval()
        _fold_linear_input(head.first_layer, model.gate.R_safe.dense())
    _drop_quantization(hf)
    hf.to(dtype)
    hf.config.dtype = dtype
    return hf.eval(), head


def _base_config(base_path: str, info: So8tRecord) -> Any:
    from transformers import AutoConfig

    from so8t.model.base import checkpoint_model_config

    cfg = checkpoint_model_config(info, base_path)
    return AutoConfig.from_pretrained(
        _resolved(cfg.base), revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
    )


def _resolved(base: str) -> str:
    from so8t.model.base import resolve_base_path

    return resolve_base_path(base)


def _tokenizer(ckpt: Path, base_path: str, info: So8tRecord) -> Any:
    """The checkpoint's own tokenizer, else the base's (at the recorded revision)."""
    from transformers import AutoTokenizer

    from so8t.model.base import checkpoint_model_config, prepare_tokenizer

    cfg = checkpoint_model_config(info, base_path)
    if any((ckpt / name).is_file() for name in TOKENIZER_MARKERS):
        return AutoTokenizer.from_pretrained(str(ckpt), trust_remote_code=cfg.trust_remote_code)
    return prepare_tokenizer(
        AutoTokenizer.from_pretrained(
            _resolved(base_path), revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
        )
    )


def _probe_as_trained(
    trained: Any,
    tokenizer: PreTrainedTokenizerBase,
    record: dict,
    ckpt: Path,
    info: So8tRecord,
    prompts: list[str],
) -> tuple[Any, Any]:
    """(the trained model's probe outputs, its quantised eval forward's or None); for a k-bit checkpoint also
    records the quantised-weight check and the tensors k-bit training ran in fp32."""
    from so8t.consolidate.drift import probe_so8t
    from so8t.model.quantized import fp32_tensor_patterns, kept_quantized_storage, training_matmuls

    if record["trained_quantization"] == "none":
        return probe_so8t(trained.eval(), tokenizer, prompts), None
    record["quantized_weights"] = checked_quantized_weights(
        ckpt, info, trained.quantized_weights, record["fold_onto"]
    )
    # peft's prepare_model_for_kbit_training upcasts every non-quantised fp16/bf16 tensor to fp32
    record["kbit_fp32_tensors"] = {
        "tensors": fp32_tensor_patterns(trained.hf_model),
        "loaded_in": info.loading.dtype,
        "trained_in": "float32",
        "saved_in": record["dtype"],
    }
    with training_matmuls(trained):
        reference = probe_so8t(trained, tokenizer, prompts)
    with kept_quantized_storage(trained.hf_model):
        quantized_eval = probe_so8t(trained.eval(), tokenizer, prompts)
    return reference, quantized_eval


def consolidate_checkpoint(
    checkpoint_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    base: str | None = None,
    *,
    fold_onto: str = FOLD_ONTO_TRAINED,
    dtype: str | None = "auto",
) -> Path:
    """Write the consolidated folder (HF model + tokenizer + generation config + head B + so8t.json); returns it.

    `fold_onto`: "trained" (default) folds an 8-bit or 4-bit checkpoint onto the dequantised weights it
    trained with, "original" onto the base's unquantised weights (the same thing for an unquantised
    checkpoint). `dtype`: the saved weights' dtype, "auto"/None for the base's own.
    """
    from so8t.consolidate.drift import PROBE_PROMPTS, drift, probe_plain, probe_prompts
    from so8t.model.base import checkpoint_base, torch_dtype
    from so8t.model.so8t import SO8TModel

    if fold_onto not in FOLD_TARGETS:
        raise UserError(f"fold_onto={fold_onto!r}: use one of {', '.join(FOLD_TARGETS)}.")
    ckpt = Path(checkpoint_dir)
    info = read_checkpoint_info(ckpt)
    base_path = checkpoint_base(
        ckpt / SO8T_JSON,
        info.base_model,
        base,
        "--base",
        fix="pass --base PATH (the base model the checkpoint was trained on)",
    )
    tokenizer = _tokenizer(ckpt, base_path, info)
    base_config = _base_config(base_path, info)
    base_dtype = torch_dtype(getattr(base_config, "dtype", None)) or torch_dtype("float32")
    out_dtype = torch_dtype(dtype) or base_dtype
    quantization = info.loading.quantization
    quantized = quantization != "none"
    record: dict[str, Any] = {
        "fold_onto": fold_onto,
        "fold_target": FOLD_TARGET_MEANING[fold_onto] if quantized else UNQUANTISED_FOLD_TARGET,
        "dtype": dtype_name(out_dtype),
        "base_dtype": dtype_name(base_dtype),
        "trained_quantization": quantization,
    }

    # the model as it trained: the same quantised weights, computing in fp32 (k-bit layers in training mode).
    # On the CPU, as before quantisation: bitsandbytes' CPU training forward is the exactness reference, and
    # a GPU that trained a QLoRA model has no room for its consolidation beside it.
    trained = SO8TModel.load_so8t(
        ckpt,
        base=base_path,
        quantization=quantization,
        for_training=quantized,
        compute_dtype="float32" if quantized else None,
        device_map={"": "cpu"} if quantized else None,
    )
    # the probes a chat-trained model reads after its own system prompt
    system_prompt = PromptFormat.from_record(info.prompt).system_prompt
    prompts = probe_prompts(tokenizer, system_prompt)
    reference, quantized_eval = _probe_as_trained(trained, tokenizer, record, ckpt, info, prompts)
    if quantized and fold_onto == FOLD_ONTO_ORIGINAL:
        del trained
        gc.collect()
        trained = SO8TModel.load_so8t(ckpt, base=base_path, dtype=dtype_name(out_dtype))
    model, head = fold_so8t_model(trained, out_dtype)
    # training switched the KV cache off; the consolidated model generates with the base's setting
    if getattr(base_config, "use_cache", None) is not None:
        model.config.use_cache = base_config.use_cache
    consolidated = probe_plain(model, head, tokenizer, prompts)
    record["drift"] = {
        "probe_prompts": len(prompts),
        "chat_rendered_probe_prompts": len(prompts) - len(PROBE_PROMPTS),
        "trained": drift(consolidated, reference),
        "quantized_eval": drift(consolidated, quantized_eval) if quantized_eval is not None else None,
    }
    folder_info = _consolidated_info(ckpt, info, head, trained.gate.R_safe.width, base_path, record)
    return _write_consolidated(Path(out_dir), model, tokenizer, head, folder_info)


def _write_consolidated(
    target: Path, model: Any, tokenizer: PreTrainedTokenizerBase, head: Any, info: So8tRecord
) -> Path:
    """Write the folder through a temporary one beside `target`, renamed into place when complete."""
    from safetensors.torch import save_file

    with atomic_directory(target) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / SAFETY_HEAD_FILE).parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp / SAFETY_HEAD_FILE))
        write_so8t_json(tmp, info)
    return target


def _consolidated_info(
    ckpt: Path, info: So8tRecord, head: Any, hidden_size: int, base_path: str, record: dict
) -> So8tRecord:
    """so8t.json of the consolidated folder: what head B reads, where the model came from, how it was folded."""
    return So8tRecord(
        format=CONSOLIDATED_FORMAT,
        version=FORMAT_VERSION,
        classes=info.classes,
        pooling=info.pooling,
        safety_head=SafetyHeadRecord(
            kind=head.kind, mlp_hidden=head.mlp_hidden, hidden_size=hidden_size, reads="lm_head_input"
        ),
        source_checkpoint=str(ckpt.resolve()),
        base_model=str(info.base_model or base_path),
        base_revision=info.base_revision,
        trust_remote_code=info.trust_remote_code,
        trained_model=info.model,
        rotated_layers=info.rotated_layers,
        consolidation=record,
        prompt=PromptFormat.from_record(info.prompt).record(),
        so8t_version=info.so8t_version,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", help=f"training checkpoint folder ({CHECKPOINTS_DIR}/{CHECKPOINT_PREFIX}-N)"
    )
    parser.add_argument("--out", required=True, help="folder to write the consolidated model into")
    parser.add_argument("--base", default=None, help=f"base model path overriding the one in {SO8T_JSON}")
    parser.add_argument(
        "--fold-onto",
        choices=FOLD_TARGETS,
        default=FOLD_ONTO_TRAINED,
        help=f"for an 8-bit or 4-bit checkpoint: fold onto {FOLD_TARGET_MEANING[FOLD_ONTO_TRAINED]} "
        f"({FOLD_ONTO_TRAINED}, default; reproduces the trained model) or onto "
        f"{FOLD_TARGET_MEANING[FOLD_ONTO_ORIGINAL]} ({FOLD_ONTO_ORIGINAL}; drift recorded in {SO8T_JSON})",
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="dtype of the saved weights (default auto: the base's own)",
    )


def run_cli(args: argparse.Namespace) -> int:
    if not Path(args.checkpoint).is_dir():
        raise UserError(
            f"checkpoint {args.checkpoint} is not a folder; give {CHECKPOINTS_DIR}/{CHECKPOINT_PREFIX}-N of a run."
        )
    out = consolidate_checkpoint(
        args.checkpoint, args.out, base=args.base, fold_onto=args.fold_onto, dtype=args.dtype
    )
    print(out)
    return 0
