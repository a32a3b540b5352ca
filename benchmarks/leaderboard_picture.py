"""The README's leaderboard picture: a leaderboard built from real results, screenshotted by headless Chromium.

    python benchmarks/leaderboard_picture.py                      # the tiny-model fixtures, to docs/leaderboard.png
    python benchmarks/leaderboard_picture.py 'runs/*/eval' --out docs/leaderboard.png --title "so8t models"

The default inputs are the real runs under tests/fixtures/results (tests/fixtures/results/regenerate.py makes
them): the quickstart model with head-B decisions (`so8t eval`), the same model deciding with its LM, its
consolidated folder through `lm_eval --model hf`, the pretrained base before any SO8T step, and an untrained
SO8T model at chance level. Needs `chromium` (tests/install_system_deps.sh installs it).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "results"
DEFAULT_RUNS = ["quickstart", "quickstart-lm", "quickstart-hf", "base-hf", "random"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 760) -> Path:
    """A headless-Chromium screenshot of the page's first screen."""
    program = shutil.which("chromium") or shutil.which("chromium-browser")
    if program is None:
        raise SystemExit("chromium is not installed (tests/install_system_deps.sh installs it)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                program,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={out}",
                f"--window-size={width},{height}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results", nargs="*", help="results files, folders or globs (default: the fixture runs)"
    )
    parser.add_argument("--out", default=str(REPO / "docs" / "leaderboard.png"))
    parser.add_argument("--title", default="so8t leaderboard: tiny models on the quickstart's held-out split")
    args = parser.parse_args(argv)
    from so8t.results.leaderboard import build_leaderboard
    from so8t.results.leaderboard_write import write_leaderboard

    inputs = args.results or [str(FIXTURES / name) for name in DEFAULT_RUNS]
    with tempfile.TemporaryDirectory() as folder:
        paths = write_leaderboard(build_leaderboard(inputs, title=args.title), folder)
        print(f"{screenshot(paths['html'], Path(args.out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
