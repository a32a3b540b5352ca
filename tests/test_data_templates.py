"""Prompt templates: the exact strings shared by training, lm-eval tasks and predict."""

from __future__ import annotations

from so8t.data.safety import DECISIONS, SafetyExample
from so8t.data.templates import (
    DECISION_CHOICES,
    GSM8K_STOP,
    apply_chat,
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


class _ChatTokenizer:
    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        return f"<user>{messages[0]['content']}</user><assistant>"


class _PlainTokenizer:
    chat_template = None


def test_apply_chat_wraps_only_when_the_tokenizer_has_a_chat_template():
    assert apply_chat(_ChatTokenizer(), "Q") == "<user>Q</user><assistant>"
    assert apply_chat(_PlainTokenizer(), "Q") == "Q"
    assert apply_chat(object(), "Q") == "Q"
