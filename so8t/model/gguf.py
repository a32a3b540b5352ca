"""GGUF bases: a GGUF file dequantised once into a plain Hugging Face folder, cached by the file's content.

transformers reads GGUF files (`from_pretrained(..., gguf_file=...)`, tokenizer and chat template included),
but the model it returns is flagged as quantised (`GgufHfQuantizer`): not trainable, not savable, refused
beside bitsandbytes, and with the `kernels` package its weights may even stay packed. So the weights are
copied into a fresh model built from the same config without the quantisation flag, saved with the tokenizer
as a plain folder, and that folder is the base: trainable, 8/4-bit on top, consolidatable like any other.
A GGUF file is untrusted input: a truncated or malformed file, or an architecture so8t cannot use, is a
UserError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from so8t.cache import GGUF_BASE_KIND, GGUF_BASE_RECORD, get_or_build
from so8t.config.base_names import is_short_base, short_base_file
from so8t.errors import UserError
from so8t.layout.atomic import atomic_write_json
from so8t.model.architectures import ARCHITECTURES

# Bumped when what a dequantised folder holds changes, so older entries are rebuilt, never reused.
DEQUANTISE_RECIPE = "so8t-gguf-dequantise-v1"
# Entries of transformers' GGUF architecture list that are not architectures.
_NOT_ARCHITECTURES = ("general", "tokenizer")
_sha256_memo: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class GgufSource:
    """What a GGUF base file is: recorded in so8t.json (`model.gguf`) and in its cache entry."""

    file: str
    sha256: str
    architecture: str
    file_type: str  # llama.cpp's name of the file's quantisation (MOSTLY_Q4_1, ALL_F32, ...)
    tensor_types: dict[str, int]  # how many tensors of each GGML type

    def record(self) -> dict[str, Any]:
        return asdict(self)


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered for this process while its size and mtime stay the same."""
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _sha256_memo:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _sha256_memo[memo_key] = digest.hexdigest()
    return _sha256_memo[memo_key]


def supported_gguf_architectures() -> list[str]:
    """Architectures transformers can read from GGUF that so8t supports (by GGUF architecture name)."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    ours = {arch.model_type for arch in ARCHITECTURES}
    return [a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in _NOT_ARCHITECTURES and a in ours]


def _damaged(path: Path, detail: str) -> UserError:
    return UserError(
        f"{path} is not a readable GGUF file ({detail}); it may be truncated or damaged: copy or download it "
        "again, or point model.base at a Hugging Face model folder."
    )


def _string_field(reader: Any, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None or not field.data:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")


def _file_type(reader: Any) -> str:
    import gguf

    field = reader.fields.get("general.file_type")
    if field is None or not field.data:
        return "unknown"
    value = int(field.parts[field.data[0]][0])
    try:
        return gguf.LlamaFileType(value).name
    except ValueError:
        return str(value)


def read_gguf_source(path: str | os.PathLike) -> GgufSource:
    """The header facts of a GGUF base file; UserError when it is missing, unreadable or of an architecture
    so8t cannot load from GGUF."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"model.base {path} does not exist or is not a file; point it at a GGUF file.")
    try:
        import gguf
    except ImportError as exc:
        raise UserError(
            f"model.base {path} is a GGUF file, and reading one needs the `gguf` package: pip install 'gguf>=0.10'."
        ) from exc
    try:
        reader = gguf.GGUFReader(str(path))
        architecture = _string_field(reader, "general.architecture")
        tensor_types = Counter(t.tensor_type.name for t in reader.tensors)
        file_type = _file_type(reader)
    except (
        Exception
    ) as exc:  # the reader raises many kinds (ValueError, IndexError, struct errors) on bad bytes
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from exc
    if not architecture:
        raise _damaged(path, "no general.architecture entry")
    supported = supported_gguf_architectures()
    if architecture not in supported:
        raise UserError(
            f"{path} holds a GGUF model of architecture {architecture!r}, which so8t cannot load from GGUF; "
            f"the architectures it can: {', '.join(supported)}. Convert the model to a Hugging Face folder "
            "and point model.base at that folder, or pick a GGUF file of one of these architectures."
        )
    return GgufSource(
        str(path), file_sha256(path), architecture, file_type, dict(sorted(tensor_types.items()))
    )


def gguf_file_of(base: str) -> Path | None:
    """The GGUF file a base reference names (a short name's installed file, or a .gguf path); None for
    other bases."""
    from so8t.config.base_names import is_gguf_base

    if is_short_base(base):
        return short_base_file(base)
    if is_gguf_base(base):
        return Path(base).expanduser().resolve()
    return None


def _dequantise_into(folder: Path, source: GgufSource) -> None:
    """Write the plain HF folder of `source` into `folder`: fp32 weights, config, tokenizer, chat template,
    and the record last (an entry without it is incomplete)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(source.file)
    kwargs: dict[str, Any] = {"gguf_file": str(path), "dtype": torch.float32}
    if hasattr(transformers, "GgufConfig"):
        # unpack every weight, also where the `kernels` package could keep GGUF blocks packed
        kwargs["quantization_config"] = transformers.GgufConfig(dequantize=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=str(path))
        packed = AutoModelForCausalLM.from_pretrained(str(path.parent), **kwargs)
    except (ValueError, OSError, KeyError, IndexError, RuntimeError) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from exc
    config = packed.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.name_or_path = source.file
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(packed.state_dict(), strict=True)
    plain.tie_weights()
    folder.mkdir(parents=True)
    plain.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    atomic_write_json(folder / GGUF_BASE_RECORD, {**source.record(), "recipe": DEQUANTISE_RECIPE})


def dequantised_base(base: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The plain HF folder of a GGUF base (a .gguf path or a short name), built once per file content
    into the cache (`so8t cache list` shows it) and reused after: a rerun hashes the file and reads no
    GGUF header (parsing a 49k-token vocabulary takes seconds)."""
    path = gguf_file_of(base)
    if path is None:
        raise ValueError(f"{base!r} names no GGUF file")
    if not path.is_file():
        raise UserError(f"model.base {path} does not exist or is not a file; point it at a GGUF file.")
    key = hashlib.sha256(f"{DEQUANTISE_RECIPE}\0{file_sha256(path)}".encode()).hexdigest()[:32]
    build = lambda tmp: _dequantise_into(tmp, read_gguf_source(path))  # noqa: E731
    return get_or_build(key, build, cache_dir, kind=GGUF_BASE_KIND)


def gguf_record(base: str, cache_dir: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """so8t.json's `model.gguf` for a GGUF base (file, sha256, architecture, quantisation type), else None."""
    path = gguf_file_of(base)
    if path is None:
        return None
    folder = dequantised_base(base, cache_dir)
    record = json.loads((folder / GGUF_BASE_RECORD).read_text(encoding="utf-8"))
    record.pop("recipe", None)
    return {**record, "file": str(path)}
