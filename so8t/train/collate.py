"""Tokenisation and batching for SO8T training: completion-only labels, head-B labels and pooling positions.

A row is `prompt + target + eos` (in the chat format: the rendered prompt and the assistant turn). The LM learns only the target (labels are -100 on the prompt and on
padding); head B reads the hidden state of the last prompt token (`pool_index`), which sits before the
decision word, so the head decides from the request alone. Padding is on the right, so `pool_index` is
not position -1.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from so8t.data import templates
from so8t.data.gsm8k import GSM8KExample
from so8t.data.safety import SafetyExample
from so8t.data.templates import PromptFormat

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

PLAIN_PROMPTS = PromptFormat()

IGNORE_INDEX = -100


def _fit(prompt: list[int], target: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """Truncate to max_length keeping the prompt's end (its "Answer:"/"Decision:" cue) and the target's start.

    The prompt keeps at least half the budget (or all of itself when shorter); the target fills the rest, so a
    safety row always keeps its decision word and a long question loses its beginning, not its cue.
    """
    if len(prompt) + len(target) <= max_length:
        return prompt, target
    keep_prompt = min(len(prompt), max(max_length - len(target), max_length // 2))
    prompt = prompt[len(prompt) - keep_prompt :]
    return prompt, target[: max_length - keep_prompt]


def encode_example(
    tokenizer: PreTrainedTokenizerBase,
    example: GSM8KExample | SafetyExample,
    max_length: int,
    prompt_format: PromptFormat = PLAIN_PROMPTS,
) -> dict[str, Any]:
    """One training row: input_ids, labels (-100 on the prompt), pool_index, safety_label (-100 for GSM8K).

    The prompt is rendered and the pair tokenized by `prompt_format` (so8t.data.templates), exactly as
    lm-eval feeds it; pool_index is the last token of the context lm-eval scores the decision after.
    """
    if isinstance(example, SafetyExample):
        prompt_text, target_text = templates.safety_prompt(example.prompt), templates.safety_target(example)
        safety_label = example.label
    else:
        prompt_text, target_text = (
            templates.gsm8k_prompt(example.question),
            templates.gsm8k_target(example.answer),
        )
        safety_label = IGNORE_INDEX
    conversation = example.conversation if isinstance(example, SafetyExample) else templates.NO_CONVERSATION
    encoded = prompt_format.encode_example(tokenizer, prompt_text, target_text, conversation)
    prompt, target = _fit(*encoded, max_length)
    return {
        "input_ids": prompt + target,
        "labels": [IGNORE_INDEX] * len(prompt) + target,
        "pool_index": len(prompt) - 1,
        "safety_labels": safety_label,
    }


class EncodedDataset(Dataset):
    """Pre-tokenised rows (small data sets: tokenising once up front keeps the training loop simple)."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]


def mix_examples(
    gsm8k: Sequence[GSM8KExample], safety: Sequence[SafetyExample], safety_fraction: float, seed: int
) -> list[GSM8KExample | SafetyExample]:
    """The training mix: every GSM8K example once, safety examples cycled so they make `safety_fraction` of it.

    Safety examples are few next to GSM8K, so they repeat (each full pass in a fresh seeded order) rather than
    GSM8K being cut. A fraction of 0 drops safety, 1 drops GSM8K. The order is shuffled with `seed`.
    """
    rng = random.Random(seed)
    if not gsm8k or safety_fraction >= 1.0:
        mixed: list[Any] = list(safety)
    elif not safety or safety_fraction <= 0.0:
        mixed = list(gsm8k)
    else:
        n_safety = max(1, round(len(gsm8k) * safety_fraction / (1.0 - safety_fraction)))
        cycled: list[SafetyExample] = []
        while len(cycled) < n_safety:
            order = list(safety)
            rng.shuffle(order)
            cycled += order
        mixed = list(gsm8k) + cycled[:n_safety]
    rng.shuffle(mixed)
    return mixed


def build_dataset(
    tokenizer: PreTrainedTokenizerBase,
    gsm8k: Sequence[GSM8KExample],
    safety: Sequence[SafetyExample],
    *,
    max_length: int,
    safety_fraction: float | None = None,
    seed: int = 0,
    prompt_format: PromptFormat = PLAIN_PROMPTS,
) -> EncodedDataset:
    """Tokenised rows; with `safety_fraction` the training mix, without it every example once (validation)."""
    if safety_fraction is None:
        examples: list[Any] = list(gsm8k) + list(safety)
    else:
        examples = mix_examples(gsm8k, safety, safety_fraction, seed)
    cache: dict[int, dict[str, Any]] = {}  # repeated safety examples are tokenised once
    rows = []
    for example in examples:
        key = id(example)
        if key not in cache:
            cache[key] = encode_example(tokenizer, example, max_length, prompt_format)
        rows.append(cache[key])
    return EncodedDataset(rows)


@dataclass
class So8tCollator:
    """Right-pads rows into tensors: input_ids, attention_mask, labels, pool_index, safety_labels."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[i, :n] = torch.tensor(row["input_ids"])
            labels[i, :n] = torch.tensor(row["labels"])
            attention_mask[i, :n] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "pool_index": torch.tensor([r["pool_index"] for r in rows], dtype=torch.long),
            "safety_labels": torch.tensor([r["safety_labels"] for r in rows], dtype=torch.long),
        }
