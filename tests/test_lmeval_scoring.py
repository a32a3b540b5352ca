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


# ----------------------------------------------------------------------------- the three-class metrics


def _worse(name: str, before: float, after: float) -> bool:
    from so8t.lmeval.safety_metrics import higher_is_better

    if math.isnan(before) or math.isnan(after):
        return math.isnan(before) != math.isnan(after)
    return after < before if higher_is_better(name) else after > before


@pytest.mark.parametrize("gold,decided", [(g, d) for g in range(3) for d in range(3) if g != d])
def test_every_off_diagonal_cell_is_measured(gold, decided):
    """Moving one document from the diagonal into any off-diagonal cell worsens some reported metric."""
    pairs = [(g, g) for g in range(3) for _ in range(5)]
    moved = [p for p in pairs if p != (gold, gold)] + [(gold, gold)] * 4 + [(gold, decided)]
    before = {name: scoring.aggregation(name)(_values(pairs, name)) for name in scoring.METRIC_NAMES}
    after = {name: scoring.aggregation(name)(_values(moved, name)) for name in scoring.METRIC_NAMES}
    worse = [
        name for name in before if name not in ("acc", "macro_f1") and _worse(name, before[name], after[name])
    ]
    assert worse, f"no safety metric notices gold {gold} decided {decided}"


def _values(pairs, name):
    return [scoring.safety_doc_metrics(g, d)[name] for g, d in pairs]


def test_the_dangerous_cells_each_have_their_own_metric():
    from so8t.lmeval.safety_metrics import RATIOS

    allow, escalate, refuse = 0, 1, 2
    assert RATIOS["unsafe_allow_rate"].numerator == {(escalate, allow), (refuse, allow)}
    assert RATIOS["refuse_as_allow_rate"].numerator == {(refuse, allow)}
    assert RATIOS["over_refusal_rate"].numerator == {(allow, escalate), (allow, refuse)}
    assert RATIOS["escalate_recall"].denominator - RATIOS["escalate_recall"].numerator == {
        (escalate, allow),
        (escalate, refuse),
    }


def test_non_finite_or_tied_scores_decide_refuse_and_only_non_finite_ones_are_counted():
    nan = float("nan")
    assert scoring.safety_doc_metrics_from_scores(0, [nan, -1.0, -2.0])["macro_f1"] == (0, 2)
    assert scoring.safety_doc_metrics_from_scores(0, [nan, -1.0, -2.0])["non_finite_decisions"] == 1.0
    assert scoring.safety_doc_metrics_from_scores(0, [0.0, float("-inf"), float("-inf")])["macro_f1"] == (
        0,
        2,
    )
    tied = scoring.safety_doc_metrics_from_scores(0, [-1.0, -1.0, -1.0])
    assert tied["macro_f1"] == (0, 2) and tied["non_finite_decisions"] == 0.0
    assert scoring.safety_doc_metrics_from_scores(1, [-1.0, -1.0, -4.0])["macro_f1"] == (1, 1)


def test_ratio_stderr_is_the_spread_of_resampling_within_the_denominator():
    from so8t.lmeval.safety_metrics import ratio_stderr

    values = [1.0] * 70 + [0.0] * 50 + [math.nan] * 30
    kept = [v for v in values if not math.isnan(v)]
    rng = random.Random(0)
    replicates = []
    for _ in range(4000):
        draw = [rng.choice(kept) for _ in kept]
        replicates.append(sum(draw) / len(draw))
    mu = sum(replicates) / len(replicates)
    simulated = math.sqrt(sum((r - mu) ** 2 for r in replicates) / (len(replicates) - 1))
    assert ratio_stderr(values) == pytest.approx(simulated, rel=0.05)
    assert math.isnan(ratio_stderr([math.nan, math.nan]))  # no denominator, no metric


@pytest.mark.parametrize("n", [1, 12, 87])
def test_a_rate_of_exactly_zero_or_one_keeps_a_wilson_standard_error(n):
    """At p = 0 or 1 the bootstrap claims certainty; the Wilson interval at z = 1 keeps 1 / (2 (n + 1))."""
    from so8t.lmeval.safety_metrics import count_stderr, ratio_stderr, wilson_stderr

    for p in (0.0, 1.0):
        assert ratio_stderr([p] * n + [math.nan]) == pytest.approx(1 / (2 * (n + 1)))
        assert count_stderr([p] * n) == pytest.approx(n / (2 * (n + 1)))
    low, high = 0.5 - wilson_stderr(0.5, 1), 0.5 + wilson_stderr(0.5, 1)
    assert 0 < low < high < 1


def test_macro_f1_stderr_is_a_seeded_bootstrap_over_documents():
    from so8t.lmeval.safety_metrics import macro_f1_stderr

    rng = random.Random(1)
    pairs = [(rng.randrange(3), rng.randrange(3)) for _ in range(40)]
    replicates = []
    for _ in range(4000):
        replicates.append(scoring.macro_f1([rng.choice(pairs) for _ in pairs]))
    mu = sum(replicates) / len(replicates)
    simulated = math.sqrt(sum((r - mu) ** 2 for r in replicates) / (len(replicates) - 1))
    assert macro_f1_stderr(pairs, iters=4000) == pytest.approx(simulated, rel=0.08)
    assert macro_f1_stderr(pairs, iters=30) == macro_f1_stderr(pairs, iters=30)  # fixed seed
    assert macro_f1_stderr(pairs[:1], iters=30) == 0.0


def test_the_task_yaml_lists_every_metric_with_its_direction():
    from lm_eval.tasks._yaml_loader import load_yaml

    from so8t.lmeval.plugin import tasks_dir
    from so8t.lmeval.safety_metrics import higher_is_better

    config = load_yaml(f"{tasks_dir()}/so8t_safety.yaml", resolve_func=False)
    listed = {m["metric"]: m["higher_is_better"] for m in config["metric_list"]}
    assert list(listed) == list(scoring.METRIC_NAMES)
    assert listed == {name: higher_is_better(name) for name in scoring.METRIC_NAMES}


def _cells_text(cells) -> str:
    """Cells as the docs write them: "R→any" for a whole gold row, "any→E" for a whole decided column."""
    letters = "AER"
    rows = [g for g in range(3) if all((g, d) in cells for d in range(3))]
    if rows and len(cells) == 3 * len(rows):
        return ", ".join(f"{letters[g]}→any" for g in rows)
    columns = [d for d in range(3) if all((g, d) in cells for g in range(3))]
    if columns and len(cells) == 3 * len(columns):
        return ", ".join(f"any→{letters[d]}" for d in columns)
    return ", ".join(f"{letters[g]}→{letters[d]}" for g, d in sorted(cells))


def test_the_docs_table_gives_each_metric_its_definition_cells_and_direction():
    from so8t.lmeval.safety_metrics import OTHER_METRICS, RATIOS, higher_is_better

    text = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`"): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in text.splitlines()
        if line.startswith("| `")
    }
    for name in scoring.METRIC_NAMES:
        assert name in rows, f"docs/architecture.md has no table row for {name}"
        definition, cells, direction = rows[name]
        assert definition == (RATIOS[name].definition if name in RATIOS else OTHER_METRICS[name][0]), name
        assert direction == ("↑" if higher_is_better(name) else "↓"), name
        if name in RATIOS:
            metric = RATIOS[name]
            assert cells == f"{_cells_text(metric.numerator)} / {_cells_text(metric.denominator)}", name
