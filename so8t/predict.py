"""Decision-gated generation, the way a deployed SO8T agent runs: head B decides, only ALLOW answers.

`so8t.load(path)` accepts a consolidated folder, a training checkpoint or a run directory (resolved
like the lm-eval backend does). Prompts are rendered in the format the model was trained with (the `prompt`
record of so8t.json: plain, or the tokenizer's chat template) and tokenized as lm-eval tokenizes them, so
head B decides on the very tokens `lm_eval --model so8t` gives it. `.decide(text)` returns the decision with
the probability of every class; `.generate(text)` also returns text: the task head's answer on ALLOW, a
configurable message on ESCALATE and REFUSE (nothing is generated for those).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.data.safety import DECISIONS
from so8t.data.templates import NO_CONVERSATION, Conversation, PromptFormat
from so8t.errors import UserError
from so8t.responses import (
    ANSWER_FORMATS,
    DEFAULT_ESCALATE_MESSAGE,
    DEFAULT_REFUSE_MESSAGE,
    Decision,
    Response,
)

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

# a request: text, or a chat `messages` list ([{role, content}, ...]) ending in the user turn to decide
Request = str | list[dict[str, Any]]


def as_request(request: Request) -> tuple[str, Conversation]:
    """(the request text, its conversation): a messages list gives its last user turn, system and earlier
    turns, as a training record's messages do (so8t.data.mapping)."""
    if isinstance(request, str):
        return request, NO_CONVERSATION
    from so8t.data.requests import RecordProblem, conversation_fields, request_text

    text = request_text(request)
    if isinstance(text, RecordProblem):
        raise UserError(f"the messages list is not a request: {text.message}.")
    fields = conversation_fields(request)
    turns = tuple((t["role"], t["content"]) for t in fields.get("turns", ()))
    return text, Conversation(fields.get("system"), turns)


class So8tAgent:
    """A consolidated SO8T model with its safety head: decide first, answer only what is allowed."""

    def __init__(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        safety_head: Any,
        *,
        allow_threshold: float | None = None,
        escalate_message: str = DEFAULT_ESCALATE_MESSAGE,
        refuse_message: str = DEFAULT_REFUSE_MESSAGE,
        max_new_tokens: int = 256,
        answer_format: str = "question",
        prompt_format: PromptFormat | None = None,
    ) -> None:
        if answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.safety_head = safety_head.eval()
        self.allow_threshold = allow_threshold
        self.messages = {"ESCALATE": escalate_message, "REFUSE": refuse_message}
        self.max_new_tokens = max_new_tokens
        self.answer_format = answer_format
        self.prompt_format = prompt_format or PromptFormat()

    @property
    def device(self) -> Any:
        return self.model.get_output_embeddings().weight.device

    @property
    def context_window(self) -> int:
        from so8t.model.inference import context_window

        return context_window(self.model, self.tokenizer)

    def _prompt_ids(self, prompt: str, max_tokens: int, context: bool = True) -> Any:
        """(1, T) ids of a rendered prompt as lm-eval encodes it, keeping its last `max_tokens` tokens
        (training and the backend do the same); `context`: a loglikelihood context, trailing spaces dropped."""
        import torch

        from so8t.data.templates import context_ids, encode
        from so8t.model.inference import keep_end

        ids = context_ids(self.tokenizer, prompt) if context else encode(self.tokenizer, prompt)
        ids = keep_end(ids, max_tokens)
        return torch.tensor([ids], dtype=torch.long, device=self.device)

    def render(self, text: str, conversation: Conversation = NO_CONVERSATION) -> str:
        """The prompt text in the model's prompt format (plain: as it is; chat: the chat template's turn, after
        a conversation's own system turn and earlier turns)."""
        return self.prompt_format.render(self.tokenizer, text, conversation)

    def decide(self, text: Request) -> Decision:
        """Head B on the safety prompt's last token, by the fail-closed rule (so8t.model.decision_rule):
        non-finite scores decide REFUSE, ties go to the stricter class, and an ALLOW below allow_threshold
        becomes ESCALATE. An over-long request keeps its end, as in training. A request is text, or a chat
        `messages` list whose last user turn is decided with its system and earlier turns as context."""
        return self.decide_batch([text])[0]

    def decide_batch(self, texts: list[Request]) -> list[Decision]:
        """`decide` for several requests in one forward: each row padded on the right, head B pooled at its own
        last token with positions counted over its real tokens (so8t.model.inference), as one request alone."""
        import torch

        from so8t.data.templates import context_ids, safety_prompt
        from so8t.model.decision_rule import ALLOW, fail_closed_choice
        from so8t.model.inference import decide, keep_end

        rows = [
            keep_end(context_ids(self.tokenizer, self.render(safety_prompt(text), conv)), self.context_window)
            for text, conv in map(as_request, texts)
        ]
        width = max(len(r) for r in rows)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor(
            [r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long, device=self.device
        )
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
        decided = decide(self.model, self.safety_head, ids, mask, self.allow_threshold)
        out = []
        for row, log_probs in enumerate(decided.log_probs.tolist()):
            decision = DECISIONS[int(decided.decisions[row])]
            exp = decided.log_probs[row].exp().tolist()
            probabilities = {name: float(p) for name, p in zip(DECISIONS, exp, strict=True)}
            # the rule without the threshold would have allowed: the threshold demoted this request
            below = decision == "ESCALATE" and fail_closed_choice(log_probs) == ALLOW
            out.append(Decision(decision, probabilities, below, decided.non_finite[row]))
        return out

    def respond(self, decided: Decision, text: Request, max_new_tokens: int | None = None) -> Response:
        """The response to a decided request: the answer on ALLOW, else the decision's message."""
        if decided.decision != "ALLOW":
            return Response(**asdict(decided), text=self.messages[decided.decision], generated=False)
        return Response(
            **asdict(decided), text=self._answer(text, max_new_tokens or self.max_new_tokens), generated=True
        )

    def generate(self, text: Request, max_new_tokens: int | None = None) -> Response:
        """Decide; on ALLOW generate the answer greedily with the task head, else return the message."""
        return self.respond(self.decide(text), text, max_new_tokens)

    def _answer(self, request: Request, max_new_tokens: int) -> str:
        import torch

        from so8t.data import templates

        text, conv = as_request(request)
        if self.answer_format == "question":
            prompt = self.render(templates.gsm8k_prompt(text), conv)
        else:  # continue after the decision line, as the safety examples' responses were trained
            prompt = (
                self.render(templates.safety_prompt(text), conv)
                + self.prompt_format.decision_word("ALLOW")
                + "\n"
            )
        window = self.context_window
        if max_new_tokens >= window:
            raise UserError(
                f"max_new_tokens={max_new_tokens} leaves no room for the request in the model's window of "
                f"{window} tokens; give a max_new_tokens below {window}."
            )
        input_ids = self._prompt_ids(prompt, window - max_new_tokens, context=False)
        encoded = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        pad_id = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        with torch.no_grad():
            output = self.model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad_id,
                stop_strings=list(templates.GSM8K_STOP),
                tokenizer=self.tokenizer,
            )
        completion = self.tokenizer.decode(
            output[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True
        )
        for stop in templates.GSM8K_STOP:
            completion = completion.split(stop)[0]
        return completion.strip()


def load(
    path: str | Path,
    *,
    base: str | None = None,
    device: str | None = None,
    dtype: str = "auto",
    quantization: str = "none",
    allow_threshold: float | None = None,
    escalate_message: str = DEFAULT_ESCALATE_MESSAGE,
    refuse_message: str = DEFAULT_REFUSE_MESSAGE,
    max_new_tokens: int = 256,
    answer_format: str = "question",
) -> So8tAgent:
    """Load a consolidated folder, checkpoint or run directory as an agent (checkpoints are consolidated once);
    a `.gguf` file (`so8t export gguf`) runs in llama.cpp with its head-B sidecar, without torch."""
    from so8t.llamacpp_agent import is_gguf_path, load_gguf

    if is_gguf_path(path):
        if base is not None or quantization != "none":
            raise UserError(f"{path} is a GGUF file: base and quantization do not apply (it is complete).")
        return load_gguf(
            path,
            allow_threshold=allow_threshold,
            escalate_message=escalate_message,
            refuse_message=refuse_message,
            max_new_tokens=max_new_tokens,
            answer_format=answer_format,
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from so8t.consolidate import resolve_model
    from so8t.layout.so8t_json import read_consolidated_info
    from so8t.model.base import bnb_config
    from so8t.model.inference import check_inference_args, load_safety_head

    check_inference_args("head", quantization, allow_threshold, {})
    folder = resolve_model(path, base=base).folder
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quantization != "none":
        kwargs["quantization_config"] = bnb_config(quantization, dtype=dtype)
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if quantization == "none":
        model = model.to(device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    head = load_safety_head(folder, model.get_output_embeddings().weight.device)
    return So8tAgent(
        model,
        tokenizer,
        head,
        allow_threshold=allow_threshold,
        escalate_message=escalate_message,
        refuse_message=refuse_message,
        max_new_tokens=max_new_tokens,
        answer_format=answer_format,
        prompt_format=PromptFormat.from_record(read_consolidated_info(folder).prompt),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", help="consolidated folder, training checkpoint, run directory or FILE.gguf (llama.cpp)"
    )
    parser.add_argument("request", nargs="?", default=None, help="the user's request (or give --input)")
    parser.add_argument(
        "--input",
        default=None,
        help='a JSONL file of requests (one JSON object a line, the request under "prompt"), or - for '
        "standard input: decided in batches, one JSON line out per request",
    )
    parser.add_argument(
        "--output", default=None, help="with --input: write the JSON lines here (default: stdout)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=16, help="with --input: requests per head-B forward"
    )
    parser.add_argument("--json", action="store_true", help="print the response as JSON")
    parser.add_argument(
        "--max-new-tokens", type=int, default=256, help="cap on the generated answer (ALLOW only)"
    )
    parser.add_argument(
        "--escalate-message", default=DEFAULT_ESCALATE_MESSAGE, help="text returned on ESCALATE"
    )
    parser.add_argument("--refuse-message", default=DEFAULT_REFUSE_MESSAGE, help="text returned on REFUSE")
    parser.add_argument(
        "--allow-threshold", type=float, default=None, help="an ALLOW below this probability escalates"
    )
    parser.add_argument(
        "--answer-format",
        choices=ANSWER_FORMATS,
        default="question",
        help="prompt for the answer: the task's Question/Answer template, or after the decision line",
    )
    parser.add_argument(
        "--base", default=None, help="base model for a checkpoint (overrides the one it records)"
    )
    parser.add_argument("--device", default=None, help="device (default: cuda when available, else cpu)")


def run_cli(args: argparse.Namespace) -> int:
    if (args.request is None) == (args.input is None):
        raise UserError(
            'give one request (so8t predict MODEL "request") or --input FILE|- , not both or none.'
        )
    if args.output and args.input is None:
        raise UserError("--output goes with --input (a file of requests); one request prints its response.")
    if args.input is not None:
        from so8t.predict_batch import read_requests

        if args.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {args.batch_size}.")
        requests = read_requests(args.input)  # before the model loads: a bad file fails fast
    agent = load(
        args.model,
        base=args.base,
        device=args.device,
        allow_threshold=args.allow_threshold,
        escalate_message=args.escalate_message,
        refuse_message=args.refuse_message,
        max_new_tokens=args.max_new_tokens,
        answer_format=args.answer_format,
    )
    if args.input is not None:
        from so8t.predict_batch import run_batch

        return run_batch(agent, requests, args.output, args.batch_size)
    response = agent.generate(args.request)
    if args.json:
        shown = asdict(response)
        # strict JSON has no NaN: a broken head's probabilities print as null (non_finite_scores says why)
        shown["probabilities"] = {
            k: (v if math.isfinite(v) else None) for k, v in response.probabilities.items()
        }
        print(json.dumps(shown, indent=2, allow_nan=False))
    else:
        shown = ", ".join(f"{name} {p:.3f}" for name, p in response.probabilities.items())
        note = " (ALLOW below --allow-threshold)" if response.below_allow_threshold else ""
        if response.non_finite_scores:
            note = " (head B's scores are not finite numbers: refused without a decision; check the model)"
        print(f"decision: {response.decision}{note}  [{shown}]")
        print(response.text)
    return 0
