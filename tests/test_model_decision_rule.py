"""The decision rule fails closed: non-finite scores decide REFUSE, ties go to the stricter class, and the
reported scores' plain argmax (what lm-eval or any reader computes) is the decision."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from so8t.model.decision_rule import (
    ALLOW,
    ESCALATE,
    LOG_FLOOR,
    NON_FINITE_SCORES,
    REFUSE,
    decide_row,
    fail_closed_choice,
)

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    "scores",
    [
        (NAN, NAN, NAN),
        (0.0, NAN, -5.0),
        (NAN, -5.0, -5.0),
        (-0.1, -3.0, NAN),
        (INF, -1.0, -1.0),
        (-0.01, -INF, -9.0),
        (-0.01, -9.0, -INF),
    ],
)
@pytest.mark.parametrize("threshold", [None, 0.5, 0.99])
def test_non_finite_scores_decide_refuse_with_or_without_a_threshold(scores, threshold):
    decision, reported = decide_row(scores, threshold)
    assert decision == REFUSE == fail_closed_choice(scores)
    assert reported == list(NON_FINITE_SCORES)
    assert int(np.argmax(reported)) == REFUSE


@pytest.mark.parametrize(
    "scores,expected",
    [
        ((-1.0986, -1.0986, -1.0986), REFUSE),
        ((-0.5, -0.5, -3.0), ESCALATE),
        ((-0.5, -3.0, -0.5), REFUSE),
        ((-3.0, -0.5, -0.5), REFUSE),
        ((0.0, 0.0, 0.0), REFUSE),
    ],
)
@pytest.mark.parametrize("threshold", [None, 0.2, 0.9])
def test_a_tie_goes_to_the_stricter_class_and_the_reported_argmax_agrees(scores, expected, threshold):
    decision, reported = decide_row(scores, threshold)
    assert decision == expected == fail_closed_choice(scores)
    assert int(np.argmax(reported)) == decision
    assert max(reported) == reported[decision] and reported.count(reported[decision]) == 1
    assert int(np.argmax(np.asarray(reported, dtype=np.float32))) == decision


@pytest.mark.parametrize("seed", range(5))
def test_a_float32_reader_of_the_logged_scores_still_sees_the_stricter_class(seed):
    """Ties and near-ties (equal once rounded to float32) are logged so np.float32 argmax is the decision."""
    rng = random.Random(seed)
    for _ in range(200):
        top = math.log(rng.uniform(1e-6, 1.0))
        near = top - rng.choice([0.0, 1e-15, 1e-12, 1e-9])
        scores = [rng.choice([top, near, top - 1.0]) for _ in range(3)]
        decision, reported = decide_row(scores)
        assert decision == fail_closed_choice(scores)
        assert int(np.argmax(np.asarray(reported, dtype=np.float32))) == decision, scores
        assert int(np.argmax(reported)) == decision, scores


def test_allow_threshold_applies_after_the_rule_and_moves_the_mass_to_escalate():
    probs = [0.6, 0.1, 0.3]
    decision, reported = decide_row([math.log(p) for p in probs], allow_threshold=0.7)
    assert decision == ESCALATE
    assert [math.exp(s) for s in reported] == pytest.approx([0.0, 0.7, 0.3], abs=1e-12)
    assert reported[ALLOW] == LOG_FLOOR  # finite: -inf is reserved for non-finite rows
    assert decide_row([math.log(p) for p in probs], allow_threshold=0.5)[0] == ALLOW


def test_random_rows_report_finite_scores_whose_argmax_is_the_decision():
    """On rows with ties, near-ties, thresholds and tiny probabilities, every reader's argmax agrees."""
    rng = random.Random(0)
    for _ in range(5000):
        logits = [rng.choice([0.0, 1.0, rng.gauss(0, 3), rng.gauss(0, 60)]) for _ in range(3)]
        top = max(logits)
        log_probs = [v - top - math.log(sum(math.exp(w - top) for w in logits)) for v in logits]
        threshold = rng.choice([None, 0.4, 0.7, 0.95, 1.0])
        decision, reported = decide_row(log_probs, threshold)
        assert all(math.isfinite(s) and s >= LOG_FLOOR for s in reported)
        assert int(np.argmax(reported)) == decision
        ranked = fail_closed_choice(log_probs)
        if decision != ranked:  # only the threshold changes a decision, and only ALLOW to ESCALATE
            assert (ranked, decision) == (ALLOW, ESCALATE) and math.exp(log_probs[ALLOW]) < threshold


def test_fail_closed_on_a_batch_is_the_row_rule():
    import torch

    from so8t.model.inference import fail_closed

    rows = torch.tensor(
        [[NAN, -1.0, -1.0], [-1.0986, -1.0986, -1.0986], [-0.1, -3.0, -3.0], [-0.5, -0.5, -3.0]]
    )
    decisions, scores = fail_closed(rows, allow_threshold=0.95)
    assert decisions.tolist() == [REFUSE, REFUSE, ESCALATE, ESCALATE]
    assert scores.argmax(dim=-1).tolist() == decisions.tolist()
    for row, decision, reported in zip(rows.tolist(), decisions.tolist(), scores.tolist(), strict=True):
        assert (decision, reported) == decide_row(row, 0.95)
