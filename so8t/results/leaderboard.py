"""`so8t leaderboard`: lm-eval results files -> leaderboard.md, leaderboard.csv and a self-contained index.html.

Any lm-eval results file works (`--model so8t`, `hf`, `vllm`, ...): models sit side by side, one row per
model (backend + model_args; several files of the same model are merged, the newest result of a task wins).
One column per task metric (`metric,filter`) with its standard error; a missing result is shown as "—".

Overall rank. For every metric column, each model's value is normalised across the models that have it,
oriented by the results' own `higher_is_better`: (v - worst) / (best - worst), so the best model gets 1 and
the worst 0 (everyone gets 1 when all values are equal). A task's score is the mean of its metric columns,
the overall score the mean over tasks, so a task with many metrics weighs as much as one with few. A missing
result counts as 0 (the worst): a model cannot climb by skipping a task. Metrics without a known direction
are shown but not scored. The scores are relative to the models on the page, not absolute.

The same task at different task versions is never compared: each version gets its own columns, flagged
with ⚠ in the table, and is normalised and scored as its own task.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from so8t.errors import UserError
from so8t.layout import CONSOLIDATED_DIR, SO8T_JSON
from so8t.results.gate import MetricValue, iter_metrics, load_results

MISSING = "—"
# model_args that change how fast an evaluation runs, not what it measures: they do not split rows
RUN_ONLY_ARGS = frozenset(
    {
        "batch_size",
        "max_batch_size",
        "device",
        "device_map",
        "parallelize",
        "gpu_memory_utilization",
        "tensor_parallel_size",
        "data_parallel_size",
    }
)
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


# ------------------------------------------------------------------------------------------ inputs


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Files from paths, globs (`**` recursive) and folders (every results*.json below them).

    A pattern that matches nothing is a UserError naming it.
    """
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            matches = sorted(path.rglob("results*.json"))
            if not matches:
                raise UserError(
                    f"{pattern} is a folder with no results*.json files in it; pass lm-eval results "
                    "files, or the --output_path folder lm-eval wrote them to."
                )
        elif path.is_file():
            matches = [path]
        else:
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not matches:
                kind = "pattern" if glob.has_magic(pattern) else "file"
                raise UserError(
                    f"Results {kind} {pattern!r} matches no file; check the path (relative paths start "
                    f"in {Path.cwd()}) or quote the glob so the shell does not expand it."
                )
        found += [m for m in matches if m not in found]
    return found


def recorded_model_args(model_args: Any) -> dict[str, Any]:
    """A results file's config.model_args as a dict: simple_evaluate records a "k=v,k=v" string or a dict."""
    if isinstance(model_args, dict):
        return dict(model_args)
    if not model_args:
        return {}
    from lm_eval.utils import simple_parse_args_string

    return simple_parse_args_string(str(model_args))


# ------------------------------------------------------------------------------------------- model rows


@dataclass
class ModelRow:
    """One model on the board: who it is, and its metric values keyed by column."""

    name: str
    backend: str
    pretrained: str
    args: dict[str, Any]
    base: str | None = None
    quantization: str = "none"
    parameters: int | None = None
    date: float | None = None
    sources: list[str] = field(default_factory=list)
    tasks: dict[str, tuple[str, float, dict]] = field(default_factory=dict)  # task -> (version, date, data)
    score: float | None = None
    rank: int | None = None

    @property
    def date_text(self) -> str:
        if self.date is None:
            return MISSING
        return datetime.fromtimestamp(self.date, timezone.utc).strftime("%Y-%m-%d %H:%M")

    @property
    def parameters_text(self) -> str:
        if not self.parameters:
            return MISSING
        for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if self.parameters >= size:
                return f"{self.parameters / size:.3g}{unit}"
        return str(self.parameters)


def _so8t_metadata(pretrained: str, results_dir: Path) -> dict:
    """so8t.json beside the model (a consolidated folder, or a run directory's consolidated/), if any."""
    if not pretrained:
        return {}
    for folder in (Path(pretrained), results_dir / pretrained):
        for candidate in (folder / SO8T_JSON, folder / CONSOLIDATED_DIR / SO8T_JSON):
            try:
                if candidate.is_file():
                    meta = json.loads(candidate.read_text(encoding="utf-8"))
                    return meta if isinstance(meta, dict) else {}
            except (OSError, ValueError):
                return {}
    return {}


def _quantization(args: dict[str, Any]) -> str:
    if args.get("quantization") not in (None, "", "none", False):
        return str(args["quantization"])
    for flag, label in (("load_in_4bit", "4bit"), ("load_in_8bit", "8bit")):
        if str(args.get(flag)).lower() == "true":
            return label
    return "none"


def _describe_model(data: dict, source: Path) -> tuple[tuple, dict[str, Any]]:
    """(row key, row fields) for one results file."""
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    backend = str(config.get("model") or data.get("model_source") or "unknown")
    args = recorded_model_args(config.get("model_args"))
    pretrained = str(args.get("pretrained") or args.get("model") or data.get("model_name") or source.stem)
    meta = _so8t_metadata(pretrained, source.parent)
    parameters = config.get("model_num_parameters")
    if not isinstance(parameters, int) or isinstance(parameters, bool) or parameters <= 0:
        parameters = next(
            (
                meta[k]
                for k in ("num_parameters", "parameters", "model_num_parameters")
                if isinstance(meta.get(k), int)
            ),
            None,
        )
    base = meta.get("base_model") or args.get("base") or config.get("base_model")
    identity = {k: v for k, v in args.items() if k not in RUN_ONLY_ARGS and k not in ("pretrained", "model")}
    key = (backend, pretrained, tuple(sorted((k, str(v)) for k, v in identity.items())))
    return key, {
        "backend": backend,
        "pretrained": pretrained,
        "args": identity,
        "base": str(base) if base else None,
        "quantization": _quantization(args),
        "parameters": parameters,
    }


def _date(data: dict) -> float | None:
    value = data.get("date")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _unique_names(rows: list[ModelRow]) -> None:
    """Name rows by their model; add the backend, then the differing args, only where names collide."""
    for row in rows:
        row.name = row.pretrained
    for extra in (
        lambda r: f" [{r.backend}]",
        lambda r: " " + ",".join(f"{k}={v}" for k, v in sorted(r.args.items())),
    ):
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.name] = counts.get(row.name, 0) + 1
        for row in rows:
            if counts[row.name] > 1:
                row.name += extra(row)


# ---------------------------------------------------------------------------------------------- board


@dataclass(frozen=True)
class Column:
    """One metric column; `version` is set (and `flagged`) only when the task appears at several versions."""

    task: str
    metric: str
    filter: str
    version: str | None
    higher_is_better: bool | None
    flagged: bool = False

    @property
    def group(self) -> str:
        """The scoring unit: the task, or task@version when versions differ."""
        return f"{self.task}@v{self.version}" if self.flagged else self.task

    @property
    def label(self) -> str:
        text = f"{self.task} {self.metric}" + (f" [{self.filter}]" if self.filter != "none" else "")
        return text + (f" ⚠ v{self.version}" if self.flagged else "")

    @property
    def csv_name(self) -> str:
        return f"{self.task}/{self.metric},{self.filter}" + (f"@v{self.version}" if self.flagged else "")

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓", None: ""}[self.higher_is_better]


@dataclass
class Leaderboard:
    title: str
    rows: list[ModelRow]
    columns: list[Column]
    cells: dict[tuple[int, Column], MetricValue]
    normalised: dict[tuple[int, Column], float]
    notes: list[str]
    generated: str

    def cell(self, row_index: int, column: Column) -> MetricValue | None:
        return self.cells.get((row_index, column))

    def value_text(self, row_index: int, column: Column, with_stderr: bool = True) -> str:
        found = self.cell(row_index, column)
        if found is None:
            return MISSING
        value = _number(found.value)
        if value is None:
            return str(found.value)
        text = f"{value:.4f}"
        if with_stderr and found.stderr is not None:
            text += f" ± {found.stderr:.4f}"
        return text

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(c.group for c in self.columns))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def build_leaderboard(
    inputs: Sequence[str], *, title: str = "so8t leaderboard", tasks: Sequence[str] | None = None
) -> Leaderboard:
    """Read results files (paths, globs or folders), group them by model and rank the models."""
    files = expand_inputs(inputs)
    rows: dict[tuple, ModelRow] = {}
    notes: list[str] = []
    for path in files:
        data = load_results(path)  # UserError naming the file when it is not lm-eval results
        key, fields_ = _describe_model(data, path)
        row = rows.setdefault(key, ModelRow(name="", **fields_))
        row.sources.append(str(path))
        date = _date(data)
        for task in data["results"]:
            if tasks and task not in tasks:
                continue
            version = str(data.get("versions", {}).get(task, "?"))
            previous = row.tasks.get(task)
            if previous is not None:
                newer = (date or 0) >= previous[1]
                notes.append(
                    f"{row.pretrained} [{row.backend}]: {task} appears in several files; "
                    f"the newest ({path if newer else 'the earlier file'}) is shown."
                )
                if not newer:
                    continue
            row.tasks[task] = (version, date or 0, data)
            if date is not None:
                row.date = max(row.date or date, date)
    board_rows = list(rows.values())
    if tasks:
        absent = [t for t in tasks if not any(t in r.tasks for r in board_rows)]
        if absent:
            raise UserError(f"--tasks names {', '.join(absent)}, which no results file holds.")
    _unique_names(board_rows)

    versions: dict[str, set[str]] = {}
    for row in board_rows:
        for task, (version, _, _) in row.tasks.items():
            versions.setdefault(task, set()).add(version)
    for task, seen in versions.items():
        if len(seen) > 1:
            notes.append(
                f"⚠ {task} was evaluated at different task versions ({', '.join(sorted(seen))}); each "
                "version has its own columns and is not compared with the others."
            )

    # column identity is (task, metric, filter, version); the direction is the first one a file states
    directions: dict[tuple, bool | None] = {}
    raw_cells: dict[tuple[int, tuple], MetricValue] = {}
    for index, row in enumerate(board_rows):
        for task, (version, _, data) in row.tasks.items():
            for metric in (m for m in iter_metrics(data) if m.task == task):
                ident = (task, metric.metric, metric.filter, version if len(versions[task]) > 1 else None)
                higher = data.get("higher_is_better", {}).get(task, {}).get(metric.metric)
                if directions.get(ident) is None:
                    directions[ident] = higher if isinstance(higher, bool) else None
                raw_cells[(index, ident)] = metric
    task_order = list(versions)
    idents = sorted(
        directions, key=lambda k: (task_order.index(k[0]), k[3] or "")
    )  # stable: metric order kept
    columns = [Column(*ident, directions[ident], ident[3] is not None) for ident in idents]
    by_ident = dict(zip(idents, columns, strict=True))
    cells = {(i, by_ident[ident]): v for (i, ident), v in raw_cells.items()}

    normalised = _normalise(board_rows, columns, cells)
    _score_and_rank(board_rows, columns, normalised)
    unscored = sorted({c.label for c in columns if c.higher_is_better is None})
    if unscored:
        notes.append("Not scored (direction unknown): " + ", ".join(unscored) + ".")
    order = sorted(range(len(board_rows)), key=lambda i: (board_rows[i].rank or 0, board_rows[i].name))
    remap = {old: new for new, old in enumerate(order)}
    return Leaderboard(
        title=title,
        rows=[board_rows[i] for i in order],
        columns=columns,
        cells={(remap[i], c): v for (i, c), v in cells.items()},
        normalised={(remap[i], c): v for (i, c), v in normalised.items()},
        notes=notes,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _normalise(rows: list[ModelRow], columns: list[Column], cells: dict) -> dict[tuple[int, Column], float]:
    """Per column: 1 for the best model, 0 for the worst, oriented by higher_is_better."""
    normalised = {}
    for column in columns:
        if column.higher_is_better is None:
            continue
        values = {i: _number(cells[(i, column)].value) for i in range(len(rows)) if (i, column) in cells}
        values = {i: v for i, v in values.items() if v is not None}
        if not values:
            continue
        lo, hi = min(values.values()), max(values.values())
        for i, v in values.items():
            if hi == lo:
                normalised[(i, column)] = 1.0
            else:
                normalised[(i, column)] = (
                    (v - lo) / (hi - lo) if column.higher_is_better else (hi - v) / (hi - lo)
                )
    return normalised


def _score_and_rank(rows: list[ModelRow], columns: list[Column], normalised: dict) -> None:
    """Score = mean over tasks of the mean normalised metric (missing = 0); competition ranking (1, 2, 2, 4)."""
    groups: dict[str, list[Column]] = {}
    for column in columns:
        if column.higher_is_better is not None:
            groups.setdefault(column.group, []).append(column)
    for i, row in enumerate(rows):
        if not groups:
            row.score = None
            continue
        per_task = [sum(normalised.get((i, c), 0.0) for c in cols) / len(cols) for cols in groups.values()]
        row.score = sum(per_task) / len(per_task)
    ordered = sorted(rows, key=lambda r: -(r.score or 0.0))
    for position, row in enumerate(ordered, start=1):
        same = [
            r
            for r in ordered[: position - 1]
            if math.isclose(r.score or 0.0, row.score or 0.0, abs_tol=1e-12)
        ]
        row.rank = same[0].rank if same else position


# ------------------------------------------------------------------------------------------ rendering

MODEL_HEADERS = ("rank", "model", "backend", "base", "quantization", "parameters", "date", "score")


def _model_cells(row: ModelRow) -> list[str]:
    return [
        str(row.rank),
        row.name,
        row.backend,
        row.base or MISSING,
        row.quantization,
        row.parameters_text,
        row.date_text,
        MISSING if row.score is None else f"{row.score:.3f}",
    ]


def to_markdown(board: Leaderboard) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    headers = [*MODEL_HEADERS, *(f"{c.label} {c.arrow}".strip() for c in board.columns)]
    lines = [
        f"# {board.title}",
        "",
        f"Generated {board.generated} from {sum(len(r.sources) for r in board.rows)} "
        "lm-eval results file(s). Cells: value ± standard error; — = not evaluated; ↑/↓ = higher/lower is better.",
        "",
        "| " + " | ".join(esc(h) for h in headers) + " |",
        "|"
        + "|".join(
            "---:" if h in ("rank", "score") or i >= len(MODEL_HEADERS) else "---"
            for i, h in enumerate(headers)
        )
        + "|",
    ]
    for i, row in enumerate(board.rows):
        cells = _model_cells(row) + [board.value_text(i, c) for c in board.columns]
        lines.append("| " + " | ".join(esc(c) for c in cells) + " |")
    lines += ["", "**Score**: " + SCORE_DOC]
    if board.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in board.notes]]
    return "\n".join(lines) + "\n"


SCORE_DOC = (
    "each metric is normalised across the models that have it (best = 1, worst = 0, oriented by the "
    "results' higher_is_better); a task's score is the mean over its metrics, the overall score the mean "
    "over tasks; a missing result counts as 0. Scores are relative to the models shown. Different task "
    "versions are scored as separate tasks and never compared."
)


def to_csv(board: Leaderboard) -> str:
    """One row per model; for each column its value and `<column>_stderr`; missing = empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = list(MODEL_HEADERS)
    for column in board.columns:
        header += [column.csv_name, column.csv_name + "_stderr"]
    writer.writerow(header)
    for i, row in enumerate(board.rows):
        record: list[Any] = [
            row.rank,
            row.name,
            row.backend,
            row.base or "",
            row.quantization,
            row.parameters or "",
            row.date_text if row.date is not None else "",
            "" if row.score is None else round(row.score, 6),
        ]
        for column in board.columns:
            found = board.cell(i, column)
            record += (
                ["", ""] if found is None else [found.value, "" if found.stderr is None else found.stderr]
            )
        writer.writerow(record)
    return out.getvalue()


PAGE_ASSETS = "leaderboard_page"


def _chart(board: Leaderboard, group: str) -> dict[str, Any]:
    """Geometry of one task's horizontal grouped bar chart (a block per metric, a bar per model, stderr
    whiskers), drawn by the page template."""
    columns = [c for c in board.columns if c.group == group]
    n_models = len(board.rows)
    values = [
        _number(board.cells[(i, c)].value) for c in columns for i in range(n_models) if (i, c) in board.cells
    ]
    values = [v for v in values if v is not None]
    lo = min([0.0, *values])
    hi = max([1.0 if all(0 <= v <= 1 for v in values) else 0.0, *values]) or 1.0
    label_w, bar_w, value_w, bar_h, gap = 215, 290, 60, 11, 10
    height = 24 + len(columns) * (n_models * (bar_h + 2) + gap)

    def x(value: float) -> float:
        return label_w + (value - lo) / (hi - lo) * bar_w

    ticks = [
        {"x": x(tick), "anchor": anchor, "label": f"{tick:g}"}
        for tick, anchor in ((lo, "start"), ((lo + hi) / 2, "middle"), (hi, "end"))
    ]
    blocks = []
    y = 24
    for column in columns:
        block_h = n_models * (bar_h + 2)
        bars = []
        for i, row in enumerate(board.rows):
            found = board.cells.get((i, column))
            value = _number(found.value) if found is not None else None
            top = y + i * (bar_h + 2)
            bar: dict[str, Any] = {
                "model": row.name,
                "value": value,
                "text_y": top + bar_h - 2,
                "missing_x": label_w + 4,
            }
            if value is not None:
                x0, x1 = sorted((x(0.0 if lo <= 0 <= hi else lo), x(value)))
                whisker = None
                if found.stderr:
                    whisker = (x(max(lo, value - found.stderr)), x(min(hi, value + found.stderr)))
                bar.update(
                    x=x0,
                    y=top,
                    width=max(x1 - x0, 0.5),
                    height=bar_h,
                    color=PALETTE[i % len(PALETTE)],
                    tip=f"{row.name}: {board.value_text(i, column)}",
                    whisker=whisker,
                    mid=top + bar_h / 2,
                    value_x=x(min(hi, value + (found.stderr or 0.0))) + 4,
                )
            bars.append(bar)
        label = (
            column.metric + (f" [{column.filter}]" if column.filter != "none" else "") + f" {column.arrow}"
        )
        blocks.append({"label": label, "label_x": label_w - 8, "label_y": y + block_h / 2 + 4, "bars": bars})
        y += block_h + gap
    return {
        "group": group,
        "width": label_w + bar_w + value_w,
        "height": height,
        "axis_x": x(lo),
        "ticks": ticks,
        "blocks": blocks,
    }


def _html_cell(board: Leaderboard, row_index: int, column: Column) -> dict[str, Any]:
    found = board.cell(row_index, column)
    flagged = " flagged" if column.flagged else ""
    value = _number(found.value) if found is not None else None
    if found is None:
        return {"kind": "missing", "flagged": flagged}
    if value is None:
        return {"kind": "text", "flagged": flagged, "text": str(found.value)}
    return {
        "kind": "number",
        "flagged": flagged,
        "value": value,
        "data_value": repr(value),
        "stderr": found.stderr,
    }


def _html_row(board: Leaderboard, row_index: int) -> dict[str, Any]:
    row = board.rows[row_index]
    return {
        "name": row.name,
        "rank": row.rank,
        "sources": ", ".join(row.sources),
        "backend": row.backend,
        "base": row.base or MISSING,
        "quantization": row.quantization,
        "parameters": row.parameters or "",
        "parameters_text": row.parameters_text,
        "date_text": row.date_text,
        "score_value": "" if row.score is None else f"{row.score:.6f}",
        "score_text": MISSING if row.score is None else f"{row.score:.3f}",
        "cells": [_html_cell(board, row_index, column) for column in board.columns],
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
    types = ["num", "text", "text", "text", "text", "num", "text", "num"]
    return environment.get_template("page.html.j2").render(
        title=board.title,
        generated=board.generated,
        n_files=sum(len(r.sources) for r in board.rows),
        missing=MISSING,
        score_doc=SCORE_DOC,
        notes=board.notes,
        model_headers=[{"key": k, "type": t} for k, t in zip(MODEL_HEADERS, types, strict=True)],
        columns=[
            {
                "better": {True: "higher", False: "lower", None: "unknown"}[c.higher_is_better],
                "csv_name": c.csv_name,
                "flagged": c.flagged,
                "task": c.task,
                "version": c.version,
                "metric": c.metric,
                "filter": c.filter,
                "arrow": c.arrow,
            }
            for c in board.columns
        ],
        rows=[_html_row(board, i) for i in range(len(board.rows))],
        legend=[{"color": PALETTE[i % len(PALETTE)], "name": r.name} for i, r in enumerate(board.rows)],
        charts=[_chart(board, group) for group in board.groups],
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


# ---------------------------------------------------------------------------------------------- W&B


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

    header = list(MODEL_HEADERS) + [c.csv_name for c in board.columns]
    rows = []
    for i, row in enumerate(board.rows):
        values = [
            _number(board.cells[(i, c)].value) if (i, c) in board.cells else None for c in board.columns
        ]
        rows.append(
            [
                row.rank,
                row.name,
                row.backend,
                row.base,
                row.quantization,
                row.parameters,
                row.date_text,
                row.score,
                *values,
            ]
        )
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


# ---------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS",
        help="lm-eval results files, globs (quote them; ** is recursive) or output folders",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for leaderboard.md, leaderboard.csv and index.html",
    )
    parser.add_argument("--title", default="so8t leaderboard", help="page and table title")
    parser.add_argument("--tasks", metavar="T1,T2", help="only these tasks (comma-separated)")
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also log the table to W&B (skipped unless logged in, or WANDB_MODE=offline)",
    )


def run_cli(args: argparse.Namespace) -> int:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    board = build_leaderboard(args.results, title=args.title, tasks=tasks)
    paths = write_leaderboard(board, args.out)
    for row in board.rows:
        score = MISSING if row.score is None else f"{row.score:.3f}"
        print(f"{row.rank:>3}. {row.name} [{row.backend}] score {score}")
    for note in board.notes:
        print(f"note: {note}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    if args.wandb:
        print(push_to_wandb(board))
    return 0
