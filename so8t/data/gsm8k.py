"""GSM8K records and answer parsing: one implementation for data checks, training targets and scoring."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from so8t.data.jsonl import OnBadRecord, read_jsonl_records

ANSWER_MARKER = "####"

# A number as written in GSM8K answers and model completions: optional sign and currency,
# thousands separators, decimals ("1,000", "$18.00", "-3", "0.5").
_NUMBER = r"-?[$€£]?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_STRICT_RE = re.compile(r"####\s*(" + _NUMBER + r")")


@dataclass
class GSM8KExample:
    """One grade-school math problem; `answer` holds the worked solution ending in `#### N`."""

    question: str
    answer: str

    def to_record(self) -> dict:
        return asdict(self)


def parse_number(text: str) -> Decimal | None:
    """Parse a written number ("1,000" -> 1000, "$18.00" -> 18, "-3" -> -3, "18." -> 18); None if not one."""
    cleaned = text.strip().replace("\u2212", "-").replace(",", "").replace(" ", "")
    cleaned = cleaned.rstrip(".")
    match = re.fullmatch(r"([-+]?)[$€£]?([-+]?)(.*)", cleaned)
    signs = (match.group(1) + match.group(2)) if match else ""
    if len(signs) > 1:
        return None
    negative, cleaned = signs == "-", match.group(3) if match else cleaned
    if not cleaned or not re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", cleaned):
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        return None
    return -value if negative else value


def format_number(value: Decimal) -> str:
    """Canonical text of a number: "18", "-3", "0.5" (no exponent, no trailing zeros)."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _normalise(text: str) -> str | None:
    value = parse_number(text)
    if value is not None:
        return format_number(value)
    stripped = text.strip()
    return stripped or None


def extract_gold(answer: str) -> str | None:
    """The final answer after the last `####` in a GSM8K solution, normalised ("1,000" -> "1000")."""
    if ANSWER_MARKER not in answer:
        return None
    return _normalise(answer.rsplit(ANSWER_MARKER, 1)[1])


def extract_strict(text: str) -> str | None:
    """The number after the first `#### ` in a completion (the format the model is trained to write)."""
    match = _STRICT_RE.search(text)
    return _normalise(match.group(1)) if match else None


def extract_last_number(text: str) -> str | None:
    """The last number anywhere in the text (the lenient reading of a completion)."""
    matches = _NUMBER_RE.findall(text)
    return _normalise(matches[-1]) if matches else None


def numbers_equal(pred: str | None, gold: str) -> bool:
    """Numeric equivalence ("18.00" == "18"); plain string equality when either side is not a number."""
    if pred is None:
        return False
    a, b = parse_number(pred), parse_number(gold)
    if a is not None and b is not None:
        return a == b
    return pred.strip() == gold.strip()


def gsm8k_record_problem(record: dict) -> str | None:
    """Why a record is not a usable GSM8K example, or None when it is."""
    for key in ("question", "answer"):
        if key not in record:
            return f'missing "{key}" (GSM8K records need "question" and "answer")'
        if not isinstance(record[key], str) or not record[key].strip():
            return f'"{key}" must be a non-empty string'
    if extract_gold(record["answer"]) is None:
        return '"answer" has no final "#### N" line'
    return None


def read_gsm8k_counted(
    path: str | Path, on_bad_record: OnBadRecord = "error"
) -> tuple[list[GSM8KExample], int]:
    """Read a GSM8K JSONL file; returns (examples, number of bad records skipped)."""
    result = read_jsonl_records(path, gsm8k_record_problem, on_bad_record)
    return [GSM8KExample(r["question"], r["answer"]) for r in result.records], result.skipped


def read_gsm8k(path: str | Path, on_bad_record: OnBadRecord = "error") -> list[GSM8KExample]:
    """Read a GSM8K JSONL file (bad records raise DataError with file:line, or are skipped)."""
    return read_gsm8k_counted(path, on_bad_record)[0]


def load_hub_gsm8k(
    name: str = "main", split: str = "test", repo: str = "openai/gsm8k", revision: str | None = None
) -> list[GSM8KExample]:
    """GSM8K from the Hugging Face hub via `datasets` (needs the network or a populated HF cache)."""
    import datasets

    rows = datasets.load_dataset(repo, name, split=split, revision=revision)
    return [GSM8KExample(row["question"], row["answer"]) for row in rows]
