"""The base architectures so8t supports: where each keeps its attention output projection and what LoRA targets.

One table, keyed by the transformers `model_type`. Every row is exercised by a test that builds a tiny
random-weight model of that architecture from its config class, trains a few steps and consolidates it
(tests/test_architectures.py), so a name appears here, in the README and in docs/architecture.md only when
it works. Any other model type is a clear error that says how to train it without the architecture defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from so8t.errors import UserError


@dataclass(frozen=True)
class Architecture:
    """What so8t needs to know about one decoder architecture.

    `output_projection` is the path of the attention output projection inside a decoder layer (the module
    whose input an SO(8) rotation turns); `lora_targets` the attention projections LoRA adapts by default,
    `mlp_targets` those added when the MLP is adapted too. `conv1d`: the projections are GPT-2 Conv1D
    layers (y = x W + b, weight stored (in, out)), which peft adapts with fan_in_fan_out.
    """

    name: str
    model_type: str
    output_projection: str
    lora_targets: tuple[str, ...]
    mlp_targets: tuple[str, ...]
    conv1d: bool = False


_LLAMA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_LLAMA_MLP = ("gate_proj", "up_proj", "down_proj")
_FUSED_QKV_DENSE = ("query_key_value", "dense")
_H_TO_4H = ("dense_h_to_4h", "dense_4h_to_h")

ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("Llama", "llama", "self_attn.o_proj", _LLAMA_ATTENTION, _LLAMA_MLP),
    Architecture("Mistral", "mistral", "self_attn.o_proj", _LLAMA_ATTENTION, _LLAMA_MLP),
    Architecture("Qwen2", "qwen2", "self_attn.o_proj", _LLAMA_ATTENTION, _LLAMA_MLP),
    Architecture("Qwen3", "qwen3", "self_attn.o_proj", _LLAMA_ATTENTION, _LLAMA_MLP),
    Architecture("Gemma", "gemma", "self_attn.o_proj", _LLAMA_ATTENTION, _LLAMA_MLP),
    Architecture("Phi-3", "phi3", "self_attn.o_proj", ("qkv_proj", "o_proj"), ("gate_up_proj", "down_proj")),
    Architecture("GPT-2", "gpt2", "attn.c_proj", ("c_attn", "c_proj"), ("c_fc",), conv1d=True),
    Architecture(
        "OPT", "opt", "self_attn.out_proj", ("q_proj", "k_proj", "v_proj", "out_proj"), ("fc1", "fc2")
    ),
    Architecture("GPT-NeoX", "gpt_neox", "attention.dense", _FUSED_QKV_DENSE, _H_TO_4H),
    Architecture("Falcon", "falcon", "self_attention.dense", _FUSED_QKV_DENSE, _H_TO_4H),
    Architecture("BLOOM", "bloom", "self_attention.dense", _FUSED_QKV_DENSE, _H_TO_4H),
    Architecture(
        "GPT-J", "gptj", "attn.out_proj", ("q_proj", "k_proj", "v_proj", "out_proj"), ("fc_in", "fc_out")
    ),
    Architecture("CodeGen", "codegen", "attn.out_proj", ("qkv_proj", "out_proj"), ("fc_in", "fc_out")),
)
_BY_MODEL_TYPE = {arch.model_type: arch for arch in ARCHITECTURES}


def model_type_of(model: Any) -> str | None:
    """The transformers model_type of a model (plain, peft-wrapped or SO8T), None when it has no config."""
    return getattr(getattr(model, "config", None), "model_type", None)


def find_architecture(model: Any) -> Architecture | None:
    """The supported architecture of `model`, or None for any other model type."""
    return _BY_MODEL_TYPE.get(model_type_of(model) or "")


def supported_architectures() -> str:
    """'Llama (llama: self_attn.o_proj), ...': each supported architecture, its model_type and projection."""
    return ", ".join(f"{a.name} ({a.model_type}: <layer>.{a.output_projection})" for a in ARCHITECTURES)


def architecture_of(model: Any, need: str) -> Architecture:
    """The supported architecture of `model`; UserError for any other, saying what `need`s it and the way out."""
    arch = find_architecture(model)
    if arch is not None:
        return arch
    raise UserError(
        f"{need} for {type(model).__name__} (model type {model_type_of(model)!r}): so8t supports and tests "
        f"these architectures: {supported_architectures()}. To train another one without these defaults, set "
        "model.lora.target_modules to the names of its attention projections and model.so8.layers: [] (no "
        "rotations inside attention; the gate and head B still work), or add it to "
        "so8t/model/architectures.py together with its test."
    )
