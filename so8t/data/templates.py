"""The one place for prompt text and its tokens: training, the lm-eval tasks, the backend and predict all
build prompts here.

A prompt's text is `Request: {r}\\nDecision:` or `Question: {q}\\nAnswer:` (the tasks' doc_to_text). The
prompt format (`data.prompt_format`, recorded in so8t.json) says how that text reaches the model:

- `plain`: as it is, the decision word following after a space (` ALLOW`).
- `chat`: as the user turn of the tokenizer's chat template (after an optional system prompt), rendered with
  the generation prompt, exactly as lm-eval renders it under `--apply_chat_template` (a task's doc_to_text
  never sees `--metadata`, so lm-eval, not the task, renders); the answer is the assistant's turn, and a
  multiple-choice decision is scored without the target delimiter (`ALLOW`).

Tokens are made as lm-eval's HFLM makes them (`encode_pair`): trailing whitespace of the context moves to the
continuation, the pair is encoded whole and split at the context's length, and no BOS is added to a text
that already starts with one. Head B pools at the last token of that context, in training and at inference.
Nothing here imports torch or transformers; the functions take a tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

DECISION_CHOICES = ["ALLOW", "ESCALATE", "REFUSE"]
# lm-eval generation stops for GSM8K: a blank line or the start of the next question.
GSM8K_STOP = ["\n\n", "Question:"]

PLAIN = "plain"
CHAT = "chat"
PROMPT_FORMATS = (PLAIN, CHAT)


def gsm8k_prompt(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def gsm8k_target(answer: str) -> str:
    """The completion the LM learns (the worked solution ending in `#### N`)."""
    return " " + answer


def safety_prompt(request: str) -> str:
    return f"Request: {request}\nDecision:"


def safety_target(example: Any) -> str:
    """ " DECISION", then the rationale and/or response on following lines when the example has them."""
    text = " " + example.decision
    for extra in (getattr(example, "rationale", None), getattr(example, "response", None)):
        if extra:
            text += "\n" + extra
    return text


# ----------------------------------------------------------------------------- tokens, as lm-eval makes them


def _prefix_text(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The text of HFLM's prefix token (BOS, else EOS): a string starting with it gets no special tokens."""
    prefix_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return None if prefix_id is None else tokenizer.decode(prefix_id)


def encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of a text as HFLM's tok_encode makes them (add_bos_token unset): the tokenizer's special
    tokens are added unless the text already starts with the BOS (a chat template that writes it)."""
    prefix = _prefix_text(tokenizer)
    if prefix and text.startswith(prefix):
        return list(tokenizer.encode(text, add_special_tokens=False))
    return list(tokenizer.encode(text))


def encode_pair(
    tokenizer: PreTrainedTokenizerBase, context: str, continuation: str
) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) exactly as lm-eval's `_encode_pair` makes them for a causal LM: the
    context's trailing whitespace moves to the continuation, the whole is encoded and split at the length of
    the encoded context."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        continuation = context[-spaces:] + continuation
        context = context[:-spaces]
    whole = encode(tokenizer, context + continuation)
    context_ids = encode(tokenizer, context)
    return context_ids, whole[len(context_ids) :]


def context_ids(tokenizer: PreTrainedTokenizerBase, context: str) -> list[int]:
    """The ids of a rendered prompt as a loglikelihood context (head B pools at the last one): trailing
    whitespace dropped, as lm-eval and the so8t backend do."""
    return encode(tokenizer, context.rstrip()) if context.strip() else encode(tokenizer, context)


# ----------------------------------------------------------------------------- the prompt format


@dataclass(frozen=True)
class Conversation:
    """What a `messages` record holds besides its last user turn: its own system turn and the earlier turns
    ((role, content) pairs, user and assistant). In the chat format they come before the request, in that
    order, the record's system turn in place of data.system_prompt; the plain format renders the request
    alone."""

    system: str | None = None
    turns: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.system or self.turns)


NO_CONVERSATION = Conversation()


class ChatTemplateMissing(ValueError):
    """prompt_format chat with a tokenizer that has no chat template."""


@dataclass(frozen=True)
class PromptFormat:
    """How prompt text reaches the model: `plain`, or `chat` with an optional system prompt (see module doc).

    `record()` is what so8t.json keeps (field `prompt`, so8t.layout); `lm_eval_args()` the flags that make
    lm-eval render the same prompts.
    """

    kind: str = PLAIN
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in PROMPT_FORMATS:
            raise ValueError(f"prompt format {self.kind!r}; expected one of {', '.join(PROMPT_FORMATS)}")

    @property
    def is_chat(self) -> bool:
        return self.kind == CHAT

    # --- so8t.json and lm-eval ---------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        return {"format": self.kind, "system_prompt": self.system_prompt}

    @classmethod
    def from_record(cls, record: Any) -> PromptFormat:
        """The format a so8t.json `prompt` field records; plain when absent (folders from before chat)."""
        if not isinstance(record, dict):
            return cls()
        return cls(str(record.get("format") or PLAIN), record.get("system_prompt"))

    def lm_eval_args(self) -> dict[str, Any]:
        """simple_evaluate's arguments that render these prompts (and the stock CLI's flags of the same name);
        none for plain, whose prompts are lm-eval's defaults."""
        if not self.is_chat:
            return {}
        return {
            "apply_chat_template": True,
            "fewshot_as_multiturn": True,
            "system_instruction": self.system_prompt,
        }

    def lm_eval_cli_flags(self) -> list[str]:
        """The same as stock `lm_eval` CLI arguments (none for plain)."""
        if not self.is_chat:
            return []
        flags = ["--apply_chat_template", "--fewshot_as_multiturn"]
        if self.system_prompt:
            flags += ["--system_instruction", self.system_prompt]
        return flags

    # --- text -------------------------------------------------------------------------------------

    def render(
        self, tokenizer: PreTrainedTokenizerBase, text: str, conversation: Conversation = NO_CONVERSATION
    ) -> str:
        """The prompt the model reads for a prompt text (plain: the text; chat: the template's rendering of
        [system, earlier turns, user] with the generation prompt, as lm-eval's HFLM.apply_chat_template makes
        it, and as the so8t tasks render a conversation's document)."""
        if not self.is_chat:
            return text
        return _apply_chat_template(tokenizer, self._messages(text, conversation), add_generation_prompt=True)

    def continuation(
        self,
        tokenizer: PreTrainedTokenizerBase,
        text: str,
        target: str,
        conversation: Conversation = NO_CONVERSATION,
    ) -> tuple[str, bool]:
        """(what follows the rendered prompt when the model answers `target`, whether it ends the turn).

        plain: the target itself (` ALLOW...`; the caller ends it with EOS). chat: the assistant turn as the
        template writes it (`ALLOW...` and the template's end of turn), or the stripped target when the
        template renders a finished conversation differently from its prompt.
        """
        if not self.is_chat:
            return target, False
        prompt = self.render(tokenizer, text, conversation)
        messages = [*self._messages(text, conversation), {"role": "assistant", "content": target.strip()}]
        whole = _apply_chat_template(tokenizer, messages, add_generation_prompt=False)
        if whole.startswith(prompt) and len(whole) > len(prompt):
            return whole[len(prompt) :], True
        return target.strip(), False

    def rendered_prompt_end(self, tokenizer: PreTrainedTokenizerBase) -> str:
        """What every prompt rendered by the chat template ends with, stripped: the template's text after the
        user's turn (its generation prompt, e.g. the assistant header). "" for plain, or for a template that
        adds nothing there (then rendered and plain prompts cannot be told apart by their end)."""
        if not self.is_chat:
            return ""
        marker = "so8t-user-turn-marker"
        rendered = self.render(tokenizer, marker)
        return rendered.rsplit(marker, 1)[1].strip() if marker in rendered else ""

    def decision_word(self, decision: str) -> str:
        """The continuation lm-eval scores for a decision: ` ALLOW` (target delimiter " ") in plain, `ALLOW`
        in chat (lm-eval drops the delimiter with a chat template)."""
        return decision if self.is_chat else " " + decision

    def _messages(self, text: str, conversation: Conversation = NO_CONVERSATION) -> list[dict[str, str]]:
        return conversation_messages(text, conversation, self.system_prompt)

    # --- tokens -----------------------------------------------------------------------------------

    def encode_example(
        self,
        tokenizer: PreTrainedTokenizerBase,
        text: str,
        target: str,
        conversation: Conversation = NO_CONVERSATION,
    ) -> tuple[list[int], list[int]]:
        """(prompt ids, target ids) of a training row: the pair lm-eval scores, the target ending the turn
        (EOS appended when the format does not end it)."""
        continuation, ends_turn = self.continuation(tokenizer, text, target, conversation)
        prompt = self.render(tokenizer, text, conversation)
        prompt_ids, target_ids = encode_pair(tokenizer, prompt, continuation)
        if not ends_turn and tokenizer.eos_token_id is not None:
            target_ids.append(int(tokenizer.eos_token_id))
        return prompt_ids, target_ids

    def decision_token_ids(self, tokenizer: PreTrainedTokenizerBase) -> list[int]:
        """For each decision, the first token of its scored continuation that tells the decisions apart
        (chat continuations may share a leading newline): the LM-head rows head B can start from."""
        prompt = self.render(tokenizer, safety_prompt("x"))
        continuations = [encode_pair(tokenizer, prompt, self.decision_word(d))[1] for d in DECISION_CHOICES]
        for position in range(min(len(c) for c in continuations)):
            if len({c[position] for c in continuations}) == len(continuations):
                return [c[position] for c in continuations]
        return [c[0] for c in continuations]


def conversation_messages(
    text: str, conversation: Conversation = NO_CONVERSATION, system_prompt: str | None = None
) -> list[dict[str, str]]:
    """The chat messages of a request: a system turn (the conversation's own, else `system_prompt`), the
    earlier turns, then the request as the user turn (training, the so8t tasks and predict share this)."""
    system = conversation.system or system_prompt
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": role, "content": content} for role, content in conversation.turns]
    return [*messages, {"role": "user", "content": text}]


def check_chat_template(tokenizer: PreTrainedTokenizerBase, where: str) -> None:
    """ChatTemplateMissing naming `where` when prompt_format chat meets a tokenizer without a chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateMissing(
            f"data.prompt_format is chat, but the tokenizer of {where} has no chat template; use an instruct "
            "(chat) base, name one with data.chat_template (chatml or a Jinja file), or set "
            "data.prompt_format: plain"
        )


def _apply_chat_template(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], add_generation_prompt: bool
) -> str:
    """tokenizer.apply_chat_template as lm-eval's HFLM calls it, dropping the system turn when the template
    rejects one (as HFLM does)."""
    import jinja2

    def render(turns: list[dict[str, str]]) -> str:
        return tokenizer.apply_chat_template(
            turns,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=False,
        )

    try:
        return render(messages)
    except jinja2.exceptions.TemplateError:
        return render([m for m in messages if m["role"] != "system"])
