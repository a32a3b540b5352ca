"""`so8t export gguf MODEL --out FILE [--type f16|q8_0]`: an SO8T model as one GGUF file plus head B's sidecar.

MODEL is a consolidated folder, a training checkpoint or a run directory, resolved as the lm-eval backend and
`so8t predict` resolve it (a checkpoint is consolidated once, cached). A plain HF folder (no so8t.json, such as
a base) exports too, without a head: llama.cpp then runs it as a plain LM, and the SO8T agent refuses to load it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from so8t.errors import UserError
from so8t.export.gguf_writer import GGUF_TYPES, ExportedGguf, write_gguf
from so8t.layout import HF_CONFIG
from so8t.layout.so8t_json import read_so8t_json


def _model_folder(model: str | os.PathLike, base: str | None) -> tuple[Path, bool]:
    """(plain HF folder to export, whether it carries head B)."""
    from so8t.consolidate import resolve_model

    path = Path(model).expanduser()
    if path.is_dir() and (path / HF_CONFIG).is_file() and read_so8t_json(path) is None:
        return path, False
    return resolve_model(path, base=base).folder, True


def export_gguf(
    model: str | os.PathLike, out: str | os.PathLike, gguf_type: str = "f16", base: str | None = None
) -> ExportedGguf:
    """Write MODEL as the GGUF file `out` and, for an SO8T model, head B's sidecar beside it."""
    from so8t.export.sidecar import sidecar_paths, write_sidecar

    out = Path(out)
    if out.suffix != ".gguf":
        raise UserError(f"--out {out}: give a file name ending in .gguf (the sidecar is named after it).")
    started = time.perf_counter()
    folder, has_head = _model_folder(model, base)
    write_gguf(folder, out, gguf_type)
    if has_head:
        write_sidecar(folder, out)
    else:
        # a head left from an earlier export of another model must not travel with this one
        for stale in sidecar_paths(out):
            stale.unlink(missing_ok=True)
    return ExportedGguf(out, gguf_type, out.stat().st_size, round(time.perf_counter() - started, 3))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    formats = parser.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    gguf = formats.add_parser("gguf", help="a GGUF file for llama.cpp, with head B's sidecar beside it")
    gguf.add_argument("model", help="consolidated folder, training checkpoint or run directory")
    gguf.add_argument("--out", required=True, help="the GGUF file to write (NAME.gguf)")
    gguf.add_argument("--type", dest="gguf_type", choices=GGUF_TYPES, default="f16", help="tensor type")
    gguf.add_argument("--base", default=None, help="base model for a checkpoint (overrides the recorded one)")


def run_cli(args: argparse.Namespace) -> int:
    from so8t.export.sidecar import sidecar_paths

    exported = export_gguf(args.model, args.out, args.gguf_type, base=args.base)
    weights, info = sidecar_paths(exported.path)
    print(
        f"wrote {exported.path} ({exported.gguf_type}, {exported.size_bytes / 1e6:.1f} MB) "
        f"in {exported.seconds:.1f} s"
    )
    if weights.is_file():
        print(f"head B: {weights.name} and {info.name} beside it")
    else:
        print("no head B (a plain model): llama.cpp runs it as an LM; `so8t predict` needs an SO8T model")
    return 0
