"""The cache's storage: one consolidated folder per checkpoint content, base and so8t version, and one plain
HF folder per GGUF base file content (its dequantised weights, config and tokenizer).

A training checkpoint handed to the lm-eval backend or `so8t predict` is consolidated once into
`$SO8T_CACHE_DIR/consolidated/<key>` (default `~/.cache/so8t`). The key hashes only what changes the
consolidated model: the checkpoint files consolidation reads (layout.CONSOLIDATION_INPUTS, so a notes.txt
beside the adapter reuses the entry), the base (its reference and the names, sizes and mtimes of its local
files) and the so8t version (a new so8t re-consolidates). An entry is built under a file lock into
`<key>.tmp-<pid>` and renamed into place, so a reader never sees half of one; the temporary folders of
processes that died meanwhile are removed by the next build and by `so8t cache clear`. A GGUF base lives in
`$SO8T_CACHE_DIR/gguf-bases/<key>` (the key: the file's sha256 and the dequantisation recipe), complete once
it holds its GGUF_BASE_RECORD. What goes into an entry is the business of the layer that builds it; this
module only stores, lists and clears.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from so8t.errors import UserError
from so8t.layout import CONSOLIDATED_DIR
from so8t.layout.atomic import replace_directory
from so8t.layout.checkpoints import is_consolidation_input
from so8t.layout.so8t_json import CONSOLIDATED_FORMAT, read_consolidated_info, so8t_format, so8t_version

CACHE_ENV = "SO8T_CACHE_DIR"
# Bumped when the key's recipe or what a consolidation builds changes, so old entries are never mistaken for
# new ones (v3: k-bit checkpoints fold onto the weights they trained with).
_KEY_RECIPE = b"so8t-consolidation-key-v3\0"
TEMPORARY_MARKER = ".tmp-"
# `<key>.tmp-<pid>`, and the staging folders a consolidation makes beside it (`...<key>.tmp-<pid>-xxxx`).
_TEMPORARY = re.compile(rf"{re.escape(TEMPORARY_MARKER)}(\d+)(?:-|$)")
_LOCK_SUFFIX = ".lock"
# The kinds of entry, each a folder under the cache root.
CONSOLIDATED_KIND = CONSOLIDATED_DIR
GGUF_BASE_KIND = "gguf-bases"
ENTRY_KINDS = (CONSOLIDATED_KIND, GGUF_BASE_KIND)
# Written last into a dequantised GGUF base: the source file, its sha256 and quantisation type.
GGUF_BASE_RECORD = "so8t_gguf_base.json"


def cache_root() -> Path:
    """Where so8t caches what it builds (consolidated checkpoints, the embedded base): $SO8T_CACHE_DIR or
    ~/.cache/so8t."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "so8t").expanduser()


def consolidated_cache_dir(root: str | os.PathLike | None = None, kind: str = CONSOLIDATED_KIND) -> Path:
    """The folder of the cache's entries of `kind` under a cache root (default cache_root())."""
    return Path(root if root is not None else cache_root()) / kind


# ----------------------------------------------------------------------------- the key


def _hash_file(digest: Any, path: Path) -> None:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def consolidation_key(checkpoint: str | os.PathLike, base: str, base_dir: str | os.PathLike | None) -> str:
    """Hash of what the consolidated model depends on: the checkpoint's consolidation inputs (names and
    contents), the base reference `base`, the files of its local folder `base_dir` (names, sizes, mtimes;
    None for a hub base) and the so8t version."""
    digest = hashlib.sha256(_KEY_RECIPE)
    digest.update(b"so8t\0" + so8t_version().encode() + b"\0")
    inputs = sorted(p for p in Path(checkpoint).iterdir() if p.is_file() and is_consolidation_input(p.name))
    for path in inputs:
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        _hash_file(digest, path)
    digest.update(b"base\0" + base.encode() + b"\0")
    if base_dir is not None and Path(base_dir).is_dir():
        base_dir = Path(base_dir)
        for path in sorted(p for p in base_dir.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(base_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:32]


# ----------------------------------------------------------------------------- get or build


def _is_entry(folder: Path, kind: str = CONSOLIDATED_KIND) -> bool:
    if kind == GGUF_BASE_KIND:
        return (folder / GGUF_BASE_RECORD).is_file()
    try:
        return so8t_format(folder) == CONSOLIDATED_FORMAT
    except UserError:  # a damaged so8t.json: rebuilt like a missing entry
        return False


def _mark_used(folder: Path) -> Path:
    """Set the entry's mtime to now: `so8t cache list` shows it and `clear --older-than` reads it."""
    os.utime(folder)
    return folder


def get_or_build(
    key: str,
    build: Callable[[Path], Any],
    root: str | os.PathLike | None = None,
    kind: str = CONSOLIDATED_KIND,
) -> Path:
    """The entry `key` of `kind`, built first when it is missing.

    `build(folder)` must write the whole entry into `folder`, a path that does not exist yet. One process
    builds a key at a time (a file lock); the others wait and then reuse its entry. A build that raises
    leaves no entry and no temporary folder behind.
    """
    from filelock import FileLock

    entries = consolidated_cache_dir(root, kind)
    entry = entries / key
    if _is_entry(entry, kind):
        return _mark_used(entry)
    entries.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + _LOCK_SUFFIX):
        # another process may have finished it while this one waited
        if _is_entry(entry, kind):
            return _mark_used(entry)
        remove_stale_temporaries(root)
        tmp = entries / f"{key}{TEMPORARY_MARKER}{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            build(tmp)
            replace_directory(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


# ----------------------------------------------------------------------------- stale temporaries


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine); one of another user counts as running."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _size_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def stale_temporaries(root: str | os.PathLike | None = None) -> list[Path]:
    """Temporary folders in the cache whose writing process no longer runs (a crash, a kill)."""
    stale = []
    for kind in ENTRY_KINDS:
        entries = consolidated_cache_dir(root, kind)
        if not entries.is_dir():
            continue
        for path in sorted(entries.iterdir()):
            match = _TEMPORARY.search(path.name)
            if match and not process_alive(int(match.group(1))):
                stale.append(path)
    return stale


def remove_stale_temporaries(root: str | os.PathLike | None = None) -> list[Path]:
    """Delete stale_temporaries(root); returns what was removed."""
    stale = stale_temporaries(root)
    for path in stale:
        _remove(path)
    return stale


# ----------------------------------------------------------------------------- list and clear


@dataclass(frozen=True)
class CacheEntry:
    """One consolidated model or dequantised GGUF base in the cache."""

    key: str
    path: Path
    size_bytes: int
    last_used: float  # seconds since the epoch: when it was built or last reused
    source_checkpoint: str | None  # the checkpoint consolidated, or the GGUF file dequantised
    base_model: str | None
    kind: str = CONSOLIDATED_KIND


def _sources(path: Path, kind: str) -> tuple[str | None, str | None]:
    """(what the entry was built from, its base) as its own record says."""
    if kind == GGUF_BASE_KIND:
        try:
            record = json.loads((path / GGUF_BASE_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None, None
        return (record.get("file"), None) if isinstance(record, dict) else (None, None)
    info = read_consolidated_info(path)
    return info.source_checkpoint, info.base_model


def list_entries(root: str | os.PathLike | None = None) -> list[CacheEntry]:
    """The cache's consolidated models and dequantised GGUF bases, most recently used first."""
    found = []
    for kind in ENTRY_KINDS:
        entries = consolidated_cache_dir(root, kind)
        if not entries.is_dir():
            continue
        for path in entries.iterdir():
            if not path.is_dir() or _TEMPORARY.search(path.name) or not _is_entry(path, kind):
                continue
            source, base = _sources(path, kind)
            found.append(
                CacheEntry(
                    key=path.name,
                    path=path,
                    size_bytes=_size_bytes(path),
                    last_used=path.stat().st_mtime,
                    source_checkpoint=source,
                    base_model=base,
                    kind=kind,
                )
            )
    return sorted(found, key=lambda e: -e.last_used)


@dataclass
class Cleared:
    """What `clear` removed and how many bytes that freed."""

    entries: list[CacheEntry] = field(default_factory=list)
    temporaries: list[Path] = field(default_factory=list)
    freed_bytes: int = 0


def clear(
    keys: list[str] | None = None,
    older_than_days: float | None = None,
    root: str | os.PathLike | None = None,
) -> Cleared:
    """Remove consolidated models and dequantised GGUF bases (all of them, those named in `keys`, or those
    unused for `older_than_days`) and every stale temporary folder. A removed entry is rebuilt when next
    asked for."""
    entries = list_entries(root)
    chosen = entries
    if keys:
        known = {e.key for e in entries}
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise UserError(
                f"no cached consolidated model with key {', '.join(unknown)} in {consolidated_cache_dir(root)} "
                f"(nor a GGUF base in {consolidated_cache_dir(root, GGUF_BASE_KIND)}); "
                "`so8t cache list` shows the keys."
            )
        chosen = [e for e in chosen if e.key in keys]
    if older_than_days is not None:
        cutoff = time.time() - older_than_days * 86400
        chosen = [e for e in chosen if e.last_used < cutoff]
    cleared = Cleared()
    for entry in chosen:
        # renamed first, so a reader finds the whole entry or none, and a crash leaves a stale temporary
        doomed = entry.path.with_name(f"{entry.key}{TEMPORARY_MARKER}{os.getpid()}-removing")
        os.replace(entry.path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        cleared.entries.append(entry)
        cleared.freed_bytes += entry.size_bytes
    for path in stale_temporaries(root):
        cleared.freed_bytes += _size_bytes(path)
        _remove(path)
        cleared.temporaries.append(path)
    return cleared


# ----------------------------------------------------------------------------- `so8t cache`


def _mib(size_bytes: int) -> str:
    return f"{size_bytes / 2**20:.1f} MiB"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="cache_command", metavar="{list,clear}", required=True)
    commands.add_parser(
        "list", help="show the cached consolidated models and GGUF bases: key, size, last use, source"
    )
    clear_parser = commands.add_parser(
        "clear",
        help="remove cached consolidated models and GGUF bases (all by default) and stale temporary folders",
    )
    clear_parser.add_argument("keys", nargs="*", metavar="KEY", help="remove only these (keys from `list`)")
    clear_parser.add_argument(
        "--older-than", type=float, default=None, metavar="DAYS", help="remove only models unused for DAYS"
    )


def run_cli(args: argparse.Namespace) -> int:
    folder = consolidated_cache_dir()
    if args.cache_command == "list":
        entries = list_entries()
        if not entries:
            print(f"no consolidated models cached in {folder}")
            return 0
        print(f"consolidated models cached in {folder}:")
        for e in entries:
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
            what = "GGUF base " if e.kind == GGUF_BASE_KIND else ""
            print(
                f"  {e.key}  {_mib(e.size_bytes):>11}  used {used}  {what}from {e.source_checkpoint or '?'}"
            )
        total = sum(e.size_bytes for e in entries)
        print(f"{_plural(len(entries), 'model')}, {_mib(total)}")
        return 0
    cleared = clear(args.keys or None, older_than_days=args.older_than)
    bases = sum(e.kind == GGUF_BASE_KIND for e in cleared.entries)
    removed = [_plural(len(cleared.entries) - bases, "consolidated model")]
    if bases:
        removed.append(_plural(bases, "GGUF base"))
    if cleared.temporaries:
        removed.append(_plural(len(cleared.temporaries), "stale temporary folder"))
    print(f"freed {_mib(cleared.freed_bytes)} in {folder}: removed {' and '.join(removed)}")
    return 0
