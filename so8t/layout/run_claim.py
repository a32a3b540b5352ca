"""A run directory's claim on its config: the first run records it, a resume may change only what the
config declares changeable, and every accepted change is kept in the config history.

Why here, with the config's identity: `so8t run` and `so8t train` on an existing run directory must refuse to
mix two different runs' checkpoints, and say exactly which keys differ.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import yaml

from so8t.errors import UserError
from so8t.layout import RunDir
from so8t.layout.atomic import atomic_write_text
from so8t.layout.checkpoints import checkpoint_step, complete_checkpoints

_UNSET = "<unset>"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b": leaf}: mappings are walked, lists and scalars are leaves."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def config_changes(previous: dict, current: dict) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (previous value, current value)} for every leaf that differs; a missing side is "<unset>"."""
    old, new = _flatten(previous), _flatten(current)
    keys = sorted(set(old) | set(new))
    return {
        k: (old.get(k, _UNSET), new.get(k, _UNSET)) for k in keys if old.get(k, _UNSET) != new.get(k, _UNSET)
    }


def _may_change(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == prefix or key.startswith(prefix + ".") for prefix in allowed)


def _shown(old: Any, new: Any, width: int = 160) -> tuple[str, str]:
    """Both values as JSON, each cut to `width` around where they first differ, so the diff shows that part."""
    texts = [json.dumps(value, ensure_ascii=False, sort_keys=True) for value in (old, new)]
    first = next(
        (i for i, pair in enumerate(zip(*texts, strict=False)) if pair[0] != pair[1]), min(map(len, texts))
    )
    start = max(0, min(first - 40, max(map(len, texts)) - width))
    return tuple(  # type: ignore[return-value]
        ("..." if start else "") + t[start : start + width] + ("..." if len(t) > start + width else "")
        for t in texts
    )


def read_config_history(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a run's config history, oldest first ([] when it has none)."""
    path = RunDir(Path(run_dir)).config_history
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _without_output_dir(config: Any) -> dict:
    config = dict(config or {})
    config.pop("output_dir", None)
    return config


def claim_run_dir(
    run_dir: str | os.PathLike,
    resolved_yaml: str,
    identity: dict[str, Any] | None = None,
    may_change: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
) -> dict[str, tuple[Any, Any]]:
    """Claim `run_dir` for a config; returns the settings it changes in a run already there ({} otherwise).

    `identity` is what makes two configs the same run (the resolved config without output_dir, data named by
    content; default: the resolved YAML without output_dir), compared with the identity the run last
    recorded, so a moved or copied run directory and another spelling of the same paths are still the same
    run. Changes to keys under `may_change` (settings that steer optimisation or bookkeeping) are accepted and
    appended to config_history.jsonl, and config.resolved.yaml becomes the new config; any other change is
    refused with the difference. A setting the recorded run lacks (added to so8t since) is no change when it
    has its default (`defaults`: dotted key -> default): the run was made with what is now the default.
    Claiming with the same run writes nothing. Every write renames a whole
    file, so torchrun ranks claiming at once each succeed.
    """
    run = RunDir(Path(run_dir))
    current = identity if identity is not None else _without_output_dir(_yaml_load(resolved_yaml))
    history = read_config_history(run_dir)
    if history:
        previous: dict | None = history[-1]["identity"]
    elif run.resolved_config.exists():
        # a run recorded before the history existed: its resolved YAML is all there is to compare with
        previous = _without_output_dir(_yaml_load(run.resolved_config.read_text()))
        current = _without_output_dir(_yaml_load(resolved_yaml))
    else:
        previous = None
    changes = {} if previous is None else config_changes(previous, current)
    changes = {
        key: (old, new)
        for key, (old, new) in changes.items()
        if not (old == _UNSET and defaults is not None and key in defaults and new == defaults[key])
    }
    refused = {key: values for key, values in changes.items() if not _may_change(key, may_change)}
    if refused:
        shown = {key: _shown(old, new) for key, (old, new) in refused.items()}
        lines = "\n".join(f"-{key}: {old}\n+{key}: {new}" for key, (old, new) in shown.items())
        allowed = ", ".join(may_change) or "none"
        raise UserError(
            f"{run_dir} holds a run made with a different config, and these changes alter what is trained, so "
            f"it cannot be resumed with them:\n{lines}\nA resumed run may change only optimisation and "
            f"bookkeeping settings ({allowed}). Use another --output-dir, restore the previous values, or "
            f"delete {run_dir} to start over."
        )
    if previous is None or changes or not history:
        found = complete_checkpoints(run.checkpoints)
        entry = {
            "time": _now(),
            "from_step": checkpoint_step(found[-1]) if found else 0,
            "changed": {key: [old, new] for key, (old, new) in changes.items()},
            "identity": identity if identity is not None else current,
        }
        lines = [json.dumps(e, ensure_ascii=False, sort_keys=True) for e in [*history, entry]]
        atomic_write_text(run.config_history, "\n".join(lines) + "\n")
    if previous is None or changes:
        atomic_write_text(run.resolved_config, resolved_yaml)
    return changes


def _yaml_load(text: str) -> Any:
    return yaml.safe_load(text)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
