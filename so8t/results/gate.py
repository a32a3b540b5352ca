"""`so8t gate`: fail CI when lm-eval results regress, against absolute bounds and a baseline results file.

Reads lm-eval's own results format (any backend: `--model so8t`, `hf`, `vllm`), so a baseline is just an
earlier results file. Every check fails closed: a gated metric that is missing, NaN or non-numeric, a task
whose version changed, a metric whose direction is unknown, or an unreadable file is a failure that says why,
never a pass. A change against the baseline is a regression only when it exceeds both the rule's tolerance
and `z * sqrt(se_baseline^2 + se_current^2)` (when both files carry a numeric stderr; lm-eval writes "N/A"
when it has none), and only in the metric's bad direction, read from the results' `higher_is_better`.

Exit codes of the CLI: 0 every check passed, 1 a check failed, 2 bad input (missing file, bad rules).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

from so8t.config import GateConfig, GateRule
from so8t.errors import ConfigError, UserError
from so8t.results.rules import load_gate_config

BASELINE_KEY = "so8t_baseline"  # extra top-level key of a baseline file; lm-eval readers ignore it
# per-task keys lm-eval writes beside the metrics
NON_METRIC_KEYS = frozenset({"alias", "name", "sample_len", "samples"})

CheckKind = Literal["min", "max", "baseline", "input"]


class ResultsFormatError(UserError):
    """A file that exists but is not a readable lm-eval results file."""


# ------------------------------------------------------------------------------------ reading results


def load_results(path: str | Path) -> dict:
    """Read and check one lm-eval results file.

    Raises UserError when the path does not exist, ResultsFormatError (a UserError) when it is not valid
    JSON or not in lm-eval's results format.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(
            f"Results file not found: {path}. Pass the JSON file that `lm_eval --output_path` or "
            "`so8t eval --out` wrote (lm-eval names it results_<date>.json)."
        )
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFormatError(
            f"{path} is not readable JSON ({exc}). Re-run the evaluation or point at the results_*.json "
            "file that lm-eval wrote."
        ) from exc
    problem = results_format_problem(data)
    if problem:
        raise ResultsFormatError(
            f"{path} is not an lm-eval results file: {problem}. Expected the JSON written by "
            "`lm_eval --output_path` (keys `results`, `versions`, `higher_is_better`, `config`)."
        )
    return data


def results_format_problem(data: Any) -> str | None:
    """Why `data` is not an lm-eval results dict, or None when it is one."""
    if not isinstance(data, dict):
        return f"the top level is a {type(data).__name__}, not an object"
    results = data.get("results")
    if not isinstance(results, dict):
        return "no `results` object"
    if not results:
        return "`results` is empty"
    for task, entry in results.items():
        if not isinstance(entry, dict):
            return f"`results.{task}` is a {type(entry).__name__}, not an object"
        if not any(_is_metric_key(k) for k in entry):
            return f"`results.{task}` holds no `metric,filter` keys"
    for key in ("higher_is_better", "versions"):
        if key in data and not isinstance(data[key], dict):
            return f"`{key}` is not an object"
    return None


def _is_metric_key(key: str) -> bool:
    metric, sep, _ = key.partition(",")
    return bool(sep) and key not in NON_METRIC_KEYS and not metric.endswith("_stderr")


def parse_stderr(value: Any) -> float | None:
    """A usable standard error, or None ("N/A", missing, NaN, negative or not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


@dataclass(frozen=True)
class MetricValue:
    """One `metric,filter` entry of a results file, with its stderr (None when lm-eval wrote "N/A")."""

    task: str
    metric: str
    filter: str
    value: Any
    stderr: float | None

    @property
    def key(self) -> str:
        return f"{self.metric},{self.filter}"


def iter_metrics(data: dict) -> Iterator[MetricValue]:
    """Every metric of every task in an lm-eval results dict, in file order."""
    for task, entry in data.get("results", {}).items():
        if not isinstance(entry, dict):
            continue
        for key, value in entry.items():
            if not _is_metric_key(key):
                continue
            metric, _, filter_name = key.partition(",")
            yield MetricValue(
                task, metric, filter_name, value, parse_stderr(entry.get(f"{metric}_stderr,{filter_name}"))
            )


def get_metric(data: dict, task: str, metric: str, filter_name: str) -> MetricValue | None:
    entry = data.get("results", {}).get(task)
    key = f"{metric},{filter_name}"
    if not isinstance(entry, dict) or key not in entry:
        return None
    return MetricValue(
        task, metric, filter_name, entry[key], parse_stderr(entry.get(f"{metric}_stderr,{filter_name}"))
    )


def metric_direction(data: dict, task: str, metric: str) -> bool | None:
    """lm-eval's `higher_is_better[task][metric]`, or None when the file does not say."""
    value = data.get("higher_is_better", {}).get(task, {})
    value = value.get(metric) if isinstance(value, dict) else None
    return value if isinstance(value, bool) else None


def merge_results(loaded: Sequence[tuple[str, dict]]) -> dict:
    """Combine several results files (e.g. one per task) into one results dict.

    The same task in two files is ambiguous and raises UserError naming both files.
    """
    if len(loaded) == 1:
        return loaded[0][1]
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for source, data in loaded:
        for task in data["results"]:
            if task in owner:
                raise UserError(
                    f"Task {task!r} appears in both {owner[task]} and {source}; pass one results file per task "
                    "so the gate knows which value to check."
                )
            owner[task] = source
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(merged.get(key, {}), dict):
                merged.setdefault(key, {}).update(value)
            else:
                merged.setdefault(key, value)
    return merged


def _as_number(value: Any) -> tuple[float | None, str]:
    """(value, "") for a finite number, else (None, why it cannot be gated)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"is not a number ({value!r})"
    if math.isnan(value):
        return None, "is NaN"
    if math.isinf(value):
        return None, "is infinite"
    return float(value), ""


# ------------------------------------------------------------------------------------------ the report


@dataclass
class GateCheck:
    """One pass/fail decision: a bound or a baseline comparison on one metric, or an input problem."""

    task: str
    metric: str
    filter: str
    kind: CheckKind
    passed: bool
    current: float | None = None
    baseline: float | None = None
    allowed: str = ""
    reason: str = ""

    @property
    def name(self) -> str:
        if self.kind == "input":
            return f"input {self.task}"
        label = {"min": "floor", "max": "ceiling", "baseline": "vs baseline"}[self.kind]
        return f"{self.task} {self.metric},{self.filter} {label}"

    @property
    def delta(self) -> float | None:
        if self.current is None or self.baseline is None:
            return None
        return self.current - self.baseline


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


@dataclass
class GateReport:
    """All checks of one gate run; `passed` only when there is at least one check and none failed."""

    checks: list[GateCheck] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    results_sources: list[str] = field(default_factory=list)
    baseline_source: str | None = None

    HEADERS = ("metric", "check", "baseline", "current", "delta", "allowed", "verdict", "reason")

    @property
    def failures(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not self.failures

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return f"gate {verdict}: {len(self.checks) - len(self.failures)}/{len(self.checks)} checks passed"

    def _rows(self) -> list[list[str]]:
        rows = []
        for c in self.checks:
            metric = c.task if c.kind == "input" else f"{c.task} {c.metric} [{c.filter}]"
            kind = {"min": "floor", "max": "ceiling", "baseline": "vs baseline", "input": "input"}[c.kind]
            verdict = "PASS" if c.passed else "FAIL"
            rows.append(
                [
                    metric,
                    kind,
                    _fmt(c.baseline),
                    _fmt(c.current),
                    _fmt(c.delta, signed=True),
                    c.allowed or "—",
                    verdict,
                    c.reason,
                ]
            )
        return rows

    def to_rich_table(self) -> Any:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=self.summary(), title_justify="left")
        for header in self.HEADERS:
            table.add_column(
                header,
                overflow="fold",
                justify="right" if header in ("baseline", "current", "delta") else "left",
            )
        for row in self._rows():
            style = "green" if row[6] == "PASS" else "bold red"
            table.add_row(*map(escape, row[:6]), f"[{style}]{row[6]}[/]", escape(row[7]))
        return table

    def print(self, console: Any = None) -> None:
        """Print the table (and warnings) with rich; wide enough for CI logs that are not terminals."""
        from rich.console import Console

        if console is None:
            console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
        from rich.markup import escape

        console.print(self.to_rich_table())
        # one unwrapped line per failure, so logs can be searched for the reason
        for check in self.failures:
            console.print(f"[bold red]FAIL[/] {escape(check.name)}: {escape(check.reason)}", soft_wrap=True)
        for warning in self.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)

    def to_markdown(self) -> str:
        """A verdict line and a Markdown table, for CI job summaries and report.md."""
        icon = "✅" if self.passed else "❌"
        lines = [f"**{icon} {self.summary()}**", ""]
        if self.baseline_source:
            lines += [f"Baseline: `{self.baseline_source}`", ""]
        lines.append("| " + " | ".join(self.HEADERS) + " |")
        lines.append(
            "|"
            + "|".join("---:" if h in ("baseline", "current", "delta") else "---" for h in self.HEADERS)
            + "|"
        )
        for row in self._rows():
            row[6] = ("✅ " if row[6] == "PASS" else "❌ ") + row[6]
            lines.append(
                "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in row) + " |"
            )
        if self.warnings:
            lines += ["", *[f"- ⚠️ {w}" for w in self.warnings]]
        return "\n".join(lines) + "\n"

    def to_junit_xml(self) -> str:
        """JUnit XML: one testcase per check, failures as <failure message=...>."""
        suites = ET.Element(
            "testsuites",
            name="so8t gate",
            tests=str(len(self.checks)),
            failures=str(len(self.failures)),
            errors="0",
        )
        suite = ET.SubElement(
            suites,
            "testsuite",
            name="so8t-gate",
            tests=str(len(self.checks)),
            failures=str(len(self.failures)),
            errors="0",
            skipped="0",
        )
        for check in self.checks:
            case = ET.SubElement(suite, "testcase", classname=f"so8t.gate.{check.task}", name=check.name)
            if not check.passed:
                failure = ET.SubElement(case, "failure", message=check.reason or "failed", type=check.kind)
                failure.text = (
                    f"baseline={_fmt(check.baseline)} current={_fmt(check.current)} "
                    f"delta={_fmt(check.delta, signed=True)} allowed={check.allowed or '-'}"
                )
            elif check.reason:
                ET.SubElement(case, "system-out").text = check.reason
        if self.warnings:
            ET.SubElement(suite, "system-err").text = "\n".join(self.warnings)
        ET.indent(suites)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# ------------------------------------------------------------------------------------------- the gate


def input_failure(what: str, reason: str) -> GateCheck:
    """A failed check for input that could not be read: the gate fails closed."""
    return GateCheck(task=what, metric="", filter="", kind="input", passed=False, reason=reason)


def _current_value(results: dict, rule: GateRule) -> tuple[MetricValue | None, float | None, str]:
    found = get_metric(results, rule.task, rule.metric, rule.filter)
    if found is None:
        entry = results.get("results", {}).get(rule.task)
        if entry is None:
            tasks = ", ".join(sorted(results.get("results", {}))) or "none"
            return None, None, f"task {rule.task} is missing from the results (tasks there: {tasks})"
        keys = ", ".join(k for k in entry if _is_metric_key(k)) or "none"
        return None, None, f"metric {rule.key} is missing from results[{rule.task}] (keys there: {keys})"
    number, why = _as_number(found.value)
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


def _baseline_check(
    rule: GateRule,
    results: dict,
    baseline: dict | None,
    config: GateConfig,
    found: MetricValue | None,
    current: float | None,
    missing: str,
) -> GateCheck:
    check = GateCheck(rule.task, rule.metric, rule.filter, "baseline", passed=False, current=current)
    tolerance = rule.max_drop if rule.max_drop is not None else config.default_tolerance
    z = rule.z if rule.z is not None else config.z
    if baseline is None:
        check.reason = "this rule compares with a baseline, but no baseline was given (--baseline)"
        return check
    base = get_metric(baseline, rule.task, rule.metric, rule.filter)
    base_value, why = (None, "is missing from the baseline") if base is None else _as_number(base.value)
    check.baseline = base_value
    if current is None:
        check.reason = missing
        return check
    if base_value is None:
        check.reason = (
            f"baseline {rule.key} of {rule.task} {why}; refresh the baseline with --update-baseline"
        )
        return check
    versions = (baseline.get("versions", {}).get(rule.task), results.get("versions", {}).get(rule.task))
    if None not in versions and str(versions[0]) != str(versions[1]):
        check.reason = (
            f"task version changed (baseline {versions[0]}, current {versions[1]}): the numbers are not "
            "comparable; refresh the baseline with --update-baseline"
        )
        return check
    higher = rule.higher_is_better
    if higher is None:
        higher = metric_direction(results, rule.task, rule.metric)
    if higher is None:
        higher = metric_direction(baseline, rule.task, rule.metric)
    if higher is None:
        check.reason = (
            f"direction of {rule.metric} unknown (no higher_is_better in either file); "
            "set higher_is_better in the rule"
        )
        return check
    bad_change = (base_value - current) if higher else (current - base_value)
    se_cur = found.stderr if found is not None else None
    noise = z * math.hypot(base.stderr, se_cur) if base.stderr is not None and se_cur is not None else None
    allowance = max(tolerance, noise) if noise is not None else tolerance
    word = "drop" if higher else "rise"
    check.allowed = f"{word} ≤ {allowance:.4f}" + (
        " (noise)" if noise is not None and noise > tolerance else ""
    )
    if bad_change > allowance + 1e-12:
        noise_text = (
            f", noise allowance {noise:.4f}" if noise is not None else ", no stderr in one or both files"
        )
        check.reason = f"{word} of {bad_change:.4f} exceeds the tolerance {tolerance:.4f}{noise_text}"
        return check
    check.passed = True
    if bad_change < 0:
        check.reason = "improved"
    elif bad_change > tolerance:
        check.reason = f"{word} of {bad_change:.4f} is within noise (z={z:g})"
    return check


def _rules_for(results: dict, baseline: dict | None, config: GateConfig) -> list[GateRule]:
    """The configured rules, or (no rules) every metric of the baseline with the default tolerance."""
    if config.rules:
        return list(config.rules)
    if baseline is None:
        return []
    return [GateRule(task=m.task, metric=m.metric, filter=m.filter) for m in iter_metrics(baseline)]


def _comparability_warnings(results: dict, baseline: dict | None, rules: list[GateRule]) -> list[str]:
    if baseline is None:
        return []
    warnings = []
    for task in sorted({r.task for r in rules if r.compares_with_baseline}):
        n_base = baseline.get("n-samples", {}).get(task, {})
        n_cur = results.get("n-samples", {}).get(task, {})
        if (
            isinstance(n_base, dict)
            and isinstance(n_cur, dict)
            and n_base.get("effective") != n_cur.get("effective")
        ):
            warnings.append(
                f"{task}: baseline scored {n_base.get('effective')} documents, the results "
                f"{n_cur.get('effective')} (different --limit?)"
            )
        shots = (baseline.get("n-shot", {}).get(task), results.get("n-shot", {}).get(task))
        if None not in shots and shots[0] != shots[1]:
            warnings.append(f"{task}: baseline used {shots[0]}-shot prompts, the results {shots[1]}-shot")
    return warnings


def evaluate_gates(results: dict, baseline: dict | None, config: GateConfig) -> GateReport:
    """Check lm-eval `results` against `config` (and `baseline`, an lm-eval results dict or None)."""
    report = GateReport()
    for label, data in (("results", results), ("baseline", baseline)):
        problem = results_format_problem(data) if data is not None else None
        if problem:
            report.checks.append(input_failure(label, f"the {label} are not lm-eval results: {problem}"))
    if report.checks:
        return report
    rules = _rules_for(results, baseline, config)
    if not rules:
        report.checks.append(input_failure("rules", "nothing to gate: no rules and no baseline metrics"))
        return report
    for rule in rules:
        found, current, missing = _current_value(results, rule)
        report.checks += _bound_checks(rule, current, missing)
        if rule.compares_with_baseline:
            report.checks.append(_baseline_check(rule, results, baseline, config, found, current, missing))
    report.warnings = _comparability_warnings(results, baseline, rules)
    return report


# ------------------------------------------------------------------------------------------- baselines


def _git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def model_description(data: dict) -> dict[str, Any]:
    """Backend, model name and model_args of a results file (lm-eval's `config` and `model_name`)."""
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    return {
        "backend": config.get("model"),
        "model_name": data.get("model_name"),
        "model_args": config.get("model_args"),
    }


def write_baseline(sources: Sequence[str | Path], out: str | Path) -> Path:
    """Write a new baseline from results file(s), on purpose, recording where it came from.

    The output stays an lm-eval results file; provenance goes in the extra top-level key `so8t_baseline`
    (source paths and sha256, evaluation date, model, git commit). NaN or non-numeric metrics are refused:
    a baseline that cannot be compared with would fail every later gate.
    """
    loaded = []
    for source in sources:
        loaded.append((str(source), load_results(source)))
    data = dict(merge_results(loaded))
    bad = [
        f"{m.task} {m.key} {_as_number(m.value)[1]}"
        for m in iter_metrics(data)
        if _as_number(m.value)[0] is None
    ]
    if bad:
        raise UserError(
            f"Refusing to write a baseline from {', '.join(map(str, sources))}: "
            + "; ".join(bad)
            + ". Fix the evaluation first; a baseline must hold finite numbers."
        )
    evaluated = data.get("date")
    data[BASELINE_KEY] = {
        "sources": [str(Path(s).resolve()) for s in sources],
        "sources_sha256": {
            str(Path(s).resolve()): hashlib.sha256(Path(s).read_bytes()).hexdigest() for s in sources
        },
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "evaluated_at": (
            datetime.fromtimestamp(evaluated, timezone.utc).isoformat(timespec="seconds")
            if isinstance(evaluated, (int, float))
            else evaluated
        ),
        "model": model_description(data),
        "git_commit": _git_commit(Path.cwd()),
        "results_git_hash": data.get("git_hash"),
        "tasks": sorted(data["results"]),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


def resolve_baseline_path(baseline: str, named_in: Path | None = None) -> Path:
    """A baseline path from a rules file: the working directory first, then the rules file's folder."""
    path = Path(baseline)
    if path.is_absolute() or path.exists() or named_in is None:
        return path
    beside = named_in.parent / path
    return beside if beside.exists() else path


# ------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS",
        help="lm-eval results JSON file(s); several files are merged (one task per file)",
    )
    parser.add_argument(
        "--baseline",
        metavar="FILE",
        help="lm-eval results file to compare against (overrides the rules file's baseline)",
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
        help="noise allowance in combined standard errors (default: the rules' or 2.0)",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown (CI summaries)")
    parser.add_argument("--junit", metavar="FILE", help="also write JUnit XML, one testcase per check")
    parser.add_argument(
        "--update-baseline",
        metavar="OUT",
        dest="update_baseline",
        help="write OUT as the new baseline from RESULTS (with provenance) instead of gating",
    )


def _gate_config_from_args(args: argparse.Namespace) -> GateConfig:
    if args.rules:
        rules_path = Path(args.rules)
        if not rules_path.is_file():
            raise UserError(
                f"Rules file not found: {rules_path}. Pass a YAML gate config (see evals/suites/)."
            )
        config = load_gate_config(rules_path, baseline=args.baseline)
        if args.baseline is None and config.baseline is not None:
            config = config.model_copy(
                update={"baseline": str(resolve_baseline_path(config.baseline, rules_path))}
            )
    elif args.baseline:
        config = GateConfig(baseline=args.baseline)
    else:
        raise UserError(
            "so8t gate needs --baseline FILE, --rules FILE, or both (or --update-baseline OUT "
            "to write a new baseline)."
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
    for path in args.results:
        if not Path(path).exists():
            raise UserError(
                f"Results file not found: {path}. Pass the results JSON that lm-eval or `so8t eval` wrote."
            )
    if args.update_baseline:
        if args.baseline or args.rules:
            raise UserError(
                "--update-baseline writes a baseline and does not gate; run it without --baseline/--rules."
            )
        out = write_baseline(args.results, args.update_baseline)
        print(f"wrote baseline {out} from {', '.join(args.results)}")
        return 0
    config = _gate_config_from_args(args)
    if config.baseline is not None and not Path(config.baseline).exists():
        raise UserError(
            f"Baseline file not found: {config.baseline}. Write one with "
            "`so8t gate RESULTS --update-baseline FILE`, or fix the path."
        )

    input_failures: list[GateCheck] = []
    loaded: list[tuple[str, dict]] = []
    for path in args.results:
        try:
            loaded.append((path, load_results(path)))
        except ResultsFormatError as exc:
            input_failures.append(input_failure(path, str(exc)))
    baseline = None
    if config.baseline is not None:
        try:
            baseline = load_results(config.baseline)
        except ResultsFormatError as exc:
            input_failures.append(input_failure(config.baseline, str(exc)))

    if input_failures:
        report = GateReport(checks=input_failures)
    else:
        report = evaluate_gates(merge_results(loaded), baseline, config)
    report.results_sources = list(args.results)
    report.baseline_source = config.baseline
    report.print()
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(report.to_markdown(), encoding="utf-8")
    if args.junit:
        Path(args.junit).parent.mkdir(parents=True, exist_ok=True)
        Path(args.junit).write_text(report.to_junit_xml(), encoding="utf-8")
    print(report.summary())
    return 0 if report.passed else 1
