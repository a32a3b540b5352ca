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

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.models.huggingface import HFLM

from so8t.consolidate import resolve_model
from so8t.data.safety import DECISIONS
from so8t.errors import UserError
from so8t.layout import SAFETY_HEAD_FILE

DECISION_SOURCES = ("head", "lm")
QUANTIZATIONS = ("none", "8bit", "4bit")
ESCALATE = DECISIONS.index("ESCALATE")
ALLOW = DECISIONS.index("ALLOW")


# ----------------------------------------------------------------------------- head B


class _HiddenCaptured(Exception):
    """Stops the forward at the LM head once its input is captured (the logits are not needed)."""


def last_token_hidden(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """h (B, D): the LM head's input at each row's last non-padding token (rows right-padded)."""
    captured: list[torch.Tensor] = []

    def grab(_module: Any, args: tuple, kwargs: dict | None = None) -> None:
        captured.append(args[0] if args else next(iter(kwargs.values())))
        raise _HiddenCaptured

    handle = model.get_output_embeddings().register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _HiddenCaptured:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("the LM head was never called, so head B has no input")
    hidden = captured[0]
    last = attention_mask.sum(dim=1).to(hidden.device) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def head_log_probs(head: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """log-softmax of head B over the classes (B, 3), computed in fp32."""
    weight = next(head.parameters())
    logits = head(hidden.to(device=weight.device, dtype=weight.dtype))
    return F.log_softmax(logits.float(), dim=-1)


def fail_closed(log_probs: torch.Tensor, allow_threshold: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(decisions (B,), log-scores (B, 3)): an ALLOW below `allow_threshold` becomes ESCALATE.

    The thresholded rows move ALLOW's probability mass to ESCALATE, so the scores stay a distribution
    and their argmax is the decision.
    """
    decisions = log_probs.argmax(dim=-1)
    if allow_threshold is None:
        return decisions, log_probs
    probs = log_probs.exp()
    demote = (decisions == ALLOW) & (probs[:, ALLOW] < allow_threshold)
    if demote.any():
        probs = probs.clone()
        probs[demote, ESCALATE] += probs[demote, ALLOW]
        probs[demote, ALLOW] = 0.0
        decisions = torch.where(demote, torch.full_like(decisions, ESCALATE), decisions)
    return decisions, probs.log()


def load_safety_head(folder: Path, device: Any) -> torch.nn.Module:
    from so8t.consolidate import load_consolidated_safety_head

    if not (folder / SAFETY_HEAD_FILE).is_file():
        raise UserError(
            f"{folder} has no {SAFETY_HEAD_FILE}, so head B cannot decide; re-consolidate the checkpoint "
            "or use decision_source=lm."
        )
    return load_consolidated_safety_head(folder).to(device).eval()


def is_decision_request(request: Any) -> bool:
    doc = getattr(request, "doc", None)
    return isinstance(doc, dict) and doc.get("so8t_decision") is True


# ----------------------------------------------------------------------------- the backend


def _check_model_args(decision_source: str, quantization: str, allow_threshold: Any, kwargs: dict) -> None:
    if decision_source not in DECISION_SOURCES:
        raise UserError(
            f"decision_source={decision_source!r}; expected one of {', '.join(DECISION_SOURCES)}."
        )
    if quantization not in QUANTIZATIONS:
        raise UserError(f"quantization={quantization!r}; expected one of {', '.join(QUANTIZATIONS)}.")
    if allow_threshold is not None:
        if (
            isinstance(allow_threshold, bool)
            or not isinstance(allow_threshold, (int, float))
            or not 0 < allow_threshold <= 1
        ):
            raise UserError(f"allow_threshold={allow_threshold!r}; expected a probability in (0, 1].")
        if decision_source == "lm":
            raise UserError(
                "allow_threshold applies to head B's probabilities, but decision_source=lm scores the decision "
                "words with the LM; drop allow_threshold or use decision_source=head."
            )
    bare = [k for k in ("load_in_4bit", "load_in_8bit", "quantization_config") if kwargs.get(k)]
    if bare and quantization != "none":
        raise UserError(
            f"quantization={quantization} conflicts with {', '.join(bare)}; give only quantization=."
        )


def bnb_config(quantization: str, dtype: Any) -> Any:
    """BitsAndBytesConfig for quantization=8bit|4bit (transformers 5 takes no bare load_in_4bit)."""
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if isinstance(dtype, str) and dtype != "auto":
        compute = getattr(torch, dtype)
    elif isinstance(dtype, torch.dtype):
        compute = dtype
    elif torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        compute = torch.bfloat16
    else:
        compute = torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


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
        _check_model_args(decision_source, quantization, allow_threshold, kwargs)
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
            None if quantization == "none" else bnb_config(quantization, kwargs.get("dtype"))
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
            hidden = last_token_hidden(self.model, input_ids.to(self.device), attention_mask.to(self.device))
            decisions, scores = fail_closed(head_log_probs(self.safety_head, hidden), self.allow_threshold)
            for row, i in enumerate(chunk):
                out[i] = (int(decisions[row]), scores[row].tolist())
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
