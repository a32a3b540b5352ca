"""The leaderboard page: self-contained, and rendered by headless Chromium (table, charts, sorting script)."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from system_deps import system_program

from so8t.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "results"
INPUTS = [
    str(FIXTURES / n)
    for n in (
        "so8t_qwen05b.json",
        "hf_qwen05b_base.json",
        "so8t_qwen7b_4bit.json",
        "vllm_qwen05b_consolidated.json",
    )
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


def test_the_page_is_self_contained(page):
    html = page.read_text()
    dom = _parse(html)
    assert dom.external == []  # no scripts, stylesheets, images or fonts fetched from anywhere
    assert not re.search(r"https?://", html)
    assert "<script>" in html and "<style>" in html and "<svg" in html
    assert dom.rows == [
        "runs/qwen7b/consolidated",
        "Qwen/Qwen2.5-0.5B",
        "runs/qwen05b",
        "runs/qwen05b/consolidated",
    ]
    assert dom.charts == ["so8t_gsm8k", "so8t_safety", "arc_easy"]
    assert "data-sortable" not in dom.table  # set by the script, so its presence proves the script ran


def test_chromium_renders_the_table_charts_and_runs_the_sorting_script(chromium, page, tmp_path):
    dom = _parse(_chromium(chromium, "--dump-dom", page.as_uri(), user_data=tmp_path / "profile").stdout)
    assert dom.table.get("data-sortable") == "ready"
    assert dom.table.get("data-sorted-by") == "rank:asc"
    assert dom.rows == [
        "runs/qwen7b/consolidated",
        "Qwen/Qwen2.5-0.5B",
        "runs/qwen05b",
        "runs/qwen05b/consolidated",
    ]
    assert dom.charts == ["so8t_gsm8k", "so8t_safety", "arc_easy"]
    assert dom.bars > 0
    assert [h.get("aria-sort") for h in dom.headers if h.get("aria-sort")] == ["ascending"]

    # the script sorts on request (#sort=KEY:DIR), here by model name, missing values last
    by_name = _parse(
        _chromium(
            chromium, "--dump-dom", page.as_uri() + "#sort=model:asc", user_data=tmp_path / "profile"
        ).stdout
    )
    assert by_name.table.get("data-sorted-by") == "model:asc"
    assert by_name.rows == sorted(dom.rows, key=str.lower)
    arc = next(h["data-key"] for h in dom.headers if h.get("data-column") == "arc_easy/acc,none")
    by_arc = _parse(
        _chromium(
            chromium, "--dump-dom", f"{page.as_uri()}#sort={arc}:desc", user_data=tmp_path / "profile"
        ).stdout
    )
    assert by_arc.rows == [
        "Qwen/Qwen2.5-0.5B",
        "runs/qwen05b",
        "runs/qwen05b/consolidated",
        "runs/qwen7b/consolidated",
    ]  # 0.6633 > 0.6574 > 0.6570 > missing

    shot = tmp_path / "leaderboard.png"
    _chromium(
        chromium,
        f"--screenshot={shot}",
        "--window-size=1400,1000",
        page.as_uri(),
        user_data=tmp_path / "profile",
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank image


def test_a_model_name_holding_markup_is_escaped(tmp_path):
    """Names come from results files: a `<script>` in one is shown as text, never run."""
    import json

    name = 'evil/<script>alert("pwned")</script>'
    data = json.loads((FIXTURES / "hf_qwen05b_base.json").read_text())
    data["config"]["model_args"] = f"pretrained={name}"
    results = tmp_path / "results_evil.json"
    results.write_text(json.dumps(data))
    assert main(["leaderboard", str(results), "--out", str(tmp_path / "board")]) == 0
    html = (tmp_path / "board" / "index.html").read_text()
    assert html.count("<script") == 1  # the page's own sorting script only
    assert "alert(" in html and "&lt;script&gt;alert(" in html
    assert _parse(html).rows == [name]
