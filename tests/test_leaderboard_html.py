"""The leaderboard page: self-contained, and rendered by headless Chromium (table, charts, sorting script),
with rank, model names and headline metrics on the first screen. Inputs are real runs of the tiny models."""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from results_fixtures import FIXTURES, copy_without_samples
from system_deps import system_program

from so8t.cli import main

INPUTS = [str(FIXTURES / n) for n in ("quickstart", "quickstart-lm", "quickstart-hf", "base-hf", "random")]
RANKED = [
    "quickstart",
    "quickstart [hf] dtype=float32",
    "quickstart decision_source=lm",
    "runs/fixture-base [hf] dtype=float32",
    "fixture-random",
]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class _Dom(HTMLParser):
    """Just enough of the DOM for the assertions: the table, its rows, header cells and chart figures."""

    def __init__(self) -> None:
        super().__init__()
        self.table: dict[str, str] = {}
        self.rows: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.charts: list[str] = []
        self.bars = 0
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "table" and attrs.get("id") == "leaderboard":
            self.table = attrs
        elif tag == "tr" and "data-model" in attrs:
            self.rows.append(attrs["data-model"])
        elif tag == "th":
            self.headers.append(attrs)
        elif tag == "figure" and "chart" in attrs.get("class", ""):
            self.charts.append(attrs["data-task"])
        elif tag == "rect" and "bar" in attrs.get("class", ""):
            self.bars += 1
        for key in ("src", "href"):
            if key in attrs:
                self.external.append(attrs[key])
        if tag == "link":
            self.external.append("<link>")


def _parse(html: str) -> _Dom:
    dom = _Dom()
    dom.feed(html)
    return dom


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("board")
    assert main(["leaderboard", *INPUTS, "--out", str(out), "--title", "so8t leaderboard"]) == 0
    return out / "index.html"


@pytest.fixture(scope="module")
def board_order() -> list[str]:
    from so8t.results.leaderboard import build_leaderboard

    order = [row.name for row in build_leaderboard(INPUTS).rows]
    assert sorted(order) == sorted(RANKED)
    return order


@pytest.fixture(scope="module")
def chromium() -> str:
    return system_program("chromium", "chromium-browser", package="chromium")


def _chromium(program: str, *args: str, user_data: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [program, *CHROMIUM_FLAGS, f"--user-data-dir={user_data}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


def test_the_page_is_self_contained(page, board_order):
    html = page.read_text()
    dom = _parse(html)
    assert dom.external == []  # no scripts, stylesheets, images or fonts fetched from anywhere
    assert not re.search(r"https?://", html)
    assert "<script>" in html and "<style>" in html and "<svg" in html
    assert dom.rows == board_order
    assert dom.charts == ["so8t_gsm8k_local", "so8t_safety"]  # one per ranked task, headline and beside
    assert "data-sortable" not in dom.table  # set by the script, so its presence proves the script ran
    assert "clip((value − chance) / (best − chance), 0, 1)" in html  # the ranking rule is on the page


def test_chromium_shows_rank_names_and_headline_metrics_on_the_first_screen(
    chromium, page, board_order, tmp_path
):
    size = "--window-size=1280,720"
    dom = _parse(
        _chromium(chromium, size, "--dump-dom", page.as_uri(), user_data=tmp_path / "profile").stdout
    )
    assert dom.table.get("data-sortable") == "ready"
    assert dom.table.get("data-sorted-by") == "rank:asc"
    assert dom.rows == board_order
    visible = dom.table["data-first-screen-columns"].split()
    headline_keys = [
        h["data-key"]
        for h in dom.headers
        if h.get("data-role") == "headline" and "ranked" in h.get("class", "")
    ]
    assert {"rank", "model", "score"} <= set(visible)
    assert headline_keys and set(headline_keys) <= set(visible)  # every headline metric, no scrolling
    assert json.loads(dom.table["data-first-screen-models"]) == board_order  # every model name
    assert dom.bars > 0

    shot = tmp_path / "leaderboard.png"
    _chromium(chromium, f"--screenshot={shot}", size, page.as_uri(), user_data=tmp_path / "profile")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank image


def test_the_sorting_script_sorts_on_request_with_unranked_models_last(chromium, page, tmp_path):
    by_name = _parse(
        _chromium(
            chromium, "--dump-dom", page.as_uri() + "#sort=model:asc", user_data=tmp_path / "profile"
        ).stdout
    )
    assert by_name.table.get("data-sorted-by") == "model:asc"
    assert by_name.rows == sorted(RANKED, key=str.lower)


def test_a_model_name_holding_markup_is_escaped(tmp_path):
    """Names come from results files: a `<script>` in one is shown as text, never run."""
    name = 'evil/<script>alert("pwned")</script>'

    def rename(data):
        data["config"]["model_args"] = f"pretrained={name}"
        data["model_name"] = name

    results = copy_without_samples("base-hf", tmp_path, edit=rename)
    assert main(["leaderboard", str(results), "--out", str(tmp_path / "board")]) == 0
    html = (tmp_path / "board" / "index.html").read_text()
    assert html.count("<script") == 1  # the page's own sorting script only
    assert "alert(" in html and "&lt;script&gt;alert(" in html
    assert _parse(html).rows == ["script> [hf]"]  # the short name (the path's last part) and its backend
