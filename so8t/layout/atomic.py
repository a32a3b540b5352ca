"""Atomic writes: a reader or a crash sees the old file or folder or the new one, never half of one.

Why its own module: every writer of the project (checkpoints, so8t.json, the run record, the caches, the
results files) goes through these, and each contract module above them imports them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

# Never matches ^checkpoint-N$, so discovery cannot pick a half-written save.
STAGING_PREFIX = ".staging-"
# An older folder moved aside by replace_directory; recover_replaced puts it back after a crash.
REPLACED_PREFIX = ".replaced-"


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary file of its own beside it, then rename it.

    Readers see the old file or the new one, never half of one, and writers racing on the same path (every
    torchrun rank claiming the run directory) each rename a whole file. The file is made 0644, as readable
    as the rest of the run (a temporary file starts owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, value: Any, **dumps_kwargs: Any) -> Path:
    """`value` as indented JSON (UTF-8, no ASCII escaping) written with atomic_write_text."""
    return atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False, **dumps_kwargs) + "\n")


def staging_path(target: str | os.PathLike) -> Path:
    """The fixed staging folder of `target` (`.staging-<name>` beside it), for writers that clean up after a
    crash by name: checkpoint saves and the pretrained-base cache."""
    target = Path(target)
    return target.with_name(f"{STAGING_PREFIX}{target.name}")


def remove_staging_leftovers(folder: str | os.PathLike) -> None:
    """Delete the staging folders a crashed writer left in `folder`."""
    for leftover in Path(folder).glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)


def replace_directory(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move the finished folder `source` onto `target`, keeping one whole folder on disk at every moment.

    A directory cannot be renamed over a non-empty one, so an older `target` is first moved aside to
    `.replaced-<name>`, the new one is moved in, and only then is the old one deleted. A crash between the two
    renames leaves the old folder aside; recover_replaced() puts it back at the next start.
    """
    target = Path(target)
    aside = target.with_name(f"{REPLACED_PREFIX}{target.name}")
    if target.exists():
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
    os.replace(source, target)
    shutil.rmtree(aside, ignore_errors=True)
    return target


def recover_replaced(folder: str | os.PathLike) -> None:
    """Finish or undo the replace_directory calls a crash interrupted in `folder`: a folder moved aside goes
    back when nothing took its place, and is deleted when the new one is in (ranks may race on it)."""
    for aside in Path(folder).glob(f"{REPLACED_PREFIX}*"):
        target = aside.with_name(aside.name[len(REPLACED_PREFIX) :])
        if target.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            with suppress(FileNotFoundError):
                os.replace(aside, target)


@contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh staging folder beside `target`; when the block ends it replaces `target` in one rename.

    If the block raises, the staging folder is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{target.name}-", dir=target.parent))
    try:
        yield tmp
        # mkdtemp makes it owner-only; the folder is as readable as the rest of the run
        os.chmod(tmp, 0o755)
        replace_directory(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
