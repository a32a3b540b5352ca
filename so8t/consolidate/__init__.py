"""Consolidation: fold a training checkpoint into a plain HF model plus head B (fold), and resolve a user
path to such a folder, consolidating checkpoints once into the cache (resolve). `so8t consolidate` is fold's
command."""

from so8t.consolidate.fold import (
    add_arguments,
    consolidate_checkpoint,
    run_cli,
)
from so8t.consolidate.resolve import ResolvedModel, consolidate_cached, resolve_model

__all__ = [
    "ResolvedModel",
    "add_arguments",
    "consolidate_checkpoint",
    "consolidate_cached",
    "resolve_model",
    "run_cli",
]
