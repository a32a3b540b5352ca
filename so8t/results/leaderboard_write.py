"""The leaderboard written out: leaderboard.md, leaderboard.csv and index.html into a folder, and as a W&B
table."""

from __future__ import annotations

import os
from pathlib import Path

from so8t.results.board import Leaderboard
from so8t.results.leaderboard_html import to_html
from so8t.results.leaderboard_render import cell, display_columns, float_or_none, to_csv, to_markdown


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
        + [float_or_none(f.value) if (f := cell(row, c, board)) is not None else None for c in columns]
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
