"""`so8t gate`: fail CI when lm-eval results regress, against absolute bounds and a baseline results file.

Reads lm-eval's own results format (any backend: `--model so8t`, `hf`, `vllm`) from files, lm-eval
`--output_path` folders (the newest run per model) or globs, so a baseline is just an earlier results file.
Every check fails closed: a gated metric that is missing, NaN or non-numeric, a comparison between runs that
are not comparable (task version, n-shot, documents, a direction the files disagree on), a metric whose
direction is unknown, or an unreadable file is a failure that says why, never a pass.

A change against the baseline is a regression only when it exceeds both the rule's tolerance and
`z * se(Δ)`, in the metric's bad direction. se(Δ) is paired over the documents when both runs carry
per-document values of the same documents (lm-eval's samples files, or a baseline's embedded values), else
the independent `sqrt(se_baseline^2 + se_current^2)`; so8t.results.paired gives the formulas.

Exit codes of the CLI: 0 every check passed, 1 a check failed, 2 bad input (missing file, bad rules).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from so8t.config import GateConfig, GateRule
from so8t.errors import ConfigError, UserError
from so8t.results.baseline import write_baseline
from so8t.results.baseline_comparison import PendingCheck, baseline_check, decide
from so8t.results.documents import documents_of
from so8t.results.familywise import Allowance, allowances
from so8t.results.gate_report import GateCheck, GateReport, input_failure
from so8t.results.results_file import (
    BASELINE_KEY,
    MetricValue,
    ResultsFormatError,
    as_number,
    get_metric,
    is_metric_key,
    iter_metrics,
    load_results,
    results_format_problem,
)
from so8t.results.rules import load_gate_config, missing_baseline_hint
from so8t.results.run_results import RunResults, read_run

__all__ = [
    "BASELINE_KEY",
    "GateCheck",
    "GateReport",
    "ResultsFormatError",
    "evaluate_gates",
    "gate_files",
    "iter_metrics",
    "load_results",
    "read_run",
    "write_baseline",
]

# ------------------------------------------------------------------------------------------ the checks


def _current_value(results: dict, rule: GateRule) -> tuple[MetricValue | None, float | None, str]:
    found = get_metric(results, rule.task, rule.metric, rule.filter)
    if found is None:
        entry = results.get("results", {}).get(rule.task)
        if entry is None:
            tasks = ", ".join(sorted(results.get("results", {}))) or "none"
            return None, None, f"task {rule.task} is missing from the results (tasks there: {tasks})"
        keys = ", ".join(k for k in entry if is_metric_key(k)) or "none"
        return None, None, f"metric {rule.key} is missing from results[{rule.task}] (keys there: {keys})"
    number, why = as_number(found.value)
    if number is None:
        return found, None, f"current {rule.key} {why}"
    return found, number, ""


def _bound_checks(rule: GateRule, current: float | None, missing: str) -> list[GateCheck]:
    checks = []
    for kind, bound in (("min", rule.min), ("max", rule.max)):
        if bound is None:
            continue
        allowed = f"≥ {bound:.4f}" if kind == "min" else f"≤ {bound:.4f}"
        check = GateCheck(
            rule.task, rule.metric, rule.filter, kind, passed=False, current=current, allowed=allowed
        )
        if current is None:
            check.reason = missing
        elif kind == "min" and current < bound:
            check.reason = f"{current:.4f} is below the floor {bound:.4f}"
        elif kind == "max" and current > bound:
            check.reason = f"{current:.4f} is above the ceiling {bound:.4f}"
        else:
            check.passed = True
        checks.append(check)
    return checks


def _rules_for(baseline: dict | None, config: GateConfig) -> list[GateRule]:
    """The configured rules, or (no rules) every metric of the baseline with the default tolerance."""
    if config.rules:
        return list(config.rules)
    if baseline is None:
        return []
    return [GateRule(task=m.task, metric=m.metric, filter=m.filter) for m in iter_metrics(baseline)]


def _as_run(value: RunResults | dict | None) -> RunResults | None:
    """A results dict alone carries only the per-document values a baseline embeds."""
    if value is None or isinstance(value, RunResults):
        return value
    documents = documents_of(value) if results_format_problem(value) is None else {}
    return RunResults(value, documents)


def evaluate_gates(
    results: RunResults | dict, baseline: RunResults | dict | None, config: GateConfig
) -> GateReport:
    """Check lm-eval `results` against `config` (and `baseline`): results dicts, or RunResults with their
    per-document values (read_run)."""
    current, base = _as_run(results), _as_run(baseline)
    assert current is not None
    report = GateReport()
    for label, side in (("results", current), ("baseline", base)):
        problem = results_format_problem(side.data) if side is not None else None
        if problem:
            report.checks.append(input_failure(label, f"the {label} are not lm-eval results: {problem}"))
    if report.checks:
        return report
    rules = _rules_for(base.data if base else None, config)
    if not rules:
        report.checks.append(input_failure("rules", "nothing to gate: no rules and no baseline metrics"))
        return report
    checks: list[GateCheck | PendingCheck] = []
    for rule in rules:
        found, value, missing = _current_value(current.data, rule)
        checks += _bound_checks(rule, value, missing)
        if rule.compares_with_baseline:
            checks.append(baseline_check(rule, current, base, config, found, value, missing))
    pending = [c for c in checks if isinstance(c, PendingCheck)]
    decided = dict(
        zip(
            map(id, pending),
            allowances([p.comparison for p in pending], config.z, config.bootstrap_iters),
            strict=True,
        )
    )
    for pending_z, item in ((p.z, p) for p in pending if not p.comparison.in_family):
        decided[id(item)] = Allowance(pending_z, "")
    report.checks += [decide(c, decided[id(c)]) if isinstance(c, PendingCheck) else c for c in checks]
    report.warnings = current.notes + (base.notes if base else [])
    return report


def gate_files(results: list[str | Path], config: GateConfig) -> GateReport:
    """Read the results (files, folders, globs) and the config's baseline, then gate; a file that is not
    lm-eval results is a failed check (fail closed), a path that does not exist a UserError."""
    failures: list[GateCheck] = []
    current = base = None
    try:
        current = read_run(list(results))
    except ResultsFormatError as exc:
        failures.append(input_failure("results", str(exc)))
    if config.baseline is not None:
        try:
            base = read_run([config.baseline])
        except ResultsFormatError as exc:
            failures.append(input_failure(config.baseline, str(exc)))
    if failures or current is None:
        report = GateReport(checks=failures)
    else:
        report = evaluate_gates(current, base, config)
        report.results_sources = current.sources
    report.baseline_source = base.sources[0] if base and len(base.sources) == 1 else config.baseline
    return report


# ------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS",
        help="lm-eval results files, lm-eval --output_path folders (newest run per model) or quoted globs; "
        "several are merged (one task per file)",
    )
    parser.add_argument(
        "--baseline",
        metavar="FILE",
        help="lm-eval results file (or output folder) to compare against; overrides the rules file's baseline",
    )
    parser.add_argument(
        "--rules", metavar="FILE", help="YAML with gate rules (a GateConfig, or a suite from evals/suites/)"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        metavar="X",
        help="default allowed change in the bad direction (default: the rules' or 0.02)",
    )
    parser.add_argument(
        "--z",
        type=float,
        metavar="Z",
        help="noise allowance in standard errors of the change (default: the rules' or 2.0)",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown (CI summaries)")
    parser.add_argument("--junit", metavar="FILE", help="also write JUnit XML, one testcase per check")
    parser.add_argument(
        "--update-baseline",
        metavar="OUT",
        dest="update_baseline",
        help="write OUT as the new baseline from RESULTS (with provenance and per-document values) instead "
        "of gating",
    )


def _gate_config_from_args(args: argparse.Namespace) -> GateConfig:
    if args.rules:
        rules_path = Path(args.rules)
        if not rules_path.is_file():
            raise UserError(
                f"Rules file not found: {rules_path}. Pass a YAML gate config (see evals/suites/)."
            )
        config = load_gate_config(rules_path, baseline=args.baseline)
    elif args.baseline:
        config = GateConfig(baseline=args.baseline)
    else:
        raise UserError(
            "so8t gate needs --baseline FILE, --rules FILE, or both (or --update-baseline OUT to write a new "
            "baseline)."
        )
    updates = {k: v for k, v in (("default_tolerance", args.tolerance), ("z", args.z)) if v is not None}
    if any(v < 0 for v in updates.values()):
        raise ConfigError(
            [
                f"--{'tolerance' if k == 'default_tolerance' else k} must be >= 0"
                for k, v in updates.items()
                if v < 0
            ],
            source="command line",
        )
    return config.model_copy(update=updates) if updates else config


def run_cli(args: argparse.Namespace) -> int:
    if args.update_baseline:
        if args.baseline or args.rules:
            raise UserError(
                "--update-baseline writes a baseline and does not gate; run it without --baseline/--rules."
            )
        out, notes = write_baseline(args.results, args.update_baseline)
        for note in notes:
            print(f"note: {note}")
        print(f"wrote baseline {out} from {', '.join(args.results)}")
        return 0
    config = _gate_config_from_args(args)
    if config.baseline is not None and not Path(config.baseline).exists():
        raise UserError(
            f"Baseline file not found: {config.baseline}. Write one with "
            "`so8t gate RESULTS --update-baseline FILE`, or fix the path." + missing_baseline_hint(args.rules)
        )
    report = gate_files(args.results, config)
    report.print()
    for path, text in ((args.markdown, report.to_markdown), (args.junit, report.to_junit_xml)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text(), encoding="utf-8")
    print(report.summary())
    return 0 if report.passed else 1
