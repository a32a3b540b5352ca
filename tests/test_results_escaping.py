"""Text from results files is input from anyone: a board's Markdown shows HTML as text, and its CSV never
hands a spreadsheet a formula."""

from __future__ import annotations

import csv
import io

from results_fixtures import copy_without_samples

from so8t.results.escaping import csv_cell, markdown_text
from so8t.results.leaderboard import build_leaderboard
from so8t.results.leaderboard_render import to_csv, to_markdown

HOSTILE = "<img src=x onerror=alert(1)>"
FORMULA = "=HYPERLINK(x)"


def _named(name: str):
    def edit(data: dict) -> None:
        data["config"]["model_args"] = {"pretrained": name}
        data["model_name"] = name

    return edit


def test_markdown_shows_html_from_results_files_as_text(tmp_path):
    board = build_leaderboard(
        [str(copy_without_samples("quickstart", tmp_path / "a", edit=_named(HOSTILE)))],
        title="<script>x</script>",
    )
    md = to_markdown(board)
    assert "<img" not in md and "<script>" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "# &lt;script&gt;x&lt;/script&gt;" in md
    assert markdown_text("a | b") == "a \\| b"


def test_csv_text_cells_never_start_a_formula(tmp_path):
    board = build_leaderboard([str(copy_without_samples("quickstart", tmp_path / "a", edit=_named(FORMULA)))])
    (row,) = list(csv.DictReader(io.StringIO(to_csv(board))))
    assert row["model"] == "'" + FORMULA and row["full_name"] == "'" + FORMULA
    assert all(not v.startswith(("=", "+", "@")) for v in row.values())
    assert [csv_cell(v) for v in ("-1+2", "@x", "\tx", "fine", -0.5)] == [
        "'-1+2",
        "'@x",
        "'\tx",
        "fine",
        -0.5,
    ]
