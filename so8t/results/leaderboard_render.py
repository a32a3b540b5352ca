"""The leaderboard as a table: its columns and cells, leaderboard.md and leaderboard.csv (the HTML page is
so8t.results.leaderboard_html; writing them all, so8t.results.leaderboard_write).

The table leads with what a reader compares: rank, model, score, then each ranked task's headline metric
(with the metrics shown beside it, e.g. the safety task's dangerous-cell rates) under a header that names
the run (task version, n-shot, documents). A group's column shows its score (the mean of its subtasks'
normalised headlines), followed by its subtasks. Unranked columns follow, then the models listed apart
with their coverage. The CSV holds every metric of every column.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any, Literal

from so8t.results.board import MISSING, Leaderboard, ModelRow, RunKey, metrics_of
from so8t.results.escaping import csv_cell, markdown_text
from so8t.results.ranking import RANKING_RULE, UnitScore, unit_score
from so8t.results.results_file import MetricValue, metric_direction

Role = Literal["headline", "beside", "group"]


@dataclass(frozen=True)
class DisplayColumn:
    """One column of the table: a metric of a run key, or a group's score."""

    key: RunKey
    metric: str
    filter: str
    role: Role
    higher_is_better: bool | None
    ranked: bool
    group: str | None = None

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓", None: ""}[self.higher_is_better]

    @property
    def metric_label(self) -> str:
        if self.role == "group":
            return "group score"
        return self.metric + (f" [{self.filter}]" if self.filter != "none" else "")

    @property
    def task_label(self) -> str:
        return f"{self.group} › {self.key.task}" if self.group else self.key.task

    @property
    def label(self) -> str:
        return f"{self.task_label} {self.metric_label} {self.arrow}".strip() + f" ({self.key.label})"


def _direction(board: Leaderboard, key: RunKey, metric: str) -> bool | None:
    for row in board.all_rows:
        run = row.runs.get(key)
        if run is not None and metric_direction(run.data, key.task, metric) is not None:
            return metric_direction(run.data, key.task, metric)
    return None


def _task_columns(board: Leaderboard, key: RunKey, ranked: bool, group: str | None) -> list[DisplayColumn]:
    headline = board.headlines.get(key.task)
    if headline is None:
        return [
            DisplayColumn(key, m, f, "beside", _direction(board, key, m), ranked, group)
            for m, f in metrics_of(board, key)[:1]
        ]
    wanted = [(headline.metric, headline.filter, "headline"), *((m, f, "beside") for m, f in headline.beside)]
    present = set(metrics_of(board, key))
    return [
        DisplayColumn(key, m, f, role, _direction(board, key, m), ranked, group)  # type: ignore[arg-type]
        for m, f, role in wanted
        if (m, f) in present
    ]


def display_columns(board: Leaderboard) -> list[DisplayColumn]:
    """Ranked columns first (a group, then its subtasks), then every other column."""
    columns: list[DisplayColumn] = []
    shown: set[RunKey] = set()
    order = board.ranked + [k for k in board.keys if k not in board.ranked]
    for key in order:
        if key in shown:
            continue
        ranked = key in board.ranked
        members = board.members.get(key, [])
        if members:
            columns.append(DisplayColumn(key, "score", "none", "group", True, ranked))
            for member in members:
                columns += _task_columns(board, member, ranked, key.task)
                shown.add(member)
        else:
            columns += _task_columns(board, key, ranked, None)
        shown.add(key)
    return columns


def cell(row: ModelRow, column: DisplayColumn, board: Leaderboard) -> MetricValue | UnitScore | None:
    run = row.runs.get(column.key)
    if run is None:
        return None
    if column.role == "group":
        found = unit_score(board, row, column.key)
        return found if isinstance(found, UnitScore) else None
    return run.metric(column.metric, column.filter)


def float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def value_text(found: MetricValue | UnitScore | None, with_stderr: bool = True) -> str:
    if found is None:
        return MISSING
    value = float_or_none(found.value)
    if value is None:
        return str(found.value)
    text = f"{value:.4f}"
    if with_stderr and found.stderr is not None:
        text += f" ± {found.stderr:.4f}"
    return text


def _score_text(row: ModelRow) -> str:
    if row.score is None:
        return MISSING
    return f"{row.score:.3f}" + (f" ± {row.score_stderr:.3f}" if row.score_stderr else "")


# ------------------------------------------------------------------------------------------- markdown, csv


def to_markdown(board: Leaderboard) -> str:
    esc = markdown_text
    columns = display_columns(board)
    headers = ["rank", "model", "backend", "score", *(c.label for c in columns), "base"]
    lines = [
        f"# {esc(board.title)}",
        "",
        f"Generated {board.generated} from {sum(len(r.sources) for r in board.all_rows)} lm-eval results file(s). "
        "Cells: value ± standard error; — = not evaluated; ↑/↓ = higher/lower is better; "
        "columns name the run (task version · n-shot · documents).",
        "",
        "| " + " | ".join(esc(h) for h in headers) + " |",
        "|"
        + "|".join(
            "---:" if h in ("rank", "score") or 3 < i < len(headers) - 1 else "---"
            for i, h in enumerate(headers)
        )
        + "|",
    ]
    for row in board.rows:
        cells = [str(row.rank), row.name, row.backend, _score_text(row)]
        cells += [value_text(cell(row, c, board)) for c in columns] + [row.base or MISSING]
        lines.append("| " + " | ".join(esc(c) for c in cells) + " |")
    if board.apart:
        lines += ["", "## Not ranked", "", "| model | backend | coverage |", "|---|---|---|"]
        lines += [f"| {esc(r.name)} | {esc(r.backend)} | {esc(r.coverage)} |" for r in board.apart]
    lines += ["", "## Ranking", "", RANKING_RULE, ""]
    lines += [f"**Inferred:** {esc(line)}" + "\n" for line in board.inferred]
    lines += [f"- {esc(key.task)} ({key.label}): {esc(headline_text(board, key))}" for key in board.ranked]
    if board.notes:
        lines += ["", "## Notes", "", *[f"- {esc(n)}" for n in board.notes]]
    return "\n".join(lines) + "\n"


def headline_text(board: Leaderboard, key: RunKey) -> str:
    members = board.members.get(key, [])
    if members:
        return "a group: the mean of " + ", ".join(f"{m.task} ({headline_text(board, m)})" for m in members)
    h = board.headlines[key.task]
    return f"{h.key}, chance {h.chance:.3g}, best {h.best:.3g}" + (f" ({h.why})" if h.why else "")


def csv_column_name(board: Leaderboard, key: RunKey, metric: str, filter_name: str) -> str:
    name = f"{key.task}/{metric},{filter_name}"
    return name + f" [{key.label}]" if sum(k.task == key.task for k in board.keys) > 1 else name


def to_csv(board: Leaderboard) -> str:
    """One row per model; every metric of every column with `<column>_stderr`; missing = empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    fields = [(key, m, f) for key in board.keys for m, f in metrics_of(board, key)]
    header = ["rank", "model", "full_name", "backend", "base", "quantization", "parameters", "date", "score"]
    header += ["score_stderr", "coverage"]
    for key, m, f in fields:
        name = csv_column_name(board, key, m, f)
        header += [name, name + "_stderr"]
    writer.writerow([csv_cell(h) for h in header])
    for row in board.all_rows:
        record: list[Any] = [
            "" if row.rank is None else row.rank,
            row.name,
            row.full_name,
            row.backend,
            row.base_full or "",
            row.quantization,
            row.parameters or "",
            row.date_text if row.date is not None else "",
            "" if row.score is None else round(row.score, 6),
            "" if row.score_stderr is None else round(row.score_stderr, 6),
            row.coverage,
        ]
        for key, m, f in fields:
            run = row.runs.get(key)
            found = run.metric(m, f) if run is not None else None
            record += (
                ["", ""] if found is None else [found.value, "" if found.stderr is None else found.stderr]
            )
        writer.writerow([csv_cell(v) for v in record])
    return out.getvalue()


# ---------------------------------------------------------------------------------------------------- html
