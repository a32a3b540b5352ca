"""The `export` section: what `so8t run` exports after consolidation (so8t.export)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from so8t.config.section import Section

# tensor types of `so8t export gguf --type` and `export.gguf`
GGUF_TYPES = ("f16", "q8_0")


class ExportConfig(Section):
    gguf: Literal[GGUF_TYPES] | None = Field(
        None,
        description="Export the consolidated model as gguf/model-<type>.gguf for llama.cpp, head B's sidecar "
        "beside it, and record its size and how many head-B decisions on the bundled safety test set equal "
        "the consolidated model's in report.md (f16 or q8_0; null: no export). Needs `pip install so8t[gguf]`.",
    )
