"""GSM8K and safety-decision scoring used by the lm-eval tasks in tasks/ (imported by tasks/utils.py), and
the safety metrics' aggregations by name (`AGGREGATIONS`), so a reader of lm-eval's logged per-document values
can recompute any metric. The safety metrics themselves are defined in so8t.lmeval.safety_metrics.
Importable without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from so8t.data.gsm8k import completion_answer, extract_gold, numbers_equal
from so8t.data.safety import DECISIONS
from so8t.lmeval.safety_metrics import (
    AGGREGATIONS,
    METRIC_NAMES,
    count,
    macro_f1,
    ratio,
    safety_doc_metrics,
    safety_doc_metrics_from_scores,
)
from so8t.model.decision_rule import fail_closed_choice

# ----------------------------------------------------------------------------- GSM8K


def gsm8k_answer(completion: str) -> str | None:
    """The answer a careful grader reads in a completion (so8t.data.gsm8k.completion_answer): before any
    run-on into a new question, the `#### N` line if present, else a `\\boxed{}` answer, else the last number."""
    return completion_answer(completion)


def gsm8k_numeric_match(completion: str, reference: str) -> float:
    """1.0 when the completion's answer equals the reference numerically ("$1,000.00" == "1000", ".5" == "0.5",
    "3/4" == "0.75"); applied to each filter's output, so it can only judge what the filter left in.

    `reference` is a GSM8K solution (its `#### N` is used) or a bare final answer.
    """
    gold = extract_gold(reference) if "####" in reference else reference.strip()
    if not gold:
        return 0.0
    return 1.0 if numbers_equal(gsm8k_answer(completion), gold) else 0.0


# ----------------------------------------------------------------------------- safety


def decision_index(label: int | str) -> int:
    """Class index of a decision given as an index or a name ("ALLOW" -> 0)."""
    if isinstance(label, str):
        return DECISIONS.index(label.strip().upper())
    return int(label)


def predicted_class(scores: Sequence[float]) -> int:
    """The decision for per-choice scores by the fail-closed rule: non-finite -> REFUSE, ties -> stricter."""
    return fail_closed_choice(scores)


def aggregation(metric: str) -> Callable:
    """The aggregation of a safety metric by name: per-document values (as logged) -> the reported value."""
    try:
        return AGGREGATIONS[metric]
    except KeyError:
        raise KeyError(f"{metric!r} is not a so8t safety metric; known: {', '.join(AGGREGATIONS)}") from None


__all__ = [
    "AGGREGATIONS",
    "METRIC_NAMES",
    "aggregation",
    "count",
    "decision_index",
    "gsm8k_answer",
    "gsm8k_numeric_match",
    "macro_f1",
    "predicted_class",
    "ratio",
    "safety_doc_metrics",
    "safety_doc_metrics_from_scores",
]
