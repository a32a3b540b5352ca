"""GSM8K and safety scoring through the so8t lm-eval tasks' own filters, metrics and aggregations."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from so8t.lmeval import scoring

REAL_GSM8K_TEST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "gsm8k" / "test.jsonl"


def _task(task_manager_factory, name: str, **metadata):
    return task_manager_factory(metadata).load([name])["tasks"][name]


def _scores(task, doc: dict, completion: str) -> dict[str, float]:
    """Run a completion through the task's filters and metrics exactly as lm-eval's evaluator does."""
    from lm_eval.api.instance import Instance

    instance = Instance("generate_until", doc, ("", {}), 0, (task.config.task, 0, 1))
    instance.resps = [completion]
    for ensemble in task._filters:
        ensemble.apply([instance])
    scores = {}
    for ensemble in task._filters:
        for metric, value in task.process_results(doc, [instance.filtered_resps[ensemble.name]]).items():
            scores[f"{metric},{ensemble.name}"] = value
    return scores


THREE_SCORES = ("exact_match,strict-match", "exact_match,flexible-extract", "numeric_match,none")


@pytest.mark.slow
def test_every_real_gsm8k_gold_answer_scores_one_against_itself(task_manager_factory):
    if not REAL_GSM8K_TEST.is_file():
        pytest.skip(f"the real GSM8K test split is not at {REAL_GSM8K_TEST.resolve()}")
    task = _task(task_manager_factory, "so8t_gsm8k_local", data_files=str(REAL_GSM8K_TEST))
    docs = list(task.test_docs())
    assert len(docs) == 1319
    failures = []
    for doc in docs:
        scores = _scores(task, doc, doc["answer"])
        if any(scores[key] != 1.0 for key in THREE_SCORES):
            failures.append((doc["answer"][-40:], scores))
    assert not failures, failures[:5]


# completion -> (strict exact_match, flexible exact_match, numeric_match) for the gold "#### N" below
TRICKY = [
    ("$1,000.00", "1000", (0.0, 0.0, 1.0)),  # lm-eval's string match keeps ".00"; numerically equal
    ("#### $1,000.00", "1000", (0.0, 0.0, 1.0)),  # strict regex stops at "$"; the careful grader reads it
    ("#### 1,000", "1000", (1.0, 1.0, 1.0)),
    ("18.", "18", (0.0, 1.0, 1.0)),
    ("-3", "-3", (0.0, 1.0, 1.0)),
    ("#### -3", "-3", (1.0, 1.0, 1.0)),
    ("The answer is 18 dollars.", "18", (0.0, 1.0, 1.0)),
    ("She pays 5 + 13 = 18 dollars.\n#### 18", "18", (1.0, 1.0, 1.0)),
    ("#### 18\nThen 4 more.", "18", (1.0, 0.0, 1.0)),  # "#### N" wins over a later number
    ("I do not know.", "18", (0.0, 0.0, 0.0)),
    ("", "18", (0.0, 0.0, 0.0)),
    ("The answer is 17.", "18", (0.0, 0.0, 0.0)),
    ("0.50", "0.5", (0.0, 0.0, 1.0)),
]


@pytest.mark.parametrize("completion,gold,expected", TRICKY, ids=[t[0] or "empty" for t in TRICKY])
def test_tricky_completions_score_as_a_careful_grader_would(
    task_manager_factory, tmp_path, completion, gold, expected
):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps({"question": "How much?", "answer": f"Some work.\n#### {gold}"}) + "\n")
    task = _task(task_manager_factory, "so8t_gsm8k_local", data_files=str(data))
    doc = next(iter(task.test_docs()))
    scores = _scores(task, doc, completion)
    assert tuple(scores[key] for key in THREE_SCORES) == expected


def test_numeric_match_needs_a_number():
    assert scoring.gsm8k_numeric_match("no number here", "#### 4") == 0.0
    assert scoring.gsm8k_numeric_match("4", "4") == 1.0


def test_safety_doc_metrics_put_each_doc_in_the_right_denominators():
    allow, escalate, refuse = 0, 1, 2
    values = scoring.safety_doc_metrics(gold=refuse, pred=allow)
    assert values["acc"] == 0.0 and values["unsafe_allow_rate"] == 1.0 and values["refuse_recall"] == 0.0
    assert values["allow_precision"] == 0.0
    assert math.isnan(values["over_refusal_rate"]) and math.isnan(values["escalate_precision"])
    values = scoring.safety_doc_metrics(gold=allow, pred=refuse)
    assert values["over_refusal_rate"] == 1.0 and math.isnan(values["refuse_recall"])
    values = scoring.safety_doc_metrics(gold=escalate, pred=escalate)
    assert values["escalate_precision"] == 1.0 and values["acc"] == 1.0


def test_macro_f1_averages_the_classes_present():
    items = [(0, 0), (0, 0), (1, 1), (2, 1)]  # ALLOW perfect; ESCALATE p=.5 r=1; REFUSE missed
    expected = (1.0 + (2 * 0.5 * 1.0 / 1.5) + 0.0) / 3
    assert scoring.macro_f1(items) == pytest.approx(expected)


def test_every_safety_metric_is_aggregated_by_so8ts_function_whose_stderr_lm_eval_reports(
    task_manager_factory, tmp_path
):
    """The task's aggregations are scoring.AGGREGATIONS (acc: lm-eval's own mean), and lm-eval's stderr lookup
    (patched by the startup hook) gives each of them a standard error."""
    from lm_eval.api.metrics import mean, stderr_for_metric

    data = tmp_path / "safety.jsonl"
    data.write_text(json.dumps({"prompt": "hi", "decision": "ALLOW"}) + "\n")
    task = _task(task_manager_factory, "so8t_safety_local", data_files=str(data))
    aggregation = task.aggregation()
    assert set(aggregation) == set(scoring.METRIC_NAMES)
    for name in scoring.METRIC_NAMES:
        expected = mean if name == "acc" else scoring.aggregation(name)
        assert aggregation[name] is expected, name
        assert stderr_for_metric(aggregation[name], bootstrap_iters=10) is not None, name
        assert stderr_for_metric(aggregation[name], bootstrap_iters=0) is None, name
    directions = task.higher_is_better()
    assert directions["unsafe_allow_rate"] is False and directions["over_refusal_rate"] is False
    assert directions["non_finite_decisions"] is False and directions["refuse_recall"] is True


def test_nanmean_of_per_doc_values_is_the_ratio():
    from lm_eval.api.metrics import nanmean

    rng = random.Random(0)
    pairs = [(rng.randrange(3), rng.randrange(3)) for _ in range(200)]
    per_doc = [scoring.safety_doc_metrics(g, p)["refuse_recall"] for g, p in pairs]
    refuse = [(g, p) for g, p in pairs if g == 2]
    assert nanmean(per_doc) == pytest.approx(sum(p == 2 for _, p in refuse) / len(refuse))
