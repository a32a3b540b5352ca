"""`so8t leaderboard`: lm-eval results -> leaderboard.md, leaderboard.csv and a self-contained index.html.

Any lm-eval results work (`--model so8t`, `hf`, `vllm`, ...), read from files, lm-eval `--output_path`
folders (newest run per model) or globs. One row per model (backend + model_args). One column per
comparable run of a task: task version, n-shot and the documents evaluated (their count, and their hashes
when samples were logged) identify it, so a 3-shot and a 0-shot run, or a 40- and a 200-document run, are
separate columns and never merged. A group is shown with its subtasks.

The rank (so8t.results.ranking) is computed over a declared set of tasks on each task's headline metric
(so8t.results.headlines), normalised against a fixed reference; models that did not run the whole set are
listed apart with their coverage.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime, timezone

from so8t.errors import UserError
from so8t.results.board import MISSING, Leaderboard, is_member, ordered_keys, read_rows
from so8t.results.headlines import headline_for
from so8t.results.ranking import rank


def build_leaderboard(
    inputs: Sequence[str],
    *,
    title: str = "so8t leaderboard",
    tasks: Sequence[str] | None = None,
    rank_tasks: Sequence[str] | None = None,
    z: float = 2.0,
) -> Leaderboard:
    """Read results (paths, globs or folders), one row per model, and rank the models on the declared set
    (`rank_tasks`; default: the tasks every model ran). `tasks` keeps only those tasks on the board."""
    notes: list[str] = []
    rows = read_rows(inputs, tasks, notes)
    if tasks:
        present = {run.task for row in rows for run in row.runs.values()}
        absent = [t for t in tasks if t not in present]
        if absent:
            raise UserError(f"--tasks names {', '.join(absent)}, which no results file holds.")
    keys = ordered_keys(rows)
    members = {
        key: [k for k in keys if is_member(k, key, rows)]
        for key in keys
        if any(r.runs[key].is_group for r in rows if key in r.runs)
    }
    headlines = {}
    for row in rows:
        for run in row.runs.values():
            if run.task not in headlines and not run.is_group:
                found = headline_for(run.task, run.data)
                if found is not None:
                    headlines[run.task] = found
    board = Leaderboard(
        title=title,
        rows=rows,
        apart=[],
        keys=keys,
        ranked=[],
        headlines=headlines,
        members=members,
        notes=notes,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        z=z,
    )
    rank(board, rank_tasks)
    return board


# ---------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS",
        help="lm-eval results files, lm-eval --output_path folders (newest run per model) or quoted globs",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder for leaderboard.md, .csv and index.html"
    )
    parser.add_argument("--title", default="so8t leaderboard", help="page and table title")
    parser.add_argument("--tasks", metavar="T1,T2", help="only these tasks on the board (comma-separated)")
    parser.add_argument(
        "--rank-tasks",
        metavar="T1,T2",
        help="the tasks (or groups) the rank is computed over, each TASK[:vVERSION][:N-shot][:N-docs] to fix its "
        "column (default: inferred, the tasks every model ran)",
    )
    parser.add_argument(
        "--suite", metavar="FILE", help="rank over the tasks of this suite (evals/suites/*.yaml)"
    )
    parser.add_argument(
        "--z",
        type=float,
        default=2.0,
        help="models whose scores differ by at most z standard errors share a rank",
    )
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also log the table to W&B (skipped unless logged in, or WANDB_MODE=offline)",
    )


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def run_cli(args: argparse.Namespace) -> int:
    from so8t.results.leaderboard_write import push_to_wandb, write_leaderboard

    rank_tasks = _names(args.rank_tasks)
    if args.suite:
        if rank_tasks:
            raise UserError("--suite and --rank-tasks both declare the ranked tasks; give one of them.")
        from so8t.results.rules import load_suite

        rank_tasks = list(load_suite(args.suite).tasks)
    board = build_leaderboard(
        args.results, title=args.title, tasks=_names(args.tasks), rank_tasks=rank_tasks, z=args.z
    )
    paths = write_leaderboard(board, args.out)
    if board.apart:
        print(
            f"ranked {len(board.rows)} of {len(board.all_rows)} models: the others did not run every ranked "
            "column and are listed apart, however they score"
        )
    for row in board.rows:
        score = MISSING if row.score is None else f"{row.score:.3f}"
        print(f"{row.rank if row.rank is not None else '-':>3}. {row.name} ({row.backend}) score {score}")
    for row in board.apart:
        print(f"  -  {row.name} ({row.backend}) not ranked: {row.coverage}")
    for line in board.inferred:
        print(f"inferred: {line}")
    for note in board.notes:
        print(f"note: {note}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    if args.wandb:
        print(push_to_wandb(board))
    return 0
