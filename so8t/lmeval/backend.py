"""The `so8t` lm-eval backend: HFLM on the consolidated model, with safety decisions from head B.

`pretrained` may be a consolidated folder, a training checkpoint (consolidated once into a
content-addressed cache) or a run directory; it is resolved to a plain HF folder before
`HFLM.__init__`, so lm-eval's loading, accelerate data parallelism and quantised loading work as
for `--model hf` and nothing runs per token. Requests whose doc carries `so8t_decision: true`
(added by the so8t safety tasks' process_docs) are answered by head B when decision_source=head:
one forward over the context, h = the LM head's input at the last context token, log-softmax over
ALLOW / ESCALATE / REFUSE, then the fail-closed rule (so8t.model.decision_rule), whose reported scores
have the decision as their argmax. Everything else goes to HFLM unchanged. Unknown model args are refused
before anything loads (HFLM would hand them to transformers, which fails with a bare TypeError).

A model trained with chat prompts (so8t.json `prompt.format: chat`) is refused plain contexts: lm-eval renders
the chat template only under --apply_chat_template, and without it every score (head B's decisions included)
is of prompts the model never saw, while the results file looks like any other. A warning would scroll past
among lm-eval's own and leave that file to a gate or a leaderboard, so the backend stops with the flags to add
(`allow_plain_prompts=true` scores plain prompts on purpose).
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
from typing import Any

import torch
from lm_eval.models.huggingface import HFLM

from so8t.consolidate import resolve_model
from so8t.data.safety import DECISIONS
from so8t.data.templates import PromptFormat
from so8t.errors import UserError
from so8t.layout import HF_CONFIG
from so8t.layout.so8t_json import read_consolidated_info
from so8t.model.base import bnb_config
from so8t.model.inference import check_inference_args, decide, load_safety_head

# ----------------------------------------------------------------------------- decision requests


def is_decision_request(request: Any) -> bool:
    doc = getattr(request, "doc", None)
    return isinstance(doc, dict) and doc.get("so8t_decision") is True


# ----------------------------------------------------------------------------- model args

# transformers' own quantisation flags, which so8t spells as one model arg
_QUANTIZATION_FLAGS = {"load_in_8bit": "8bit", "load_in_4bit": "4bit", "quantization_config": "8bit or 4bit"}


def _named_parameters(function: Any) -> list[str]:
    return [
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
    ]


def valid_model_args() -> tuple[list[str], list[str]]:
    """(so8t's own model args, HFLM's): the names `--model so8t` accepts."""
    ours = _named_parameters(So8tLM.__init__)
    return ours, [name for name in _named_parameters(HFLM.__init__) if name not in ours]


def check_model_args(kwargs: dict[str, Any]) -> None:
    """UserError naming every unknown model arg, with the closest valid name and the list of valid ones.

    HFLM passes unknown keywords on to transformers' from_pretrained, which fails later with a bare TypeError
    (`decison_source=lm`); so8t accepts its own args and HFLM's named ones only.
    """
    ours, hflm = valid_model_args()
    unknown = [key for key in kwargs if key not in ours and key not in hflm]
    if not unknown:
        return
    problems = []
    for key in unknown:
        if key in _QUANTIZATION_FLAGS:
            problems.append(f"{key} (quantise with quantization={_QUANTIZATION_FLAGS[key]})")
            continue
        close = difflib.get_close_matches(key, ours + hflm, n=1, cutoff=0.6)
        problems.append(f"{key} (did you mean {close[0]}?)" if close else key)
    raise UserError(
        f"unknown model arg(s) for the so8t backend: {'; '.join(problems)}. Valid model args: so8t's "
        f"{', '.join(ours)}; lm-eval HFLM's {', '.join(hflm)}."
    )


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
        allow_plain_prompts: bool | str = False,
        **kwargs: Any,
    ) -> None:
        check_model_args(kwargs)
        quantization = quantization or "none"
        if not isinstance(pretrained, (str, os.PathLike)):
            raise UserError(
                "--model so8t needs pretrained=PATH (a consolidated folder, checkpoint or run directory)."
            )
        check_inference_args(decision_source, quantization, allow_threshold, kwargs)
        resolved = resolve_model(pretrained, base=base)
        config = (
            json.loads((resolved.folder / HF_CONFIG).read_text())
            if (resolved.folder / HF_CONFIG).is_file()
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
        self.prompt_format = PromptFormat.from_record(read_consolidated_info(resolved.folder).prompt)
        self.allow_plain_prompts = str(allow_plain_prompts).strip().lower() in ("true", "1", "yes")
        self._prompt_end = self.prompt_format.rendered_prompt_end(self.tokenizer)

    def _head_device(self) -> torch.device:
        return self.model.get_output_embeddings().weight.device

    def _create_model(self, *args: Any, quantization_config: Any = None, **kwargs: Any) -> None:
        if self._quantization_config is not None:
            quantization_config = self._quantization_config
        super()._create_model(*args, quantization_config=quantization_config, **kwargs)

    # --- requests -------------------------------------------------------------------------------

    def check_contexts(self, requests: list) -> None:
        """UserError when the model was trained with chat prompts and a request's context is not rendered by
        its chat template (it does not end as the template ends a prompt); see the module doc."""
        if self.allow_plain_prompts or not self._prompt_end:
            return
        plain = [r.args[0] for r in requests if not str(r.args[0]).rstrip().endswith(self._prompt_end)]
        if not plain:
            return
        flags = " ".join(self.prompt_format.lm_eval_cli_flags())
        shown = plain[0] if len(plain[0]) <= 120 else "..." + plain[0][-117:]
        raise UserError(
            f"{self.resolved.source} was trained with chat prompts (its recorded prompt format is chat), "
            f"but lm-eval handed it {len(plain)} of {len(requests)} contexts not rendered by its chat template, "
            f"e.g. {shown!r}: every score would be of prompts the model never saw. Add {flags} to the lm_eval "
            "command (`python -m so8t.lmeval.prompt_flags MODEL` prints them), or run `so8t eval`, which adds "
            "them; to score plain prompts on purpose, pass allow_plain_prompts=true in --model_args."
        )

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        self.check_contexts(requests)
        return super().generate_until(requests, disable_tqdm=disable_tqdm)

    def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        self.check_contexts(requests)
        if self.safety_head is None:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        head_positions = [i for i, request in enumerate(requests) if is_decision_request(request)]
        if not head_positions:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        if self.batch_size == "auto":
            # a size detected in an earlier call may not fit this call's contexts (HFLM resets it per call too)
            self.batch_sizes = {}
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

    def _head_batch_size(self, longest: list[int]) -> int:
        """The batch size for head-B forwards: the configured one, or with batch_size=auto the size HFLM
        detected in this run (detected here, by HFLM's own probe at the longest context, when it has none)."""
        if self.batch_size != "auto":
            return int(self.batch_size)
        if not self.batch_sizes:
            pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            # HFLM probes (context + continuation)[:-1]: one padding token makes the probe as wide as `longest`
            self.batch_sizes[0] = self._detect_batch_size([(None, longest, [pad_id])], 0)
        return max(1, min(self.batch_sizes.values()))

    def decide_contexts(self, contexts: list[str]) -> list[tuple[int, list[float]]]:
        """(decision, log-scores per class) for each context, by the fail-closed rule; batched, longest first.

        The scores' plain argmax is the decision (so8t.model.decision_rule); a context whose head-B scores are
        not finite decides REFUSE and reports NON_FINITE_SCORES, the only scores holding -inf.
        """
        encoded = [self._encode_context(context) for context in contexts]
        order = sorted(range(len(contexts)), key=lambda i: -len(encoded[i]))
        if not order:
            return []
        batch_size = self._head_batch_size(encoded[order[0]])
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
            # what the model was trained from, so a leaderboard can name the base without the model at hand
            "base_model": read_consolidated_info(self.resolved.folder).base_model,
        }
        return info
