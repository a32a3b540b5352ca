"""The paired gate on real per-sample logs (tests/fixtures/results: the quickstart model through `so8t eval`).

`quickstart` decides with head B; `quickstart-threshold-0.98` and `-0.95` are the same model with an
allow_threshold, so some ALLOW decisions become ESCALATE and none go the other way: a real change on the same
documents of the bundled test split. Paired, the gate sees how consistent that change is; the independent
formula cannot.
"""

from __future__ import annotations

import math

import pytest
from results_fixtures import copy_with_samples, copy_without_samples, documents, run_file

from so8t.config import GateConfig, GateRule
from so8t.results.gate import evaluate_gates, read_run

ACC = GateRule(task="so8t_safety", metric="acc", max_drop=0.02)
DOCS = documents("quickstart", "so8t_safety")


def _check(baseline, current, rule: GateRule):
    config = GateConfig(baseline="b", rules=[rule], bootstrap_iters=200)  # fewer resamples: a quicker test
    report = evaluate_gates(read_run([current]), read_run([baseline]), config)
    (check,) = [c for c in report.checks if c.kind == "baseline"]
    return check


def test_the_paired_gate_fails_a_regression_the_independent_formula_passes(tmp_path):
    base, current = run_file("quickstart"), run_file("quickstart-threshold-0.98")
    paired = _check(base, current, ACC)
    assert not paired.passed
    assert paired.method == f"paired differences, {DOCS} docs"
    assert paired.delta < -0.02 and -paired.delta > 2 * paired.stderr
    # the same two files without their samples: the independent formula calls the drop noise
    alone = _check(
        copy_without_samples("quickstart", tmp_path / "b"),
        copy_without_samples("quickstart-threshold-0.98", tmp_path / "c"),
        ACC,
    )
    assert alone.passed and alone.reason.endswith("is within noise (z=2, independent)")
    assert alone.method == "independent (no samples in the baseline and results)"
    assert alone.stderr > paired.stderr
    assert alone.delta == paired.delta


def test_two_identical_runs_pass_with_no_paired_noise():
    """The same evaluation again with another batch size: every metric equal, documents in another order."""
    report = evaluate_gates(
        read_run([run_file("quickstart-rerun")]), read_run([run_file("quickstart")]), GateConfig(baseline="b")
    )
    assert report.passed
    compared = [c for c in report.checks if c.kind == "baseline"]
    assert compared and all(c.delta == 0 and c.stderr == 0 for c in compared)
    assert all(c.method.startswith("paired") for c in compared)


def test_a_change_within_paired_noise_passes():
    check = _check(run_file("quickstart"), run_file("quickstart-threshold-0.95"), ACC)
    assert check.passed and check.delta < -0.02  # beyond the tolerance ...
    assert check.reason.endswith("is within noise (z=2, paired differences)")  # ... but not beyond z x se(Δ)
    assert -check.delta <= 2 * check.stderr


def test_macro_f1_gets_a_paired_bootstrap_stderr():
    rule = GateRule(task="so8t_safety", metric="macro_f1", max_drop=0.02)
    check = _check(run_file("quickstart"), run_file("quickstart-threshold-0.98"), rule)
    assert check.method == f"paired bootstrap, {DOCS} docs"
    assert check.stderr is not None and check.stderr > 0
    # the paired bootstrap over the shared documents, not the independent formula on the files' own stderrs
    recorded = [
        float(read_run([run_file(name)]).data["results"]["so8t_safety"]["macro_f1_stderr,none"])
        for name in ("quickstart", "quickstart-threshold-0.98")
    ]
    assert check.stderr < math.hypot(*recorded)


def test_a_precision_is_bootstrapped_when_its_denominator_moves():
    rule = GateRule(task="so8t_safety", metric="allow_precision")
    check = _check(run_file("quickstart"), run_file("quickstart-threshold-0.98"), rule)
    assert check.method == f"paired bootstrap, {DOCS} docs" and check.stderr > 0


def test_a_direction_disagreement_fails_with_its_reason(tmp_path):
    def flip(data):
        data["higher_is_better"]["so8t_safety"]["unsafe_allow_rate"] = True

    current = copy_with_samples("quickstart-threshold-0.98", tmp_path, edit=flip)
    rule = GateRule(task="so8t_safety", metric="unsafe_allow_rate")
    check = _check(run_file("quickstart"), current, rule)
    assert not check.passed
    assert check.reason == (
        "the files disagree on the direction of unsafe_allow_rate (baseline: lower is better, results: higher "
        "is better); set higher_is_better in the rule"
    )
    settled = GateRule(task="so8t_safety", metric="unsafe_allow_rate", higher_is_better=False)
    assert _check(run_file("quickstart"), current, settled).passed


def test_a_different_limit_fails_with_its_reason(tmp_path):
    check = _check(run_file("quickstart"), run_file("quickstart-limit40"), ACC)
    assert not check.passed
    assert check.reason.startswith(
        f"not comparable: the runs scored different documents ({DOCS - 40} (document, filter) pairs only in the "
        "baseline, 0 only in the results; compared by doc_hash)"
    )
    # without samples the count tells the same: a different --limit
    alone = _check(run_file("quickstart"), copy_without_samples("quickstart-limit40", tmp_path), ACC)
    assert (
        f"not comparable: different documents: baseline scored {DOCS}, the results 40 (--limit None vs 40)"
        in alone.reason
    )
    allowed = GateRule(task="so8t_safety", metric="acc", max_drop=0.5, allow=["documents"])
    assert _check(run_file("quickstart"), run_file("quickstart-limit40"), allowed).method.startswith(
        "independent (different documents"
    )


def test_a_different_n_shot_fails_with_its_reason():
    check = _check(run_file("quickstart"), run_file("quickstart-3shot"), ACC)
    assert not check.passed
    assert check.reason.startswith("not comparable: different n-shot (baseline 0-shot, current 3-shot)")
    allowed = GateRule(task="so8t_safety", metric="acc", max_drop=1.0, allow=["n_shot"])
    assert (
        _check(run_file("quickstart"), run_file("quickstart-3shot"), allowed).method
        == f"paired differences, {DOCS} docs"
    )


@pytest.mark.parametrize("task", ["so8t_gsm8k_local", "so8t_safety"])
def test_every_metric_of_a_real_run_reproduces_from_its_samples(task):
    """The paired methods apply only when the per-document values give back the reported number: they do
    for every metric so8t's tasks report (else the table would say independent)."""
    report = evaluate_gates(
        read_run([run_file("quickstart-rerun")]), read_run([run_file("quickstart")]), GateConfig(baseline="b")
    )
    methods = {c.metric + "," + c.filter: c.method for c in report.checks if c.task == task}
    assert methods and all(m.startswith("paired") for m in methods.values()), methods


def test_a_tables_metric_change_is_the_gates_delta_and_standard_error(tmp_path):
    """metric_change, the "difference ± se" cell of the benchmarks' tables, weighs a change as the gate does."""
    from so8t.results.baseline_comparison import metric_change

    base, current = run_file("quickstart"), run_file("quickstart-threshold-0.98")
    change = metric_change("so8t_safety", "acc", "none", read_run([base]), read_run([current]), iters=200)
    gated = _check(base, current, ACC)
    assert change["delta"] == pytest.approx(gated.delta)
    assert change["delta"] == pytest.approx(change["after"] - change["before"])
    assert change["se"] == pytest.approx(gated.stderr)
    assert change["noise"].startswith("paired")
    alone = metric_change(
        "so8t_safety",
        "acc",
        "none",
        read_run([copy_without_samples("quickstart", tmp_path / "b")]),
        read_run([copy_without_samples("quickstart-threshold-0.98", tmp_path / "c")]),
    )
    assert alone["noise"].startswith("independent") and alone["se"] > change["se"]
    assert (
        metric_change("so8t_safety", "no_such_metric", "none", read_run([base]), read_run([current])) is None
    )
