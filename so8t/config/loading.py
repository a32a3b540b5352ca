"""load_config: read a run config, apply `--set` overrides, validate it, resolve its paths and run every
check, so a run learns of all its mistakes at once and before any model loads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from so8t.config.checks import run_checks
from so8t.config.inherit import read_run_config
from so8t.config.messages import validate_mapping
from so8t.config.overrides import apply_overrides
from so8t.config.resolve import resolve_paths
from so8t.config.run import RunConfig
from so8t.data.config import DataConfig
from so8t.data.safety import SPLITS
from so8t.errors import ConfigError


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Load (with its `base:` chain), override, validate, resolve and check a run config; raises ConfigError
    listing every problem."""
    path = Path(path)
    source = str(path)
    base_dir = path.resolve().parent
    raw = read_run_config(path)
    errors = apply_overrides(raw, overrides)
    checked = validate_mapping(raw, RunConfig, errors)
    if checked.model is None:
        errors += _data_problems_alone(checked.clean.get("data"), base_dir, checked.reported)
        raise ConfigError(errors, source=source)
    cfg = resolve_paths(checked.model, base_dir)
    if errors:
        errors += cfg.data.check()[1]
        raise ConfigError(errors, source=source)
    report, problems = run_checks(cfg, base_dir)
    if problems:
        raise ConfigError(problems, source=source)
    cfg._data_report = report
    return cfg


def _data_problems_alone(raw_data: Any, base_dir: Path, reported: set[str]) -> list[str]:
    """Shard problems even when another section failed, so one run of validate shows them all."""
    if raw_data is not None and not isinstance(raw_data, dict):
        return []
    if "data" in reported:
        return []
    # sections with problems already reported are left out; the rest is still checked
    sound = {
        k: v
        for k, v in (raw_data or {}).items()
        if not any(r == f"data.{k}" or r.startswith((f"data.{k}.", f"data.{k}[")) for r in reported)
    }
    sound.update({split: [] for split in SPLITS if split in (raw_data or {}) and split not in sound})
    try:
        data = DataConfig.model_validate(sound)
    except ValidationError:
        # already reported by the full validation
        return []
    return data.resolved(base_dir).check()[1]
