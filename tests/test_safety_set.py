"""The bundled safety-decision set: size, balance, validity and clean splits."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

BUNDLED = Path(__file__).resolve().parents[1] / "so8t" / "data" / "bundled"
SPLITS = ("train", "validation", "test")
FILES = (*SPLITS, "challenge")  # safety_<name>.jsonl; the challenge set is held out from all three splits
DECISIONS = ("ALLOW", "ESCALATE", "REFUSE")


def _load(name: str) -> list[dict]:
    with open(BUNDLED / f"safety_{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def files() -> dict[str, list[dict]]:
    return {name: _load(name) for name in FILES}


@pytest.fixture(scope="module")
def splits(files) -> dict[str, list[dict]]:
    return {split: files[split] for split in SPLITS}


@pytest.fixture(scope="module")
def challenge(files) -> list[dict]:
    return files["challenge"]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _masked(text: str) -> str:
    """Prompt with numbers and capitalised words (names) masked, to catch name/number-only variants."""
    text = re.sub(r"\d[\d,.]*", "#", text)
    text = re.sub(r"\b[A-Z][a-zA-Z']*\b", "N", text)
    return _norm(text)


def test_set_has_at_least_300_records(splits):
    assert sum(len(records) for records in splits.values()) >= 300


def test_split_sizes_are_about_240_60_60(splits):
    assert len(splits["train"]) >= 240
    assert len(splits["validation"]) >= 60
    assert len(splits["test"]) >= 60


@pytest.mark.parametrize("split", FILES)
def test_every_split_is_balanced_over_decisions(files, split):
    counts = Counter(record["decision"] for record in files[split])
    assert set(counts) == set(DECISIONS)
    assert len(set(counts.values())) == 1, counts


@pytest.mark.parametrize("split", FILES)
def test_every_record_is_valid(files, split):
    from so8t.data.hazards import HAZARD_FIELD, HAZARDS

    for line, record in enumerate(files[split], start=1):
        # the training split's general-harm rows name their hazard; the scored files hold the four fields only
        optional = {HAZARD_FIELD} if split == "train" else set()
        assert {"prompt", "decision", "rationale", "category"} <= set(record), (split, line)
        assert set(record) - {"prompt", "decision", "rationale", "category"} <= optional, (split, line)
        assert record.get(HAZARD_FIELD, "violent_crimes") in HAZARDS, (split, line)
        assert record["decision"] in DECISIONS, (split, line)
        for key in ("prompt", "rationale", "category"):
            assert isinstance(record[key], str) and record[key].strip(), (split, line, key)
        assert re.fullmatch(r"[a-z_]+", record["category"]), (split, line)


def test_prompts_are_distinct_after_normalisation(splits):
    prompts = [_norm(r["prompt"]) for records in splits.values() for r in records]
    duplicates = [p for p, n in Counter(prompts).items() if n > 1]
    assert not duplicates


@pytest.mark.parametrize("split", ["validation", "test"])
def test_held_out_prompts_are_not_name_or_number_variants_of_train(splits, split):
    train = {_masked(r["prompt"]) for r in splits["train"]}
    leaked = [r["prompt"] for r in splits[split] if _masked(r["prompt"]) in train]
    assert not leaked


def test_validation_and_test_are_disjoint(splits):
    validation = {_masked(r["prompt"]) for r in splits["validation"]}
    assert not [r["prompt"] for r in splits["test"] if _masked(r["prompt"]) in validation]


@pytest.mark.parametrize("split", ["validation", "test", "challenge"])
def test_held_out_categories_are_seen_in_train(files, split):
    train_pairs = {(r["category"], r["decision"]) for r in files["train"]}
    unseen = {(r["category"], r["decision"]) for r in files[split]} - train_pairs
    assert not unseen


@pytest.mark.parametrize("split", ["validation", "test"])
def test_held_out_splits_cover_every_train_category(splits, split):
    assert {r["category"] for r in splits[split]} == {r["category"] for r in splits["train"]}


def test_each_category_mostly_maps_to_one_decision(splits):
    by_category: dict[str, Counter] = {}
    for records in splits.values():
        for r in records:
            by_category.setdefault(r["category"], Counter())[r["decision"]] += 1
    for category, counts in by_category.items():
        assert counts.most_common(1)[0][1] / sum(counts.values()) >= 0.6, (category, counts)


def test_reader_module_reads_every_bundled_split(splits):
    safety = pytest.importorskip("so8t.data.safety")
    for split in SPLITS:
        examples = safety.read_safety(safety.bundled_safety_path(split))
        assert [e.prompt for e in examples] == [r["prompt"] for r in splits[split]]
        assert [e.decision for e in examples] == [r["decision"] for r in splits[split]]


def test_challenge_set_is_disjoint_from_every_split(splits, challenge):
    """The challenge set is held out from everything: no prompt of it is a name/number variant of any split's
    prompt or of another challenge prompt."""
    assert len(challenge) >= 240
    seen = {_masked(r["prompt"]) for records in splits.values() for r in records}
    assert not [r["prompt"] for r in challenge if _masked(r["prompt"]) in seen]
    masked = [_masked(r["prompt"]) for r in challenge]
    assert len(set(masked)) == len(masked)


def test_challenge_set_reads_and_generated_requests_stay_off_it(challenge):
    safety = pytest.importorskip("so8t.data.safety")
    synthetic = pytest.importorskip("so8t.data.synthetic_safety")
    examples = safety.read_safety(safety.bundled_challenge_path())
    assert [e.prompt for e in examples] == [r["prompt"] for r in challenge]
    excluded = synthetic.bundled_prompts()
    assert all(synthetic.normalise(r["prompt"]) in excluded for r in challenge)


# ------------------------------------------------------------------------------- general harm and look-alikes

EVAL_FILES = ("validation", "test", "challenge")
# The general-harm categories (MLCommons AILuminate v1.0 hazards) and the safe look-alikes (XSTest's types).
GENERAL_HARM = {
    ("ALLOW", "homonyms"), ("ALLOW", "figurative_language"), ("ALLOW", "safe_context"),
    ("ALLOW", "safe_targets"), ("ALLOW", "definitions"), ("ALLOW", "historical_events"),
    ("ALLOW", "public_figures"), ("ALLOW", "fictional_characters"), ("ALLOW", "safety_information"),
    ("ALLOW", "general_advice"), ("ESCALATE", "crisis_disclosure"), ("ESCALATE", "threat_report"),
    ("ESCALATE", "abuse_report"), ("ESCALATE", "crime_report"), ("ESCALATE", "specialised_advice"),
    ("REFUSE", "violent_crimes"), ("REFUSE", "non_violent_crimes"), ("REFUSE", "indiscriminate_weapons"),
    ("REFUSE", "self_harm"), ("REFUSE", "hate"), ("REFUSE", "sex_crimes"), ("REFUSE", "child_sexual_exploitation"),
    ("REFUSE", "privacy"), ("REFUSE", "intellectual_property"), ("REFUSE", "defamation"),
    ("REFUSE", "sexual_content"), ("REFUSE", "election_disinformation"),
}  # fmt: skip


def _policy_text() -> str:
    return (BUNDLED / "POLICY.md").read_text(encoding="utf-8")


def test_the_policy_table_names_exactly_the_categories_of_the_training_split(splits):
    rows = re.findall(r"^\| (ALLOW|ESCALATE|REFUSE) \| ([^|]+) \|$", _policy_text(), re.MULTILINE)
    documented = {
        (decision, name)
        for decision, cell in rows
        for name in re.findall(r"[a-z_]+", re.sub(r"\([^)]*\)", "", cell))
    }
    assert documented == {(r["decision"], r["category"]) for r in splits["train"]}
    assert GENERAL_HARM <= documented


def test_the_policy_counts_of_the_general_harm_categories_are_the_files_counts(files):
    rows = re.findall(
        r"^\| (ALLOW|ESCALATE|REFUSE) \| ([a-z_]+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$",
        _policy_text(),
        re.M,
    )
    documented = {(decision, category): tuple(map(int, counts)) for decision, category, *counts in rows}
    assert set(documented) == GENERAL_HARM
    for key, counts in documented.items():
        actual = tuple(sum((r["decision"], r["category"]) == key for r in files[name]) for name in FILES)
        assert actual == counts, key


@pytest.mark.parametrize("split", ["validation", "test"])
def test_every_category_is_in_every_split_in_proportion_to_train(splits, split):
    """Validation and test are a quarter of train: each category's share is within a factor 2 of that."""
    train = Counter((r["decision"], r["category"]) for r in splits["train"])
    held_out = Counter((r["decision"], r["category"]) for r in splits[split])
    for key, n in train.items():
        assert held_out[key] >= 1 and 2 <= n / held_out[key] <= 8, (key, n, held_out[key])


def test_the_challenge_set_covers_every_general_harm_category(files):
    """Every training category is in the challenge set; each general-harm category with at least 3 requests
    (written separately, the challenge set samples every category rather than mirroring training's counts)."""
    train = Counter((r["decision"], r["category"]) for r in files["train"])
    challenge = Counter((r["decision"], r["category"]) for r in files["challenge"])
    assert set(challenge) == set(train)
    assert all(challenge[key] >= 3 and train[key] >= 8 for key in GENERAL_HARM)


# ------------------------------------------------------------------------------------- order of the files


@pytest.mark.parametrize("name", EVAL_FILES)
def test_every_prefix_of_three_k_records_holds_k_of_each_decision(files, name):
    records = files[name]
    for k in sorted({1, 2, 5, 10, 13, 20, len(records) // 6, len(records) // 3}):
        counts = Counter(r["decision"] for r in records[: 3 * k])
        assert counts == {decision: k for decision in DECISIONS}, (name, k, counts)


@pytest.mark.parametrize("name", EVAL_FILES)
def test_each_category_is_spread_over_the_file(files, name):
    """A category's records are not bunched: the first half of the file holds half of them, within one."""
    records = files[name]
    half = Counter((r["decision"], r["category"]) for r in records[: len(records) // 2])
    for key, n in Counter((r["decision"], r["category"]) for r in records).items():
        assert abs(half[key] - n / 2) <= 1, (name, key, half[key], n)


@pytest.mark.parametrize("name", EVAL_FILES)
def test_the_files_are_in_the_order_the_tool_writes(files, name):
    from so8t.data.eval_order import balanced_order

    assert balanced_order(files[name]) == files[name]


def test_limit_through_the_real_task_keeps_the_challenge_set_balanced(task_manager_factory):
    path = BUNDLED / "safety_challenge.jsonl"
    task = task_manager_factory({"data_files": str(path)}).load(["so8t_safety_local"])["tasks"][
        "so8t_safety_local"
    ]
    for limit in (20, 40, 41, 100):
        docs = [doc for _, doc in task.doc_iterator(rank=0, limit=limit, world_size=1)]
        counts = Counter(doc["decision"] for doc in docs)
        assert len(docs) == limit and max(counts.values()) - min(counts[d] for d in DECISIONS) <= 1, counts
