"""Mapped records: which field of a user's data holds what (`columns:`), and what its labels mean (`labels:`).

A record as stored (a JSONL object, a CSV row, a Parquet or dataset row) becomes a canonical so8t record
(`{prompt, decision, category, rationale, response}` or `{question, answer}`) or one `RecordProblem` saying
why not. Labels are compared as the text found in the data (`true`, `1`, `unsafe`): a raw boolean reads
`true`/`false`, a whole number `1`. A chat-format field (a `messages` list of `{role, content}`) gives the
content of its last user turn as the request, its own system turn as `system` and the turns before the request
as `turns` (the chat format renders them as the conversation's context).

Shared by the data sources (training, `so8t validate`) and the local lm-eval tasks (`--metadata` takes the
same `columns` and `labels`), so a file evaluates exactly as it trains. Torch-free.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from so8t.data.gsm8k import gsm8k_record_problem
from so8t.data.requests import RecordProblem, conversation_fields, request_text
from so8t.data.safety import DECISIONS, safety_record_problem

SAFETY_ROLES = ("request", "decision", "category", "rationale", "response")
GSM8K_ROLES = ("question", "answer")
# the field of a canonical record each role fills
CANONICAL_KEY = {"request": "prompt", "decision": "decision", "category": "category", "rationale": "rationale",
                 "response": "response", "question": "question", "answer": "answer"}  # fmt: skip
# a request column not named: `prompt`, else a chat-format `messages` list
DEFAULT_REQUEST_COLUMNS = ("prompt", "messages")
REQUIRED_ROLES = {"safety": ("request", "decision"), "gsm8k": ("question", "answer")}
DROP = None  # a label mapped to null: its records are left out on purpose


class ColumnMap(BaseModel):
    """`columns:` of a data source: the field of each record that holds each part (unset: the so8t name)."""

    model_config = ConfigDict(extra="forbid")

    request: str | None = Field(
        None,
        description="Field holding the request (safety). A chat-format list of {role, content} turns gives "
        "its last user turn, with its system turn and earlier turns as context. Default: prompt, else messages.",
    )
    decision: str | None = Field(
        None, description="Field holding the label, read through `labels`. Default: decision."
    )
    category: str | None = Field(None, description="Field holding the category. Default: category.")
    rationale: str | None = Field(
        None, description="Field holding why the decision is right (learned after it). Default: rationale."
    )
    response: str | None = Field(
        None, description="Field holding what the agent says after the decision. Default: response."
    )
    question: str | None = Field(None, description="Field holding the problem (GSM8K). Default: question.")
    answer: str | None = Field(
        None, description="Field holding the worked solution ending in `#### N` (GSM8K). Default: answer."
    )

    def named(self) -> dict[str, str]:
        """The roles given a field explicitly."""
        return {role: name for role, name in self.model_dump().items() if name is not None}


def columns_field() -> Any:
    return Field(
        None,
        description="Which field of a record holds each part, when the data uses other names than so8t's "
        "(null: so8t's names).",
    )


def labels_field() -> Any:
    return Field(
        None,
        description="Raw label -> ALLOW, ESCALATE or REFUSE (null drops those records), e.g. {safe: ALLOW, "
        'unsafe: REFUSE}. Keys are the text in the data: quote keys YAML would read otherwise ("yes", '
        '"no", "true", "0"). Without it, labels must be the decision names.',
    )


# ----------------------------------------------------------------------------- labels

Decision = Literal["ALLOW", "ESCALATE", "REFUSE"]


def label_text(value: Any) -> str | None:
    """A raw label as its text in the data: "true"/"false" for booleans, "1" for whole numbers (1 or 1.0),
    the stripped string otherwise; None when empty or missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


class WrittenKey:
    """A mapping key YAML did not read as text (`yes`, `no`, `0`, `null`): equal to, and hashed as, the value
    YAML read, and shown as `text`, the way the file wrote it (a message says `no` rather than False)."""

    __slots__ = ("text", "value")

    def __init__(self, value: Any, text: str) -> None:
        self.value, self.text = value, text

    def __eq__(self, other: object) -> bool:
        return self.value == (other.value if isinstance(other, WrittenKey) else other)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return repr(self.text)

    def __str__(self) -> str:
        return self.text


def _yaml_reading(key: Any) -> str:
    if isinstance(key, bool):
        return f"the boolean {str(key).lower()}"
    if key is None:
        return "null"
    if isinstance(key, (int, float)):
        return f"the number {key}"
    return f"a {type(key).__name__}"


def checked_labels(value: Any) -> Any:
    """The `labels:` mapping with its values normalised (decision names upper-case, null kept); ValueError
    when YAML turned a key into something other than text, saying to quote the keys."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(
            f"got {value!r}, must be a mapping of raw label -> ALLOW, ESCALATE or REFUSE, e.g. "
            "{safe: ALLOW, unsafe: REFUSE}"
        )
    typed = [key for key in value if not isinstance(key, str)]
    if typed:
        read = "; ".join(f"{key!r} as {_yaml_reading(getattr(key, 'value', key))}" for key in typed)
        raise ValueError(
            f"YAML read the key(s) {read}, not as text (and keys it reads as equal, such as 0 and false or "
            "no, merge into one without a word); labels are compared as the text in the data, so quote "
            'every key, e.g. {"yes": REFUSE, "no": ALLOW, "0": ALLOW}'
        )
    out: dict[str, str | None] = {}
    for key, decision in value.items():
        if decision is DROP:
            out[key] = DROP
            continue
        name = decision.strip().upper() if isinstance(decision, str) else None
        if name not in DECISIONS:
            raise ValueError(
                f"{key!r} maps to {decision!r}; map each label to {', '.join(DECISIONS)}, or to null to drop "
                "its records"
            )
        out[key] = name
    return out


# `labels:` of a mapped source: raw label text -> decision (null: drop), keys checked to be text
LabelMap = Annotated[dict[str, Decision | None] | None, BeforeValidator(checked_labels)]


def closest(name: str, names: list[str]) -> str:
    """'; did you mean "X"?' for the closest name (case ignored first), or ''."""
    folded = {n.casefold(): n for n in names}
    if name.casefold() in folded:
        return f'; did you mean "{folded[name.casefold()]}"?'
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def _available(names: list[str]) -> str:
    shown = ", ".join(f'"{n}"' for n in names[:12]) + (", ..." if len(names) > 12 else "")
    return shown or "none"


# ----------------------------------------------------------------------------- the mapping


@dataclass
class RecordMapping:
    """`columns` and `labels` of one source, applied to its records (`prefix` names the source's keys in
    messages, e.g. "data.train[0]." or "--metadata ")."""

    columns: ColumnMap = field(default_factory=ColumnMap)
    labels: dict[str, str | None] | None = None
    prefix: str = ""

    @property
    def is_identity(self) -> bool:
        return not self.columns.named() and self.labels is None

    def column(self, role: str, present: list[str] | None = None) -> str:
        """The field that holds `role`: the named one, else so8t's own name (for the request: prompt, or
        messages when the record has that and no prompt)."""
        named = getattr(self.columns, role)
        if named is not None:
            return named
        if role == "request" and present is not None and "prompt" not in present and "messages" in present:
            return "messages"
        return CANONICAL_KEY[role]

    def implied_format(self) -> str | None:
        """gsm8k or safety when the named columns belong to one format only."""
        named = set(self.columns.named())
        if self.labels is not None or (named & set(SAFETY_ROLES) and not named & set(GSM8K_ROLES)):
            return "safety"
        if named & set(GSM8K_ROLES) and not named & set(SAFETY_ROLES):
            return "gsm8k"
        return None

    def detect_format(self, names: list[str]) -> str | None:
        """The format whose required fields `names` (a record's keys, a header) all hold, else None."""
        implied = self.implied_format()
        for fmt in (implied,) if implied else ("gsm8k", "safety"):
            if all(self.column(role, names) in names for role in REQUIRED_ROLES[fmt]):
                return fmt
        return None

    def describe_formats(self) -> str:
        safety = " and ".join(f'"{self.column(r)}"' for r in REQUIRED_ROLES["safety"])
        gsm8k = " and ".join(f'"{self.column(r)}"' for r in REQUIRED_ROLES["gsm8k"])
        return f"neither a GSM8K record ({gsm8k}) nor a safety record ({safety})"

    def missing_columns(self, fmt: str, names: list[str]) -> list[str]:
        """One line per field the format needs (or the mapping names) that `names` lacks, with the closest."""
        roles = set(REQUIRED_ROLES[fmt]) | {
            r for r in self.columns.named() if r in (SAFETY_ROLES if fmt == "safety" else GSM8K_ROLES)
        }
        wanted = SAFETY_ROLES if fmt == "safety" else GSM8K_ROLES
        lines = []
        for role in (r for r in wanted if r in roles):
            name = self.column(role, names)
            if name not in names:
                lines.append(self._missing(role, name, names))
        return lines

    def missing_named_columns(self, fmt: str, names: list[str]) -> list[str]:
        """`missing_columns` for the columns the mapping names only: what a file without a header (JSONL) is
        checked for once its records' keys are known (a required column is reported record by record)."""
        named = set(self.columns.named())
        wanted = SAFETY_ROLES if fmt == "safety" else GSM8K_ROLES
        return [
            self._missing(role, self.column(role, names), names)
            for role in wanted
            if role in named and self.column(role, names) not in names
        ]

    def _missing(self, role: str, name: str, names: list[str]) -> str:
        if getattr(self.columns, role) is None:
            how = f"the {role}; name its column with {self.prefix}columns.{role}"
        else:
            how = f"{self.prefix}columns.{role}"
        return f'no column "{name}" ({how}){closest(name, names)}; columns found: {_available(names)}'

    # --- one record ------------------------------------------------------------------------------

    def canonical(self, record: dict[str, Any], fmt: str) -> dict[str, Any] | RecordProblem:
        """The so8t record of `fmt` that `record` holds, or why it holds none."""
        if self.is_identity:
            return self._identity(record, fmt)
        names = list(record)
        missing = [role for role in REQUIRED_ROLES[fmt] if self.column(role, names) not in record]
        if missing:
            return RecordProblem("missing", self._missing(missing[0], self.column(missing[0], names), names))
        if fmt == "gsm8k":
            out = {"question": record[self.column("question")], "answer": record[self.column("answer")]}
            reason = gsm8k_record_problem(out)
            return RecordProblem("record", self._renamed(reason)) if reason else out
        return self._safety(record, names)

    def _identity(self, record: dict[str, Any], fmt: str) -> dict[str, Any] | RecordProblem:
        """A record in so8t's own names (the JSONL files so8t writes, and most hand-made ones)."""
        if fmt == "gsm8k":
            reason = gsm8k_record_problem(record)
            return RecordProblem("record", reason) if reason else record
        if "prompt" not in record and "messages" in record:
            return self._safety(record, list(record))
        for key in ("prompt", "decision"):
            if key not in record:
                return RecordProblem(
                    "record", f'missing "{key}" (safety records need "prompt" and "decision")'
                )
        return self._safety(record, list(record))

    def _safety(self, record: dict[str, Any], names: list[str]) -> dict[str, Any] | RecordProblem:
        request_column = self.column("request", names)
        request = request_text(record.get(request_column))
        if isinstance(request, RecordProblem):
            return RecordProblem("record", f'"{request_column}": {request.message}')
        decision_column = self.column("decision", names)
        raw = record.get(decision_column)
        label = label_text(raw)
        if label is None:
            what = "empty" if raw in (None, "") else f"{raw!r}, not a label (text, boolean or number)"
            return RecordProblem("record", f'label "{decision_column}" is {what}')
        decision = self.decide(label)
        if isinstance(decision, RecordProblem):
            return decision
        out: dict[str, Any] = {"prompt": request, "decision": decision}
        raw_request = record.get(request_column)
        if isinstance(raw_request, list):
            out.update(conversation_fields(raw_request))
        elif self.is_identity:  # a record so8t wrote keeps its conversation under its own names
            out.update({k: record[k] for k in ("system", "turns") if record.get(k)})
        for role in ("category", "rationale", "response"):
            value = record.get(self.column(role, names))
            text = label_text(value) if role == "category" else value
            if isinstance(text, str) and text.strip():
                out[CANONICAL_KEY[role]] = text
            elif text not in (None, "") and not isinstance(text, str):
                return RecordProblem("record", f'"{self.column(role, names)}" must be text, found {text!r}')
        reason = safety_record_problem(out)
        return RecordProblem("record", self._renamed(reason)) if reason else out

    def decide(self, label: str) -> str | RecordProblem:
        """The decision a label text means: `labels` (exactly, else ignoring case when that is unique), else
        a decision name; RecordProblem unmapped (or dropped, for a label mapped to null)."""
        labels = self.labels or {}
        if label in labels:
            found: Any = labels[label]
        else:
            folded = [key for key in labels if key.casefold() == label.casefold()]
            found = labels[folded[0]] if len(folded) == 1 else ...
        if found is ...:
            if label.upper() in DECISIONS:
                return label.upper()
            return RecordProblem("unmapped", f"label {label!r} is not mapped", label)
        if found is DROP:
            return RecordProblem("dropped", f"label {label!r} is dropped by {self.prefix}labels", label)
        return found

    def _renamed(self, reason: str) -> str:
        """A canonical record's problem in the data's own field names."""
        for role in (*SAFETY_ROLES, *GSM8K_ROLES):
            named = getattr(self.columns, role)
            if named is not None:
                reason = reason.replace(f'"{CANONICAL_KEY[role]}"', f'"{named}"')
        return reason
