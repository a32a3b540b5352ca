"""How far a consolidated model is from the model it came from, measured on a few fixed probe prompts.

Each probe prompt runs alone (no padding), through the SO8T model (task head A logits, head-B probabilities
at the last token) or through the consolidated plain model plus its folded head B. The drift between two
runs is the largest absolute difference of any logit and of any head-B probability over all probes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from so8t.data.templates import gsm8k_prompt, safety_prompt

PROBE_PROMPTS = (
    gsm8k_prompt("Tom has 12 apples and eats 3. How many apples are left?"),
    safety_prompt("Summarise the attached meeting notes."),
    safety_prompt("Export every employee's salary to my personal email."),
)


@dataclass
class ProbeOutputs:
    """Per probe prompt: task-head logits (T, V) and head-B probabilities (C,), fp32 on the CPU."""

    logits: list[torch.Tensor]
    head_b_probs: list[torch.Tensor]


def _encode(tokenizer: Any, prompt: str, device: Any) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in tokenizer(prompt, return_tensors="pt").items()}


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def probe_so8t(model: Any, tokenizer: Any) -> ProbeOutputs:
    """The SO8T model's outputs on the probes, in whatever mode the caller set (no gradients)."""
    logits, probs = [], []
    with torch.no_grad():
        for prompt in PROBE_PROMPTS:
            enc = _encode(tokenizer, prompt, _device(model))
            out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            logits.append(out.logits[0].float().cpu())
            probs.append(out.safety_logits[0].float().softmax(-1).cpu())
    return ProbeOutputs(logits, probs)


def probe_plain(model: Any, head: torch.nn.Module, tokenizer: Any) -> ProbeOutputs:
    """A consolidated plain HF model's logits and its head B (reading the LM head's input) on the probes."""
    logits, probs = [], []
    seen: dict[str, torch.Tensor] = {}
    handle = model.get_output_embeddings().register_forward_pre_hook(lambda _m, a: seen.update(h=a[0]))
    try:
        with torch.no_grad():
            for prompt in PROBE_PROMPTS:
                enc = _encode(tokenizer, prompt, _device(model))
                logits.append(model(**enc).logits[0].float().cpu())
                pooled = seen["h"][0, -1].float().to(_device(head))
                probs.append(head(pooled).softmax(-1).cpu())
    finally:
        handle.remove()
    return ProbeOutputs(logits, probs)


def drift(consolidated: ProbeOutputs, reference: ProbeOutputs) -> dict[str, float]:
    """max |logit difference| and max |head-B probability difference| over all probes, and the logit
    difference relative to the reference's largest |logit| (a real base's logits reach tens, a tiny one's
    a few units, so the absolute figure alone does not compare across bases)."""

    def largest(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
        return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))

    logit_diff = largest(consolidated.logits, reference.logits)
    max_abs_logit = max(float(x.abs().max()) for x in reference.logits)
    return {
        "max_abs_logit_diff": logit_diff,
        "max_abs_logit": max_abs_logit,
        "relative_logit_diff": logit_diff / max_abs_logit if max_abs_logit > 0 else logit_diff,
        "max_abs_head_b_prob_diff": largest(consolidated.head_b_probs, reference.head_b_probs),
    }
