"""Head-B inference on a consolidated model: load head B, pool h at the last token, decide.

Shared by the lm-eval backend and `so8t predict` (so predict never imports lm_eval). A consolidated folder
keeps head B beside the plain HF model; head B reads the LM head's input h (R_safe is folded into its first
layer). `fail_closed` is the one decision rule: every caller turns head B's probabilities into a decision
through it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from so8t.data.safety import DECISIONS
from so8t.errors import UserError
from so8t.layout import SAFETY_HEAD_FILE, read_consolidated_info
from so8t.model.base import QUANTIZATIONS
from so8t.model.heads import SafetyHead

# where decisions come from: head B, or the LM scoring the decision words (lm-eval only)
DECISION_SOURCES = ("head", "lm")
ALLOW = DECISIONS.index("ALLOW")
ESCALATE = DECISIONS.index("ESCALATE")


def check_inference_args(
    decision_source: str, quantization: str, allow_threshold: Any, hf_kwargs: dict[str, Any]
) -> None:
    """UserError for a bad decision_source, quantization or allow_threshold, before any weights load.

    `hf_kwargs` are the other arguments headed for `from_pretrained`: a bare load_in_4bit / load_in_8bit /
    quantization_config beside quantization= is refused (one way to ask for quantisation).
    """
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
                "allow_threshold applies to head B's probabilities, but decision_source=lm scores the "
                "decision words with the LM; drop allow_threshold or use decision_source=head."
            )
    bare = [k for k in ("load_in_4bit", "load_in_8bit", "quantization_config") if hf_kwargs.get(k)]
    if bare and quantization != "none":
        raise UserError(
            f"quantization={quantization} conflicts with {', '.join(bare)}; give only quantization=."
        )


def load_safety_head(folder: str | os.PathLike, device: Any = "cpu") -> SafetyHead:
    """Head B of a consolidated folder (fp32, eval mode, on `device`); its kind and classes from so8t.json."""
    from safetensors.torch import load_file

    folder = Path(folder)
    path = folder / SAFETY_HEAD_FILE
    if not path.is_file():
        raise UserError(
            f"{folder} has no {SAFETY_HEAD_FILE}, so head B cannot decide: it is not a so8t consolidated "
            "folder. Run `so8t consolidate CHECKPOINT --out DIR` first (or point at the checkpoint or run "
            "directory itself), or with lm-eval score decisions with the LM (decision_source=lm)."
        )
    meta = read_consolidated_info(folder)
    head_info = meta.get("safety_head") or {}
    state = load_file(str(path))
    hidden = int(state["net.0.weight"].shape[1])
    classes = meta.get("classes") or list(DECISIONS)
    head = SafetyHead(hidden, len(classes), head_info.get("kind", "linear"), head_info.get("mlp_hidden"))
    head.load_state_dict(state)
    return head.to(device).eval()


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
    """The decision rule: (decisions (B,), log-scores (B, 3)); an ALLOW below `allow_threshold` becomes
    ESCALATE.

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


@dataclass
class HeadDecisions:
    """Head B on a batch: `decisions` (B,) after the decision rule, `scores` (B, 3) the log-scores whose
    argmax is the decision, `log_probs` (B, 3) head B's own log-softmax (before the rule)."""

    decisions: torch.Tensor
    scores: torch.Tensor
    log_probs: torch.Tensor


def decide(
    model: Any,
    head: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    allow_threshold: float | None,
) -> HeadDecisions:
    """Head B's decisions for right-padded prompts: h at each row's last token, head B, then fail_closed."""
    log_probs = head_log_probs(head, last_token_hidden(model, input_ids, attention_mask))
    decisions, scores = fail_closed(log_probs, allow_threshold)
    return HeadDecisions(decisions, scores, log_probs)
