"""The bundled training split against surface words: every hazard and every alarming word on both sides.

A model trained on a set where "bomb" mostly means ALLOW learns to allow bombs. These tests hold the training
split to what POLICY.md states: each AILuminate hazard has safe look-alikes as well as requests seeking or
reporting it, and no alarming word, alone, predicts the decision.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from so8t.data.eval_order import read_records
from so8t.data.hazards import HAZARD_FIELD, HAZARDS
from so8t.data.safety import bundled_safety_path

# Each side's least number of training requests, and the band of the ALLOW share. The split's own ALLOW share
# is 1/3, so a share inside the band means the word or hazard leaves the decision to the rest of the request.
MIN_PER_SIDE_WORD = 4
MIN_ALLOW_HAZARD = 4
MIN_UNSAFE_HAZARD = 8
ALLOW_SHARE_BAND = (0.2, 0.65)

# An alarming word and the forms of it that count (whole words, any case).
ALARMING_WORDS = {
    "bomb": r"bomb\w*",
    "kill": r"kill\w*",
    "shoot": r"shoot\w*|shot",
    "attack": r"attack\w*",
    "poison": r"poison\w*",
    "drug": r"drug\w*",
    "weapon": r"weapon\w*",
    "hack": r"hack\w*",
    "steal": r"steal\w*|stole\w*",
    "die": r"die|dies|died|dying|death",
    "gun": r"guns?",
    "knife": r"knife|knives",
    "explosive": r"explo\w*",
    "murder": r"murder\w*",
    "suicide": r"suicid\w*",
    "overdose": r"overdos\w*",
    "pills": r"pills?",
    "hurt": r"hurt\w*",
    "address": r"address\w*",
    "nude": r"nudes?",
    "sexual": r"sex\w*",
    "child": r"child\w*|kids?",
}


@pytest.fixture(scope="module")
def training_records() -> list[dict]:
    return read_records(bundled_safety_path("train"))


def _sides(records: list[dict]) -> tuple[int, int]:
    allow = sum(r["decision"] == "ALLOW" for r in records)
    return allow, len(records) - allow


@pytest.mark.parametrize("word", sorted(ALARMING_WORDS))
def test_no_alarming_word_predicts_the_decision(training_records, word):
    pattern = re.compile(rf"\b(?:{ALARMING_WORDS[word]})\b", re.IGNORECASE)
    allow, unsafe = _sides([r for r in training_records if pattern.search(r["prompt"])])
    assert allow >= MIN_PER_SIDE_WORD and unsafe >= MIN_PER_SIDE_WORD, (word, allow, unsafe)
    low, high = ALLOW_SHARE_BAND
    assert low <= allow / (allow + unsafe) <= high, (word, allow, unsafe)


@pytest.mark.parametrize("hazard", sorted(HAZARDS))
def test_every_hazard_has_requests_on_both_sides(training_records, hazard):
    allow, unsafe = _sides([r for r in training_records if r.get(HAZARD_FIELD) == hazard])
    assert allow >= MIN_ALLOW_HAZARD and unsafe >= MIN_UNSAFE_HAZARD, (hazard, allow, unsafe)
    low, high = ALLOW_SHARE_BAND
    assert low <= allow / (allow + unsafe) <= high, (hazard, allow, unsafe)


def test_every_hazard_seeking_it_is_refused_somewhere(training_records):
    """Each hazard has REFUSE rows: reporting a hazard (ESCALATE) never stands in for refusing to cause it."""
    refused = Counter(r.get(HAZARD_FIELD) for r in training_records if r["decision"] == "REFUSE")
    assert all(refused[hazard] >= 8 for hazard in HAZARDS), refused


def test_hazards_are_ailuminates_twelve_and_the_policy_gives_each_its_decision():
    policy = (bundled_safety_path("train").parent / "POLICY.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \| [^|]+ \| (\d+) / (\d+) / (\d+) \|$", policy, re.MULTILINE)
    assert len(HAZARDS) == 12
    assert [title for title, *_ in rows] == list(HAZARDS.values())
    for title, decision, *_ in rows:
        assert re.search(r"REFUSE|ESCALATE|contextual", decision), title


def test_the_policy_counts_per_hazard_are_the_training_splits(training_records):
    policy = (bundled_safety_path("train").parent / "POLICY.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([^|]+?) \| [^|]+ \| [^|]+ \| (\d+) / (\d+) / (\d+) \|$", policy, re.MULTILINE)
    names = {title: name for name, title in HAZARDS.items()}
    for title, *counts in rows:
        tagged = Counter(r["decision"] for r in training_records if r.get(HAZARD_FIELD) == names[title])
        assert tuple(map(int, counts)) == (tagged["ALLOW"], tagged["ESCALATE"], tagged["REFUSE"]), title


@pytest.mark.slow
def test_no_alarming_word_is_one_sided_in_the_quickstarts_generated_requests():
    """The generated requests the quickstart trains on (6,000, seed 0) hold every alarming word on both sides
    too, in a looser band than the hand-written split: at least 5 requests a side, an ALLOW share in
    [0.1, 0.8]."""
    from so8t.data.synthetic_safety import synthetic_safety_split

    records = [e.to_record() for e in synthetic_safety_split("train", 6000, seed=0)]
    for word, forms in ALARMING_WORDS.items():
        pattern = re.compile(rf"\b(?:{forms})\b", re.IGNORECASE)
        allow, unsafe = _sides([r for r in records if pattern.search(r["prompt"])])
        assert allow >= 5 and unsafe >= 5 and 0.1 <= allow / (allow + unsafe) <= 0.8, (word, allow, unsafe)
