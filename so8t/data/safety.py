"""Safety-decision records: a request and the decision an agent should take (ALLOW, ESCALATE, REFUSE)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from so8t.data.jsonl import OnBadRecord, read_jsonl_records
from so8t.data.templates import NO_CONVERSATION, Conversation
from so8t.errors import DataError

# Class order used everywhere: data, head B, metrics, files.
DECISIONS = ("ALLOW", "ESCALATE", "REFUSE")
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
SPLITS = ("train", "validation", "test")
# the roles of a conversation's earlier turns
TURN_ROLES = ("user", "assistant")
# What a user can do about a bundled file that is missing or malformed: it ships with so8t, so the install is broken.
REINSTALL_HINT = (
    "The file ships with so8t, so this installation is damaged: reinstall so8t "
    "(pip install --force-reinstall so8t; in a source checkout, restore the file with git checkout)."
)


@dataclass
class SafetyExample:
    """One request with its decision; rationale/response, when given, are what the model says after it."""

    prompt: str
    decision: str
    rationale: str | None = None
    response: str | None = None
    category: str | None = None
    # a messages record's own system turn and earlier turns (so8t.data.templates.Conversation)
    conversation: Conversation = NO_CONVERSATION

    @property
    def label(self) -> int:
        """Index of the decision in DECISIONS (the safety head's class)."""
        return DECISIONS.index(self.decision)

    def to_record(self) -> dict:
        record = {"prompt": self.prompt, "decision": self.decision}
        for key in ("rationale", "response", "category"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.conversation.system:
            record["system"] = self.conversation.system
        if self.conversation.turns:
            record["turns"] = [{"role": r, "content": c} for r, c in self.conversation.turns]
        return record


def safety_record_problem(record: dict) -> str | None:
    """Why a record is not a usable safety example, or None when it is."""
    for key in ("prompt", "decision"):
        if key not in record:
            return f'missing "{key}" (safety records need "prompt" and "decision")'
        if not isinstance(record[key], str) or not record[key].strip():
            return f'"{key}" must be a non-empty string'
    if record["decision"].strip().upper() not in DECISIONS:
        return f'"decision" is {record["decision"]!r}, expected one of {", ".join(DECISIONS)}'
    for key in ("rationale", "response", "category", "system"):
        if record.get(key) is not None and not isinstance(record[key], str):
            return f'"{key}" must be a string or null'
    turns = record.get("turns")
    if turns is not None and not (
        isinstance(turns, list)
        and all(
            isinstance(t, dict) and t.get("role") in TURN_ROLES and isinstance(t.get("content"), str)
            for t in turns
        )
    ):
        return '"turns" must be a list of {"role": "user" or "assistant", "content": text}'
    return None


def safety_example_from_record(record: dict) -> SafetyExample:
    return SafetyExample(
        prompt=record["prompt"],
        decision=record["decision"].strip().upper(),
        rationale=record.get("rationale") or None,
        response=record.get("response") or None,
        category=record.get("category") or None,
        conversation=Conversation(
            record.get("system") or None,
            tuple((t["role"], t["content"]) for t in record.get("turns") or ()),
        ),
    )


def read_safety_counted(
    path: str | Path, on_bad_record: OnBadRecord = "error"
) -> tuple[list[SafetyExample], int]:
    """Read a safety JSONL file; returns (examples, number of bad records skipped)."""
    result = read_jsonl_records(path, safety_record_problem, on_bad_record)
    return [safety_example_from_record(r) for r in result.records], result.skipped


def read_safety(path: str | Path, on_bad_record: OnBadRecord = "error") -> list[SafetyExample]:
    """Read a safety JSONL file (bad records raise DataError with file:line, or are skipped)."""
    return read_safety_counted(path, on_bad_record)[0]


def bundled_challenge_path() -> Path:
    """A second held-out set, written separately from the splits: how far decisions carry to other writers.
    Never trained on or used to choose a checkpoint (see POLICY.md)."""
    return BUNDLED_DIR / "safety_challenge.jsonl"


def bundled_safety_path(split: str) -> Path:
    """The safety set shipped with so8t for a split (train, validation or test)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return BUNDLED_DIR / f"safety_{split}.jsonl"


def read_bundled_safety(path: Path) -> list[SafetyExample]:
    """Read a file of the bundled safety set. A missing or malformed bundled file is a broken installation:
    DataError naming the file (and line) and telling the user to reinstall, never a skip."""
    if not path.is_file():
        raise DataError(f"{path}: the bundled safety file is missing. {REINSTALL_HINT}")
    try:
        records = read_jsonl_records(path, safety_record_problem, "error", fix_hint=REINSTALL_HINT).records
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: the bundled safety file is not UTF-8 text ({exc.reason}). {REINSTALL_HINT}"
        ) from exc
    return [safety_example_from_record(r) for r in records]
