"""`--set KEY=VALUE` overrides of a run config: the option every config-reading command adds, and applying
them to the raw mapping before it is checked."""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Iterable
from typing import Any

import yaml

from so8t.config.messages import short
from so8t.config.run import RunConfig
from so8t.config.yaml_file import load_yaml_text


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE` (repeatable), collected in `args.overrides`."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.max_steps=50 (repeatable; values are read as YAML)",
    )


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> list[str]:
    """Apply `a.b=c` overrides in place (values typed by YAML); returns the problems found.

    A key the file leaves out is filled from the defaults first, so `data.train.0.n=50` (or
    `data.train[0].n=50`) works on a config that keeps the default sources.
    """
    problems = []
    defaults: Any = RunConfig().model_dump(mode="json", exclude_none=False)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.max_steps=50")
            continue
        try:
            value = load_yaml_text(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        problem = _set(raw, defaults, key, value)
        if problem:
            problems.append(problem)
    return problems


def _set(raw: dict[str, Any], defaults: Any, key: str, value: Any) -> str | None:
    """Set one dotted key in `raw` (list items by index), creating sections from `defaults` on the way."""
    node: Any = raw
    default: Any = defaults
    # list items by `.0.` or `[0]`, the form every message prints (data.train[0].labels)
    parts = re.sub(r"\[(-?\d+)\]", r".\1", key).split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "(top level)"
        if isinstance(node, list):
            if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                return f"--set {key}: {where} is a list of {len(node)}; {part!r} is not an index in it"
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
                default = (
                    default[int(part)] if isinstance(default, list) and int(part) < len(default) else None
                )
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                known = isinstance(default, dict) and default.get(part) is not None
                default = default.get(part) if isinstance(default, dict) else None
                if node.get(part) is None:
                    node[part] = copy.deepcopy(default) if known else {}
                node = node[part]
        else:
            return f"--set {key}: {where} is {short(node)}, not a mapping"
    return None
