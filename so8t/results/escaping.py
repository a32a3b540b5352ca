"""Text from results files (model names, task names, notes) written into Markdown and CSV made inert: a
results file is input from anyone, and a board is opened in browsers and spreadsheets."""

from __future__ import annotations

from typing import Any

# a spreadsheet runs a text cell starting with one of these as a formula (OWASP's CSV injection list)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def markdown_text(text: str) -> str:
    """Text from results files made inert in Markdown: HTML (`<script>`) shown as text, table cells kept."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("\n", " ")
    )


def csv_cell(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) starts with `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
