"""The SO8T agent inside llama.cpp: a GGUF file and its head-B sidecar, run through xllamacpp, without torch.

`load_gguf(FILE.gguf)` (also `so8t.load` and `so8t predict` on a `.gguf` path) starts one in-process llama.cpp
server with embeddings on (last-token pooling, `embd_normalize: -1`: llama.cpp L2-normalises by default, and
head B reads the raw state after the final norm), which serves completions too. Prompts are rendered and
tokenised as `so8t predict` does on the consolidated model (so8t.data.templates: the safety prompt, the chat
template from the file rendered as transformers renders it, lm-eval's context tokens), the tokens coming from
llama.cpp's tokenizer. `decide` runs head B on the embedding of the last prompt token through the one decision
rule (so8t.model.decision_rule: fail closed); `generate` answers greedily with llama.cpp on ALLOW only.

A GGUF file is untrusted input: it is read with the `gguf` package first, and a file that does not parse, or
is not a language model llama.cpp runs, is a UserError before llama.cpp opens it.
"""

from __future__ import annotations

import json
import math
import os
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from so8t.data.safety import DECISIONS
from so8t.data.templates import PromptFormat
from so8t.errors import UserError
from so8t.responses import (
    ANSWER_FORMATS,
    DEFAULT_ESCALATE_MESSAGE,
    DEFAULT_REFUSE_MESSAGE,
    Decision,
    Response,
)

GGUF_SUFFIX = ".gguf"
# the most tokens the agent's llama.cpp context holds (the model's own window when smaller)
MAX_WINDOW = 2048
_READ_ERRORS = (ValueError, IndexError, KeyError, TypeError, OverflowError, OSError, EOFError)


def is_gguf_path(path: str | os.PathLike) -> bool:
    return str(path).endswith(GGUF_SUFFIX)


def read_gguf_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The GGUF file's key-value metadata (arrays of tokens included); UserError for a malformed file."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such GGUF file.")
    try:
        reader = gguf.GGUFReader(str(path))
        metadata = {key: field.contents() for key, field in reader.fields.items()}
        tensors = len(reader.tensors)
    except _READ_ERRORS as exc:
        raise UserError(
            f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc}); it may be truncated or not "
            "GGUF at all. Export it again with `so8t export gguf`."
        ) from exc
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str) or not tensors or "tokenizer.ggml.tokens" not in metadata:
        raise UserError(
            f"{path} is a GGUF file without a language model's architecture, tensors and tokenizer; export "
            "the model with `so8t export gguf`."
        )
    return metadata


class LlamaCppTokenizer:
    """What so8t.data.templates needs of a tokenizer, answered by llama.cpp's tokenizer and the file's
    metadata: special token ids, encode, decode of a special token, and the chat template."""

    def __init__(self, server_address: str, metadata: dict[str, Any]) -> None:
        self.address = server_address
        self.tokens: list[str] = list(metadata["tokenizer.ggml.tokens"])
        self.bos_token_id = metadata.get("tokenizer.ggml.bos_token_id")
        self.eos_token_id = metadata.get("tokenizer.ggml.eos_token_id")
        self.pad_token_id = metadata.get("tokenizer.ggml.padding_token_id")
        self.chat_template = metadata.get("tokenizer.chat_template")

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.address + endpoint, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids as llama.cpp makes them; special tokens written in the text are parsed, as HF does."""
        body = {"content": text, "add_special": add_special_tokens, "parse_special": True}
        return [int(t) for t in self._post("/tokenize", body)["tokens"]]

    def token_text(self, token_id: int) -> str:
        return self.tokens[int(token_id)]

    def decode(self, token_id: int) -> str:
        """The text of one token as the vocabulary stores it (used for the BOS/EOS prefix check)."""
        return self.token_text(token_id)

    def apply_chat_template(
        self,
        messages: list[dict[str, str]],
        tokenize: bool = False,
        add_generation_prompt: bool = False,
        continue_final_message: bool = False,
    ) -> str:
        """The file's chat template rendered as transformers renders it (sandboxed jinja2, trimmed blocks)."""
        from jinja2.exceptions import TemplateError
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        if not self.chat_template:
            raise UserError(
                "the GGUF file has no chat template, but the model was trained with chat prompts."
            )

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.globals["raise_exception"] = raise_exception
        special = {
            f"{name}_token": self.token_text(i) if i is not None else None
            for name, i in (
                ("bos", self.bos_token_id),
                ("eos", self.eos_token_id),
                ("pad", self.pad_token_id),
            )
        }
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, **special
        )


def start_server(gguf_file: Path, n_ctx: int, threads: int | None = None) -> Any:
    """One in-process llama.cpp server for the file: completions and raw last-token embeddings."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf_file)
    params.embedding = True
    params.embd_normalize = -1
    params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_LAST
    params.n_ctx = n_ctx
    # an embedding is computed in one micro-batch, so it must hold the longest prompt
    params.n_batch = params.n_ubatch = n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = threads or max(1, min(4, os.cpu_count() or 1))
    params.cpuparams_batch.n_threads = params.cpuparams.n_threads
    params.warmup = False
    params.verbosity = 0
    try:
        return xllamacpp.Server(params)
    except Exception as exc:  # llama.cpp's own errors surface as RuntimeError or ValueError
        raise UserError(f"llama.cpp could not load {gguf_file}: {exc}") from exc


class LlamaCppAgent:
    """A GGUF SO8T model in llama.cpp with its head B: decide first, answer only what is allowed."""

    def __init__(
        self,
        gguf_file: str | os.PathLike,
        *,
        allow_threshold: float | None = None,
        escalate_message: str = DEFAULT_ESCALATE_MESSAGE,
        refuse_message: str = DEFAULT_REFUSE_MESSAGE,
        max_new_tokens: int = 256,
        answer_format: str = "question",
        threads: int | None = None,
    ) -> None:
        from so8t.export.sidecar import read_sidecar

        if answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")
        if allow_threshold is not None and not (
            isinstance(allow_threshold, (int, float)) and 0 < allow_threshold <= 1
        ):
            raise UserError(f"allow_threshold={allow_threshold!r}; expected a probability in (0, 1].")
        self.path = Path(gguf_file)
        metadata = read_gguf_metadata(self.path)
        self.head, info = read_sidecar(self.path)
        arch = metadata["general.architecture"]
        width = metadata.get(f"{arch}.embedding_length")
        if width != self.head.hidden_size:
            raise UserError(
                f"{self.path}: head B reads {self.head.hidden_size} features but the model's width is {width}; "
                "the sidecar belongs to another model. Export the model and its head together again."
            )
        # llama.cpp computes an embedding in one micro-batch of the window: a bounded window keeps its
        # buffers small (requests longer than it keep their end, as over-long requests do everywhere)
        self.context_window = min(int(metadata.get(f"{arch}.context_length") or MAX_WINDOW), MAX_WINDOW)
        self.allow_threshold = allow_threshold if allow_threshold is not None else info.allow_threshold
        self.messages = {"ESCALATE": escalate_message, "REFUSE": refuse_message}
        self.max_new_tokens = max_new_tokens
        self.answer_format = answer_format
        self.prompt_format = PromptFormat.from_record(info.prompt)
        self.server = start_server(self.path, self.context_window, threads)
        self.tokenizer = LlamaCppTokenizer(self.server.listening_address, metadata)

    def render(self, text: str) -> str:
        return self.prompt_format.render(self.tokenizer, text)

    def safety_ids(self, text: str) -> list[int]:
        """The safety prompt's tokens as head B reads them (lm-eval's context tokens), keeping the end of an
        over-long request as training does."""
        from so8t.data.templates import context_ids, safety_prompt

        return context_ids(self.tokenizer, self.render(safety_prompt(text)))[-self.context_window :]

    def embedding(self, ids: list[int]) -> list[float]:
        """llama.cpp's raw hidden state after the final norm at the last of `ids`."""
        answer = self.server.handle_embeddings({"input": ids})
        if "data" not in answer:
            raise RuntimeError(f"llama.cpp returned no embedding: {answer}")
        return answer["data"][0]["embedding"]

    def decide(self, text: str) -> Decision:
        """Head B on llama.cpp's embedding of the safety prompt, by the fail-closed decision rule."""
        from so8t.model.decision_rule import ALLOW, all_finite, decide_row, fail_closed_choice

        log_probs = self.head.log_probs(self.embedding(self.safety_ids(text)))
        decision = DECISIONS[decide_row(log_probs, self.allow_threshold)[0]]
        finite = all_finite(log_probs)
        probabilities = {name: math.exp(lp) for name, lp in zip(DECISIONS, log_probs, strict=True)}
        # the rule without the threshold would have allowed: the threshold demoted this request
        below = decision == "ESCALATE" and finite and fail_closed_choice(log_probs) == ALLOW
        return Decision(decision, probabilities, below_allow_threshold=below, non_finite_scores=not finite)

    def generate(self, text: str, max_new_tokens: int | None = None) -> Response:
        """Decide; on ALLOW answer greedily with llama.cpp, else return the message (nothing generated)."""
        decided = self.decide(text)
        if decided.decision != "ALLOW":
            return Response(**asdict(decided), text=self.messages[decided.decision], generated=False)
        return Response(
            **asdict(decided), text=self._answer(text, max_new_tokens or self.max_new_tokens), generated=True
        )

    def complete(self, ids: list[int], max_new_tokens: int, stop: list[str] | None = None) -> dict[str, Any]:
        """llama.cpp's greedy continuation of `ids` (its completion answer, token ids and top-2 included)."""
        body = {
            "prompt": ids,
            "n_predict": max_new_tokens,
            "temperature": 0.0,
            "top_k": 1,
            "n_probs": 2,
            "stop": stop or [],
            "cache_prompt": False,
        }
        return self.server.handle_completions(body)

    def _answer(self, text: str, max_new_tokens: int) -> str:
        from so8t.data import templates

        if self.answer_format == "question":
            prompt = self.render(templates.gsm8k_prompt(text))
        else:
            prompt = (
                self.render(templates.safety_prompt(text)) + self.prompt_format.decision_word("ALLOW") + "\n"
            )
        if max_new_tokens >= self.context_window:
            raise UserError(
                f"max_new_tokens={max_new_tokens} leaves no room for the request in the model's window of "
                f"{self.context_window} tokens; give a max_new_tokens below {self.context_window}."
            )
        ids = templates.encode(self.tokenizer, prompt)[-(self.context_window - max_new_tokens) :]
        completion = self.complete(ids, max_new_tokens, list(templates.GSM8K_STOP))["choices"][0]["text"]
        for stop in templates.GSM8K_STOP:
            completion = completion.split(stop)[0]
        return completion.strip()


def load_gguf(path: str | os.PathLike, **kwargs: Any) -> LlamaCppAgent:
    """A GGUF file with its head-B sidecar as an agent (the keyword arguments of LlamaCppAgent)."""
    return LlamaCppAgent(path, **kwargs)
