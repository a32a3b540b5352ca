"""so8t: train, consolidate, evaluate and gate safety-aware SO8T language models.

The lm-eval startup hook imports this package at every interpreter start in the environment, so importing it
imports nothing: not torch, transformers or lm_eval, and not even logging or typing.
"""

__version__ = "0.1.0"

# Read by type checkers only: `typing` is not imported at run time (annotations below are strings).
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from so8t.predict import So8tAgent


def load(path: str, **kwargs: "Any") -> "So8tAgent":
    """Load a consolidated model, checkpoint or run directory as a decision-gated agent."""
    from so8t.predict import load as _load

    return _load(path, **kwargs)


__all__ = ["__version__", "load"]
