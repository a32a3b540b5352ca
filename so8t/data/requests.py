"""A safety record's request: its text (a string, or a chat-format messages list's last user turn) and the
conversation around it (the list's own system turn, earlier user and assistant turns), and RecordProblem, why
a record cannot be used. Training data, evaluation tasks and `so8t predict` read requests the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecordProblem:
    """Why a record is not usable. `kind` groups problems for one report line per cause: missing (a column),
    unmapped (a label value, `value`), dropped (a label mapped to null: not an error), policy (a category's
    expected decision, `value` = (category, decision)), record (anything else)."""

    kind: str
    message: str
    value: Any = None


def _turn_text(turn: dict[str, Any]) -> str:
    content = turn.get("content")
    if isinstance(content, list):  # content parts: [{type: text, text: ...}, ...]
        content = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def conversation_fields(messages: list[Any]) -> dict[str, Any]:
    """A messages list's own system turn (`system`) and its user and assistant turns before the last user
    turn (`turns`), each present only when the list has them."""
    turns = [t for t in messages if isinstance(t, dict)]
    last_user = max((i for i, t in enumerate(turns) if t.get("role") == "user"), default=0)
    out: dict[str, Any] = {}
    system = next((_turn_text(t) for t in turns if t.get("role") == "system" and _turn_text(t).strip()), None)
    if system:
        out["system"] = system
    earlier = [
        {"role": t["role"], "content": _turn_text(t)}
        for t in turns[:last_user]
        if t.get("role") in ("user", "assistant") and _turn_text(t).strip()
    ]
    if earlier:
        out["turns"] = earlier
    return out


def request_text(value: Any) -> str | RecordProblem:
    """A request field's text: the string itself, or a chat-format list's last user turn (its text parts)."""
    if isinstance(value, str) or value is None:
        return value if isinstance(value, str) and value.strip() else RecordProblem("record", "is empty")
    if isinstance(value, list):
        turns = [t for t in value if isinstance(t, dict) and t.get("role") == "user"]
        if not turns:
            return RecordProblem("record", "a messages list without a user turn")
        content = turns[-1].get("content")
        if isinstance(content, list):  # content parts: [{type: text, text: ...}, ...]
            content = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
        if isinstance(content, str) and content.strip():
            return content
        return RecordProblem("record", "the last user turn has no text")
    return RecordProblem("record", f"must be text or a messages list, found {type(value).__name__}")
