"""The `so8t` lm-eval backend: HFLM on the consolidated model, with safety decisions from head B.

`pretrained` may be a consolidated folder, a training checkpoint (consolidated once into a
content-addressed cache) or a run directory; it is resolved to a plain HF folder before
`HFLM.__init__`, so lm-eval's loading, accelerate data parallelism and quantised loading work as
for `--model hf` and nothing runs per token. Requests whose doc carries `so8t_decision: true`
(added by the so8t safety tasks' process_docs) are answered by head B when decision_source=head:
one forward over the context, h = the LM head's input at the last context token, log-softmax over
ALLOW / ESCALATE / REFUSE. Everything else goes to HFLM unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lm_eval.models.huggingface import HFLM

from so8t.data.safety import DECISIONS
from so8t.errors import UserError
from so8t.model.base import bnb_config, checkpoint_base
from so8t.model.inference import check_inference_args, decide, load_safety_head

SO8T_JSON = "so8t.json"
CHECKPOINT_FORMAT = "so8t-checkpoint"
CONSOLIDATED_FORMAT = "so8t-consolidated"
# Trainer-only files that do not change the consolidated model (left out of the cache key).
_NOT_MODEL_FILES = re.compile(
    r"^(optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state.*\.pth|trainer_state\.json|training_args\.bin)$"
)
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


# ----------------------------------------------------------------------------- resolution


def cache_root() -> Path:
    """Where consolidated checkpoints are cached: $SO8T_CACHE_DIR or ~/.cache/so8t."""
    return Path(os.environ.get("SO8T_CACHE_DIR") or Path.home() / ".cache" / "so8t").expanduser()


def read_so8t_json(folder: Path) -> dict | None:
    path = folder / SO8T_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(
            f"{path} is not readable JSON ({exc}); re-save the model or point at another folder."
        ) from exc


@dataclass
class ResolvedModel:
    """A so8t model found at a user path: what it was, and the plain HF folder to load."""

    source: Path
    kind: str  # "consolidated" | "checkpoint" | "run directory"
    checkpoint: Path | None
    folder: Path
    consolidation_seconds: float = 0.0


EXPECTED = (
    "expected a so8t consolidated folder (so8t.json format so8t-consolidated), a training checkpoint "
    "(so8t.json format so8t-checkpoint) or a run directory (holding consolidated/ or checkpoints/checkpoint-N/)"
)


def _describe(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if "config.json" in names:
        return "a plain Hugging Face model (config.json, no so8t.json): evaluate it with --model hf"
    if "adapter_config.json" in names:
        return "a PEFT adapter without so8t.json: evaluate it with --model hf,peft=..."
    if not names:
        return "an empty folder"
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"a folder with {shown}"


def _format_of(folder: Path) -> str | None:
    info = read_so8t_json(folder)
    return None if info is None else str(info.get("format"))


def _checkpoints_in(run_dir: Path) -> list[Path]:
    found = []
    for parent in (run_dir / "checkpoints", run_dir):
        if parent.is_dir():
            for child in parent.iterdir():
                if _CHECKPOINT_DIR.match(child.name) and _format_of(child) == CHECKPOINT_FORMAT:
                    found.append(child)
    return sorted(found, key=lambda p: int(_CHECKPOINT_DIR.match(p.name).group(1)))


def best_checkpoint(checkpoints: list[Path]) -> Path:
    """The checkpoint with the best eval loss in trainer_state.json, else the latest one."""
    latest = checkpoints[-1]
    state_path = latest / "trainer_state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    by_name = {p.name: p for p in checkpoints}
    recorded = state.get("best_model_checkpoint")
    if recorded and Path(recorded).name in by_name:
        return by_name[Path(recorded).name]
    losses = {
        int(entry["step"]): float(entry["eval_loss"])
        for entry in state.get("log_history", [])
        if "eval_loss" in entry and "step" in entry
    }
    scored = [(losses[step], step) for step in losses if f"checkpoint-{step}" in by_name]
    if scored:
        return by_name[f"checkpoint-{min(scored)[1]}"]
    return latest


def locate_so8t_model(path: str | os.PathLike) -> tuple[str, Path, Path]:
    """(kind, what the user named, the consolidated folder or checkpoint to use) without loading anything."""
    source = Path(path).expanduser()
    if not source.exists():
        raise UserError(f"pretrained={path}: nothing exists there; {EXPECTED}.")
    if not source.is_dir():
        raise UserError(f"pretrained={path} is a file; {EXPECTED}.")
    fmt = _format_of(source)
    if fmt == CONSOLIDATED_FORMAT:
        return "consolidated", source, source
    if fmt == CHECKPOINT_FORMAT:
        return "checkpoint", source, source
    if fmt is not None:
        raise UserError(f"pretrained={path}: so8t.json has format {fmt!r}; {EXPECTED}.")
    if _format_of(source / "consolidated") == CONSOLIDATED_FORMAT:
        return "run directory", source, source / "consolidated"
    checkpoints = _checkpoints_in(source)
    if checkpoints:
        return "run directory", source, best_checkpoint(checkpoints)
    raise UserError(f"pretrained={path} is {_describe(source)}; {EXPECTED}.")


def _hash_file(digest: Any, path: Path) -> None:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def consolidation_key(checkpoint: Path, base: str) -> str:
    """Content hash of the checkpoint's model files plus the base (its files' names, sizes, mtimes)."""
    digest = hashlib.sha256(b"so8t-consolidated-cache-v1\0")
    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        if _NOT_MODEL_FILES.match(path.name):
            continue
        digest.update(str(path.relative_to(checkpoint)).encode() + b"\0")
        _hash_file(digest, path)
    digest.update(b"base\0" + base.encode() + b"\0")
    local_base = Path(base).expanduser()
    if base.startswith("embedded:"):  # the built-in base lives in the so8t cache; key on its files too
        from so8t.model.base import resolve_base_path

        local_base = Path(resolve_base_path(base))
    if local_base.is_dir():
        for path in sorted(p for p in local_base.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(local_base)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:32]


def consolidate_cached(checkpoint: Path, base: str | None = None, cache_dir: Path | None = None) -> Path:
    """Consolidate a checkpoint once into $SO8T_CACHE_DIR/consolidated/<hash>; later calls reuse it."""
    from filelock import FileLock

    info = read_so8t_json(checkpoint) or {}
    effective_base = checkpoint_base(
        checkpoint / SO8T_JSON,
        info.get("base_model"),
        base,
        "base=",
        fix="point at the base model with base=PATH in --model_args (lm_eval, so8t eval) or --base PATH "
        "(so8t predict)",
    )
    root = (cache_dir or cache_root()) / "consolidated"
    out = root / consolidation_key(checkpoint, effective_base)
    if _format_of(out) == CONSOLIDATED_FORMAT:
        return out
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if _format_of(out) == CONSOLIDATED_FORMAT:  # another process finished it meanwhile
            return out
        from so8t.consolidate import consolidate_checkpoint

        tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        consolidate_checkpoint(checkpoint, tmp, base=base)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    return out


def resolve_model(path: str | os.PathLike, base: str | None = None) -> ResolvedModel:
    """Find the so8t model at `path` and return the plain HF folder to load (consolidating if needed)."""
    kind, source, target = locate_so8t_model(path)
    if _format_of(target) == CONSOLIDATED_FORMAT:
        if base is not None:
            raise UserError(
                f"base={base} was given, but pretrained={path} is already consolidated ({target}) and needs "
                "no base; drop base= or point at a training checkpoint."
            )
        return ResolvedModel(source, kind, None, target)
    started = time.perf_counter()
    folder = consolidate_cached(target, base=base)
    return ResolvedModel(source, kind, target, folder, round(time.perf_counter() - started, 3))


def resolve_pretrained(path: str | os.PathLike, base: str | None = None) -> Path:
    """Consolidated folder for a consolidated folder, training checkpoint or run directory."""
    return resolve_model(path, base=base).folder


# ----------------------------------------------------------------------------- decision requests


def is_decision_request(request: Any) -> bool:
    doc = getattr(request, "doc", None)
    return isinstance(doc, dict) and doc.get("so8t_decision") is True


# ----------------------------------------------------------------------------- the backend


class So8tLM(HFLM):
    """HFLM on a so8t model; decision requests answered by head B (decision_source=head)."""

    def __init__(
        self,
        pretrained: str,
        base: str | None = None,
        quantization: str | None = "none",
        decision_source: str = "head",
        allow_threshold: float | None = None,
        **kwargs: Any,
    ) -> None:
        quantization = quantization or "none"
        if not isinstance(pretrained, (str, os.PathLike)):
            raise UserError(
                "--model so8t needs pretrained=PATH (a consolidated folder, checkpoint or run directory)."
            )
        check_inference_args(decision_source, quantization, allow_threshold, kwargs)
        resolved = resolve_model(pretrained, base=base)
        config = (
            json.loads((resolved.folder / "config.json").read_text())
            if (resolved.folder / "config.json").is_file()
            else {}
        )
        if quantization != "none" and config.get("quantization_config"):
            raise UserError(
                f"quantization={quantization} was given, but {resolved.folder} is already quantised "
                f"({config['quantization_config'].get('quant_method', 'quantization_config')}); drop quantization=."
            )
        self.decision_source = decision_source
        self.allow_threshold = None if allow_threshold is None else float(allow_threshold)
        self.resolved = resolved
        self._quantization_config = (
            None if quantization == "none" else bnb_config(quantization, dtype=kwargs.get("dtype"))
        )
        self.quantization = quantization
        super().__init__(pretrained=str(resolved.folder), **kwargs)
        self.safety_head = (
            load_safety_head(resolved.folder, self._head_device()) if decision_source == "head" else None
        )

    def _head_device(self) -> torch.device:
        return self.model.get_output_embeddings().weight.device

    def _create_model(self, *args: Any, quantization_config: Any = None, **kwargs: Any) -> None:
        if self._quantization_config is not None:
            quantization_config = self._quantization_config
        super()._create_model(*args, quantization_config=quantization_config, **kwargs)

    # --- requests -------------------------------------------------------------------------------

    def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        if self.safety_head is None:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        head_positions = [i for i, request in enumerate(requests) if is_decision_request(request)]
        if not head_positions:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        results: list[Any] = [None] * len(requests)
        head_set = set(head_positions)
        other_positions = [i for i in range(len(requests)) if i not in head_set]
        if other_positions:
            answered = super().loglikelihood(
                [requests[i] for i in other_positions], disable_tqdm=disable_tqdm
            )
            for i, answer in zip(other_positions, answered, strict=True):
                results[i] = answer
        for i, answer in zip(
            head_positions, self._decide([requests[i] for i in head_positions]), strict=True
        ):
            results[i] = answer
        return results

    def _decide(self, requests: list) -> list[tuple[float, bool]]:
        """Head B's (log-score of the requested decision, whether it is the decision) per request."""
        classes = []
        for request in requests:
            context, continuation = request.args
            name = continuation.strip().upper()
            if name not in DECISIONS:
                raise ValueError(
                    f"task {request.task_name}: doc marked so8t_decision offers the choice {continuation!r}; "
                    f"decision choices must be {', '.join(DECISIONS)}"
                )
            classes.append(DECISIONS.index(name))
        contexts = list(dict.fromkeys(request.args[0] for request in requests))
        decided = dict(zip(contexts, self.decide_contexts(contexts), strict=True))
        answers = []
        for request, cls in zip(requests, classes, strict=True):
            decision, scores = decided[request.args[0]]
            answers.append((float(scores[cls]), bool(decision == cls)))
        return answers

    def decide_contexts(self, contexts: list[str]) -> list[tuple[int, list[float]]]:
        """(decision, log-scores per class) for each context; batched, longest first."""
        encoded = [self._encode_context(context) for context in contexts]
        order = sorted(range(len(contexts)), key=lambda i: -len(encoded[i]))
        batch_size = self.batch_size if isinstance(self.batch_size, int) else (self.max_batch_size or 8)
        out: list[Any] = [None] * len(contexts)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                tokens = encoded[i]
                input_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                attention_mask[row, : len(tokens)] = 1
            decided = decide(
                self.model,
                self.safety_head,
                input_ids.to(self.device),
                attention_mask.to(self.device),
                self.allow_threshold,
            )
            for row, i in enumerate(chunk):
                out[i] = (int(decided.decisions[row]), decided.scores[row].tolist())
        return out

    def _encode_context(self, context: str) -> list[int]:
        """The context tokens exactly as the LM path would see them (trailing spaces go to the choice)."""
        tokens = self.tok_encode(context.rstrip()) if context.strip() else [self.prefix_token_id]
        return tokens[-self.max_length :]

    # --- reporting ------------------------------------------------------------------------------

    def get_model_info(self) -> dict:
        info = super().get_model_info()
        info["so8t"] = {
            "source": str(self.resolved.source),
            "source_kind": self.resolved.kind,
            "checkpoint": str(self.resolved.checkpoint) if self.resolved.checkpoint else None,
            "consolidated_folder": str(self.resolved.folder),
            "consolidation_seconds": self.resolved.consolidation_seconds,
            "decision_source": self.decision_source,
            "allow_threshold": self.allow_threshold,
            "quantization": self.quantization,
        }
        return info
