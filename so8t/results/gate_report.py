"""What `so8t gate` decided, as a terminal table, Markdown (CI summaries, report.md) and JUnit XML.

One row per check: a floor, a ceiling or a comparison with the baseline, or an input problem. A comparison
shows the standard error of the change and how it was obtained (paired differences, paired bootstrap, or
the independent formula and why), so a reader sees which noise model decided.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Literal
from xml.etree import ElementTree as ET

CheckKind = Literal["min", "max", "baseline", "input"]
KIND_LABEL = {"min": "floor", "max": "ceiling", "baseline": "vs baseline", "input": "input"}
NUMBER_HEADERS = ("baseline", "current", "delta", "se(Δ)")


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
    stderr: float | None = None
    method: str = ""

    @property
    def name(self) -> str:
        if self.kind == "input":
            return f"input {self.task}"
        return f"{self.task} {self.metric},{self.filter} {KIND_LABEL[self.kind]}"

    @property
    def delta(self) -> float | None:
        if self.current is None or self.baseline is None:
            return None
        return self.current - self.baseline


def input_failure(what: str, reason: str) -> GateCheck:
    """A failed check for input that could not be read: the gate fails closed."""
    return GateCheck(task=what, metric="", filter="", kind="input", passed=False, reason=reason)


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

    HEADERS = (
        "metric",
        "check",
        "baseline",
        "current",
        "delta",
        "se(Δ)",
        "noise model",
        "allowed",
        "verdict",
        "reason",
    )
    VERDICT = HEADERS.index("verdict")

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
            rows.append(
                [
                    metric,
                    KIND_LABEL[c.kind],
                    _fmt(c.baseline),
                    _fmt(c.current),
                    _fmt(c.delta, signed=True),
                    _fmt(c.stderr),
                    c.method or "—",
                    c.allowed or "—",
                    "PASS" if c.passed else "FAIL",
                    c.reason,
                ]
            )
        return rows

    def to_rich_table(self) -> Any:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=self.summary(), title_justify="left")
        for header in self.HEADERS:
            table.add_column(header, overflow="fold", justify="right" if header in NUMBER_HEADERS else "left")
        for row in self._rows():
            verdict = row[self.VERDICT]
            style = "green" if verdict == "PASS" else "bold red"
            cells = [escape(cell) for cell in row]
            cells[self.VERDICT] = f"[{style}]{verdict}[/]"
            table.add_row(*cells)
        return table

    def print(self, console: Any = None) -> None:
        """Print the table (and warnings) with rich; wide enough for CI logs that are not terminals."""
        from rich.console import Console
        from rich.markup import escape

        if console is None:
            console = Console(width=None if sys.stdout.isatty() else 240, highlight=False)
        console.print(self.to_rich_table())
        # one unwrapped line per failure, so logs can be searched for the reason
        for check in self.failures:
            console.print(f"[bold red]FAIL[/] {escape(check.name)}: {escape(check.reason)}", soft_wrap=True)
        for warning in self.warnings:
            console.print(f"[yellow]note:[/] {escape(warning)}", soft_wrap=True)

    def to_markdown(self) -> str:
        """A verdict line and a Markdown table, for CI job summaries and report.md."""
        icon = "✅" if self.passed else "❌"
        lines = [f"**{icon} {self.summary()}**", ""]
        if self.baseline_source:
            lines += [f"Baseline: `{self.baseline_source}`", ""]
        lines.append("| " + " | ".join(self.HEADERS) + " |")
        lines.append("|" + "|".join("---:" if h in NUMBER_HEADERS else "---" for h in self.HEADERS) + "|")
        for row in self._rows():
            row[self.VERDICT] = ("✅ " if row[self.VERDICT] == "PASS" else "❌ ") + row[self.VERDICT]
            lines.append(
                "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in row) + " |"
            )
        if self.warnings:
            lines += ["", *[f"- ⚠️ {w}" for w in self.warnings]]
        lines += ["", NOISE_NOTE]
        return "\n".join(lines) + "\n"

    def to_junit_xml(self) -> str:
        """JUnit XML: one testcase per check, failures as <failure message=...>."""
        counts = {"tests": str(len(self.checks)), "failures": str(len(self.failures)), "errors": "0"}
        suites = ET.Element("testsuites", name="so8t gate", **counts)
        suite = ET.SubElement(suites, "testsuite", name="so8t-gate", skipped="0", **counts)
        for check in self.checks:
            case = ET.SubElement(suite, "testcase", classname=f"so8t.gate.{check.task}", name=check.name)
            if not check.passed:
                failure = ET.SubElement(case, "failure", message=check.reason or "failed", type=check.kind)
                failure.text = (
                    f"baseline={_fmt(check.baseline)} current={_fmt(check.current)} "
                    f"delta={_fmt(check.delta, signed=True)} se={_fmt(check.stderr)} "
                    f"noise={check.method or '-'} allowed={check.allowed or '-'}"
                )
            elif check.reason:
                ET.SubElement(case, "system-out").text = check.reason
        if self.warnings:
            ET.SubElement(suite, "system-err").text = "\n".join(self.warnings)
        ET.indent(suites)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


NOISE_NOTE = (
    "A change against the baseline fails only when it exceeds both the tolerance and z × se(Δ). "
    "se(Δ) is paired when both runs carry per-document values of the same documents (paired differences "
    "sd(d)/√n, or a paired bootstrap over documents for precisions and macro F1), else independent "
    "√(se_baseline² + se_current²)."
)
