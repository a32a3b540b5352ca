"""A user path (consolidated folder, training checkpoint or run directory) -> the plain HF folder to load.

A consolidated folder is used as it is. A checkpoint, or the best checkpoint of a run directory without a
consolidated/ folder (layout.locate_so8t_model), is consolidated once into the consolidation cache
(so8t.cache) and the cached folder is reused until the checkpoint's model files, its base or so8t change.
The lm-eval backend and `so8t predict` / `so8t.load` resolve their paths here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from so8t.cache import consolidation_key, get_or_build
from so8t.consolidate import fold
from so8t.errors import UserError
from so8t.layout.locate import locate_so8t_model
from so8t.layout.so8t_json import CONSOLIDATED_FORMAT, SO8T_JSON, read_so8t_json, so8t_format


@dataclass
class ResolvedModel:
    """A so8t model found at a user path: what it was, and the plain HF folder to load."""

    source: Path
    kind: str  # "consolidated" | "checkpoint" | "run directory"
    checkpoint: Path | None
    folder: Path
    consolidation_seconds: float = 0.0


def _base_folder(base: str) -> Path | None:
    """The local folder of a base reference (the embedded base lives in the so8t cache), None for a hub id."""
    from so8t.model.base import resolve_base_path

    local = Path(resolve_base_path(base)).expanduser()
    return local if local.is_dir() else None


def consolidate_cached(
    checkpoint: Path, base: str | None = None, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Consolidate a checkpoint once into the consolidation cache (under `cache_dir`, default
    $SO8T_CACHE_DIR or ~/.cache/so8t); later calls with the same model files, base and so8t reuse it."""
    from so8t.model.base import checkpoint_base

    checkpoint = Path(checkpoint)
    info = read_so8t_json(checkpoint)
    effective_base = checkpoint_base(
        checkpoint / SO8T_JSON,
        info.base_model if info is not None else None,
        base,
        "base=",
        fix="point at the base model with base=PATH in --model_args (lm_eval, so8t eval) or --base PATH "
        "(so8t predict)",
    )
    key = consolidation_key(checkpoint, effective_base, _base_folder(effective_base))
    return get_or_build(key, lambda tmp: fold.consolidate_checkpoint(checkpoint, tmp, base=base), cache_dir)


def resolve_model(path: str | os.PathLike, base: str | None = None) -> ResolvedModel:
    """Find the so8t model at `path` and return the plain HF folder to load (consolidating if needed)."""
    kind, source, target = locate_so8t_model(path)
    if so8t_format(target) == CONSOLIDATED_FORMAT:
        if base is not None:
            raise UserError(
                f"base={base} was given, but pretrained={path} is already consolidated ({target}) and needs "
                "no base; drop base= or point at a training checkpoint."
            )
        return ResolvedModel(source, kind, None, target)
    started = time.perf_counter()
    folder = consolidate_cached(target, base=base)
    return ResolvedModel(source, kind, target, folder, round(time.perf_counter() - started, 3))
