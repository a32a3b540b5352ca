"""Synthetic GSM8K-style problems: deterministic, correctly annotated, 1-3 steps, disjoint splits."""

from __future__ import annotations

import re

from so8t.data.gsm8k import extract_gold
from so8t.data.synthetic import generate_problems, split_of, synthetic_split, synthetic_splits

ANNOTATION = re.compile(r"<<(\d+)([-+*/])(\d+)=(\d+)>>(\d+)")


def test_same_seed_gives_the_same_problems_and_another_seed_does_not():
    assert generate_problems(50, seed=3) == generate_problems(50, seed=3)
    assert generate_problems(50, seed=3) != generate_problems(50, seed=4)
    assert synthetic_split("test", 20, seed=1) == synthetic_split("test", 20, seed=1)


def test_every_annotation_is_correct_arithmetic_and_the_final_answer_follows_the_last_step():
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
    for example in generate_problems(500, seed=0):
        steps = ANNOTATION.findall(example.answer)
        assert 1 <= len(steps) <= 3, example.answer
        for a, op, b, result, shown in steps:
            assert ops[op](int(a), int(b)) == int(result) == int(shown), example.answer
        assert example.answer.splitlines()[-1] == f"#### {steps[-1][3]}"
        assert extract_gold(example.answer) == steps[-1][3]
        assert 0 <= int(steps[-1][3]) < 1000


def test_problems_vary_in_shape_length_names_and_objects():
    problems = generate_problems(400, seed=0)
    step_counts = {len(ANNOTATION.findall(p.answer)) for p in problems}
    assert step_counts == {1, 2, 3}
    operators = {op for p in problems for _, op, _, _, _ in ANNOTATION.findall(p.answer)}
    assert operators == {"+", "-", "*", "/"}
    first_words = {p.question.split()[0] for p in problems}
    assert len(first_words) > 15
    assert len({p.question for p in problems}) == len(problems)


def test_splits_are_disjoint_by_content_whatever_the_sizes_and_seeds():
    splits = synthetic_splits({"train": 1500, "validation": 100, "test": 200}, seed=0)
    assert {k: len(v) for k, v in splits.items()} == {"train": 1500, "validation": 100, "test": 200}
    questions = {split: {e.question for e in examples} for split, examples in splits.items()}
    assert not questions["train"] & questions["validation"]
    assert not questions["train"] & questions["test"]
    assert not questions["validation"] & questions["test"]
    other_seed_test = {e.question for e in synthetic_split("test", 300, seed=7)}
    assert not other_seed_test & questions["train"]
    assert all(split_of(q) == "test" for q in other_seed_test)


def test_a_split_does_not_change_when_another_split_grows():
    small = synthetic_splits({"train": 10, "test": 50}, seed=0)["test"]
    large = synthetic_splits({"train": 3000, "test": 50}, seed=0)["test"]
    assert small == large
