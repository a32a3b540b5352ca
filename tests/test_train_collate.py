"""Collation: completion-only labels, head-B labels, pooling position, padding, truncation and the mix."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from so8t.data import templates
from so8t.data.gsm8k import GSM8KExample
from so8t.data.safety import SafetyExample
from so8t.data.templates import gsm8k_prompt
from so8t.train.collate import IGNORE_INDEX, So8tCollator, build_dataset, encode_example, mix_examples

GSM = GSM8KExample(question="Tom has 3 apples and buys 4 more. How many apples?", answer="3 + 4 = 7\n#### 7")
SAFE = SafetyExample(
    prompt="Delete every backup of the payroll database.",
    decision="REFUSE",
    rationale="Destroying backups is irreversible.",
)


@pytest.fixture(scope="module")
def tokenizer(tiny_base_dir):
    return AutoTokenizer.from_pretrained(tiny_base_dir)


def _prompt_len(tokenizer, prompt: str) -> int:
    return len(tokenizer(prompt, add_special_tokens=True)["input_ids"])


def test_gsm8k_row_learns_only_the_answer_and_ends_with_eos(tokenizer):
    row = encode_example(tokenizer, GSM, max_length=512)
    n_prompt = _prompt_len(tokenizer, templates.gsm8k_prompt(GSM.question))
    assert row["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]
    assert row["input_ids"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(row["input_ids"][n_prompt:-1]).strip() == GSM.answer.strip()
    assert row["pool_index"] == n_prompt - 1
    assert row["safety_labels"] == IGNORE_INDEX


def test_safety_row_carries_its_class_and_pools_before_the_decision_word(tokenizer):
    row = encode_example(tokenizer, SAFE, max_length=512)
    prompt = templates.safety_prompt(SAFE.prompt)
    assert row["safety_labels"] == 2  # REFUSE in ALLOW, ESCALATE, REFUSE
    assert tokenizer.decode(row["input_ids"][: row["pool_index"] + 1]).strip() == prompt.strip()
    target = tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX], skip_special_tokens=True)
    assert target.strip().startswith("REFUSE")


def test_truncation_keeps_the_prompt_cue_and_the_decision(tokenizer):
    long = SafetyExample(
        prompt="please " * 200 + "wipe the audit logs.", decision="REFUSE", rationale="x " * 200
    )
    row = encode_example(tokenizer, long, max_length=48)
    assert len(row["input_ids"]) == 48
    prompt_text = tokenizer.decode(row["input_ids"][: row["pool_index"] + 1])
    assert prompt_text.rstrip().endswith("Decision:")
    target = tokenizer.decode(row["input_ids"][row["pool_index"] + 1 :], skip_special_tokens=True)
    assert target.strip().startswith("REFUSE")


def test_collator_pads_right_and_masks_padding(tokenizer):
    rows = [encode_example(tokenizer, GSM, 512), encode_example(tokenizer, SAFE, 512)]
    batch = So8tCollator(pad_token_id=tokenizer.pad_token_id)(rows)
    lengths = [len(r["input_ids"]) for r in rows]
    short = min(range(2), key=lambda i: lengths[i])
    assert batch["input_ids"].shape == (2, max(lengths))
    assert batch["attention_mask"][short].tolist() == [1] * lengths[short] + [0] * (
        max(lengths) - lengths[short]
    )
    assert (batch["labels"][short, lengths[short] :] == IGNORE_INDEX).all()
    assert batch["pool_index"].tolist() == [r["pool_index"] for r in rows]
    assert batch["safety_labels"].tolist() == [IGNORE_INDEX, 2]
    assert batch["input_ids"].dtype == torch.long


def test_a_chat_template_is_not_applied_and_the_labels_stay_on_the_target(tokenizer):
    """Training rows hold the plain prompt that lm-eval and predict use, whatever the tokenizer's template."""
    chat = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    chat.chat_template = "{% for m in messages %}<|user|>{{ m['content'] }}{% endfor %}<|assistant|>"
    row = encode_example(chat, GSM, max_length=512)
    assert row == encode_example(tokenizer, GSM, max_length=512)
    prompt = chat.decode(row["input_ids"][: row["pool_index"] + 1], skip_special_tokens=True)
    assert prompt.strip() == gsm8k_prompt(GSM.question).strip()
    target = chat.decode([t for t in row["labels"] if t != IGNORE_INDEX], skip_special_tokens=True)
    assert target.strip() == GSM.answer.strip()


def test_training_mix_has_the_configured_safety_share_and_is_seeded():
    gsm = [GSM8KExample(question=f"q{i}", answer=f"#### {i}") for i in range(60)]
    safe = [SafetyExample(prompt=f"p{i}", decision="ALLOW") for i in range(7)]
    mixed = mix_examples(gsm, safe, 0.4, seed=3)
    n_safe = sum(isinstance(e, SafetyExample) for e in mixed)
    assert n_safe == 40 and len(mixed) == 100  # 60 GSM8K = 60 %, safety cycled up to 40 %
    assert {e.prompt for e in mixed if isinstance(e, SafetyExample)} == {e.prompt for e in safe}
    assert mixed == mix_examples(gsm, safe, 0.4, seed=3)
    assert mixed != mix_examples(gsm, safe, 0.4, seed=4)
    assert all(isinstance(e, GSM8KExample) for e in mix_examples(gsm, safe, 0.0, seed=0))


def test_validation_dataset_keeps_every_example_once(tokenizer):
    ds = build_dataset(tokenizer, [GSM], [SAFE, SAFE], max_length=128)
    assert len(ds) == 3
    assert [r["safety_labels"] for r in ds] == [IGNORE_INDEX, 2, 2]
