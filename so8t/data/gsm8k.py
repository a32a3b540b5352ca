"""GSM8K records and answer parsing: one implementation for data checks, training targets and scoring."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from so8t.data.jsonl import OnBadRecord, read_jsonl_records

ANSWER_MARKER = "####"
# Where a completion that runs on into a new problem starts it: the first word of the prompt
# (so8t.data.templates.gsm8k_prompt). What follows is another question's work, never this one's answer.
RUN_ON_MARKER = "Question:"

# How numbers are written in GSM8K answers and model completions. A sign (ASCII or Unicode minus, or a dash
# written as one: figure, en or em dash), a currency sign, digits grouped by commas or (thin, narrow) no-break
# spaces, a decimal part or a leading-dot decimal, a fraction or a mixed number ("1,000", "$18.00", "\u22123",
# "\u20137", ".5", "3/4", "1 1/2"). A dash right after a digit is a range or a subtraction, never a sign.
_DASHES = "\u2012\u2013\u2014\ufe63\uff0d"
_SIGN = rf"(?<![\d.,])[-\u2212{_DASHES}]"
_CURRENCY = "[$\u20ac\u00a3]"
_DECIMAL = r"(?:\.\d+)?"
_LEADING_DOT = r"(?<![\d.])\.\d+"
_FRACTION = r"\d+\s?/\s?\d+(?!\d|[.,]\d)"
_MIXED = rf"\d+[ \u00a0]{_FRACTION}"
_THIN_SPACES = "\u00a0\u2009\u200a\u202f"
# On an answer line, a comma before one or two digits is a decimal comma ("#### 2,5"), not a thousands group.
_DECIMAL_COMMA = r"\d+,\d{1,2}(?![\d,])"


def _number_pattern(grouped: str, decimal_comma: bool = False) -> str:
    comma = f"{_DECIMAL_COMMA}|" if decimal_comma else ""
    body = rf"{_MIXED}|{_FRACTION}|{comma}(?:{grouped}|\d+){_DECIMAL}|{_LEADING_DOT}"
    return rf"{_SIGN}?{_CURRENCY}?\s?(?:{body})"


# Anywhere in a completion; a plain space groups digits only where no hyphen or digit follows the group
# ("1 250 dollars" is 1250, "3 600-page books" two numbers).
_NUMBER_RE = re.compile(
    _number_pattern(rf"\d{{1,3}}(?:[,{_THIN_SPACES}]\d{{3}})+(?!\d)|\d{{1,3}}(?: \d{{3}})+(?![\d\-/])")
)
# On an answer line (after `####`, or after "the answer is"), which holds one number, any space groups digits.
_ANSWER_NUMBER_RE = re.compile(_number_pattern(rf"\d{{1,3}}(?:[, {_THIN_SPACES}]\d{{3}})+(?!\d)", True))
_LATEX_FRACTION_RE = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]*?)\s*\}\s*\{\s*([^{}]*?)\s*\}")
_BOXED_RE = re.compile(r"\\boxed\s*\{([^{}]*)\}")
# A sentence that states the answer: "The answer is 12.", "Final answer: 12", "the answer would be 12".
_STATED_ANSWER_RE = re.compile(
    r"\banswer\s*(?:is|was|would be|will be|:|=)\s*:?[ \t]*(.*?)(?:(?<!\d)\.(?!\d)|\n|$)", re.IGNORECASE
)


@dataclass
class GSM8KExample:
    """One grade-school math problem; `answer` holds the worked solution ending in `#### N`."""

    question: str
    answer: str

    def to_record(self) -> dict:
        return asdict(self)


def parse_number(text: str) -> Fraction | None:
    """The value of a written number, exactly, or None if the text is not one number: "1,000" -> 1000,
    "$18.00" -> 18, "\u22123" -> -3, "\u20137" -> -7, "18." -> 18, ".5" -> 1/2, "1 250" -> 1250,
    "3/4" -> 3/4, "1 1/2" -> 3/2, "42\u20ac" -> 42."""
    cleaned = re.sub(f"[\u2212{_DASHES}]", "-", text.strip())
    mixed = re.fullmatch(rf"([-+]?)(\d+)[ {_THIN_SPACES}]+(\d+)\s?/\s?(\d+)", cleaned)
    if mixed:
        whole, numerator, denominator = (int(mixed.group(i)) for i in (2, 3, 4))
        if denominator == 0 or numerator >= denominator:
            return None
        value = whole + Fraction(numerator, denominator)
        return -value if mixed.group(1) == "-" else value
    for separator in (",", " ", *_THIN_SPACES):
        cleaned = cleaned.replace(separator, "")
    cleaned = cleaned.rstrip(".")
    match = re.fullmatch(r"([-+]?)[$\u20ac\u00a3]?([-+]?)(.*?)[$\u20ac\u00a3]?", cleaned)
    signs = match.group(1) + match.group(2)
    if len(signs) > 1:
        return None
    body = match.group(3)
    fraction = re.fullmatch(r"(\d+)/(\d+)", body)
    if fraction:
        if int(fraction.group(2)) == 0:
            return None
        value = Fraction(int(fraction.group(1)), int(fraction.group(2)))
    elif re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", body):
        value = Fraction(body)
    else:
        return None
    return -value if signs == "-" else value


def format_number(value: Fraction | Decimal) -> str:
    """Canonical text of a number: "18", "-3", "0.5", or "2/3" when no finite decimal writes it."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    return format(Decimal(value.numerator) / Decimal(value.denominator), "f")


def _normalise(text: str) -> str | None:
    value = parse_number(text)
    return format_number(value) if value is not None else None


def _unwrap_latex(text: str) -> str:
    """LaTeX fractions written as numbers: "\\frac{3}{4}" -> "3/4" (other wrappers are skipped by the search)."""
    return _LATEX_FRACTION_RE.sub(r"\1/\2", text)


def _normalise_answer(text: str) -> str | None:
    """`_normalise` for a number read on an answer line, where "2,5" is a decimal comma."""
    if re.fullmatch(rf"{_SIGN}?{_CURRENCY}?\s?{_DECIMAL_COMMA}", text):
        text = text.replace(",", ".")
    return _normalise(text)


def _first_number_of_answer_line(text: str) -> str | None:
    """The number stated on the first non-blank line of `text` (the line after a `####`), normalised: the first
    number, or, when the line is an equation, the first number of its result ("#### 3 x 4 = 12" -> "12",
    "#### 3.5 hours = 210 minutes" -> "210"). None when the line (or the result) holds no number."""
    line = _unwrap_latex(text.lstrip().split("\n", 1)[0])
    for match in _ANSWER_NUMBER_RE.finditer(line.rsplit("=", 1)[-1]):
        value = _normalise_answer(match.group(0))
        if value is not None:
            return value
    return None


def extract_gold(answer: str) -> str | None:
    """The final answer of a GSM8K solution: the number on the line after its last `####`, normalised
    ("1,000" -> "1000"); None when there is no marker or no number after it."""
    if ANSWER_MARKER not in answer:
        return None
    return _first_number_of_answer_line(answer.rsplit(ANSWER_MARKER, 1)[1])


def extract_strict(text: str) -> str | None:
    """The number on the line after the first `####` of a completion (the format the model is trained to
    write), past Markdown or LaTeX wrappers ("#### **42**", "####42", "#### 1 250", "#### 3/4")."""
    if ANSWER_MARKER not in text:
        return None
    return _first_number_of_answer_line(text.split(ANSWER_MARKER, 1)[1])


def extract_boxed(text: str) -> str | None:
    """The number in the last LaTeX `\\boxed{...}` of a completion, normalised; None without one."""
    boxes = _BOXED_RE.findall(_unwrap_latex(text))
    return _first_number_of_answer_line(boxes[-1]) if boxes else None


def extract_last_number(text: str) -> str | None:
    """The last number anywhere in the text (the lenient reading of a completion), normalised."""
    for match in reversed(list(_NUMBER_RE.finditer(_unwrap_latex(text)))):
        value = _normalise(match.group(0))
        if value is not None:
            return value
    return None


def before_run_on(completion: str) -> str:
    """The completion up to a new `Question:`, where a model that ignores its stop sequences runs on."""
    return completion.split(RUN_ON_MARKER, 1)[0]


def extract_stated(text: str) -> str | None:
    """The number of the last sentence that states the answer ("The answer is 12. That is 3 more than Tom
    has." -> "12", "Answer: 1 250" -> "1250"), read like an answer line; None without such a sentence."""
    for statement in reversed(_STATED_ANSWER_RE.findall(text)):
        value = _first_number_of_answer_line(statement)
        if value is not None:
            return value
    return None


def completion_answer(completion: str) -> str | None:
    """The answer a careful grader reads in a completion, normalised, from the text before any run-on into a
    new question: with a `####`, the number its line states (None when that line has no number: the working
    above it is not the answer); else the last `\\boxed{}` answer, else the last sentence that states the
    answer ("The answer is N"), else the last number."""
    text = before_run_on(completion)
    if ANSWER_MARKER in text:
        return extract_strict(text)
    return extract_boxed(text) or extract_stated(text) or extract_last_number(text)


def numbers_equal(pred: str | None, gold: str) -> bool:
    """Numeric equivalence ("18.00" == "18", "3/4" == "0.75"); string equality when either is not a number."""
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
        return '"answer" has no final "#### N" line with a number (e.g. "#### 42")'
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
