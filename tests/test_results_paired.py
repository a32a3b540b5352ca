"""The standard error of a change (so8t.results.paired): the documented formulas, on values whose answer is
known by hand, and the cases that fall back to the independent formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

from so8t.lmeval.scoring import macro_f1
from so8t.results.paired import bootstrap_stderr, independent_noise, lookup_aggregation, paired_noise

NAN = math.nan


def test_a_mean_is_tested_on_the_per_document_differences():
    base = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    current = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    noise = paired_noise(base, current, aggregation="mean", metric="acc", reported=(5 / 8, 3 / 8))
    diffs = np.subtract(current, base)
    assert noise.method == "paired differences" and noise.documents == 8
    assert noise.stderr == pytest.approx(np.std(diffs, ddof=1) / math.sqrt(8))


@pytest.mark.parametrize("aggregation", ["nanmean", "ratio"])
def test_a_ratio_with_the_same_denominator_uses_only_the_documents_in_it(aggregation):
    # a recall: NaN (outside the denominator) on the same documents in both runs; so8t_safety records its
    # rates' aggregation as `ratio`, lm-eval's own tasks as `nanmean`: the same test either way
    base = [1.0, NAN, 0.0, NAN, 1.0, 1.0]
    current = [0.0, NAN, 0.0, NAN, 1.0, 0.0]
    noise = paired_noise(
        base, current, aggregation=aggregation, metric="refuse_recall", reported=(0.75, 0.25)
    )
    diffs = np.array([-1.0, 0.0, 0.0, -1.0])
    assert (noise.method, noise.documents) == ("paired differences", 4)
    assert noise.stderr == pytest.approx(np.std(diffs, ddof=1) / 2)


def test_the_safety_tasks_recorded_rates_take_the_paired_differences_test():
    # the aggregation name a so8t_safety results file records for its rates (a function of tasks/utils.py)
    from so8t.results.results_file import recorded_aggregation

    data = {
        "configs": {
            "t": {"metric_list": [{"metric": "refuse_recall", "aggregation": "def ratio(items):\n    ..."}]}
        }
    }
    name = recorded_aggregation(data, "t", "refuse_recall")
    base, current = [1.0, NAN, 1.0, 1.0, 0.0], [0.0, NAN, 1.0, 1.0, 0.0]
    noise = paired_noise(base, current, aggregation=name, metric="refuse_recall", reported=(0.75, 0.5))
    assert (noise.method, noise.documents) == ("paired differences", 4)
    identical = paired_noise(base, base, aggregation=name, metric="refuse_recall", reported=(0.75, 0.75))
    assert (identical.method, identical.stderr) == ("paired differences", 0.0)


def test_a_ratio_whose_denominator_moves_with_the_predictions_is_bootstrapped():
    # a precision: which documents count depends on what each run predicted
    base = [1.0, 0.0, NAN, 1.0, NAN, 1.0]
    current = [NAN, 0.0, 1.0, 1.0, 0.0, NAN]
    noise = paired_noise(base, current, aggregation="nanmean", metric="allow_precision", reported=(0.75, 0.5))
    assert noise.method == "paired bootstrap" and noise.stderr is not None and noise.stderr > 0
    again = paired_noise(base, current, aggregation="nanmean", metric="allow_precision", reported=(0.75, 0.5))
    assert again == noise  # the seed is fixed: a gate is reproducible


def test_macro_f1_gets_a_paired_bootstrap_stderr_through_its_own_aggregation():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 60)
    base = [(int(g), int(g) if rng.random() < 0.7 else int(rng.integers(0, 3))) for g in gold]
    current = [(g, p if i % 7 else (p + 1) % 3) for i, (g, p) in enumerate(base)]
    reported = (macro_f1(base), macro_f1(current))
    noise = paired_noise(
        base, current, aggregation="macro_f1", metric="macro_f1", reported=reported, iters=300
    )
    assert noise.method == "paired bootstrap" and noise.documents == 60
    assert 0 < noise.stderr < 0.1
    assert (
        paired_noise(base, base, aggregation="macro_f1", metric="macro_f1", reported=reported[:1] * 2).stderr
        == 0
    )
    assert bootstrap_stderr(base, aggregation="macro_f1", metric="macro_f1", iters=300) > noise.stderr


def test_identical_runs_have_a_zero_paired_stderr():
    values = [1.0, 0.0, 1.0, 1.0]
    noise = paired_noise(values, list(values), aggregation="mean", metric="acc", reported=(0.75, 0.75))
    assert (noise.method, noise.stderr) == ("paired differences", 0.0)


def test_values_that_do_not_reproduce_the_reported_number_are_not_paired():
    why = paired_noise([1.0, 0.0], [1.0, 1.0], aggregation="mean", metric="acc", reported=(0.9, 1.0))
    assert why == "the baseline per-document values do not reproduce the reported acc"


def test_an_unknown_aggregation_is_not_paired():
    why = paired_noise([1.0], [1.0], aggregation="no_such_aggregation", metric="acc", reported=(1.0, 1.0))
    assert why == "no known aggregation 'no_such_aggregation' for acc"


def test_aggregations_are_found_by_the_name_the_results_record():
    assert lookup_aggregation("macro_f1", "macro_f1") is macro_f1  # a custom one: so8t's scoring function
    assert lookup_aggregation("nanmean", "refuse_recall")([1.0, NAN, 0.0]) == 0.5  # lm-eval's registered one
    assert lookup_aggregation(None, "macro_f1") is macro_f1  # no record: by the metric's name
    assert lookup_aggregation(None, "acc") is None


def test_the_independent_formula_combines_the_two_stderrs_or_has_none():
    assert independent_noise(0.03, 0.04, "no samples").stderr == pytest.approx(0.05)
    missing = independent_noise(0.03, None, "no samples")
    assert missing.stderr is None and missing.label == "independent (no samples; no stderr in a file)"


def test_the_vectorised_macro_f1_resamples_equal_the_aggregation_called_on_each():
    from so8t.results.paired import _resampled

    rng = np.random.default_rng(1)
    for classes in (3, 2):  # a class absent from gold and predictions must not count
        values = [(int(g), int(p)) for g, p in rng.integers(0, classes, size=(40, 2))]
        indices = rng.integers(0, 40, size=(50, 40))
        fast = _resampled(values, indices, "macro_f1", macro_f1)
        slow = [macro_f1([values[i] for i in row]) for row in indices]
        assert fast == pytest.approx(slow, abs=1e-12)
