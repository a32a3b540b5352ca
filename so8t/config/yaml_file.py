"""The one YAML reader of so8t's own files: run configs, gate rules files and suite files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from so8t.data.mapping import WrittenKey
from so8t.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """safe_load, with each key YAML did not read as text kept as the file wrote it (WrittenKey)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key_node, yaml.ScalarNode) and not isinstance(key, str):
                key = WrittenKey(key, key_node.value)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def load_yaml_text(text: str) -> Any:
    """yaml.safe_load of `text`, keys that YAML did not read as text kept as written (WrittenKey)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The top-level mapping of a YAML file ({} for an empty one); ConfigError naming the file, and the line
    of a syntax error, otherwise. `what` names the kind of file in the not-found message."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            [f"{what} not found: {path}" + (" (it is a folder)" if path.is_dir() else "")], source=str(path)
        )
    try:
        data = load_yaml_text(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"not valid YAML{where}: {problem}"], source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text ({exc.reason})"], source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"the top level must be a mapping of keys, found {type(data).__name__}"], source=str(path)
        )
    return data
