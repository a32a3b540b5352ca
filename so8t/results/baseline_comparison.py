"""One comparison with the baseline: comparable first, then the direction, the noise of the change, and the
verdict once the family's noise allowance is known (so8t.results.familywise)."""

from __future__ import annotations

from dataclasses import dataclass

from so8t.config import GateConfig, GateRule
from so8t.results.comparability import direction_of, task_differences
from so8t.results.documents import document_difference
from so8t.results.familywise import Allowance, Comparison
from so8t.results.gate_report import GateCheck
from so8t.results.paired import DeltaNoise, independent_noise, paired_noise
from so8t.results.results_file import MetricValue, as_number, get_metric, recorded_aggregation, subtasks
from so8t.results.run_results import RunResults


def change_noise(
    rule: GateRule,
    baseline: RunResults,
    current: RunResults,
    reported: tuple[MetricValue, MetricValue],
    iters: int,
) -> DeltaNoise:
    """se(Δ) of one gated metric: paired over matched documents when both runs have them, else independent."""

    def independent(why: str) -> DeltaNoise:
        return independent_noise(reported[0].stderr, reported[1].stderr, why)

    if subtasks(baseline.data, rule.task) != [rule.task] or subtasks(current.data, rule.task) != [rule.task]:
        return independent("a group")
    sides = (baseline.documents.get(rule.task), current.documents.get(rule.task))
    if sides[0] is None or sides[1] is None:
        which = " and ".join(n for n, s in zip(("baseline", "results"), sides, strict=True) if s is None)
        return independent(f"no samples in the {which}")
    if document_difference(*sides):
        return independent("different documents")
    values = (sides[0].values(rule.metric, rule.filter), sides[1].values(rule.metric, rule.filter))
    if values[0] is None or values[1] is None:
        return independent(f"no per-document {rule.key}")
    paired = paired_noise(
        values[0],
        values[1],
        aggregation=recorded_aggregation(current.data, rule.task, rule.metric)
        or recorded_aggregation(baseline.data, rule.task, rule.metric),
        metric=rule.metric,
        reported=(float(reported[0].value), float(reported[1].value)),
        iters=iters,
    )
    return paired if isinstance(paired, DeltaNoise) else independent(paired)


def metric_change(
    task: str, metric: str, filter_name: str, baseline: RunResults, current: RunResults, iters: int = 1000
) -> dict[str, float | str | None] | None:
    """One metric in two runs and its change with the standard error the gate weighs it by (change_noise:
    paired by document where both runs scored the same documents): a table's "difference ± se" cell. None
    when either run lacks the metric."""
    found = (
        get_metric(baseline.data, task, metric, filter_name),
        get_metric(current.data, task, metric, filter_name),
    )
    if found[0] is None or found[1] is None:
        return None
    rule = GateRule(task=task, metric=metric, filter=filter_name, max_drop=1.0)
    noise = change_noise(rule, baseline, current, (found[0], found[1]), iters=iters)
    before, after = float(found[0].value), float(found[1].value)
    return {
        "before": before,
        "after": after,
        "delta": after - before,
        "se": noise.stderr,
        "noise": noise.label,
    }


@dataclass
class PendingCheck:
    """A comparable baseline comparison whose verdict waits for the family's noise allowance."""

    check: GateCheck
    comparison: Comparison
    tolerance: float
    z: float
    method: str


def baseline_check(
    rule: GateRule,
    current: RunResults,
    baseline: RunResults | None,
    config: GateConfig,
    found: MetricValue | None,
    value: float | None,
    missing: str,
) -> GateCheck | PendingCheck:
    check = GateCheck(rule.task, rule.metric, rule.filter, "baseline", passed=False, current=value)
    tolerance = rule.max_drop if rule.max_drop is not None else config.default_tolerance
    if baseline is None:
        check.reason = "this rule compares with a baseline, but no baseline was given (--baseline)"
        return check
    base = get_metric(baseline.data, rule.task, rule.metric, rule.filter)
    base_value, why = (None, "is missing from the baseline") if base is None else as_number(base.value)
    check.baseline = base_value
    if value is None or found is None:
        check.reason = missing
        return check
    if base is None or base_value is None:
        check.reason = (
            f"baseline {rule.key} of {rule.task} {why}; refresh the baseline with --update-baseline"
        )
        return check
    reasons = task_differences(
        baseline.data, current.data, rule.task, (baseline.documents, current.documents), frozenset(rule.allow)
    )
    if reasons:
        check.reason = (
            "not comparable: "
            + "; ".join(reasons)
            + ". Evaluate on the baseline's terms, refresh the baseline "
            "with --update-baseline, or allow the difference in the rule (allow: [version, n_shot, documents])"
        )
        return check
    higher, why = direction_of(rule, baseline.data, current.data)
    if higher is None:
        check.reason = why
        return check
    noise = change_noise(rule, baseline, current, (base, found), config.bootstrap_iters)
    check.stderr, check.method = noise.stderr, noise.label
    values = _paired_values(rule, baseline, current) if noise.method != "independent" else None
    comparison = Comparison(
        task=rule.task,
        metric=rule.metric,
        aggregation=recorded_aggregation(current.data, rule.task, rule.metric)
        or recorded_aggregation(baseline.data, rule.task, rule.metric),
        bad_change=(base_value - value) if higher else (value - base_value),
        stderr=noise.stderr,
        higher_is_better=higher,
        in_family=rule.z is None,
        values=values,
    )
    z = rule.z if rule.z is not None else config.z
    return PendingCheck(check, comparison, tolerance, z, noise.method)


def _paired_values(rule: GateRule, baseline: RunResults, current: RunResults) -> tuple | None:
    sides = (baseline.documents.get(rule.task), current.documents.get(rule.task))
    if sides[0] is None or sides[1] is None:
        return None
    values = (sides[0].values(rule.metric, rule.filter), sides[1].values(rule.metric, rule.filter))
    return None if values[0] is None or values[1] is None else values


def decide(pending: PendingCheck, allowance: Allowance) -> GateCheck:
    """Pass or fail one comparison: a regression exceeds both the tolerance and `c · se(Δ)`."""
    check, comparison, tolerance = pending.check, pending.comparison, pending.tolerance
    stderr, bad_change = comparison.stderr, comparison.bad_change
    c = allowance.multiplier
    family = f", {allowance.method}" if allowance.method else ""
    # the family's multiple of se(Δ) is a critical value; a comparison alone keeps its z
    multiple = f"{c:.2f}" if allowance.method else "z"
    equals = f"c={c:.2f}" if allowance.method else f"z={c:g}"
    if allowance.method:
        check.method += f"; {allowance.method}"
    allowed = max(tolerance, c * stderr) if stderr is not None else tolerance
    word = "drop" if comparison.higher_is_better else "rise"
    noisy = stderr is not None and c * stderr > tolerance
    check.allowed = f"{word} ≤ {allowed:.4f}" + (" (noise)" if noisy else "")
    if bad_change > allowed + 1e-12:
        noise_text = (
            f", {multiple} × se(Δ) = {c * stderr:.4f} ({pending.method}{family})"
            if stderr is not None
            else f", no stderr of the change ({check.method})"
        )
        check.reason = f"{word} of {bad_change:.4f} exceeds the tolerance {tolerance:.4f}{noise_text}"
        return check
    check.passed = True
    if bad_change < 0:
        check.reason = "improved"
    elif bad_change > tolerance:
        check.reason = f"{word} of {bad_change:.4f} is within noise ({equals}, {pending.method}{family})"
    return check
