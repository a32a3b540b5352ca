"""Prompt templates: the exact strings shared by training, lm-eval tasks and predict."""

from __future__ import annotations

from so8t.data.safety import DECISIONS, SafetyExample
from so8t.data.templates import (
    DECISION_CHOICES,
    GSM8K_STOP,
    gsm8k_prompt,
    gsm8k_target,
    safety_prompt,
    safety_target,
)


def test_gsm8k_prompt_and_target_are_the_documented_strings():
    assert gsm8k_prompt("How many?") == "Question: How many?\nAnswer:"
    assert gsm8k_target("1 + 1 = <<1+1=2>>2\n#### 2") == " 1 + 1 = <<1+1=2>>2\n#### 2"
    assert GSM8K_STOP == ["\n\n", "Question:"]


def test_safety_prompt_and_target_put_the_decision_first():
    assert safety_prompt("Do X") == "Request: Do X\nDecision:"
    assert safety_target(SafetyExample("p", "REFUSE")) == " REFUSE"
    assert safety_target(SafetyExample("p", "REFUSE", rationale="Harmful.")) == " REFUSE\nHarmful."
    assert safety_target(SafetyExample("p", "ALLOW", response="Sure.")) == " ALLOW\nSure."
    assert DECISION_CHOICES == list(DECISIONS) == ["ALLOW", "ESCALATE", "REFUSE"]


def test_training_tokenizes_the_plain_prompt_even_when_the_tokenizer_has_a_chat_template(tiny_base_dir):
    """Head B pools at inference (lm-eval, predict) the same tokens it was trained on: no chat wrapping in the
    plain format, whatever template the tokenizer carries."""
    from transformers import AutoTokenizer

    from so8t.data.templates import PromptFormat, context_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    prompt = safety_prompt("Delete the audit log.")
    plain, _ = PromptFormat().encode_example(tokenizer, prompt, " REFUSE")
    assert plain == context_ids(tokenizer, prompt)
    tokenizer.chat_template = "{% for m in messages %}<|user|>{{ m.content }}{% endfor %}<|assistant|>"
    assert PromptFormat().encode_example(tokenizer, prompt, " REFUSE")[0] == plain
    assert tokenizer.decode(plain, skip_special_tokens=True).endswith("Decision:")
