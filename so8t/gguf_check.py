"""The GGUF export step of `so8t run` (`export: {gguf: TYPE}`): export the consolidated model, check the
llama.cpp agent against it, and give report.md its section.

The check decides the bundled safety test set twice, with the consolidated model (HF) and inside llama.cpp
(embedding + sidecar), and counts equal decisions: the figure that says the exported agent is the trained one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

GGUF_DIR = "gguf"


def run_gguf_file(run_dir: str | Path, gguf_type: str) -> Path:
    """Where `so8t run` writes its GGUF file: RUN/gguf/model-<type>.gguf (head B's sidecar beside it)."""
    return Path(run_dir) / GGUF_DIR / f"model-{gguf_type}.gguf"


def decision_agreement(consolidated: Path, gguf_file: Path, limit: int | None = None) -> dict[str, Any]:
    """How many head-B decisions on the bundled safety test set llama.cpp + sidecar shares with the
    consolidated model, and the seconds each took."""
    from so8t.data.safety import bundled_safety_path, read_safety
    from so8t.llamacpp_agent import load_gguf
    from so8t.predict import load

    prompts = [record.prompt for record in read_safety(bundled_safety_path("test"))][:limit]
    started = time.perf_counter()
    reference = [d.decision for d in map(load(consolidated, device="cpu").decide, prompts)]
    hf_seconds = time.perf_counter() - started
    started = time.perf_counter()
    got = [d.decision for d in map(load_gguf(gguf_file).decide, prompts)]
    gguf_seconds = time.perf_counter() - started
    return {
        "decisions_equal": sum(a == b for a, b in zip(reference, got, strict=True)),
        "decisions_total": len(prompts),
        "hf_decide_seconds": round(hf_seconds, 3),
        "gguf_decide_seconds": round(gguf_seconds, 3),
    }


def export_for_run(consolidated: Path, run_dir: Path, gguf_type: str) -> dict[str, Any]:
    """Export `consolidated` into the run directory and check it; the figures for the run record and report."""
    from so8t.export.gguf_export import export_gguf

    exported = export_gguf(consolidated, run_gguf_file(run_dir, gguf_type), gguf_type)
    return {
        "file": str(exported.path.relative_to(run_dir)),
        "type": gguf_type,
        "size_bytes": exported.size_bytes,
        "export_seconds": exported.seconds,
        **decision_agreement(consolidated, exported.path),
    }


def report_section(figures: dict[str, Any]) -> str:
    """report.md's GGUF section."""
    return (
        "\n## GGUF export (llama.cpp)\n\n"
        "| file | type | size (MB) | export (s) | head-B decisions equal to the consolidated model's |\n"
        "|---|---|---:|---:|---:|\n"
        f"| {figures['file']} | {figures['type']} | {figures['size_bytes'] / 1e6:.2f} | "
        f"{figures['export_seconds']:.1f} | {figures['decisions_equal']} / {figures['decisions_total']} |\n\n"
        "Decisions on the bundled safety test set, by the consolidated model (HF) and by llama.cpp's last-token "
        "embedding with head B's sidecar. Run it with `so8t predict "
        f'{figures["file"]} "request"`.\n'
    )
