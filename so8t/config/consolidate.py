"""The `consolidate` section: what `so8t run` folds a checkpoint onto and the dtype it saves (so8t.consolidate)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from so8t.config.model import DTYPES
from so8t.config.section import Section
from so8t.layout.so8t_json import FOLD_ONTO_ORIGINAL, FOLD_ONTO_TRAINED, FOLD_TARGETS, SO8T_JSON


class ConsolidateConfig(Section):
    fold_onto: Literal[FOLD_TARGETS] = Field(
        FOLD_ONTO_TRAINED,
        description=f"For an 8-bit or 4-bit base: fold LoRA and the rotations onto the dequantised weights "
        f"the model trained with ({FOLD_ONTO_TRAINED}: the consolidated model is the trained one) or onto "
        f"the base's original unquantised weights ({FOLD_ONTO_ORIGINAL}: a model never trained as such, its "
        f"drift recorded in {SO8T_JSON}). The same for an unquantised base.",
    )
    dtype: DTYPES = Field("auto", description="dtype of the saved weights; auto keeps the base's own.")
