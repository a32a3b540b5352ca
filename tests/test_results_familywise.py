"""The gate's family-wise noise allowance (so8t.results.familywise): max-T on the paired document bootstrap,
Holm where per-document values are missing, z alone for one comparison."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from so8t.results.familywise import Comparison, allowances, family_level
from so8t.results.paired import paired_noise


def _comparison(base, current, metric="acc", *, task="t", higher=True, values=True) -> Comparison:
    base, current = [float(x) for x in base], [float(x) for x in current]
    noise = paired_noise(
        base, current, aggregation="mean", metric=metric, reported=(np.mean(base), np.mean(current))
    )
    delta = float(np.mean(current) - np.mean(base))
    return Comparison(
        task=task,
        metric=metric,
        aggregation="mean",
        bad_change=-delta if higher else delta,
        stderr=noise.stderr,
        higher_is_better=higher,
        in_family=True,
        values=(base, current) if values else None,
    )


def _same_quality_pair(rng, n=87, metrics=10, redraw=0.2):
    """Correlated 0/1 metrics of one task: each metric a noisy copy of one per-document skill; the current
    run re-draws a share of the documents from the same distribution."""
    skill = rng.random(n) < 0.7
    base = np.array([np.where(rng.random(n) < 0.9, skill, ~skill) for _ in range(metrics)], dtype=float)
    current = base.copy()
    redrawn = rng.random(n) < redraw
    fresh = rng.random(n) < 0.7
    for m in range(metrics):
        flip = rng.random(n) < 0.9
        current[m, redrawn] = np.where(flip, fresh, ~fresh)[redrawn]
    return base, current


def test_one_comparison_keeps_z_and_z_0_keeps_no_allowance():
    base, current = [1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]
    (only,) = allowances([_comparison(base, current)], 2.0, 200)
    assert (only.multiplier, only.method) == (2.0, "")
    two = [_comparison(base, current), _comparison(base, current, "b")]
    assert all(a.multiplier == 0.0 for a in allowances(two, 0.0, 200))


def test_max_t_allowance_lies_between_one_test_and_bonferroni_for_correlated_metrics():
    rng = np.random.default_rng(0)
    base, current = _same_quality_pair(rng)
    family = [_comparison(b, c, f"m{i}") for i, (b, c) in enumerate(zip(base, current, strict=True))]
    found = allowances(family, 2.0, 1000)
    assert {a.method for a in found} == {"max-T over 10"}
    bonferroni = NormalDist().inv_cdf(1 - family_level(2.0) / 10)
    assert 2.0 < found[0].multiplier < bonferroni


def test_holm_is_the_fallback_when_a_comparison_has_no_per_document_values():
    rng = np.random.default_rng(1)
    base, current = _same_quality_pair(rng, metrics=3)
    family = [
        _comparison(b, c, f"m{i}", values=i != 2) for i, (b, c) in enumerate(zip(base, current, strict=True))
    ]
    found = allowances(family, 2.0, 500)
    assert {a.method for a in found} == {"Holm over 3"}
    alpha = family_level(2.0)
    t = [c.bad_change / c.stderr for c in family]
    thresholds = [NormalDist().inv_cdf(1 - alpha / (3 - i)) for i in range(3)]
    # the largest statistic faces the strictest threshold; nothing here is rejected, so every comparison
    # gets the first position's threshold (Bonferroni's)
    assert max(t) < thresholds[0]
    assert [a.multiplier for a in found] == pytest.approx([thresholds[0]] * 3)


@pytest.mark.slow
def test_the_family_keeps_same_quality_runs_passing_where_each_metric_at_z_fails_too_often():
    """Same-quality pairs of 10 correlated metrics on 87 documents: at least one metric beyond 2 se in
    far more than 2.3% of pairs; with the max-T allowance the whole-run rate stays near the level."""
    rng = np.random.default_rng(2)
    per_metric = family = 0
    pairs = 150
    for _ in range(pairs):
        base, current = _same_quality_pair(rng)
        comparisons = [_comparison(b, c, f"m{i}") for i, (b, c) in enumerate(zip(base, current, strict=True))]
        t = [c.bad_change / c.stderr for c in comparisons if c.stderr]
        per_metric += any(x > 2.0 for x in t)
        found = allowances(comparisons, 2.0, 400)
        family += any(
            c.stderr and c.bad_change > a.multiplier * c.stderr
            for c, a in zip(comparisons, found, strict=True)
        )
    assert per_metric / pairs > 0.06
    assert family / pairs <= 0.05
