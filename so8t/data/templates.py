"""The one place for prompt text: training targets, lm-eval tasks and predict all build prompts here.

Prompts are plain text everywhere, never wrapped in a tokenizer's chat template: lm-eval's tasks run without
one by default, and head B must pool at inference the very token sequence it was trained on.
"""

from __future__ import annotations

from typing import Any

DECISION_CHOICES = ["ALLOW", "ESCALATE", "REFUSE"]
# lm-eval generation stops for GSM8K: a blank line or the start of the next question.
GSM8K_STOP = ["\n\n", "Question:"]


def gsm8k_prompt(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def gsm8k_target(answer: str) -> str:
    """The completion the LM learns (the worked solution ending in `#### N`)."""
    return " " + answer


def safety_prompt(request: str) -> str:
    return f"Request: {request}\nDecision:"


def safety_target(example: Any) -> str:
    """ " DECISION", then the rationale and/or response on following lines when the example has them."""
    text = " " + example.decision
    for extra in (getattr(example, "rationale", None), getattr(example, "response", None)):
        if extra:
            text += "\n" + extra
    return text
