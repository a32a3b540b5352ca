"""Path resolution, the step between validating a run config and checking it: relative paths become the
files they name, in a new config (the checked config is never changed in place)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from so8t.config.gates import GateConfig
from so8t.config.model import ModelConfig
from so8t.config.run import RunConfig
from so8t.data.shards import resolve_local


def resolve_paths(cfg: RunConfig, base_dir: Path) -> RunConfig:
    """A copy of `cfg` with data files resolved against `base_dir` (the config's folder), a local model.base
    as an absolute folder and a found gates.baseline (a results file or folder) as an absolute path."""
    update: dict[str, object] = {
        "data": cfg.data.resolved(base_dir),
        "model": _resolved_model(cfg.model, base_dir),
    }
    if cfg.gates is not None:
        update["gates"] = _resolved_gates(cfg.gates, base_dir)
    return cfg.model_copy(update=update)


def base_is_local(base: str, base_dir: Path) -> bool:
    """A base written as a path, or naming a folder beside the config, is local (anything else a hub id)."""
    if base.startswith("embedded:"):
        return False
    if base.startswith(("/", "./", "../", "~", ".\\")) or base in (".", ".."):
        return True
    return resolve_local(base, base_dir).exists()


def looks_like_hub_id(base: str) -> bool:
    return bool(re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", base))


def _resolved_model(model: ModelConfig, base_dir: Path) -> ModelConfig:
    if not base_is_local(model.base, base_dir):
        return model
    return model.model_copy(update={"base": str(resolve_local(model.base, base_dir).resolve())})


def baseline_candidates(baseline: str, base_dir: Path) -> list[Path]:
    """Where a gate baseline is looked for: from the working directory first, then the config's folder."""
    return [Path(os.path.expanduser(baseline)).resolve(), resolve_local(baseline, base_dir).resolve()]


def _resolved_gates(gates: GateConfig, base_dir: Path) -> GateConfig:
    if not gates.baseline:
        return gates
    found = next((c for c in baseline_candidates(gates.baseline, base_dir) if c.exists()), None)
    return gates if found is None else gates.model_copy(update={"baseline": str(found)})
