"""GSM8K answer parsing: gold extraction on the real test set, numeric equivalence, bad records."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from data_fixtures import GSM8K_RECORDS, write_jsonl

from so8t.data.gsm8k import (
    RUN_ON_MARKER,
    completion_answer,
    extract_boxed,
    extract_gold,
    extract_last_number,
    extract_strict,
    format_number,
    gsm8k_record_problem,
    numbers_equal,
    parse_number,
    read_gsm8k,
    read_gsm8k_counted,
)
from so8t.data.templates import GSM8K_STOP, gsm8k_prompt
from so8t.errors import DataError

REAL_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "gsm8k"
REAL_TEST = REAL_DIR / "test.jsonl"
REAL_FILES = [REAL_DIR / "train.jsonl", REAL_TEST]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1,000", 1000),
        ("$18.00", 18),
        ("-3", -3),
        ("18.", 18),
        ("0.5", Decimal("0.5")),
        (" 42 ", 42),
        ("1,450,000", 1450000),
        ("$-3", -3),
        (".5", Decimal("0.5")),
        ("\u22127", -7),
        ("1 250", 1250),
        ("1\u202f234\u00a0567", 1234567),
        ("3/4", Decimal("0.75")),
        ("42\u20ac", 42),
        ("\u00a342", 42),
        ("-0", 0),
    ],
)
def test_parse_number_reads_written_numbers(text, value):
    assert parse_number(text) == Decimal(value)


def test_a_fraction_without_a_finite_decimal_stays_exact():
    assert parse_number("2/3") == Fraction(2, 3) and format_number(Fraction(2, 3)) == "2/3"
    assert format_number(parse_number("3/4")) == "0.75" and format_number(Decimal("18.00")) == "18"


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "--3", "$", "1/0", "3/"])
def test_parse_number_rejects_non_numbers(text):
    assert parse_number(text) is None


def test_extract_gold_takes_the_text_after_the_last_marker_normalised():
    assert extract_gold("step 1\n#### 1,000") == "1000"
    assert extract_gold("a #### 3\nthen #### $18.00") == "18"
    assert extract_gold("no marker here 12") is None
    assert extract_gold("step 1\n#### twelve") is None


def test_a_training_record_needs_a_number_after_its_last_marker():
    assert gsm8k_record_problem({"question": "q", "answer": "1 + 1 = 2\n#### 2"}) is None
    problem = gsm8k_record_problem({"question": "q", "answer": "one and one\n#### two"})
    assert problem is not None and "#### N" in problem


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("#### .5", "0.5"),
        ("####42", "42"),
        ("#### **42**", "42"),
        ("#### $\\boxed{42}$", "42"),
        ("#### \\frac{3}{4}", "0.75"),
        ("#### 1 234 567", "1234567"),
        ("#### \u22127", "-7"),
        ("#### 42 loaves", "42"),
        ("####\n42", "42"),
        ("#### 3/4.", "0.75"),
    ],
)
def test_strict_reading_takes_the_number_on_the_marker_line_past_wrappers(completion, answer):
    assert extract_strict(completion) == answer


def test_a_plain_space_groups_digits_unless_a_hyphen_follows_the_group():
    assert extract_last_number("She buys 3 600-page books") == "600"
    assert extract_last_number("costs $1\u202f250 in total") == "1250"
    assert extract_last_number("1 250 dollars") == "1250"
    assert extract_strict("#### 1 250") == "1250"


# How a careful grader reads each (completion -> answer); None: the completion states no answer.
CAREFUL_READINGS = [
    ("The answer is 12. That is 3 more than Tom has.", "12"),
    ("Final answer: 1 250 dollars, since 1 000 + 250 = 1 250", "1250"),
    ("The answer is 1.5 hours. Then she rests 2 hours.", "1.5"),
    ("#### 3 x 4 = 12", "12"),
    ("#### 10 - 2 = 8", "8"),
    ("#### 10 \u2013 2 = 8", "8"),
    ("#### 3.5 hours = 210 minutes", "210"),
    ("#### 1 1/2", "1.5"),
    ("#### \u22121 1/2", "-1.5"),
    ("1 250 dollars", "1250"),
    ("#### 1\u2009250", "1250"),
    ("#### \u20137", "-7"),
    ("#### \u20147", "-7"),
    ("#### \u20127", "-7"),
    ("#### 2,5", "2.5"),
    ("#### 1,250", "1250"),
    ("pages 10\u201312", "12"),
    ("She has 3 + 4 = 7 apples.\n#### I am not sure", None),
    ("She has 3 + 4 = 7 apples.\n####", None),
]


@pytest.mark.parametrize(("completion", "answer"), CAREFUL_READINGS, ids=[c for c, _ in CAREFUL_READINGS])
def test_a_completion_is_read_as_a_careful_grader_reads_it(completion, answer):
    assert completion_answer(completion) == answer


def test_a_mixed_number_parses_exactly_and_an_improper_one_is_not_a_number():
    assert parse_number("1 1/2") == Fraction(3, 2) and parse_number("-2 3/4") == Fraction(-11, 4)
    assert parse_number("1 3/2") is None


def test_a_boxed_answer_is_read_before_the_last_number():
    assert extract_boxed("so $\\boxed{\\dfrac{1}{2}}$ of 8 is 4") == "0.5"
    assert completion_answer("The answer is $\\boxed{42}$. Check: 42 - 30 = 12") == "42"
    assert extract_boxed("no box 7") is None


def test_the_answer_is_read_before_a_run_on_into_a_new_question():
    assert completion_answer("She sells 40 loaves.\n\nQuestion: How many now?\nAnswer: #### 42") == "40"
    assert completion_answer("#### 7\n\nQuestion: How many?\nAnswer: #### 42") == "7"
    assert completion_answer("Question: what?") is None


def test_the_run_on_marker_is_the_start_of_the_gsm8k_prompt_and_a_stop_sequence():
    assert gsm8k_prompt("x").startswith(RUN_ON_MARKER) and RUN_ON_MARKER in GSM8K_STOP


def test_strict_extraction_needs_the_marker_and_flexible_takes_the_last_number():
    completion = "She has 3 + 4 = <<3+4=7>>7 apples.\n#### 7\n\nQuestion: 9"
    assert extract_strict(completion) == "7"
    assert extract_strict("The answer is 7.") is None
    assert extract_last_number("The answer is 1,234.") == "1234"
    assert extract_last_number("no digits") is None
    assert extract_last_number("it costs $-3.50 now") == "-3.5"


def test_numbers_equal_compares_numerically():
    assert numbers_equal("1,000", "1000")
    assert numbers_equal("$18.00", "18")
    assert numbers_equal("18.", "18")
    assert numbers_equal("-3", "-3") and not numbers_equal("3", "-3")
    assert numbers_equal("3/4", "0.75") and not numbers_equal("2/3", "0.67")
    assert not numbers_equal(None, "18")
    assert not numbers_equal("17", "18")


def _independent_gold(answer: str) -> float:
    """Gold value read without so8t's parser: the digits after the final '#### '."""
    match = re.search(r"####\s*([-\d,\.]+)\s*$", answer)
    assert match, answer
    return float(match.group(1).replace(",", ""))


@pytest.mark.skipif(not REAL_TEST.is_file(), reason=f"GSM8K test set not present at {REAL_TEST}")
def test_every_real_gsm8k_test_answer_extracts_to_its_gold_value():
    records = [json.loads(line) for line in REAL_TEST.read_text().splitlines() if line.strip()]
    assert len(records) == 1319
    wrong = []
    for number, record in enumerate(records, start=1):
        gold = _independent_gold(record["answer"])
        for extracted in (
            extract_gold(record["answer"]),
            extract_strict(record["answer"]),
            extract_last_number(record["answer"]),
        ):
            if extracted is None or float(extracted) != gold:
                wrong.append((number, gold, extracted))
    assert wrong == []


@pytest.mark.skipif(
    not all(path.is_file() for path in REAL_FILES),
    reason=f"the GSM8K train and test files are not both at {REAL_DIR.resolve()}",
)
def test_every_real_graded_gsm8k_solution_reads_as_its_own_gold_answer():
    """Each graded solution of GSM8K (train and test), handed in as a completion, states its gold answer: the
    careful reading (answer line equations, stated answers, space thousands) never misreads one."""
    records = [json.loads(line) for path in REAL_FILES for line in path.read_text().splitlines() if line]
    assert len(records) == 7473 + 1319
    wrong = [
        (record["answer"][-40:], completion_answer(record["answer"]))
        for record in records
        if completion_answer(record["answer"]) is None
        or float(completion_answer(record["answer"])) != _independent_gold(record["answer"])
    ]
    assert wrong == []


@pytest.mark.skipif(not REAL_TEST.is_file(), reason=f"GSM8K test set not present at {REAL_TEST}")
def test_real_gsm8k_test_file_reads_without_bad_records():
    assert len(read_gsm8k(REAL_TEST)) == 1319


def test_bad_record_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", GSM8K_RECORDS, ['{"question": "q only"}'])
    with pytest.raises(DataError) as info:
        read_gsm8k(path)
    message = str(info.value)
    assert f"{path}:3:" in message and 'missing "answer"' in message and "on_bad_record: skip" in message


def test_bad_records_are_skipped_and_counted_when_asked(tmp_path):
    path = write_jsonl(
        tmp_path / "g.jsonl", GSM8K_RECORDS, ["not json", '{"question": "q", "answer": "no marker"}', ""]
    )
    examples, skipped = read_gsm8k_counted(path, on_bad_record="skip")
    assert [e.question for e in examples] == [r["question"] for r in GSM8K_RECORDS]
    assert skipped == 2
