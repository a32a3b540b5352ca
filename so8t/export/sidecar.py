"""Head B beside a GGUF file: the sidecar that lets an SO8T model decide inside llama.cpp.

For `model.gguf` the sidecar is two files beside it:

- `model.so8t-head.safetensors`: head B's weights as the consolidated folder holds them (R_safe folded into
  the first layer, so the head reads the LM head's input h directly): `net.0.weight` (out, D) and
  `net.0.bias`, plus `net.2.*` for an MLP head (GELU between), float32.
- `model.so8t-head.json`: `format` (so8t-gguf-head), `version`, `classes` (head B's order), `pooling`
  (last_prompt_token: llama.cpp's last-token pooling of the rendered prompt), `embedding` (what the head
  reads: llama.cpp's un-normalised embedding, taken after the final norm), `safety_head` (kind, mlp_hidden),
  `prompt` (the so8t.json prompt record: plain or chat, system prompt), `allow_threshold` (null: none),
  `gguf_file` (the model file's name).

Reading and running the head needs numpy and safetensors only, never torch: the llama.cpp agent runs without it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from so8t.data.safety import DECISIONS
from so8t.errors import UserError

SIDECAR_FORMAT = "so8t-gguf-head"
SIDECAR_VERSION = 1
SIDECAR_WEIGHTS_SUFFIX = ".so8t-head.safetensors"
SIDECAR_INFO_SUFFIX = ".so8t-head.json"
POOLING = "last_prompt_token"
# what head B reads inside llama.cpp: its embedding of the last token, before any normalisation
EMBEDDING = "llama.cpp last-token embedding after the final norm, embd_normalize -1 (raw)"


def sidecar_paths(gguf_file: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, info) of the sidecar of a GGUF file: `NAME.gguf` -> `NAME.so8t-head.{safetensors,json}`."""
    path = Path(gguf_file)
    stem = path.name[: -len(".gguf")] if path.name.endswith(".gguf") else path.name
    return path.with_name(stem + SIDECAR_WEIGHTS_SUFFIX), path.with_name(stem + SIDECAR_INFO_SUFFIX)


@dataclass
class SidecarInfo:
    """The fields of the sidecar's JSON file."""

    classes: list[str] = field(default_factory=lambda: list(DECISIONS))
    pooling: str = POOLING
    embedding: str = EMBEDDING
    safety_head: dict[str, Any] = field(default_factory=lambda: {"kind": "linear", "mlp_hidden": None})
    prompt: dict[str, Any] | None = None
    allow_threshold: float | None = None
    gguf_file: str = ""
    format: str = SIDECAR_FORMAT
    version: int = SIDECAR_VERSION


def write_sidecar(consolidated: str | os.PathLike, gguf_file: str | os.PathLike) -> tuple[Path, Path]:
    """Write head B of a consolidated folder beside `gguf_file`; head B is read by the project's own loader
    (so8t.model.inference.load_safety_head), wherever the folder keeps it."""
    from safetensors.torch import save_file

    from so8t.layout.atomic import atomic_write_json
    from so8t.layout.so8t_json import read_consolidated_info
    from so8t.model.inference import load_safety_head

    head = load_safety_head(consolidated, "cpu")
    meta = read_consolidated_info(consolidated)
    weights, info = sidecar_paths(gguf_file)
    state = {k: v.detach().float().contiguous() for k, v in head.state_dict().items()}
    tmp = weights.with_name(f".{weights.name}.tmp")
    save_file(state, str(tmp))
    os.replace(tmp, weights)
    record = SidecarInfo(
        classes=list(meta.classes or DECISIONS),
        safety_head={"kind": head.kind, "mlp_hidden": head.mlp_hidden},
        prompt=meta.prompt,
        gguf_file=Path(gguf_file).name,
    )
    atomic_write_json(info, asdict(record))
    return weights, info


class NumpyHead:
    """Head B on numpy arrays: linear, or Linear-GELU-Linear, as so8t.model.heads.SafetyHead computes it."""

    def __init__(self, state: dict[str, Any], kind: str) -> None:
        self.kind = kind
        self.layers = [(state["net.0.weight"], state["net.0.bias"])]
        if kind == "mlp":
            self.layers.append((state["net.2.weight"], state["net.2.bias"]))

    @property
    def hidden_size(self) -> int:
        return int(self.layers[0][0].shape[1])

    def log_probs(self, hidden: Any) -> list[float]:
        """log-softmax of head B over the classes for one hidden state (D,), in float64."""

        x = np.asarray(hidden, dtype=np.float64)
        weight, bias = self.layers[0]
        x = x @ weight.astype(np.float64).T + bias
        if self.kind == "mlp":
            # the exact (erf) GELU of torch.nn.GELU()
            x = 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
            weight, bias = self.layers[1]
            x = x @ weight.astype(np.float64).T + bias
        if not np.all(np.isfinite(x)):
            return [float(v) if math.isfinite(v) else math.nan for v in x.tolist()]
        shifted = x - x.max()
        return (shifted - math.log(float(np.exp(shifted).sum()))).tolist()


def read_sidecar(gguf_file: str | os.PathLike) -> tuple[NumpyHead, SidecarInfo]:
    """Head B and its fields from the sidecar of `gguf_file`; UserError naming the file when one is missing
    or malformed."""
    from safetensors.numpy import load_file

    weights, info_path = sidecar_paths(gguf_file)
    for path in (weights, info_path):
        if not path.is_file():
            raise UserError(
                f"{path} is missing: head B travels beside the GGUF file, so without it {gguf_file} cannot "
                "decide. Export with `so8t export gguf MODEL --out FILE` (MODEL a so8t consolidated folder, "
                "checkpoint or run directory), which writes the model and its head together."
            )
    try:
        raw = json.loads(info_path.read_text(encoding="utf-8"))
        if raw.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"format is {raw.get('format')!r}, expected {SIDECAR_FORMAT!r}")
        info = SidecarInfo(**raw)
        state = load_file(str(weights))
        head = NumpyHead(state, str(info.safety_head.get("kind", "linear")))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UserError(
            f"the head B sidecar of {gguf_file} ({weights.name}, {info_path.name}) is not readable: {exc}. "
            "Export the model again with `so8t export gguf`."
        ) from exc
    if list(info.classes) != list(DECISIONS):
        raise UserError(f"{info_path}: classes {info.classes}, expected {list(DECISIONS)}.")
    return head, info
