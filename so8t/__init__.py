"""so8t: train, consolidate, evaluate and gate safety-aware SO8T language models.

Importing the package stays cheap: nothing here imports torch, transformers or lm_eval.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# bitsandbytes warns when it loads on a CPU with AVX512-BF16 that an optional hub-downloaded 4-bit kernel is
# missing; its built-in CPU kernels are used instead, so the warning only adds noise to every run. Set here,
# before any so8t module can import bitsandbytes (peft and transformers import it when it is installed).
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

if TYPE_CHECKING:  # pragma: no cover
    from so8t.predict import So8tAgent


def load(path: str, **kwargs: Any) -> So8tAgent:
    """Load a consolidated model, checkpoint or run directory as a decision-gated agent."""
    from so8t.predict import load as _load

    return _load(path, **kwargs)


__all__ = ["__version__", "load"]
