"""Every architecture so8t names as supported trains and consolidates: a tiny random-weight model of each,
built from its transformers config class (nothing downloaded), a few steps of the SO8T loss with the default
LoRA targets, then consolidated logits and head-B probabilities equal the trained model's. Any other model
type is a clear error."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

from so8t.config import LoraConfig, ModelConfig
from so8t.consolidate import consolidate_checkpoint
from so8t.errors import UserError
from so8t.model.architectures import ARCHITECTURES
from so8t.model.base import add_lora, default_lora_targets, load_base
from so8t.model.inference import load_safety_head
from so8t.model.so8 import find_attention_output_projections
from so8t.model.so8t import SO8TModel

LLAMA_LIKE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
# model_type -> (config class, its tiny sizes): 2 layers, width 64, 4 heads of 16
TINY_CONFIGS = {
    "llama": ("LlamaConfig", {**LLAMA_LIKE, "num_key_value_heads": 2}),
    "mistral": ("MistralConfig", {**LLAMA_LIKE, "num_key_value_heads": 2}),
    "qwen2": ("Qwen2Config", {**LLAMA_LIKE, "num_key_value_heads": 2}),
    "qwen3": ("Qwen3Config", {**LLAMA_LIKE, "num_key_value_heads": 2, "head_dim": 16}),
    "gemma": ("GemmaConfig", {**LLAMA_LIKE, "num_key_value_heads": 2, "head_dim": 16}),
    "phi3": ("Phi3Config", {**LLAMA_LIKE, "num_key_value_heads": 2}),
    "gpt2": ("GPT2Config", {"n_embd": 64, "n_layer": 2, "n_head": 4}),
    "opt": (
        "OPTConfig",
        {
            "hidden_size": 64,
            "ffn_dim": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "word_embed_proj_dim": 64,
        },
    ),
    "gpt_neox": ("GPTNeoXConfig", LLAMA_LIKE),
    "falcon": ("FalconConfig", {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}),
    "bloom": ("BloomConfig", {"hidden_size": 64, "n_layer": 2, "n_head": 4}),
    "gptj": ("GPTJConfig", {"n_embd": 64, "n_layer": 2, "n_head": 4, "rotary_dim": 8}),
    "codegen": ("CodeGenConfig", {"n_embd": 64, "n_layer": 2, "n_head": 4, "rotary_dim": 8}),
}
PROMPTS = ["Question: Tom has 12 apples and eats 3.\nAnswer:", "Request: open the door\nDecision:"]


def test_every_architecture_in_the_table_has_a_tiny_test_model():
    assert set(TINY_CONFIGS) == {arch.model_type for arch in ARCHITECTURES}


def _tiny_base(model_type: str, tokenizer, folder):
    class_name, sizes = TINY_CONFIGS[model_type]
    config = getattr(transformers, class_name)(
        vocab_size=len(tokenizer),
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **sizes,
    )
    assert config.model_type == model_type
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_architecture_trains_and_consolidates_to_the_trained_model(model_type, tiny_base_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    base_dir = _tiny_base(model_type, tokenizer, tmp_path / "base")
    base, tok = load_base(ModelConfig(base=str(base_dir), dtype="float32"), for_training=True)
    targets = default_lora_targets(base)
    peft_model = add_lora(base, LoraConfig(r=4, alpha=8, dropout=0.0))
    wrapped = {name.rsplit(".", 1)[-1] for name, m in peft_model.named_modules() if hasattr(m, "lora_A")}
    assert wrapped == set(targets), "every default LoRA target exists in the architecture"
    model = SO8TModel(peft_model)
    assert model.rotated_layers == [0, 1] and len(find_attention_output_projections(model.hf_model)) == 2

    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    model.train()
    for _ in range(3):
        opt.zero_grad()
        out = model(**enc, labels=labels, safety_labels=torch.tensor([0, 2]))
        (out.lm_loss + out.safety_loss).backward()
        opt.step()
    assert model.rotations["0"].generators.abs().max() > 0 and model.gate.R_safe.generators.abs().max() > 0
    model.eval()
    with torch.no_grad():
        expected = model(**enc)
    ckpt = model.save_so8t(tmp_path / "ckpt")

    out = consolidate_checkpoint(ckpt, tmp_path / "out")
    plain = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    seen = {}
    plain.get_output_embeddings().register_forward_pre_hook(lambda m, a: seen.update(h=a[0]))
    with torch.no_grad():
        logits = plain(**enc).logits
        pooled = seen["h"][torch.arange(len(PROMPTS)), enc["attention_mask"].sum(-1) - 1]
        probs = load_safety_head(out)(pooled).softmax(-1)
    assert (logits - expected.logits).abs().max().item() < 1e-4
    assert (probs - expected.safety_logits.softmax(-1)).abs().max().item() < 1e-4


class _Mystery(nn.Module):
    """A causal LM of a model type so8t does not know, with Llama's module names."""

    def __init__(self):
        super().__init__()
        self.config = transformers.PretrainedConfig()
        self.config.model_type = "mystery"
        self.layers = nn.ModuleList(
            [nn.ModuleDict({"self_attn": nn.ModuleDict({"o_proj": nn.Linear(8, 8)})})]
        )


def test_an_unknown_architecture_is_a_clear_error_that_names_the_supported_ones_and_the_way_out():
    for call in (default_lora_targets, find_attention_output_projections):
        with pytest.raises(UserError) as err:
            call(_Mystery())
        message = str(err.value)
        assert "model type 'mystery'" in message and "_Mystery" in message
        assert all(f"{arch.name} ({arch.model_type}" in message for arch in ARCHITECTURES)
        assert "model.lora.target_modules" in message and "model.so8.layers: []" in message


def test_no_rotations_inside_attention_need_no_known_architecture():
    from so8t.model.so8 import attach_attention_rotations

    assert len(attach_attention_rotations(_Mystery(), layers=[])) == 0
