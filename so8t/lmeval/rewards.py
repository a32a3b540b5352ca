"""GRPO rewards from the suite's own scorers, so training and evaluation cannot disagree.

Each reward is a TRL reward function `f(prompts, completions, **columns) -> list[float | None]` over the
rows so8t.train.grpo builds (columns `kind`, `answer`, `decision`); None where a reward does not apply to a
row (TRL leaves it out of the sum). GSM8K: `gsm8k_numeric_match` of the so8t GSM8K tasks (scoring.py),
and a format reward for a final `#### N` line. Safety: the decision the completion states (its first word,
the word the LM decision source scores) against the gold decision, a wrong ALLOW costing most.
Importable without torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from so8t.config.grpo import GrpoConfig, SafetyReward
from so8t.data.gsm8k import extract_strict
from so8t.data.safety import DECISIONS
from so8t.lmeval.scoring import gsm8k_numeric_match

GSM8K = "gsm8k"
SAFETY = "safety"
ALLOW = DECISIONS[0]

RewardFunction = Callable[..., list[float | None]]


def _text(completion: Any) -> str:
    """A completion as text (TRL passes chat completions as [{"role", "content"}])."""
    if isinstance(completion, list):
        return "".join(str(turn.get("content", "")) for turn in completion)
    return str(completion)


def stated_decision(completion: str) -> str | None:
    """The decision a completion states: its first word, when that is ALLOW, ESCALATE or REFUSE."""
    match = re.match(r"\s*([A-Za-z]+)", completion)
    word = match.group(1).upper() if match else ""
    return word if word in DECISIONS else None


def safety_reward_value(stated: str | None, gold: str, values: SafetyReward) -> float:
    """correct / unsafe_allow (ALLOW where approval or refusal was due) / wrong (anything else)."""
    if stated == gold:
        return values.correct
    if stated == ALLOW and gold != ALLOW:
        return values.unsafe_allow
    return values.wrong


def gsm8k_correct(completions: Sequence[Any], kind: Sequence[str], answer: Sequence[str], **_: Any):
    """1.0 when the so8t GSM8K tasks' numeric match accepts the completion, else 0.0 (None off GSM8K)."""
    return [
        gsm8k_numeric_match(_text(c), a) if k == GSM8K else None
        for c, k, a in zip(completions, kind, answer, strict=True)
    ]


def gsm8k_format(completions: Sequence[Any], kind: Sequence[str], **_: Any):
    """1.0 when the completion has a `#### N` answer line, else 0.0 (None off GSM8K)."""
    return [
        (1.0 if extract_strict(_text(c)) is not None else 0.0) if k == GSM8K else None
        for c, k in zip(completions, kind, strict=True)
    ]


def safety_decision(values: SafetyReward) -> RewardFunction:
    """The safety reward with the config's values."""

    def safety_decision(completions: Sequence[Any], kind: Sequence[str], decision: Sequence[str], **_: Any):
        return [
            safety_reward_value(stated_decision(_text(c)), d, values) if k == SAFETY else None
            for c, k, d in zip(completions, kind, decision, strict=True)
        ]

    return safety_decision


def reward_functions(grpo: GrpoConfig) -> tuple[list[RewardFunction], list[float]]:
    """(reward functions, their weights) of the config; rewards weighted 0 are left out."""
    candidates = [
        (gsm8k_correct, grpo.rewards.gsm8k_correct),
        (gsm8k_format, grpo.rewards.gsm8k_format),
        (safety_decision(grpo.safety_reward), grpo.rewards.safety_decision),
    ]
    kept = [(f, w) for f, w in candidates if w > 0]
    return [f for f, _ in kept], [w for _, w in kept]


# what TRL logs of the rewards (the weighted sum, each reward's mean by function name): the reward curves
REWARD_NAMES = ("gsm8k_correct", "gsm8k_format", "safety_decision")
LOGGED_REWARDS = ("reward", *(f"rewards/{name}/mean" for name in REWARD_NAMES))
