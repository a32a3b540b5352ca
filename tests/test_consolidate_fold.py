"""Consolidation folds LoRA, the rotations, the gate and R_safe into plain weights with equal outputs."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from so8t.consolidate import add_arguments, consolidate_checkpoint, run_cli
from so8t.consolidate.drift import PROBE_PROMPTS, probe_prompts
from so8t.errors import UserError
from so8t.layout import LEGACY_SAFETY_HEAD_FILE, SAFETY_HEAD_FILE
from so8t.layout.so8t_json import CHECKPOINT_FIELDS, CONSOLIDATED_FIELDS
from so8t.model.inference import load_safety_head
from so8t.model.so8t import SO8TModel

PROMPTS = ["Question: Tom has 12 apples and eats 3.\nAnswer:", "Request: open the door\nDecision:"]


def _lm_head_input(model, enc):
    seen = {}
    handle = model.get_output_embeddings().register_forward_pre_hook(lambda m, a: seen.update(h=a[0]))
    with torch.no_grad():
        logits = model(**enc).logits
    handle.remove()
    return logits, seen["h"]


def _check_fold(so8t_model, tokenizer, ckpt, out, head_kind="linear"):
    so8t_model.save_so8t(ckpt)
    consolidate_checkpoint(ckpt, out)
    plain = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    reference = SO8TModel.load_so8t(ckpt)  # same weights, unquantised, fp32
    with torch.no_grad():
        expected = reference(**enc)
    logits, h = _lm_head_input(plain, enc)
    assert (logits - expected.logits).abs().max().item() < 1e-4
    pool = enc["attention_mask"].sum(-1) - 1
    head = load_safety_head(out)
    with torch.no_grad():
        safety = head(h[torch.arange(h.shape[0]), pool])
    assert (safety - expected.safety_logits).abs().max().item() < 1e-4
    assert head.kind == head_kind
    record = json.loads((out / "so8t.json").read_text())["consolidation"]
    assert record["trained_quantization"] == "none" and record["dtype"] == "float32"
    assert record["drift"]["trained"]["max_abs_logit_diff"] < 1e-4
    assert record["drift"]["quantized_eval"] is None
    trained_drift = record["drift"]["trained"]
    assert trained_drift["max_rel_logit_diff"] == pytest.approx(
        trained_drift["max_abs_logit_diff"] / trained_drift["max_abs_logit"]
    )
    probes, chat = probe_prompts(tokenizer), len(PROBE_PROMPTS) if tokenizer.chat_template else 0
    assert record["drift"]["probe_prompts"] == len(probes) == len(PROBE_PROMPTS) + chat
    assert record["drift"]["chat_rendered_probe_prompts"] == chat
    assert max(len(tokenizer(p)["input_ids"]) for p in probes) > 50
    return plain, expected


def test_fold_is_exact_for_llama_with_lora_and_mlp_head(make_so8t, tiny_base_dir, tmp_path):
    model, tok = make_so8t(tiny_base_dir, head="mlp")
    assert tok.chat_template and len(PROBE_PROMPTS) >= 7  # the drift is a maximum over plain and chat probes
    plain, _ = _check_fold(model, tok, tmp_path / "ckpt", tmp_path / "out", head_kind="mlp")
    # both so8t.json files hold exactly the fields so8t/layout/so8t_json.py lists for their format
    assert set(json.loads((tmp_path / "ckpt" / "so8t.json").read_text())) == set(CHECKPOINT_FIELDS)
    assert set(json.loads((tmp_path / "out" / "so8t.json").read_text())) == set(CONSOLIDATED_FIELDS)
    assert not any("lora" in k for k in load_file(tmp_path / "out" / "model.safetensors"))
    meta = json.loads((tmp_path / "out" / "so8t.json").read_text())
    assert meta["format"] == "so8t-consolidated" and meta["classes"] == ["ALLOW", "ESCALATE", "REFUSE"]
    assert (tmp_path / "out" / "tokenizer.json").is_file()
    assert (tmp_path / "out" / "generation_config.json").is_file()
    assert not list(tmp_path.glob(".out-*"))  # written atomically, no temp folder left


def test_fold_is_exact_for_gpt2_conv1d(make_so8t, tiny_gpt2_dir, tmp_path):
    model, tok = make_so8t(tiny_gpt2_dir)
    assert type(model.hf_model.transformer.h[0].attn.c_proj.base_layer).__name__ == "Conv1D"
    _check_fold(model, tok, tmp_path / "ckpt", tmp_path / "out")


def test_fold_is_exact_for_tied_qwen2_and_unties_the_embeddings(make_so8t, tiny_qwen2_dir, tmp_path):
    model, tok = make_so8t(tiny_qwen2_dir)
    assert model.hf_model.config.tie_word_embeddings
    assert model.rotations["0"].width == 96  # heads x head_dim != hidden size 64
    plain, _ = _check_fold(model, tok, tmp_path / "ckpt", tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    assert plain.get_output_embeddings().weight.data_ptr() != plain.get_input_embeddings().weight.data_ptr()
    assert not torch.equal(plain.get_output_embeddings().weight, plain.get_input_embeddings().weight)


def test_cli_consolidates_with_a_base_override(make_so8t, tiny_base_dir, tmp_path):
    model, _ = make_so8t(tiny_base_dir)
    model.save_so8t(tmp_path / "ckpt")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [str(tmp_path / "ckpt"), "--out", str(tmp_path / "out"), "--base", str(tiny_base_dir)]
    )
    assert run_cli(args) == 0
    assert (tmp_path / "out" / SAFETY_HEAD_FILE).is_file()


def _load_like_vllm(folder):
    """vLLM's default loader on a folder without an index file: every top-level *.safetensors is the model's
    weights, and a key the model has no parameter for is an error (its load_weights looks each name up)."""
    params = set(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict())
    assert not list(folder.glob("*.safetensors.index.json"))
    loaded = {}
    for path in sorted(folder.glob("*.safetensors")):
        for name in load_file(str(path)):
            if name not in params:
                raise KeyError(f"{path.name}: {name} is not a parameter of the model")
            loaded[name] = path.name
    return loaded


def test_a_loader_reading_every_top_level_safetensors_file_finds_only_model_weights(tiny_so8t):
    _, consolidated, _ = tiny_so8t
    loaded = _load_like_vllm(consolidated)
    assert loaded and not any(name.startswith("net.") for name in loaded)
    assert load_safety_head(consolidated).net[0].weight.shape[1] > 0


def test_a_folder_consolidated_with_the_head_at_the_top_level_is_still_read(tiny_so8t, tmp_path):
    _, consolidated, _ = tiny_so8t
    old = tmp_path / "old"
    shutil.copytree(consolidated, old)
    (old / SAFETY_HEAD_FILE).rename(old / LEGACY_SAFETY_HEAD_FILE)
    (old / SAFETY_HEAD_FILE).parent.rmdir()
    new, legacy = load_safety_head(consolidated).state_dict(), load_safety_head(old).state_dict()
    assert new.keys() == legacy.keys()
    assert all(torch.equal(new[key], legacy[key]) for key in new)
    with pytest.raises(KeyError, match=r"net\.0\."):
        _load_like_vllm(old)


def test_a_checkpoint_whose_recorded_base_is_gone_names_it_and_the_override(
    make_so8t, tiny_base_dir, tmp_path
):
    model, _ = make_so8t(tiny_base_dir)
    # e.g. a checkpoint copied from another machine
    model.base_reference = str(tmp_path / "elsewhere" / "base")
    ckpt = model.save_so8t(tmp_path / "ckpt")
    with pytest.raises(UserError) as info:
        consolidate_checkpoint(ckpt, tmp_path / "out")
    message = str(info.value)
    assert str(tmp_path / "elsewhere" / "base") in message and str(ckpt / "so8t.json") in message
    assert "does not exist; pass --base PATH" in message
    with pytest.raises(UserError, match="does not exist; pass base=PATH"):
        SO8TModel.load_so8t(ckpt)
    assert not (tmp_path / "out").exists()


def test_folder_without_so8t_json_is_rejected_with_a_readable_error(tmp_path):
    with pytest.raises(UserError, match="so8t.json"):
        consolidate_checkpoint(tmp_path, tmp_path / "out")
    with pytest.raises(UserError, match="consolidate"):
        load_safety_head(tmp_path)


def test_the_run_configs_consolidate_section_sets_the_saved_dtype(make_so8t, tiny_base_dir, tmp_path):
    from so8t.config import RunConfig

    model, _ = make_so8t(tiny_base_dir)
    ckpt = model.save_so8t(tmp_path / "ckpt")
    section = RunConfig.model_validate({"consolidate": {"dtype": "bfloat16"}}).consolidate
    out = consolidate_checkpoint(ckpt, tmp_path / "out", **section.model_dump())
    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.bfloat16}
    record = json.loads((out / "so8t.json").read_text())["consolidation"]
    assert record["dtype"] == "bfloat16" and record["base_dtype"] == "float32"
    # one rounding to bf16 per folded weight: measured, not hidden
    assert record["drift"]["trained"]["max_abs_logit_diff"] > 1e-4
    with pytest.raises(UserError, match="fold_onto='sideways'"):
        consolidate_checkpoint(ckpt, tmp_path / "bad", fold_onto="sideways")
