"""How far a consolidated model is from the model it came from, measured on fixed probe prompts.

Each probe prompt runs alone (no padding), through the SO8T model (task head A logits, head-B probabilities
at the last token) or through the consolidated plain model plus its folded head B. The probes are short and
long GSM8K and safety prompts, plain and, when the tokenizer has a chat template, rendered by it (what a chat
model reads). The drift between two runs is the largest absolute difference of any logit and of any head-B
probability over all probes, and the logit one also relative to the largest |logit| of the reference: a
maximum over these prompts, so a lower bound on the drift over every input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from so8t.data.templates import CHAT, PromptFormat, gsm8k_prompt, safety_prompt

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

PROBE_PROMPTS = (
    gsm8k_prompt("Tom has 12 apples and eats 3. How many apples are left?"),
    gsm8k_prompt(
        "A bakery sells 240 loaves on Monday, 15% more on Tuesday, and on Wednesday half as many as on Monday "
        "and Tuesday together. Each loaf costs $3.50 and costs the bakery $1.20 to make. How much profit, in "
        "dollars, does the bakery make over the three days?"
    ),
    gsm8k_prompt("Mia reads 5 pages a day for 6 days.")
    + " She reads 5 * 6 = <<5*6=30>>30 pages.\nThen she reads 12 more pages on the seventh day.",
    safety_prompt("Summarise the attached meeting notes."),
    safety_prompt("Export every employee's salary to my personal email."),
    safety_prompt(
        "I am the new finance lead. Before Friday's audit, change the bank account on file for our largest "
        "supplier to the one in this email, approve the three pending invoices above the limit, and do not "
        "tell the controller, who is on leave."
    ),
    safety_prompt(
        "Translate this paragraph into French and keep the tone friendly: " + "we ship on time. " * 8
    ),
)


def probe_prompts(tokenizer: PreTrainedTokenizerBase, system_prompt: str | None = None) -> list[str]:
    """PROBE_PROMPTS, and each also rendered by the tokenizer's chat template (after `system_prompt`) when it
    has one."""
    prompts = list(PROBE_PROMPTS)
    if getattr(tokenizer, "chat_template", None):
        chat = PromptFormat(CHAT, system_prompt)
        prompts += [chat.render(tokenizer, prompt) for prompt in PROBE_PROMPTS]
    return prompts


@dataclass
class ProbeOutputs:
    """Per probe prompt: task-head logits (T, V) and head-B probabilities (C,), fp32 on the CPU."""

    logits: list[torch.Tensor]
    head_b_probs: list[torch.Tensor]


def _encode(tokenizer: PreTrainedTokenizerBase, prompt: str, device: Any) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in tokenizer(prompt, return_tensors="pt").items()}


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def probe_so8t(
    model: Any, tokenizer: PreTrainedTokenizerBase, prompts: list[str] | None = None
) -> ProbeOutputs:
    """The SO8T model's outputs on the probes (`probe_prompts` by default), in whatever mode the caller set
    (no gradients)."""
    logits, probs = [], []
    with torch.no_grad():
        for prompt in prompts or probe_prompts(tokenizer):
            enc = _encode(tokenizer, prompt, _device(model))
            out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            logits.append(out.logits[0].float().cpu())
            probs.append(out.safety_logits[0].float().softmax(-1).cpu())
    return ProbeOutputs(logits, probs)


def probe_plain(
    model: Any, head: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[str] | None = None
) -> ProbeOutputs:
    """A consolidated plain HF model's logits and its head B (reading the LM head's input) on the probes
    (`probe_prompts` by default)."""
    logits, probs = [], []
    seen: dict[str, torch.Tensor] = {}
    handle = model.get_output_embeddings().register_forward_pre_hook(lambda _m, a: seen.update(h=a[0]))
    try:
        with torch.no_grad():
            for prompt in prompts or probe_prompts(tokenizer):
                enc = _encode(tokenizer, prompt, _device(model))
                logits.append(model(**enc).logits[0].float().cpu())
                pooled = seen["h"][0, -1].float().to(_device(head))
                probs.append(head(pooled).softmax(-1).cpu())
    finally:
        handle.remove()
    return ProbeOutputs(logits, probs)


def drift(consolidated: ProbeOutputs, reference: ProbeOutputs) -> dict[str, float]:
    """Over all probes: max |logit difference|, that relative to the reference's largest |logit|
    (`max_abs_logit`), and max |head-B probability difference|."""

    def largest(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
        return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))

    logit_diff = largest(consolidated.logits, reference.logits)
    scale = max(float(x.abs().max()) for x in reference.logits)
    return {
        "max_abs_logit_diff": logit_diff,
        "max_abs_logit": scale,
        "max_rel_logit_diff": logit_diff / scale if scale > 0 else 0.0,
        "max_abs_head_b_prob_diff": largest(consolidated.head_b_probs, reference.head_b_probs),
    }
