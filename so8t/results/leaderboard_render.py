"""The leaderboard written out: leaderboard.md, leaderboard.csv, a self-contained index.html, a W&B table.

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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from so8t.results.board import MISSING, Leaderboard, ModelRow, RunKey, metrics_of
from so8t.results.escaping import csv_cell, markdown_text
from so8t.results.ranking import RANKING_RULE, UnitScore, unit_score
from so8t.results.results_file import MetricValue, metric_direction

PALETTE = [
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
]
PAGE_ASSETS = "leaderboard_page"
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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def value_text(found: MetricValue | UnitScore | None, with_stderr: bool = True) -> str:
    if found is None:
        return MISSING
    value = _number(found.value)
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
    lines += [f"- {esc(key.task)} ({key.label}): {esc(_headline_text(board, key))}" for key in board.ranked]
    if board.notes:
        lines += ["", "## Notes", "", *[f"- {esc(n)}" for n in board.notes]]
    return "\n".join(lines) + "\n"


def _headline_text(board: Leaderboard, key: RunKey) -> str:
    members = board.members.get(key, [])
    if members:
        return "a group: the mean of " + ", ".join(f"{m.task} ({_headline_text(board, m)})" for m in members)
    h = board.headlines[key.task]
    return f"{h.key}, chance {h.chance:.3g}, best {h.best:.3g}" + (f" ({h.why})" if h.why else "")


def _csv_name(board: Leaderboard, key: RunKey, metric: str, filter_name: str) -> str:
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
        name = _csv_name(board, key, m, f)
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


def _chart(board: Leaderboard, key: RunKey, columns: list[DisplayColumn]) -> dict[str, Any]:
    """Geometry of one run's horizontal bar chart (a block per shown metric, a bar per ranked model, stderr
    whiskers), drawn by the page template."""
    rows = board.rows
    values = [_number(f.value) for c in columns for r in rows if (f := cell(r, c, board)) is not None]
    values = [v for v in values if v is not None]
    lo = min([0.0, *values])
    hi = max([1.0 if all(0 <= v <= 1 for v in values) else 0.0, *values]) or 1.0
    label_w, bar_w, value_w, bar_h, gap = 215, 290, 60, 11, 10
    height = 24 + len(columns) * (len(rows) * (bar_h + 2) + gap)

    def x(value: float) -> float:
        return label_w + (value - lo) / (hi - lo) * bar_w

    ticks = [
        {"x": x(tick), "anchor": anchor, "label": f"{tick:g}"}
        for tick, anchor in ((lo, "start"), ((lo + hi) / 2, "middle"), (hi, "end"))
    ]
    blocks, y = [], 24
    for column in columns:
        block_h = len(rows) * (bar_h + 2)
        bars = []
        for i, row in enumerate(rows):
            found = cell(row, column, board)
            value = _number(found.value) if found is not None else None
            top = y + i * (bar_h + 2)
            bar: dict[str, Any] = {
                "model": row.name,
                "value": value,
                "text_y": top + bar_h - 2,
                "missing_x": label_w + 4,
            }
            if value is not None and found is not None:
                x0, x1 = sorted((x(0.0 if lo <= 0 <= hi else lo), x(value)))
                se = found.stderr
                bar.update(
                    x=x0,
                    y=top,
                    width=max(x1 - x0, 0.5),
                    height=bar_h,
                    color=PALETTE[i % len(PALETTE)],
                    tip=f"{row.name}: {value_text(found)}",
                    whisker=(x(max(lo, value - se)), x(min(hi, value + se))) if se else None,
                    mid=top + bar_h / 2,
                    value_x=x(min(hi, value + (se or 0.0))) + 4,
                )
            bars.append(bar)
        label = f"{column.metric_label} {column.arrow}".strip()
        blocks.append({"label": label, "label_x": label_w - 8, "label_y": y + block_h / 2 + 4, "bars": bars})
        y += block_h + gap
    return {
        "group": f"{columns[0].task_label} ({key.label})",
        "task": key.task,
        "width": label_w + bar_w + value_w,
        "height": height,
        "axis_x": x(lo),
        "ticks": ticks,
        "blocks": blocks,
    }


def _html_cell(found: MetricValue | UnitScore | None) -> dict[str, Any]:
    value = _number(found.value) if found is not None else None
    if found is None:
        return {"kind": "missing"}
    if value is None:
        return {"kind": "text", "text": str(found.value)}
    return {"kind": "number", "value": value, "data_value": repr(value), "stderr": found.stderr}


def _html_row(board: Leaderboard, row: ModelRow, columns: list[DisplayColumn]) -> dict[str, Any]:
    return {
        "name": row.name,
        "full_name": row.full_name,
        "rank": "" if row.rank is None else row.rank,
        "sources": ", ".join(row.sources),
        "backend": row.backend,
        "base": row.base or MISSING,
        "base_full": row.base_full or "",
        "quantization": row.quantization,
        "parameters": row.parameters or "",
        "parameters_text": row.parameters_text,
        "date_text": row.date_text,
        "score_value": "" if row.score is None else f"{row.score:.6f}",
        "score_text": MISSING if row.score is None else f"{row.score:.3f}",
        "score_stderr": row.score_stderr,
        "coverage": row.coverage,
        "cells": [_html_cell(cell(row, c, board)) for c in columns],
    }


def to_html(board: Leaderboard) -> str:
    """A self-contained page: inline CSS, SVG charts and a small sorting script; no network requests.

    The page is leaderboard_page/page.html.j2 rendered by jinja2 with autoescaping on (model names, task names
    and notes come from results files), with page.css and page.js inlined.
    """
    from importlib.resources import files

    import jinja2

    assets = files("so8t.results") / PAGE_ASSETS
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("so8t.results", PAGE_ASSETS),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    columns = display_columns(board)
    charts = []
    for key in board.ranked:
        for unit in board.members.get(key, []) or [key]:
            shown = [c for c in columns if c.key == unit and c.role != "group"]
            if shown and board.rows:
                charts.append(_chart(board, unit, shown))
    return environment.get_template("page.html.j2").render(
        title=board.title,
        generated=board.generated,
        n_files=sum(len(r.sources) for r in board.all_rows),
        missing=MISSING,
        ranking_rule=RANKING_RULE,
        inferred=board.inferred,
        headlines=[
            {"task": k.task, "label": k.label, "text": _headline_text(board, k)} for k in board.ranked
        ],
        notes=board.notes,
        columns=[
            {
                "better": {True: "higher", False: "lower", None: "unknown"}[c.higher_is_better],
                "task": c.task_label,
                "run": c.key.label,
                "metric": c.metric_label,
                "arrow": c.arrow,
                "role": c.role,
                "ranked": c.ranked,
                "csv_name": _csv_name(board, c.key, c.metric, c.filter),
            }
            for c in columns
        ],
        rows=[_html_row(board, r, columns) for r in board.rows],
        apart=[_html_row(board, r, columns) for r in board.apart],
        legend=[{"color": PALETTE[i % len(PALETTE)], "name": r.name} for i, r in enumerate(board.rows)],
        charts=charts,
        css=(assets / "page.css").read_text(encoding="utf-8"),
        js=(assets / "page.js").read_text(encoding="utf-8"),
    )


def write_leaderboard(board: Leaderboard, out_dir: str | Path) -> dict[str, Path]:
    """Write leaderboard.md, leaderboard.csv and index.html into out_dir; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv", "html": out / "index.html"}
    paths["markdown"].write_text(to_markdown(board), encoding="utf-8")
    paths["csv"].write_text(to_csv(board), encoding="utf-8")
    paths["html"].write_text(to_html(board), encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------------------------------- W&B


def push_to_wandb(board: Leaderboard, *, project: str | None = None) -> str:
    """Log the board as a W&B Table; returns what happened (skipped cleanly when W&B is not set up)."""
    mode = os.environ.get("WANDB_MODE", "online").lower()
    if mode == "disabled":
        return "W&B skipped: WANDB_MODE=disabled"
    if mode not in ("offline", "dryrun"):
        import wandb

        if not wandb.login(prompt=False, verify=False):  # reads WANDB_API_KEY / netrc, never prompts
            return (
                "W&B skipped: not logged in (set WANDB_API_KEY or run `wandb login`, or WANDB_MODE=offline)"
            )
    import wandb

    columns = display_columns(board)
    header = ["rank", "model", "backend", "base", "score", "coverage", *(c.label for c in columns)]
    rows = [
        [row.rank, row.name, row.backend, row.base, row.score, row.coverage]
        + [_number(f.value) if (f := cell(row, c, board)) is not None else None for c in columns]
        for row in board.all_rows
    ]
    run = wandb.init(
        project=project or os.environ.get("WANDB_PROJECT", "so8t"),
        job_type="leaderboard",
        name=board.title,
        mode="offline" if mode == "dryrun" else mode,
        reinit="finish_previous",
    )
    run.log({"leaderboard": wandb.Table(columns=header, data=rows)})
    run.finish()
    return f"W&B: logged the leaderboard table ({mode})"
