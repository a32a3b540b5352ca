"""PET regulariser, its schedule and the safety head pooling."""

from __future__ import annotations

import pytest
import torch

from so8t.model.heads import SafetyHead, pool_last_prompt_token
from so8t.model.pet import pet_penalty, pet_weight


def test_pet_is_zero_on_a_straight_line():
    t = torch.arange(6, dtype=torch.float32)[None, :, None]
    hidden = 0.5 + t * torch.randn(1, 1, 8)
    assert pet_penalty(hidden, torch.ones(1, 6)).item() == pytest.approx(0.0, abs=1e-10)


def test_pet_is_positive_on_a_curve_with_the_documented_value():
    t = torch.arange(4, dtype=torch.float32)
    hidden = torch.zeros(1, 4, 2)
    hidden[0, :, 0] = t**2  # second difference 2 in one of D=2 dims -> 4 / 2 = 2 per triple
    assert pet_penalty(hidden, torch.ones(1, 4)).item() == pytest.approx(2.0)


def test_pet_ignores_padding_positions():
    hidden = torch.zeros(2, 5, 8)
    hidden[:, :3] = torch.arange(3, dtype=torch.float32)[None, :, None]  # straight on the real tokens
    hidden[:, 3:] = 100.0 * torch.randn(2, 2, 8)  # garbage on padding
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]])
    assert pet_penalty(hidden, mask).item() == pytest.approx(0.0, abs=1e-10)
    assert pet_penalty(hidden, torch.ones(2, 5)).item() > 1.0


@pytest.mark.parametrize(
    ("step", "expected"), [(0, 0.0), (49, 0.0), (50, 0.0), (75, 0.005), (100, 0.01), (120, 0.01)]
)
def test_pet_weight_schedule(step, expected):
    assert pet_weight(step, 100, 0.01, 0.5, 1.0) == pytest.approx(expected)


def test_pet_weight_full_before_the_end_when_full_fraction_is_earlier():
    assert pet_weight(80, 100, 1.0, 0.2, 0.6) == pytest.approx(1.0)
    assert pet_weight(40, 100, 1.0, 0.2, 0.6) == pytest.approx(0.5)


def test_pool_takes_last_prompt_token_not_position_minus_one():
    hidden = torch.arange(2 * 4 * 8, dtype=torch.float32).reshape(2, 4, 8)
    pooled = pool_last_prompt_token(hidden, torch.tensor([1, 3]))
    assert torch.equal(pooled[0], hidden[0, 1]) and torch.equal(pooled[1], hidden[1, 3])


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_safety_head_gives_three_logits(kind):
    head = SafetyHead(16, kind=kind, mlp_hidden=8)
    assert head(torch.randn(5, 16)).shape == (5, 3)
    assert head.first_layer.in_features == 16


def test_head_b_seeded_from_decision_words_starts_as_the_lm_decision(tiny_base_dir, make_so8t):
    """With the gate at identity, head B's initial logits are the LM's logits for the three decision words."""
    import torch

    from so8t.data.safety import DECISIONS
    from so8t.data.templates import safety_prompt
    from so8t.model.heads import init_from_decision_words

    model, tokenizer = make_so8t(tiny_base_dir, randomise=False)
    word_ids = [tokenizer(" " + d, add_special_tokens=False)["input_ids"][0] for d in DECISIONS]
    assert init_from_decision_words(
        model.safety_head, model.base_model.get_output_embeddings().weight, word_ids
    )
    enc = tokenizer([safety_prompt("Delete every backup of the payroll database.")], return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    assert torch.allclose(out.safety_logits[0], out.logits[0, -1, word_ids].float(), atol=1e-5)
    mlp_model, _ = make_so8t(tiny_base_dir, randomise=False, head="mlp")
    assert not init_from_decision_words(
        mlp_model.safety_head, model.base_model.get_output_embeddings().weight, word_ids
    )
