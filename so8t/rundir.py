"""The run directory's claim: its resolved config, written once, compared on every later run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from so8t.errors import UserError


def claim_run_dir(run_dir: Path, resolved_yaml: str) -> None:
    """Record the resolved config; an existing run directory is resumed only with the same config."""
    resolved_path = run_dir / "config.resolved.yaml"
    if resolved_path.exists():
        previous = resolved_path.read_text()
        if previous != resolved_yaml:
            import difflib

            diff = "\n".join(
                line
                for line in difflib.unified_diff(
                    previous.splitlines(),
                    resolved_yaml.splitlines(),
                    "previous run",
                    "this run",
                    lineterm="",
                    n=0,
                )
                if line[:1] in "+-" and not line.startswith(("+++", "---"))
            )
            raise UserError(
                f"{run_dir} holds a run made with a different config, so it cannot be resumed:\n{diff}\n"
                f"Use another --output-dir, restore the previous config, or delete {run_dir} to start over."
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    # A temporary file of its own per call: under torchrun every rank claims the same directory at once.
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".config.resolved.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(resolved_yaml)
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the config is as readable as the rest of the run
    os.replace(tmp, resolved_path)
