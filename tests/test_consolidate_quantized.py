"""A checkpoint trained on an 8-bit or 4-bit base consolidates onto the weights it trained with.

The reference is the trained SO8T model itself, in memory: bitsandbytes' training forward on the CPU
dequantises each weight and multiplies in fp32 (the base has no dropout and LoRA dropout is 0), which is the
model the optimizer shaped. The quantised model's eval forward (int8 activations for 8-bit, repacked bf16
kernels for 4-bit) is another function, so so8t.json records the drift against it separately.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from bitsandbytes.functional import has_avx512bf16
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from so8t.consolidate import add_arguments, consolidate_checkpoint, run_cli
from so8t.consolidate.drift import ProbeOutputs, drift, probe_plain, probe_prompts, probe_so8t
from so8t.consolidate.weights_check import QuantizedWeightsMismatch
from so8t.errors import UserError
from so8t.model.inference import load_safety_head
from so8t.model.quantized import kept_quantized_storage, quantized_weights_checksum

PROMPTS = ["Question: Tom has 12 apples and eats 3.\nAnswer:", "Request: open the door\nDecision:"]


@dataclass
class TrainedCheckpoint:
    quantization: str
    checkpoint: Path
    tokenizer: object
    logits: torch.Tensor
    probs: torch.Tensor
    probes_trained: ProbeOutputs
    probes_quantized_eval: ProbeOutputs


def _encode(tokenizer):
    return tokenizer(PROMPTS, return_tensors="pt", padding=True)


@pytest.fixture(scope="module", params=["8bit", "4bit"])
def trained(request, make_so8t, bnb_friendly_base_dir, tmp_path_factory) -> TrainedCheckpoint:
    """A few optimizer steps of an SO8T model on a quantised base, its checkpoint and its own outputs."""
    model, tok = make_so8t(bnb_friendly_base_dir, quantization=request.param, for_training=True)
    enc = _encode(tok)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        out = model(**enc, labels=labels, safety_labels=torch.tensor([0, 2]))
        (out.lm_loss + out.safety_loss).backward()
        opt.step()
    checkpoint = model.save_so8t(tmp_path_factory.mktemp(f"ckpt_{request.param}"))
    # bitsandbytes' training path: dequantise, then multiply in fp32
    model.train()
    with torch.no_grad():
        out = model(**enc)
    probes_trained = probe_so8t(model, tok)
    probes_quantized_eval = probe_so8t(model.eval(), tok)
    return TrainedCheckpoint(
        request.param,
        checkpoint,
        tok,
        out.logits,
        out.safety_logits.softmax(-1),
        probes_trained,
        probes_quantized_eval,
    )


def _consolidated(folder: Path, tokenizer):
    """(logits, head-B probabilities) of a consolidated folder loaded as plain fp32 HF + head B, and its probes."""
    plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    head = load_safety_head(folder)
    enc = _encode(tokenizer)
    seen = {}
    handle = plain.get_output_embeddings().register_forward_pre_hook(lambda m, a: seen.update(h=a[0]))
    with torch.no_grad():
        logits = plain(**enc).logits
        pooled = seen["h"][torch.arange(len(PROMPTS)), enc["attention_mask"].sum(-1) - 1]
        probs = head(pooled).softmax(-1)
    handle.remove()
    return logits, probs, probe_plain(plain, head, tokenizer)


def _record(folder: Path) -> dict:
    return json.loads((folder / "so8t.json").read_text())["consolidation"]


@pytest.mark.slow
def test_by_default_the_consolidated_model_is_the_trained_quantised_model(trained, tmp_path):
    out = consolidate_checkpoint(trained.checkpoint, tmp_path / "out")
    logits, probs, probes = _consolidated(out, trained.tokenizer)
    assert (logits - trained.logits).abs().max().item() < 1e-4
    assert (probs - trained.probs).abs().max().item() < 1e-4

    record = _record(out)
    assert record["fold_onto"] == "trained" and record["trained_quantization"] == trained.quantization
    assert record["dtype"] == "float32" == record["base_dtype"]
    assert record["quantized_weights"]["match"] is True
    assert (
        record["quantized_weights"]["recorded"]["sha256"]
        == record["quantized_weights"]["recomputed"]["sha256"]
    )
    assert "model.layers.*.input_layernorm.weight" in record["kbit_fp32_tensors"]["tensors"]
    # the recorded drifts are the ones measured here, against the trained model and its eval forward
    assert record["drift"]["probe_prompts"] == len(probe_prompts(trained.tokenizer))
    for against, reference in (
        ("trained", trained.probes_trained),
        ("quantized_eval", trained.probes_quantized_eval),
    ):
        measured = drift(probes, reference)
        for key, value in measured.items():
            assert record["drift"][against][key] == pytest.approx(value, abs=1e-6), (against, key)
    assert record["drift"]["trained"]["max_abs_logit_diff"] < 1e-4
    # the quantised model's eval forward takes another kernel: int8 matmuls for 8-bit; for 4-bit, bitsandbytes
    # repacks the weights for an AVX512-BF16 kernel only on CPUs that have it (elsewhere it is the training one)
    eval_kernel_differs = trained.quantization == "8bit" or has_avx512bf16()
    eval_drift = record["drift"]["quantized_eval"]["max_abs_logit_diff"]
    assert eval_drift > 1e-4 if eval_kernel_differs else eval_drift < 1e-4
    print(
        f"\n{trained.quantization} fold onto the trained weights, drift vs the trained model: logits "
        f"{record['drift']['trained']['max_abs_logit_diff']:.3g}, head-B probs "
        f"{record['drift']['trained']['max_abs_head_b_prob_diff']:.3g}; vs the quantised eval forward: logits "
        f"{record['drift']['quantized_eval']['max_abs_logit_diff']:.3g}, head-B probs "
        f"{record['drift']['quantized_eval']['max_abs_head_b_prob_diff']:.3g}"
    )
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["use_cache"] is True
    assert not any("lora" in k or k.endswith(("SCB", "absmax")) for k in load_file(out / "model.safetensors"))


@pytest.mark.slow
def test_the_original_weights_option_records_its_larger_drift(trained, tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert (
        run_cli(
            parser.parse_args(
                [str(trained.checkpoint), "--out", str(tmp_path / "out"), "--fold-onto", "original"]
            )
        )
        == 0
    )
    logits, _, probes = _consolidated(tmp_path / "out", trained.tokenizer)
    assert (logits - trained.logits).abs().max().item() > 1e-3  # a model nobody trained

    record = _record(tmp_path / "out")
    assert record["fold_onto"] == "original" and "unquantised" in record["fold_target"]
    measured = drift(probes, trained.probes_trained)
    assert record["drift"]["trained"]["max_abs_logit_diff"] == pytest.approx(
        measured["max_abs_logit_diff"], abs=1e-6
    )
    assert record["drift"]["trained"]["max_abs_logit_diff"] > 1e-3
    assert record["drift"]["trained"]["max_abs_head_b_prob_diff"] > 1e-5
    print(
        f"\n{trained.quantization} fold onto the original weights, drift vs the trained model: "
        f"logits {record['drift']['trained']['max_abs_logit_diff']:.3g}, "
        f"head-B probs {record['drift']['trained']['max_abs_head_b_prob_diff']:.3g}"
    )


@pytest.mark.slow
def test_a_changed_base_is_a_quantised_weight_mismatch_error_when_folding_onto_it(
    trained, bnb_friendly_base_dir, tmp_path
):
    changed = tmp_path / "base"
    shutil.copytree(bnb_friendly_base_dir, changed)
    weights = load_file(changed / "model.safetensors")
    weights["model.layers.0.self_attn.q_proj.weight"] *= 1.5
    save_file(weights, changed / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UserError) as info:
        consolidate_checkpoint(trained.checkpoint, tmp_path / "out", base=str(changed))
    message = str(info.value)
    assert (
        "differ from those" in message and "CPU and CUDA quantisation need not agree bit for bit" in message
    )
    assert "--fold-onto original" in message and "Nothing was written" in message
    assert not (tmp_path / "out").exists()
    # folded onto the original weights, the model does not depend on them: a warning, and the check recorded
    with pytest.warns(QuantizedWeightsMismatch):
        consolidate_checkpoint(trained.checkpoint, tmp_path / "orig", base=str(changed), fold_onto="original")
    check = _record(tmp_path / "orig")["quantized_weights"]
    assert check["match"] is False and check["recorded"]["sha256"] != check["recomputed"]["sha256"]


def test_an_eval_forward_leaves_the_quantised_storage_as_trained_within_kept_quantized_storage(
    make_so8t, bnb_friendly_base_dir
):
    """bitsandbytes repacks 4-bit weights for its CPU eval kernel, rounding their scales to bf16; the weights
    consolidation folds are read after such a forward, so it must put the trained storage back."""
    model, tok = make_so8t(bnb_friendly_base_dir, quantization="4bit")
    before = quantized_weights_checksum(model.hf_model)
    assert before == model.quantized_weights
    with kept_quantized_storage(model.hf_model), torch.no_grad():
        model.eval()(**_encode(tok))
    assert quantized_weights_checksum(model.hf_model) == before
