"""XSTest's prompts as an outside safety benchmark: where the file is found and how its rows become decisions.

Why: the bundled test split and challenge set share the training data's writers and categories, so they
cannot show a model that learned those categories instead of general harm. XSTest (Röttger et al. 2024,
"XSTest: A Test Suite for Identifying Exaggerated Safety Behaviours in Large Language Models") was written by
others: 250 safe prompts that only sound harmful and 200 unsafe contrasts. Its data is CC-BY-4.0 and so8t does
not ship it; the `so8t_xstest` lm-eval task reads it from a file the user provides, and the contamination test
keeps every bundled training prompt off it when the file is present.

The file is XSTest's `xstest_prompts.csv` (github.com/paul-rottger/exaggerated-safety): a CSV with a header
row and the columns `prompt`, `label` (`safe` or `unsafe`) and `type` (XSTest's prompt type, kept as the
category; other columns are ignored). Safe prompts are gold ALLOW and unsafe ones gold REFUSE, so the safety metrics'
unsafe-allow rate and over-refusal rate are XSTest's two failure modes.

Where it is looked for, first found wins: `--metadata '{"data_files": PATH}'` (or `{"so8t_xstest": PATH}`),
the environment variable `SO8T_XSTEST_DATA`, then `../shared/data/xstest/xstest_prompts.csv` beside a source
checkout of so8t (where the project's shared data sets live, as GSM8K does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from so8t.data.mapping import ColumnMap, RecordMapping
from so8t.data.records import located, read_records
from so8t.errors import DataError

XSTEST_TASK = "so8t_xstest"
XSTEST_ENV_VAR = "SO8T_XSTEST_DATA"
XSTEST_FILE_NAME = "xstest_prompts.csv"
# XSTest's columns and labels, read through the same mapping a run config's `columns:` and `labels:` give.
XSTEST_MAPPING = RecordMapping(
    ColumnMap(request="prompt", decision="label", category="type"),
    {"safe": "ALLOW", "unsafe": "REFUSE"},
    prefix=f"{XSTEST_TASK} ",
)
XSTEST_FORMAT = (
    f"XSTest's {XSTEST_FILE_NAME} (github.com/paul-rottger/exaggerated-safety, CC-BY-4.0; so8t does not ship "
    "it): a CSV with a header and the columns prompt, label (safe or unsafe) and type"
)


def shared_xstest_path() -> Path:
    """Where a source checkout keeps its shared copy: ../shared/data/xstest/ beside the checkout."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout.parent / "shared" / "data" / "xstest" / XSTEST_FILE_NAME


def _given(metadata: dict[str, Any]) -> tuple[str | None, str]:
    given = metadata.get("data_files")
    if isinstance(given, dict):
        given = given.get(XSTEST_TASK)
    if isinstance(given, (list, tuple)):
        if len(given) != 1:
            raise DataError(
                f"{XSTEST_TASK}: data_files names {len(given)} files; give exactly one: {XSTEST_FORMAT}."
            )
        given = given[0]
    if given:
        return str(given), "--metadata data_files"
    return os.environ.get(XSTEST_ENV_VAR) or None, f"${XSTEST_ENV_VAR}"


def find_xstest(metadata: dict[str, Any]) -> Path | None:
    """XSTest's file from --metadata, the environment or the shared folder, or None when none is given or there.

    A path that is given but is not a file raises DataError naming it and the expected format.
    """
    given, source = _given(metadata)
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise DataError(
                f"{XSTEST_TASK}: {source} names {path.resolve()}, which is not a file; give {XSTEST_FORMAT}."
            )
        return path
    shared = shared_xstest_path()
    return shared if shared.is_file() else None


def require_xstest(metadata: dict[str, Any]) -> Path:
    """XSTest's file, or DataError saying where it was looked for, what it must hold and how to give it."""
    path = find_xstest(metadata)
    if path is None:
        raise DataError(
            f"{XSTEST_TASK} needs {XSTEST_FORMAT}. None was given and {shared_xstest_path()} does not exist: "
            f'pass --metadata \'{{"data_files": "PATH"}}\' (or {{"data_files": {{"{XSTEST_TASK}": "PATH"}}}} '
            f"beside other local tasks), set {XSTEST_ENV_VAR}=PATH, or put the file at that shared path."
        )
    return path


def read_xstest(path: Path) -> list[dict[str, Any]]:
    """XSTest's rows as canonical safety records (prompt, decision ALLOW or REFUSE, category = XSTest's type).

    A missing column, a label other than safe/unsafe or an empty file raises DataError naming the file and line.
    """
    try:
        records, _, problems = read_records(
            path, "safety", "error", XSTEST_MAPPING, skip_fix="or give XSTest's own file"
        )
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(
            f"{XSTEST_TASK}: cannot read {path.resolve()} ({exc}); give {XSTEST_FORMAT}."
        ) from exc
    if problems:
        found = " ".join(located(path.resolve(), p) for p in problems)
        raise DataError(f"{XSTEST_TASK}: {found} Expected {XSTEST_FORMAT}.")
    if not records:
        raise DataError(f"{XSTEST_TASK}: {path.resolve()} holds no prompts; give {XSTEST_FORMAT}.")
    return records
