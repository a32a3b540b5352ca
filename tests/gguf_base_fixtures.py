"""GGUF files made here, with the `gguf` package (the writer llama.cpp publishes): the tiny Llama base as a
GGUF file, and files of an architecture so8t cannot load or cut short, for the GGUF base tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest


def _llama_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's order of q/k rows (transformers' GGUF reader undoes it)."""
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _tokenizer_fields(writer, folder: Path) -> None:
    """The tiny base's byte-level BPE vocabulary, merges and chat template as GGUF tokenizer entries."""
    import gguf

    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    special = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    tokens = [None] * (max([*vocab.values(), *special.values()]) + 1)
    for token, index in {**vocab, **special}.items():
        tokens[index] = token
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    template = (
        (folder / "chat_template.jinja").read_text(encoding="utf-8")
        if (folder / "chat_template.jinja").is_file()
        else config.get("chat_template")
    )
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges(merges)
    types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    writer.add_token_types(types)
    writer.add_eos_token_id(special["<eos>"])
    writer.add_bos_token_id(special["<eos>"])
    writer.add_pad_token_id(special["<pad>"])
    writer.add_unk_token_id(special["<unk>"])
    if template:
        writer.add_chat_template(template)


def write_llama_gguf(folder: Path, out: Path) -> Path:
    """The Llama model in `folder` (an HF folder) written as an F32 GGUF file."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    weights = load_file(str(folder / "model.safetensors"))
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name("tiny llama")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(float((config.get("rope_parameters") or {}).get("rope_theta", 10000.0)))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _tokenizer_fields(writer, folder)
    names = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    writer.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"].astype(np.float32))
    writer.add_tensor("output_norm.weight", weights["model.norm.weight"].astype(np.float32))
    if "lm_head.weight" in weights:
        writer.add_tensor("output.weight", weights["lm_head.weight"].astype(np.float32))
    for layer in range(config["num_hidden_layers"]):
        for hf_name, gguf_name in names.items():
            tensor = weights[f"model.layers.{layer}.{hf_name}.weight"].astype(np.float32)
            if gguf_name in ("attn_q", "attn_k"):
                tensor = _llama_permute(tensor, heads if gguf_name == "attn_q" else kv_heads)
            writer.add_tensor(f"blk.{layer}.{gguf_name}.weight", tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def write_gguf_of_architecture(out: Path, architecture: str) -> Path:
    """A small GGUF file declaring `architecture`, with one tensor."""
    import gguf

    writer = gguf.GGUFWriter(str(out), architecture)
    writer.add_tensor("token_embd.weight", np.ones((64, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


@pytest.fixture(scope="session")
def tiny_gguf_file(tiny_base_dir, tmp_path_factory) -> Path:
    """The embedded tiny base as a GGUF file (F32), written once per session."""
    pytest.importorskip("gguf")
    out = tmp_path_factory.mktemp("gguf") / "tiny-llama.F32.gguf"
    return write_llama_gguf(Path(tiny_base_dir), out)


def cut_short(source: Path, out: Path, keep_fraction: float = 0.5) -> Path:
    """A copy of `source` holding only its first part, as an interrupted download leaves it."""
    data = source.read_bytes()
    out.write_bytes(data[: int(len(data) * keep_fraction)])
    os.utime(out)
    return out
