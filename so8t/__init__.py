"""so8t: train, consolidate, evaluate and gate safety-aware SO8T language models.

Importing the package stays cheap: nothing here imports torch, transformers or lm_eval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from so8t.predict import So8tAgent


def load(path: str, **kwargs: Any) -> So8tAgent:
    """Load a consolidated model, checkpoint or run directory as a decision-gated agent."""
    from so8t.predict import load as _load

    return _load(path, **kwargs)


__all__ = ["__version__", "load"]
