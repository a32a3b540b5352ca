"""Head-B inference on a consolidated model: load head B, pool h at the last token, decide.

Shared by the lm-eval backend and `so8t predict` (so predict never imports lm_eval). A consolidated folder
keeps head B beside the plain HF model; head B reads the LM head's input h (R_safe is folded into its first
layer). `fail_closed` applies the one decision rule (so8t.model.decision_rule) to a batch: every caller turns
head B's probabilities into a decision through it.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from so8t.data.safety import DECISIONS
from so8t.errors import UserError
from so8t.layout import SAFETY_HEAD_FILE, safety_head_path
from so8t.layout.so8t_json import read_consolidated_info
from so8t.model.base import QUANTIZATIONS
from so8t.model.decision_rule import all_finite, decide_row
from so8t.model.heads import SafetyHead

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

# where decisions come from: head B, or the LM scoring the decision words (lm-eval only)
DECISION_SOURCES = ("head", "lm")


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
    path = safety_head_path(folder)
    if path is None:
        raise UserError(
            f"{folder} has no {SAFETY_HEAD_FILE}, so head B cannot decide: it is not a so8t consolidated "
            "folder. Run `so8t consolidate CHECKPOINT --out DIR` first (or point at the checkpoint or run "
            "directory itself), or with lm-eval score decisions with the LM (decision_source=lm)."
        )
    meta = read_consolidated_info(folder)
    state = load_file(str(path))
    hidden = int(state["net.0.weight"].shape[1])
    classes = meta.classes or list(DECISIONS)
    head = SafetyHead(hidden, len(classes), meta.safety_head.kind, meta.safety_head.mlp_hidden)
    head.load_state_dict(state)
    return head.to(device).eval()


class _HiddenCaptured(Exception):
    """Stops the forward at the LM head once its input is captured (the logits are not needed)."""


def last_token_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B,) index of each row's last non-padding token, whichever side the rows are padded on."""
    width = attention_mask.shape[1]
    positions = torch.arange(width, device=attention_mask.device).expand_as(attention_mask)
    return torch.where(attention_mask.bool(), positions, -1).max(dim=1).values


def _position_ids(model: Any, attention_mask: torch.Tensor) -> torch.Tensor | None:
    """Positions counted over real tokens only, so a left-padded row sees the positions of an unpadded one
    (HF models number positions from the first column otherwise); None when the model takes no position_ids."""
    if "position_ids" not in inspect.signature(model.forward).parameters:
        return None
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def last_token_hidden(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """h (B, D): the LM head's input at each row's last non-padding token (rows padded on either side)."""
    captured: list[torch.Tensor] = []

    def grab(_module: Any, args: tuple, kwargs: dict | None = None) -> None:
        captured.append(args[0] if args else next(iter(kwargs.values())))
        raise _HiddenCaptured

    extra = {}
    position_ids = _position_ids(model, attention_mask)
    if position_ids is not None:
        extra["position_ids"] = position_ids.to(input_ids.device)
    handle = model.get_output_embeddings().register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **extra)
    except _HiddenCaptured:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("the LM head was never called, so head B has no input")
    hidden = captured[0]
    last = last_token_positions(attention_mask).to(hidden.device)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def head_log_probs(head: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """log-softmax of head B over the classes (B, 3), computed in fp32."""
    weight = next(head.parameters())
    logits = head(hidden.to(device=weight.device, dtype=weight.dtype))
    return F.log_softmax(logits.float(), dim=-1)


def fail_closed(log_probs: torch.Tensor, allow_threshold: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The decision rule (so8t.model.decision_rule) on a batch: (decisions (B,), log-scores (B, 3), float64).

    Non-finite rows decide REFUSE, ties go to the stricter class, and an ALLOW below `allow_threshold` becomes
    ESCALATE (its probability mass moves to ESCALATE, so the scores stay a distribution). The scores' plain
    argmax is the decision in every row.
    """
    decided = [decide_row(row, allow_threshold) for row in log_probs.detach().double().cpu().tolist()]
    decisions = torch.tensor([d for d, _ in decided], dtype=torch.long, device=log_probs.device)
    scores = torch.tensor([s for _, s in decided], dtype=torch.float64, device=log_probs.device)
    return decisions, scores


@dataclass
class HeadDecisions:
    """Head B on a batch: `decisions` (B,) after the decision rule, `scores` (B, 3) the log-scores whose
    argmax is the decision, `log_probs` (B, 3) head B's own log-softmax (before the rule)."""

    decisions: torch.Tensor
    scores: torch.Tensor
    log_probs: torch.Tensor

    @property
    def non_finite(self) -> list[bool]:
        """Per row: head B's scores were not finite, so the row decided REFUSE without a real decision."""
        return [not all_finite(row) for row in self.log_probs.tolist()]


def decide(
    model: Any,
    head: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    allow_threshold: float | None,
) -> HeadDecisions:
    """Head B's decisions for padded prompts (either side): h at each row's last token, head B, fail_closed."""
    log_probs = head_log_probs(head, last_token_hidden(model, input_ids, attention_mask))
    decisions, scores = fail_closed(log_probs, allow_threshold)
    return HeadDecisions(decisions, scores, log_probs)


# ----------------------------------------------------------------------------- over-long requests

# lm-eval's fallback when neither the config nor the tokenizer names a context length
DEFAULT_CONTEXT_WINDOW = 2048
_WINDOW_CONFIG_KEYS = ("n_positions", "max_position_embeddings", "n_ctx")
# tokenizers without a length limit report this sentinel (transformers' VERY_LARGE_INTEGER)
_UNSET_TOKENIZER_LENGTH = int(1e30)


def context_window(model: Any, tokenizer: PreTrainedTokenizerBase = None) -> int:
    """How many tokens the model reads at once, found as lm-eval's HFLM finds it: the (text) config's
    n_positions / max_position_embeddings / n_ctx, else the tokenizer's model_max_length, else 2048."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for key in _WINDOW_CONFIG_KEYS:
        value = getattr(config, key, None)
        if value is not None:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and int(limit) < _UNSET_TOKENIZER_LENGTH:
        return int(limit)
    return DEFAULT_CONTEXT_WINDOW


def keep_end(token_ids: list[int], max_tokens: int) -> list[int]:
    """The last `max_tokens` ids: an over-long prompt loses its beginning and keeps its "Decision:" or
    "Answer:" cue, as training (so8t.train.collate) and the lm-eval backend truncate."""
    return list(token_ids[-max_tokens:]) if len(token_ids) > max_tokens else list(token_ids)
