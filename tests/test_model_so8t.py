"""SO8TModel: identity at init, gradients, loss parts, quantised bases, checkpoint round trip."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from so8t.model.so8t import SO8TModel


def _batch(tokenizer):
    enc = tokenizer(
        ["Question: Tom has 12 apples and eats 3.\nAnswer:", "Request: hi\nDecision:"],
        return_tensors="pt",
        padding=True,
    )
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    labels[:, :3] = -100
    return enc, labels


def test_untrained_so8t_gives_exactly_the_base_logits(make_so8t, tiny_base_dir):
    model, tokenizer = make_so8t(tiny_base_dir, randomise=False)
    enc, _ = _batch(tokenizer)
    base = AutoModelForCausalLM.from_pretrained(tiny_base_dir, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(model(**enc).logits, base(**enc).logits)


def test_gradients_reach_every_generator_lora_and_head(make_so8t, tiny_base_dir):
    model, tokenizer = make_so8t(tiny_base_dir, randomise=False, for_training=True)
    enc, labels = _batch(tokenizer)
    out = model(**enc, labels=labels, safety_labels=torch.tensor([-100, 2]))
    (out.lm_loss + out.safety_loss + out.pet).backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    generators = [n for n in trainable if n.endswith("generators")]
    assert len(generators) == 4 + 2  # one per layer + R_safe + R_cmd
    for name in generators + [n for n in trainable if "safety_head" in n or "lora_B" in n]:
        grad = trainable[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_loss_parts_match_their_sums_and_counts(make_so8t, tiny_base_dir):
    model, tokenizer = make_so8t(tiny_base_dir)
    enc, labels = _batch(tokenizer)
    with torch.no_grad():
        out = model(**enc, labels=labels, safety_labels=torch.tensor([-100, 1]))
        logits = out.logits[:, :-1]
        expected_lm = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
        )
    assert out.lm_loss.item() == pytest.approx(expected_lm.item(), rel=1e-5)
    assert out.lm_tokens.item() == labels[:, 1:].ne(-100).sum().item()
    assert out.safety_count.item() == 1
    assert out.safety_loss.item() == pytest.approx(
        torch.nn.functional.cross_entropy(out.safety_logits[1:], torch.tensor([1])).item(), rel=1e-5
    )
    assert out.pet.item() == pytest.approx((out.pet_sum / out.pet_count).item())
    assert out.hidden.shape == (2, enc["input_ids"].shape[1], 128)


def test_safety_head_reads_h_safe_at_the_last_prompt_token(make_so8t, tiny_base_dir):
    model, tokenizer = make_so8t(tiny_base_dir)
    enc, _ = _batch(tokenizer)
    pool = enc["attention_mask"].sum(-1) - 1
    with torch.no_grad():
        out = model(**enc, pool_index=pool)
        h_safe = model.gate.R_safe(out.hidden)
        expected = model.safety_head(h_safe[torch.arange(2), pool])
    assert torch.allclose(out.safety_logits, expected, atol=1e-5)


def test_rows_without_safety_labels_give_zero_safety_loss_in_the_graph(make_so8t, tiny_base_dir):
    model, tokenizer = make_so8t(tiny_base_dir, for_training=True)
    enc, _ = _batch(tokenizer)
    out = model(**enc, safety_labels=torch.tensor([-100, -100]))
    assert out.safety_loss.item() == 0.0 and out.safety_loss.requires_grad


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_quantised_base_trains_forward_and_backward_with_lora_and_rotations(
    make_so8t, tiny_base_dir, quantization
):
    model, tokenizer = make_so8t(tiny_base_dir, quantization=quantization, randomise=False, for_training=True)
    enc, labels = _batch(tokenizer)
    out = model(**enc, labels=labels, safety_labels=torch.tensor([0, 2]))
    (out.lm_loss + out.safety_loss + 0.1 * out.pet).backward()
    assert torch.isfinite(out.lm_loss)
    assert model.rotations["0"].generators.grad.abs().sum() > 0
    assert model.gate.R_cmd.generators.grad.abs().sum() > 0
    lora = [p for n, p in model.named_parameters() if "lora_A" in n]
    assert lora and all(p.grad is not None for p in lora)


def test_save_and_load_so8t_round_trip_gives_the_same_outputs(make_so8t, tiny_base_dir, tmp_path):
    model, tokenizer = make_so8t(tiny_base_dir, head="mlp")
    model.save_so8t(tmp_path)
    info = json.loads((tmp_path / "so8t.json").read_text())
    assert info["format"] == "so8t-checkpoint" and info["classes"] == ["ALLOW", "ESCALATE", "REFUSE"]
    assert info["safety_head"] == {"kind": "mlp", "mlp_hidden": 16}
    assert (tmp_path / "adapter_model.safetensors").is_file() and not (
        tmp_path / "model.safetensors"
    ).exists()
    loaded = SO8TModel.load_so8t(tmp_path)
    enc, _ = _batch(tokenizer)
    with torch.no_grad():
        a, b = model(**enc), loaded(**enc)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.safety_logits, b.safety_logits)


def test_generate_runs_through_the_gate(make_so8t, tiny_base_dir):
    model, tokenizer = make_so8t(tiny_base_dir)
    enc = tokenizer(["Question: 2 + 2?"], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=3, do_sample=False)
        first = model(**enc).logits[0, -1].argmax()
    assert out.shape == (1, enc["input_ids"].shape[1] + 3) and out[0, enc["input_ids"].shape[1]] == first
