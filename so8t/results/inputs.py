"""Where results files come from: a file, an lm-eval `--output_path` folder, or a glob.

lm-eval writes `--output_path DIR` as one subfolder per model holding `results_<id>.json` (one per run, the
id a timestamp) and `samples_<task>_<id>.jsonl` beside it; `--output_path NAME.json` writes `NAME_<id>.json`.
A folder given here stands for the newest run of each model in it: in every folder below it that holds
dated results files, the newest one (the one lm-eval's `get_latest_filename` picks); older runs are
reported as skipped. A file or a glob is taken as it is, so pass files to show or gate an older run.
Importable without torch or lm_eval.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from so8t.errors import UserError
from so8t.layout import newest_results_file, results_files_in


@dataclass
class ResultsInputs:
    """The results files chosen from the command line, and the older runs a folder held (not read)."""

    files: list[Path] = field(default_factory=list)
    skipped: dict[Path, list[Path]] = field(default_factory=dict)

    def notes(self) -> list[str]:
        return [
            f"{folder}: newest run {chosen.name} read; older {', '.join(p.name for p in older)} not read "
            "(pass a file to read another run)"
            for folder, older in self.skipped.items()
            for chosen in self.files
            if chosen.parent == folder
        ]


def newest_per_model(folder: Path) -> tuple[list[Path], dict[Path, list[Path]]]:
    """The newest dated results file of every folder below `folder` (itself included), and the older ones."""
    chosen: list[Path] = []
    skipped: dict[Path, list[Path]] = {}
    for sub in sorted({folder, *(p for p in folder.rglob("*") if p.is_dir())}):
        files = results_files_in(sub)
        newest = newest_results_file(files)
        if newest is None:
            continue
        chosen.append(newest)
        older = [p for p in files if p != newest]
        if older:
            skipped[sub] = older
    return chosen, skipped


def _folder_problem(folder: Path) -> str:
    undated = sorted(p.name for p in folder.rglob("*.json"))[:3]
    hint = (
        f" It holds {', '.join(undated)}: pass such a file itself (lm-eval names its results files "
        "results_<date>.json)."
        if undated
        else ""
    )
    return (
        f"{folder} is a folder with no results_<date>.json file in it or below it; pass lm-eval results "
        f"files, or the --output_path folder lm-eval wrote them to.{hint}"
    )


def expand_inputs(patterns: Sequence[str | Path]) -> ResultsInputs:
    """Results files from paths, globs (`**` recursive) and lm-eval output folders (newest run per model).

    A pattern that matches nothing is a UserError naming it; a file is never read twice.
    """
    selection = ResultsInputs()
    for pattern in map(str, patterns):
        path = Path(pattern)
        if path.is_dir():
            matches, skipped = newest_per_model(path)
            if not matches:
                raise UserError(_folder_problem(path))
            selection.skipped.update(skipped)
        elif path.is_file():
            matches = [path]
        else:
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not matches and not glob.has_magic(pattern):
                raise UserError(
                    f"Results file not found: {pattern}. Pass the results JSON that lm-eval or `so8t eval` "
                    f"wrote, or its folder (relative paths start in {Path.cwd()})."
                )
            if not matches:
                raise UserError(
                    f"Results pattern {pattern!r} matches no file; check the path (relative paths start "
                    f"in {Path.cwd()}) or quote the glob so the shell does not expand it."
                )
        resolved = {p.resolve() for p in selection.files}
        selection.files += [m for m in matches if m.resolve() not in resolved]
    return selection
