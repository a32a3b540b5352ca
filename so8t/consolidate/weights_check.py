"""The quantised weights a consolidation recomputes from the base, checked against the checksum training
recorded (so8t.model.quantized computes it): folded onto weights that differ, the model written would not be
the model that trained."""

from __future__ import annotations

import warnings
from pathlib import Path

from so8t.errors import UserError
from so8t.layout.so8t_json import FOLD_ONTO_TRAINED, SO8T_JSON, So8tRecord


class QuantizedWeightsMismatch(UserWarning):
    """The quantised weights recomputed at consolidation are not the ones the checkpoint trained with."""


def checked_quantized_weights(ckpt: Path, info: So8tRecord, found: dict | None, fold_onto: str) -> dict:
    """Compare the checksum of the quantised weights recomputed now with the one training recorded. A mismatch
    is a UserError when folding onto them (the model written would not be the model trained), else a warning
    (QuantizedWeightsMismatch: only the drift's reference differs), as is a checkpoint that records none.
    Returns the record for so8t.json."""
    recorded = info.loading.quantized_weights
    match = None if not recorded or not found else recorded.get("sha256") == found.get("sha256")
    if recorded is None:
        warnings.warn(
            f"{ckpt / SO8T_JSON} records no checksum of the quantised weights it trained with (an older so8t "
            "saved it), so consolidation cannot verify that the weights it recomputes from the base are those.",
            QuantizedWeightsMismatch,
            stacklevel=3,
        )
    elif not match:
        message = (
            f"the quantised weights recomputed from the base differ from those {ckpt} trained with (checksum "
            f"{recorded.get('sha256', '?')[:12]} from {recorded.get('device')} with bitsandbytes "
            f"{recorded.get('bitsandbytes')}, now {(found or {}).get('sha256', '?')[:12]} from "
            f"{(found or {}).get('device')} with bitsandbytes {(found or {}).get('bitsandbytes')}). The base "
            "changed (other files or another hub revision), bitsandbytes changed, or training quantised on "
            "a GPU while consolidation quantises on the CPU: CPU and CUDA quantisation need not agree bit for "
            "bit. What to do: if the base or bitsandbytes changed, consolidate again with the base files (or "
            "--base and the revision) and the bitsandbytes version training used; if only the device differs, "
            "consolidate on the device training used, or fold onto the original weights (--fold-onto "
            "original, consolidate.fold_onto: original) for a model that does not depend on any quantisation."
        )
        if fold_onto == FOLD_ONTO_TRAINED:
            raise UserError(
                f"{message} Nothing was written: folded onto these weights, the consolidated model would not "
                "be the model that trained."
            )
        warnings.warn(
            f"{message} The model is folded onto the original weights; the drift recorded in {SO8T_JSON} is "
            "measured against a trained model rebuilt on the recomputed weights.",
            QuantizedWeightsMismatch,
            stacklevel=3,
        )
    return {"recorded": recorded, "recomputed": found, "match": match}
