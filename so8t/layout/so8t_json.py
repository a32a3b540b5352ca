"""so8t.json, the record a checkpoint or consolidated folder keeps of itself: one typed model, read and written
here only.

Why one model: training writes it, consolidation reads a checkpoint's and writes a consolidated folder's,
loading, evaluation, predict, export, the cache and the report read them. With one pydantic model every
reader sees the same defaults for fields older files lack, and a malformed file is one clear error naming
the file and the field instead of a KeyError deep in a load.

Versioned: `version` is FORMAT_VERSION when written; a file without it is version 1; a file from a newer
so8t (a larger version) is refused with the upgrade to make. Fields this so8t does not know are kept (a newer
minor field survives a read and a rewrite). Nothing here imports torch, so `so8t validate` can use it.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from so8t.errors import UserError

SO8T_JSON = "so8t.json"
CHECKPOINT_FORMAT = "so8t-checkpoint"
CONSOLIDATED_FORMAT = "so8t-consolidated"
FORMATS = (CHECKPOINT_FORMAT, CONSOLIDATED_FORMAT)
FORMAT_VERSION = 1
# where head B reads h: the last token of the prompt
LAST_PROMPT_TOKEN = "last_prompt_token"

# What consolidation folds LoRA and the rotations onto (consolidate.fold_onto, `so8t consolidate --fold-onto`):
# for an 8-bit or 4-bit checkpoint, the dequantised weights it trained with, or the base's original weights.
FOLD_ONTO_TRAINED = "trained"
FOLD_ONTO_ORIGINAL = "original"
FOLD_TARGETS = (FOLD_ONTO_TRAINED, FOLD_ONTO_ORIGINAL)


class _Record(BaseModel):
    # fields a newer so8t adds are kept, never dropped on a rewrite
    model_config = ConfigDict(extra="allow", frozen=True)


class SafetyHeadRecord(_Record):
    """Head B's shape; a consolidated folder also records the hidden size it reads and where it reads it."""

    kind: Literal["linear", "mlp"] = "linear"
    mlp_hidden: int | None = None
    hidden_size: int | None = None
    reads: str | None = None


class LoadingRecord(_Record):
    """How the base was loaded for training (a checkpoint's `model`, a consolidated folder's `trained_model`)."""

    dtype: str | None = None
    quantization: Literal["none", "8bit", "4bit"] = "none"
    quantization_config: dict[str, Any] | None = Field(default=None, description="the bitsandbytes settings")
    quantized_weights: dict[str, Any] | None = Field(
        default=None,
        description="sha256 of the quantised weights training used, layer count, device, version",
    )
    model_type: str | None = None
    hidden_size: int | None = None
    gguf: dict[str, Any] | None = Field(
        default=None, description="a GGUF base: file, sha256, architecture, file_type, tensor_types"
    )


class So8tRecord(_Record):
    """One so8t.json. The descriptions are the contract's documentation (docs/architecture.md quotes them)."""

    format: Literal["so8t-checkpoint", "so8t-consolidated"]
    version: int = Field(default=1, description="format version (FORMAT_VERSION); absent in the oldest files")
    classes: list[str] | None = Field(default=None, description="head B's classes in order")
    pooling: str = Field(default=LAST_PROMPT_TOKEN, description="where head B reads h")
    base_model: str | None = Field(default=None, description="the base trained on: a local folder or hub id")
    base_revision: str | None = Field(default=None, description="the hub revision the base was loaded at")
    trust_remote_code: bool = Field(default=False, description="whether the base's own model code ran")
    rotated_layers: list[int] | Literal["all"] | None = Field(
        default=None, description="the layers whose attention output projection input is rotated"
    )
    safety_head: SafetyHeadRecord = Field(default_factory=SafetyHeadRecord)
    prompt: dict[str, Any] | None = Field(
        default=None,
        description="data.prompt_format: format (plain or chat) and system_prompt (chat); absent means plain",
    )
    so8t_version: str | None = Field(default=None, description="the so8t that trained the checkpoint")
    # a checkpoint
    base_commit: str | None = Field(default=None, description="the hub commit the base resolved to")
    model: LoadingRecord | None = Field(default=None, description="how the base was loaded")
    safety_class_weights: list[float] | None = Field(
        default=None, description="class weights of head B's loss"
    )
    # a consolidated folder
    source_checkpoint: str | None = Field(default=None, description="the checkpoint folder consolidated")
    trained_model: LoadingRecord | None = Field(default=None, description="the checkpoint's `model` record")
    consolidation: dict[str, Any] | None = Field(
        default=None,
        description="fold_onto, fold_target, dtype, base_dtype, trained_quantization, the k-bit checks and the "
        "drift against the trained model (so8t.consolidate.fold writes it, so8t.results.report shows it)",
    )

    @property
    def loading(self) -> LoadingRecord:
        """How the base was loaded in training, whichever of the two formats this is."""
        return self.model or self.trained_model or LoadingRecord()

    def to_json(self) -> dict[str, Any]:
        """The fields as written: the ones the writer set, nothing filled in by defaults."""
        return self.model_dump(mode="json", exclude_unset=True)


# The fields each format writes (SO8TModel.checkpoint_info, consolidation); a test holds the files to them.
_COMMON = (
    "format",
    "version",
    "classes",
    "pooling",
    "base_model",
    "base_revision",
    "trust_remote_code",
    "rotated_layers",
    "safety_head",
    "prompt",
    "so8t_version",
)
CHECKPOINT_FIELDS = (*_COMMON, "base_commit", "model", "safety_class_weights")
CONSOLIDATED_FIELDS = (*_COMMON, "source_checkpoint", "trained_model", "consolidation")


def so8t_version() -> str:
    """The installed so8t version, recorded in so8t.json and part of the consolidation cache key."""
    try:
        return metadata.version("so8t")
    except Exception:  # not installed (a bare source tree)
        return "0+unknown"


def _fix() -> str:
    return "re-save the model (so8t consolidate, or retrain the checkpoint) or point at another folder"


def parse_so8t_json(path: Path, info: Any) -> So8tRecord:
    """Validate a so8t.json object read from `path`; UserError naming the file and the field."""
    if not isinstance(info, dict):
        raise UserError(f"{path} holds a JSON {type(info).__name__}, not an object; {_fix()}.")
    version = info.get("version", 1)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise UserError(
            f"{path}: format version {version} was written by a newer so8t (this one reads up to "
            f"{FORMAT_VERSION}); upgrade so8t (pip install -U so8t) to read it."
        )
    try:
        return So8tRecord.model_validate(info)
    except ValidationError as exc:
        first = exc.errors()[0]
        # a union's member types (list[int], literal['all']) are no part of the field's name
        where = ".".join(str(p) for p in first["loc"] if isinstance(p, int) or str(p).isidentifier())
        raise UserError(
            f"{path}: field {where}: {first['msg']} (found {first.get('input')!r}); expected "
            f"format {CHECKPOINT_FORMAT} or {CONSOLIDATED_FORMAT} with so8t's fields; {_fix()}."
        ) from exc


def _read_object(folder: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """(path, the JSON object) of the folder's so8t.json, None when it has none; UserError when it is not
    readable JSON or not an object."""
    path = Path(folder) / SO8T_JSON
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not readable JSON ({exc}); {_fix()}.") from exc
    if not isinstance(info, dict):
        raise UserError(f"{path} holds a JSON {type(info).__name__}, not an object; {_fix()}.")
    return path, info


def read_so8t_json(folder: str | os.PathLike) -> So8tRecord | None:
    """The so8t.json of `folder`, or None when it has none; UserError when it is unreadable or malformed."""
    found = _read_object(folder)
    return None if found is None else parse_so8t_json(*found)


def so8t_format(folder: str | os.PathLike) -> str | None:
    """The `format` recorded in the folder's so8t.json (None without one). Reads only that field, so a folder
    of another format (or a malformed record) is still told apart before its fields are checked."""
    found = _read_object(folder)
    return None if found is None else str(found[1].get("format"))


def read_checkpoint_info(checkpoint: str | os.PathLike) -> So8tRecord:
    """so8t.json of a training checkpoint; UserError when it is missing or of another format."""
    found = _read_object(checkpoint)
    if found is None:
        raise UserError(
            f"{checkpoint} is not a so8t checkpoint: {SO8T_JSON} is missing. Point to one of the training "
            "checkpoints in a run directory's checkpoint folder."
        )
    path, info = found
    if info.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: format is {str(info.get('format'))!r}, expected {CHECKPOINT_FORMAT!r}.")
    return parse_so8t_json(path, info)


def read_consolidated_info(folder: str | os.PathLike) -> So8tRecord:
    """so8t.json of a consolidated folder; a folder without one reads as a consolidated record of defaults."""
    return read_so8t_json(folder) or So8tRecord(format=CONSOLIDATED_FORMAT)


def write_so8t_json(folder: str | os.PathLike, record: So8tRecord | dict[str, Any]) -> Path:
    """Write `record` as the folder's so8t.json (atomically); a dict is validated first."""
    from so8t.layout.atomic import atomic_write_json

    if not isinstance(record, So8tRecord):
        record = parse_so8t_json(Path(folder) / SO8T_JSON, record)
    return atomic_write_json(Path(folder) / SO8T_JSON, record.to_json())
