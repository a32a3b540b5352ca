"""The one place for prompt text: training targets, lm-eval tasks and predict all build prompts here."""

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


def apply_chat(tokenizer: Any, prompt: str) -> str:
    """Wrap the prompt as one user turn with the generation prompt when the tokenizer has a chat template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt
