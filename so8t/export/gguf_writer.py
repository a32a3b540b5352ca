"""A plain HF causal-LM folder (a consolidated SO8T model) -> one GGUF file llama.cpp runs, written with the
`gguf` package (the library llama.cpp publishes).

Architectures: Llama and Mistral (llama.cpp's `llama`), Qwen2 (`qwen2`); anything else is a UserError. llama.cpp
rotates interleaved pairs in its `llama` graph while HF Llama rotates halves, so the q and k projections of
Llama-style models are permuted row-wise (`permute_qk`); without it the model runs with no error and answers
nonsense. Qwen2 uses the half rotation on both sides and is written as it is. The untied `lm_head.weight` of a
consolidated model becomes `output.weight` (a tied model has none and llama.cpp reads token_embd). Types: `f16`
(matrices f16, norms and biases f32) or `q8_0` (matrices whose rows split into 32-wide blocks in Q8_0 through
gguf's numpy quantiser, the rest as in f16).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from so8t.config.export import GGUF_TYPES
from so8t.errors import UserError
from so8t.layout import HF_CONFIG

__all__ = ["GGUF_TYPES", "ExportedGguf", "write_gguf"]
# HF model_type -> (llama.cpp architecture, whether q/k rows are permuted to llama.cpp's rotary layout)
ARCHITECTURES: dict[str, tuple[str, bool]] = {
    "llama": ("llama", True),
    "mistral": ("llama", True),
    "qwen2": ("qwen2", False),
}
# llama.cpp architectures whose attention projections must be hidden_size wide (llama's may differ)
_FULL_WIDTH_ATTENTION = ("qwen2",)
_WEIGHTS_INDEX = "model.safetensors.index.json"
_WEIGHTS = "model.safetensors"


@dataclass
class ExportedGguf:
    """What `export_gguf` wrote: the file, its type, size and the seconds it took."""

    path: Path
    gguf_type: str
    size_bytes: int
    seconds: float


def permute_qk(weights: Any, n_head: int) -> Any:
    """Rows of a q or k projection (or its bias) from HF's half-split rotary layout to llama.cpp's
    interleaved one: within each head, row i of the first half and row i of the second half become
    neighbours."""
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def read_hf_config(folder: Path) -> dict[str, Any]:
    path = folder / HF_CONFIG
    if not path.is_file():
        raise UserError(f"{folder} has no {HF_CONFIG}: it is not an HF model folder to export.")
    config = json.loads(path.read_text(encoding="utf-8"))
    return config.get("text_config") or config


def architecture_of(config: dict[str, Any], where: str) -> tuple[str, bool]:
    """(llama.cpp architecture, permute q/k) for a config, or a UserError naming the supported ones."""
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise UserError(
            f"{where}: model_type {model_type!r} cannot be exported to GGUF by so8t; supported: "
            f"{', '.join(sorted(ARCHITECTURES))}."
        )
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise UserError(
            f"{where}: rope scaling {rope.get('rope_type', rope.get('type'))!r} is not exported to GGUF by so8t "
            "(only the default rotary embedding)."
        )
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
    if model_type in _FULL_WIDTH_ATTENTION and heads * head_dim != int(config["hidden_size"]):
        raise UserError(
            f"{where}: {model_type} with heads x head_dim = {heads} x {head_dim} != hidden_size "
            f"{config['hidden_size']}; llama.cpp's {model_type} graph expects attention as wide as the model, "
            "so this model cannot run there."
        )
    return ARCHITECTURES[model_type]


def _rope_theta(config: dict[str, Any]) -> float:
    rope = config.get("rope_parameters") or {}
    return float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))


def _weight_files(folder: Path) -> list[Path]:
    """The model's own safetensors files (by its index when sharded), never a file kept beside the model."""
    index = folder / _WEIGHTS_INDEX
    if index.is_file():
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return [folder / name for name in names]
    if (folder / _WEIGHTS).is_file():
        return [folder / _WEIGHTS]
    raise UserError(f"{folder} has no {_WEIGHTS} (or {_WEIGHTS_INDEX}): save the model with safetensors.")


def _tensors(folder: Path):
    """(name, float32 numpy array) of every weight of the folder's model."""
    from safetensors import safe_open

    for path in _weight_files(folder):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name).float().numpy()


def _add_hyperparameters(writer: Any, config: dict[str, Any], n_vocab: int, file_type: int) -> None:
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != int(config["hidden_size"]) // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(file_type)


def _encoded(name: str, data: Any, gguf_type: str) -> tuple[Any, Any]:
    """(array to write, ggml type) of one tensor in the chosen file type."""
    import gguf
    import numpy as np

    if data.ndim < 2:
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    if gguf_type == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        qtype = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(data, qtype), qtype
    return data.astype(np.float16), gguf.GGMLQuantizationType.F16


def write_gguf(folder: str | os.PathLike, out: str | os.PathLike, gguf_type: str = "f16") -> Path:
    """Write the HF model folder `folder` as the GGUF file `out` (atomically: a whole file or none)."""
    import gguf

    from so8t.export.gguf_vocab import add_vocab, read_vocab

    if gguf_type not in GGUF_TYPES:
        raise UserError(f"GGUF type {gguf_type!r}; expected one of {', '.join(GGUF_TYPES)}.")
    folder, out = Path(folder), Path(out)
    config = read_hf_config(folder)
    arch, permute = architecture_of(config, str(folder))
    n_vocab = int(config["vocab_size"])
    vocab = read_vocab(folder, n_vocab)
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], int(config["num_hidden_layers"]))
    file_type = gguf.LlamaFileType.MOSTLY_F16 if gguf_type == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_name(folder.name)
        _add_hyperparameters(writer, config, n_vocab, int(file_type))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_vocab(writer, folder, vocab)
        for name, data in _tensors(folder):
            if permute and ".self_attn.q_proj." in name:
                data = permute_qk(data, heads)
            elif permute and ".self_attn.k_proj." in name:
                data = permute_qk(data, kv_heads)
            target = names.get_name(name, try_suffixes=(".weight", ".bias"))
            if target is None:
                raise UserError(f"{folder}: tensor {name} has no place in a GGUF {arch} model.")
            encoded, qtype = _encoded(target, data, gguf_type)
            writer.add_tensor(target, encoded, raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
