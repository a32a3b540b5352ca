"""What a deployed SO8T agent returns, whichever engine runs it (HF in so8t.predict, llama.cpp in
so8t.llamacpp_agent): the decision with its probabilities, and the text given back to the user."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_ESCALATE_MESSAGE = "This request needs review by a person before it can be answered."
DEFAULT_REFUSE_MESSAGE = "I can't help with this request."
ANSWER_FORMATS = ("question", "decision")


@dataclass
class Decision:
    """Head B's decision; `probabilities` are its softmax per class (before any allow_threshold).

    `non_finite_scores` is True when head B's scores were not finite numbers (a broken head or model): the
    decision is then REFUSE by the fail-closed rule, not a decision of the head.
    """

    decision: str
    probabilities: dict[str, float]
    below_allow_threshold: bool = False
    non_finite_scores: bool = False


@dataclass
class Response(Decision):
    """A decision plus the text returned to the user; `generated` is True only for ALLOW."""

    text: str = ""
    generated: bool = False
