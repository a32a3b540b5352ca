"""The leaderboard's self-contained, sortable index.html: the table's cells and one chart per ranked task,
rendered from the page template in leaderboard_page/ (no network needed to view it)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from so8t.results.board import MISSING, Leaderboard, ModelRow, RunKey
from so8t.results.leaderboard_render import (
    DisplayColumn,
    cell,
    csv_column_name,
    display_columns,
    float_or_none,
    headline_text,
    value_text,
)
from so8t.results.ranking import RANKING_RULE, UnitScore
from so8t.results.results_file import MetricValue

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


def _chart(board: Leaderboard, key: RunKey, columns: list[DisplayColumn]) -> dict[str, Any]:
    """Geometry of one run's horizontal bar chart (a block per shown metric, a bar per ranked model, stderr
    whiskers), drawn by the page template."""
    rows = board.rows
    values = [float_or_none(f.value) for c in columns for r in rows if (f := cell(r, c, board)) is not None]
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
            value = float_or_none(found.value) if found is not None else None
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
    value = float_or_none(found.value) if found is not None else None
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
        headlines=[{"task": k.task, "label": k.label, "text": headline_text(board, k)} for k in board.ranked],
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
                "csv_name": csv_column_name(board, c.key, c.metric, c.filter),
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
