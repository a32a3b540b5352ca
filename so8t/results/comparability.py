"""Whether a baseline and a current run of a task can be compared at all.

A comparison is only meaningful between runs of the same task version, with the same n-shot prompts, on
the same documents, and with both files agreeing on the metric's direction. Each difference is a reason the
comparison fails (not a warning), unless the rule explicitly allows it (`allow: [version, n_shot,
documents]`; a direction disagreement is settled by the rule's own `higher_is_better`). A group is compared
through every task below it. Documents are compared by their hashes when both runs carry per-document
values, else by the number of documents lm-eval evaluated (a different `--limit` shows there).
"""

from __future__ import annotations

from so8t.config import GateRule
from so8t.results.documents import TaskDocuments, document_difference
from so8t.results.results_file import (
    metric_direction,
    recorded_limit,
    subtasks,
    task_documents,
    task_n_shot,
    task_version,
)


def _differs(a: object, b: object) -> bool:
    return a is not None and b is not None and a != b


def task_differences(
    baseline: dict,
    current: dict,
    task: str,
    documents: tuple[dict[str, TaskDocuments], dict[str, TaskDocuments]],
    allowed: frozenset[str] = frozenset(),
) -> list[str]:
    """Why the runs of `task` (every task below it, for a group) are not comparable; [] when they are."""
    reasons: list[str] = []
    base_docs, current_docs = documents
    for leaf in dict.fromkeys([task, *subtasks(baseline, task), *subtasks(current, task)]):
        where = "" if leaf == task else f" (subtask {leaf})"
        versions = (task_version(baseline, leaf), task_version(current, leaf))
        if "version" not in allowed and _differs(*versions):
            reasons.append(f"task version changed{where} (baseline {versions[0]}, current {versions[1]})")
        shots = (task_n_shot(baseline, leaf), task_n_shot(current, leaf))
        if "n_shot" not in allowed and _differs(*shots):
            reasons.append(f"different n-shot{where} (baseline {shots[0]}-shot, current {shots[1]}-shot)")
        if "documents" in allowed:
            continue
        if leaf in base_docs and leaf in current_docs:
            why = document_difference(base_docs[leaf], current_docs[leaf])
            if why:
                reasons.append(why + where)
            continue
        counts = (task_documents(baseline, leaf), task_documents(current, leaf))
        if _differs(*counts):
            limits = (recorded_limit(baseline), recorded_limit(current))
            reasons.append(
                f"different documents{where}: baseline scored {counts[0]}, the results {counts[1]} "
                f"(--limit {limits[0]} vs {limits[1]})"
            )
    return reasons


def direction_of(rule: GateRule, baseline: dict, current: dict) -> tuple[bool | None, str]:
    """(higher_is_better, "") or (None, why it cannot be known): the rule's own, else the files', which
    must agree."""
    if rule.higher_is_better is not None:
        return rule.higher_is_better, ""
    stated = (
        metric_direction(baseline, rule.task, rule.metric),
        metric_direction(current, rule.task, rule.metric),
    )
    if _differs(*stated):
        word = {True: "higher", False: "lower"}
        return None, (
            f"the files disagree on the direction of {rule.metric} (baseline: {word[stated[0]]} is better, "
            f"results: {word[stated[1]]} is better); set higher_is_better in the rule"
        )
    higher = stated[1] if stated[1] is not None else stated[0]
    if higher is None:
        return None, (
            f"direction of {rule.metric} unknown (no higher_is_better in either file); "
            "set higher_is_better in the rule"
        )
    return higher, ""
