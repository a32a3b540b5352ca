"""What a run directory records about itself beyond its config: the run record (what the consolidated model
and the results were made from, with the checkpoint's digest) and the one W&B run id of the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

from so8t.layout import RunDir
from so8t.layout.atomic import atomic_write_json, atomic_write_text
from so8t.layout.checkpoints import is_consolidation_input


def read_run_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What `so8t run` last made in this run directory ({} when nothing, or when the file is unreadable)."""
    path = RunDir(Path(run_dir)).run_record
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_run_record(run_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    return atomic_write_json(RunDir(Path(run_dir)).run_record, record, sort_keys=True)


def checkpoint_digest(checkpoint: str | os.PathLike) -> str:
    """Hash of the files of a checkpoint that consolidation reads (names and contents): equal digests give
    the same consolidated model, wherever the run directory lies."""
    digest = hashlib.sha256()
    for path in sorted(
        p for p in Path(checkpoint).iterdir() if p.is_file() and is_consolidation_input(p.name)
    ):
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- the W&B run id


def wandb_run_id(run_dir: str | os.PathLike) -> str:
    """The W&B run id of this run directory, made on first use: every resume, rank and the evaluation log
    into the one run. The first writer wins (a hard link cannot replace a file), the others read its id.

    A copy is a new W&B run: the file records the folder its id belongs to, and a run directory found
    elsewhere while that folder still holds the same id takes an id of its own, derived from both (so every
    rank derives the same). A moved run directory (nothing left at the old place) keeps its id.
    """
    run = Path(run_dir).resolve()
    path = RunDir(run).wandb_run_id
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{uuid.uuid4().hex[:16]}\n{run}\n")
        os.chmod(tmp, 0o644)
        with suppress(FileExistsError):
            os.link(tmp, path)
        os.unlink(tmp)
    run_id, home = _wandb_id_record(path)
    if home != str(run):
        if home and _wandb_id_record(RunDir(Path(home)).wandb_run_id)[0] == run_id:
            run_id = hashlib.sha256(f"{run_id}\0{run}".encode()).hexdigest()[:16]
        atomic_write_text(path, f"{run_id}\n{run}\n")
    return run_id


def _wandb_id_record(path: Path) -> tuple[str, str]:
    """(run id, the run directory it belongs to; "" when unrecorded or unreadable) of a wandb_run_id file."""
    try:
        run_id, _, home = path.read_text(encoding="utf-8").partition("\n")
    except OSError:
        return "", ""
    return run_id.strip(), home.strip()
