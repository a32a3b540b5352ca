"""`base:` in a run config: a config written as the changes it makes to a parent config, so a recipe variant is
a few lines (as nanoGPT's fine-tuning configs set a handful of keys) and one edit to the parent reaches every
variant.

Rules, applied before validation so every message still names the key:
- `base: PATH` names the parent, relative to the file that says it; a parent may have a base of its own.
- Mappings merge key by key, the child winning; any other value (a list such as `data.train`, a number, a
  string) is replaced whole; `key: null` in the child removes the parent's value, so its default applies.
- A relative path keeps meaning the file it named where it was written: the parent's data files, policy,
  local `model.base` and gate baseline are made absolute against the parent's folder before the merge.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from so8t.config.resolve import base_is_local
from so8t.config.yaml_file import read_yaml
from so8t.data.safety import SPLITS
from so8t.data.shards import resolve_local
from so8t.data.sources import DataSource
from so8t.errors import ConfigError

BASE_KEY = "base"


def read_run_config(path: str | Path) -> dict[str, Any]:
    """The run config at `path` with its `base:` chain merged in (the raw mapping, not yet validated)."""
    return _read_with_parents(Path(path), chain=())


def _read_with_parents(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    raw = read_yaml(path)
    if BASE_KEY not in raw:
        return raw
    parent_name = raw.pop(BASE_KEY)
    if not isinstance(parent_name, str) or not parent_name.strip():
        raise ConfigError(
            [f"base: must be the path of a parent run config, relative to this file; found {parent_name!r}"],
            source=str(path),
        )
    parent_path = (path.parent / os.path.expanduser(parent_name)).resolve()
    here = path.resolve()
    if parent_path in (*chain, here):
        loop = " -> ".join(str(p) for p in (*chain, here, parent_path))
        raise ConfigError(
            [f"base: the configs name each other in a loop ({loop}); remove one base:"], str(path)
        )
    if not parent_path.is_file():
        raise ConfigError(
            [
                f"base: parent config {parent_name!r} not found (looked for {parent_path}, relative to this file)"
            ],
            source=str(path),
        )
    parent = _read_with_parents(parent_path, (*chain, here))
    if parent_path.parent != here.parent:
        parent = _absolute_paths(parent, parent_path.parent)
    return merge_configs(parent, raw)


def merge_configs(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """`child` over `parent`: mappings merged key by key, anything else replaced, `null` removes the key."""
    merged = dict(parent)
    for key, value in child.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_configs(merged[key], value)
        else:
            merged[key] = value
    return merged


def _absolute_paths(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A copy of a parent's mapping whose relative paths are absolute against the parent's `folder`."""
    raw = dict(raw)
    if isinstance(raw.get("data"), dict):
        data = dict(raw["data"])
        for split in SPLITS:
            if isinstance(data.get(split), list):
                data[split] = [_absolute_source(entry, folder) for entry in data[split]]
        if isinstance(data.get("policy"), str):
            data["policy"] = str(resolve_local(data["policy"], folder).resolve())
        raw["data"] = data
    model = raw.get("model")
    if (
        isinstance(model, dict)
        and isinstance(model.get("base"), str)
        and base_is_local(model["base"], folder)
    ):
        raw["model"] = {**model, "base": str(resolve_local(model["base"], folder).resolve())}
    gates = raw.get("gates")
    if isinstance(gates, dict) and isinstance(gates.get("baseline"), str):
        beside_parent = resolve_local(gates["baseline"], folder)
        if not Path(os.path.expanduser(gates["baseline"])).exists() and beside_parent.exists():
            raw["gates"] = {**gates, "baseline": str(beside_parent.resolve())}
    return raw


def _absolute_source(entry: Any, folder: Path) -> Any:
    """A data source entry with the paths its own form resolves made absolute; an entry that does not validate
    is left as written, for validation to report."""
    if not isinstance(entry, (dict, str)):
        return entry
    try:
        source = TypeAdapter(DataSource).validate_python(entry)
    except ValidationError:
        return entry
    # a bare string is the short form of its form's key (`- data/train.jsonl` is `- {path: ...}`)
    as_written = entry if isinstance(entry, dict) else {source.key: entry}
    written, resolved = source.model_dump(), source.resolved(folder).model_dump()
    changed = {key: resolved[key] for key in as_written if written.get(key) != resolved.get(key)}
    return {**as_written, **changed}
