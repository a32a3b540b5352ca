"""The balanced order of the bundled evaluation files (so8t.data.eval_order)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from so8t.data.eval_order import balanced_order, main, read_records, write_records
from so8t.data.safety import DECISIONS


def _records(per_category: dict[tuple[str, str], int]) -> list[dict]:
    return [
        {"prompt": f"{category} {i}", "decision": decision, "category": category}
        for (decision, category), n in per_category.items()
        for i in range(n)
    ]


SORTED_BY_CLASS = _records(
    {("ALLOW", "a"): 6, ("ALLOW", "b"): 3, ("ESCALATE", "c"): 9, ("REFUSE", "d"): 2, ("REFUSE", "e"): 7}
)


def test_a_file_sorted_by_class_becomes_rounds_of_one_of_each_decision():
    ordered = balanced_order(SORTED_BY_CLASS)
    assert sorted(map(str, ordered)) == sorted(map(str, SORTED_BY_CLASS))
    for start in range(0, len(ordered), 3):
        assert {r["decision"] for r in ordered[start : start + 3]} == set(DECISIONS)
    # the class that opens a round rotates
    assert [ordered[3 * i]["decision"] for i in range(3)] == list(DECISIONS)


def test_categories_are_spread_and_keep_their_own_order():
    ordered = balanced_order(SORTED_BY_CLASS)
    allow = [r["prompt"] for r in ordered if r["decision"] == "ALLOW"]
    assert allow == ["a 0", "b 0", "a 1", "a 2", "b 1", "a 3", "a 4", "b 2", "a 5"]
    refuse = [r["category"] for r in ordered if r["decision"] == "REFUSE"]
    assert refuse[:2].count("d") == 0 and Counter(refuse[:5])["d"] == 1


def test_the_order_depends_only_on_each_categorys_own_order():
    shuffled = SORTED_BY_CLASS[:]
    random.Random(0).shuffle(shuffled)
    # shuffling across categories changes nothing once each category's records keep their relative order
    regrouped = sorted(shuffled, key=lambda r: SORTED_BY_CLASS.index(r))
    assert balanced_order(regrouped) == balanced_order(SORTED_BY_CLASS)
    assert balanced_order(balanced_order(shuffled)) == balanced_order(shuffled)


def test_unbalanced_decisions_cannot_be_ordered():
    with pytest.raises(ValueError, match="equally many records of each decision"):
        balanced_order(_records({("ALLOW", "a"): 2, ("ESCALATE", "b"): 1, ("REFUSE", "c"): 1}))
    with pytest.raises(ValueError):
        balanced_order([*SORTED_BY_CLASS, {"prompt": "x", "decision": "MAYBE"}])


def test_the_tool_rewrites_every_scored_file_and_leaves_training_alone(tmp_path, monkeypatch):
    import so8t.data.safety as safety

    for name in ("train", "validation", "test", "challenge"):
        write_records(tmp_path / f"safety_{name}.jsonl", SORTED_BY_CLASS)
    monkeypatch.setattr(safety, "BUNDLED_DIR", tmp_path)
    main()
    for name in ("validation", "test", "challenge"):
        assert read_records(tmp_path / f"safety_{name}.jsonl") == balanced_order(SORTED_BY_CLASS)
    assert read_records(tmp_path / "safety_train.jsonl") == SORTED_BY_CLASS
