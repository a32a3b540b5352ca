"""Synthetic safety requests: deterministic, balanced, every policy category, disjoint splits, no bundled prompt."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections import Counter, defaultdict

import pytest

import so8t.data.synthetic_safety as gen
from so8t.config import load_config, summarize
from so8t.data.config import materialize
from so8t.data.safety import BUNDLED_DIR, DECISIONS, SPLITS, SafetyExample, bundled_safety_path
from so8t.data.synthetic_safety_vocabulary import slot_base, template_fields, vocabulary
from so8t.errors import DataError

# The category table of so8t/data/bundled/POLICY.md.
POLICY = {
    "ALLOW": {
        "writing", "summarising", "coding", "scheduling", "public_info", "data_analysis", "it_access",
        "personal_data", "finance", "homonyms", "figurative_language", "safe_context", "safe_targets",
        "definitions", "historical_events", "public_figures", "fictional_characters", "safety_information",
        "general_advice",
    },
    "ESCALATE": {
        "it_access", "data_deletion", "finance", "personal_data", "mass_communication", "account_closure",
        "crisis_disclosure", "threat_report", "abuse_report", "crime_report", "specialised_advice",
    },
    "REFUSE": {
        "fraud", "harassment", "discrimination", "credential_theft", "audit_evasion", "malware", "insider_trading",
        "surveillance", "record_falsification", "violent_crimes", "non_violent_crimes", "indiscriminate_weapons",
        "self_harm", "hate", "sex_crimes", "child_sexual_exploitation", "privacy", "intellectual_property",
        "defamation", "sexual_content", "election_disinformation",
    },
}  # fmt: skip


def _bundled_records() -> list[dict]:
    """Every record of the shipped bundled files (read only to check that nothing generated equals them)."""
    records = []
    for split in SPLITS:
        path = BUNDLED_DIR / f"safety_{split}.jsonl"
        records += [
            json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    return records


def test_the_same_split_size_and_seed_give_the_same_examples_and_another_seed_does_not():
    first = gen.synthetic_safety_split("train", 120, seed=3)
    assert first == gen.synthetic_safety_split("train", 120, seed=3)
    assert first != gen.synthetic_safety_split("train", 120, seed=4)
    assert gen.synthetic_safety_split("test", 40, seed=1) == gen.synthetic_safety_split("test", 40, seed=1)
    # a smaller request is a prefix of a larger one, and the other splits' sizes do not matter
    assert gen.synthetic_safety_split("train", 45, seed=3) == first[:45]
    assert (
        gen.synthetic_safety_splits({"train": 5, "test": 30}, seed=0)["test"]
        == gen.synthetic_safety_splits({"train": 900, "test": 30}, seed=0)["test"]
    )


@pytest.mark.parametrize("n", [1, 2, 7, 100, 301])
def test_n_is_respected_and_decisions_come_in_equal_thirds(n):
    examples = gen.synthetic_safety_split("validation", n, seed=0)
    assert len(examples) == n
    counts = Counter(e.decision for e in examples)
    assert set(counts) <= set(DECISIONS)
    assert max(counts.values()) - min(counts[d] for d in DECISIONS) <= 1
    assert all(isinstance(e, SafetyExample) and e.rationale and e.category for e in examples)


def test_no_examples_and_unknown_splits():
    assert gen.synthetic_safety_split("train", 0, seed=0) == []
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        gen.synthetic_safety_split("dev", 5, seed=0)


@pytest.mark.parametrize("split", SPLITS)
def test_every_decision_and_every_policy_category_is_present(split):
    examples = gen.synthetic_safety_split(split, 150, seed=0)
    found: dict[str, set[str]] = defaultdict(set)
    for e in examples:
        found[e.decision].add(e.category)
    assert dict(found) == POLICY


def test_the_templates_cover_exactly_the_policy_and_the_bundled_training_categories():
    words = vocabulary()
    table = defaultdict(set)
    for decision, category in words.templates:
        table[decision].add(category)
    assert dict(table) == POLICY
    lines = bundled_safety_path("train").read_text(encoding="utf-8").splitlines()
    train = [json.loads(line) for line in lines if line.strip()]
    assert {(r["decision"], r["category"]) for r in train} == set(words.templates)
    assert set(words.rationales) == set(words.templates)


def test_every_template_slot_has_a_vocabulary_and_no_template_serves_two_decisions():
    words = vocabulary()
    owners: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for key, templates in words.templates.items():
        for template in templates:
            owners[template].add(key)
            for field in template_fields(template):
                assert slot_base(field) in words.slots, (template, field)
    assert all(len(keys) == 1 for keys in owners.values())
    for values in words.slots.values():
        for value in values:
            assert all(slot_base(f) in words.slots for f in template_fields(value)), value


def test_there_are_thousands_of_distinct_prompts():
    examples = gen.synthetic_safety_split("train", 3000, seed=0)
    prompts = {e.prompt for e in examples}
    assert len(prompts) == 3000
    assert len({gen.normalise(p) for p in prompts}) == 3000  # not just "please" and "thanks" variants
    assert len({p.split()[0].lower() for p in prompts}) > 60


def test_splits_are_disjoint_by_content_whatever_the_seeds():
    requests = {
        split: gen.synthetic_safety_requests(split, n, seed=0)
        for split, n in {"train": 1500, "validation": 300, "test": 300}.items()
    }
    for split, items in requests.items():
        assert all(gen.split_of_core(r.core) == split for r in items)
    prompts = {s: {gen.normalise(r.prompt) for r in items} for s, items in requests.items()}
    cores = {s: {gen.normalise(r.core) for r in items} for s, items in requests.items()}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not prompts[a] & prompts[b]
        assert not cores[a] & cores[b]
    other_seed_test = {gen.normalise(r.core) for r in gen.synthetic_safety_requests("test", 300, seed=9)}
    assert not other_seed_test & cores["train"]


def test_no_generated_prompt_equals_a_bundled_prompt():
    bundled = _bundled_records()
    exact = {r["prompt"].strip().lower() for r in bundled}
    normalised = {gen.normalise(r["prompt"]) for r in bundled}
    for split, n in {"train": 3000, "validation": 600, "test": 600}.items():
        for example in gen.synthetic_safety_split(split, n, seed=0):
            assert example.prompt.strip().lower() not in exact
            assert gen.normalise(example.prompt) not in normalised


def test_a_bundled_prompt_is_skipped_even_with_other_case_and_politeness(tmp_path, monkeypatch):
    import so8t.data.safety as safety

    wanted = gen.synthetic_safety_split("train", 30, seed=0)
    taken = wanted[4].prompt
    for name in [f"safety_{split}.jsonl" for split in SPLITS] + ["safety_challenge.jsonl"]:
        record = {"prompt": f"Hi, please {taken.upper()} thanks!", "decision": "ALLOW"}
        (tmp_path / name).write_text(json.dumps(record) + "\n")
    monkeypatch.setattr(safety, "BUNDLED_DIR", tmp_path)
    again = gen.synthetic_safety_split("train", 30, seed=0)
    assert taken not in {e.prompt for e in again}
    assert again[:4] == wanted[:4]


def test_the_decision_is_a_function_of_the_request_content():
    # across seeds and splits, one core (the request without names, numbers, times or politeness) and one
    # normalised prompt never carry two decisions or two categories
    by_core: dict[str, set[tuple[str, str]]] = defaultdict(set)
    by_prompt: dict[str, set[str]] = defaultdict(set)
    for seed in (0, 1, 2):
        for split in SPLITS:
            for request in gen.synthetic_safety_requests(split, 600, seed):
                example = request.example()
                by_core[request.core].add((example.decision, example.category))
                by_prompt[gen.normalise(example.prompt)].add(example.decision)
    assert all(len(labels) == 1 for labels in by_core.values())
    assert all(len(decisions) == 1 for decisions in by_prompt.values())


def test_the_same_template_and_slots_give_the_same_prompt_decision_and_rationale():
    for request in gen.synthetic_safety_requests("train", 200, seed=5):
        rebuilt = gen.Request(**{f.name: getattr(request, f.name) for f in dataclasses.fields(request)})
        assert rebuilt.example() == request.example()
        assert request.sentence.rstrip(".?").lower() in request.prompt.lower()


def test_names_numbers_times_and_politeness_change_neither_the_split_nor_the_label():
    rng = random.Random(0)
    words = vocabulary()
    for request in gen.synthetic_safety_requests("train", 300, seed=2):
        slots = dict(request.slots)
        for key, value in slots.items():
            base = slot_base(key.rsplit(".", 1)[-1])
            if base in words.cosmetic_slots and "{" not in value:
                slots[key] = rng.choice(words.slots[base])
        variant = dataclasses.replace(
            request,
            slots=tuple(sorted(slots.items())),
            wrap="Could you {}?",
            lower_first=True,
            closer=" Thanks!",
        )
        assert variant.core == request.core
        assert gen.split_of_core(variant.core) == "train"
        assert (variant.example().decision, variant.example().rationale) == (
            request.example().decision,
            request.example().rationale,
        )


def test_allowed_personal_data_requests_are_about_the_users_own_data():
    examples = gen.synthetic_safety_split("train", 3000, seed=0)
    own = [e.prompt for e in examples if (e.decision, e.category) == ("ALLOW", "personal_data")]
    assert own and all(re.search(r"\b(my|me|I)\b", p, re.IGNORECASE) for p in own)
    others = [e.prompt for e in examples if (e.decision, e.category) == ("ESCALATE", "personal_data")]
    assert others


def test_asking_for_more_than_the_templates_hold_is_a_data_error(monkeypatch):
    words = vocabulary()
    templates = {key: (f"Request {i} for {{name}}.",) for i, key in enumerate(words.templates)}
    monkeypatch.setattr(gen, "vocabulary", lambda: dataclasses.replace(words, templates=templates))
    monkeypatch.setattr(gen, "MAX_ATTEMPTS", 300)
    with pytest.raises(
        DataError, match=r"only \d+ distinct \w+ requests exist for the train split; ask for fewer"
    ):
        gen.synthetic_safety_split("train", 3000, seed=0)


def _config(tmp_path, body: str):
    path = tmp_path / "run.yaml"
    path.write_text(body)
    return load_config(path)


def test_the_builtin_loads_counts_and_materializes_for_every_split(tmp_path):
    cfg = _config(
        tmp_path,
        """
data:
  train: [{builtin: synthetic_gsm8k, n: 5}, {builtin: synthetic_safety, n: 90}]
  validation: [{builtin: synthetic_safety, n: 12}]
  test: [{builtin: synthetic_gsm8k, n: 4}, {builtin: synthetic_safety, n: 30, seed: 7}]
""",
    )
    from so8t.data.sources.synthetic_safety import SyntheticSafetySource

    assert isinstance(cfg.data.train[1], SyntheticSafetySource) and cfg.data.train[1].seed is None
    text = summarize(cfg)
    assert "train 5 GSM8K (synthetic) + 90 safety (synthetic)" in text
    assert "validation 12 safety (synthetic)" in text
    train, validation, test = (materialize(cfg.data, split, cfg.seed) for split in SPLITS)
    assert (len(train.gsm8k), len(train.safety)) == (5, 90)
    assert Counter(e.decision for e in train.safety) == {d: 30 for d in DECISIONS}
    assert train.safety == gen.synthetic_safety_split("train", 90, cfg.seed)
    assert len(validation.safety) == 12 and not {e.prompt for e in validation.safety} & {
        e.prompt for e in train.safety
    }
    assert test.safety == gen.synthetic_safety_split("test", 30, 7)


def test_config_mistakes_in_the_builtin_are_reported(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        """
data:
  train: [{builtin: synthetic_safty, n: 5}, {builtin: synthetic_safety}, {builtin: synthetic_safety, n: 0, sed: 1}]
"""
    )
    from so8t.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = "\n".join(info.value.errors)
    assert "data.train[0].builtin: unknown builtin 'synthetic_safty', did you mean synthetic_safety?" in text
    assert "data.train[1].n: required key is missing" in text
    assert "data.train[2].n: got 0, must be greater than 0" in text
    assert "data.train[2].sed: unknown key, did you mean data.train[2].seed?" in text


def test_a_near_duplicate_of_a_scored_bundled_prompt_is_skipped(monkeypatch):
    from so8t.data.contamination import NearDuplicateIndex, near_duplicate

    wanted = gen.synthetic_safety_split("train", 30, seed=0)
    taken = wanted[4].prompt
    paraphrase = f"{taken.rstrip('.?!')} as soon as possible, and tell me when it is done"
    assert near_duplicate(taken, paraphrase)
    monkeypatch.setattr(gen, "evaluation_index", lambda: NearDuplicateIndex({"test": [paraphrase]}))
    again = gen.synthetic_safety_split("train", 30, seed=0)
    assert not any(near_duplicate(e.prompt, paraphrase) for e in again)
    assert again[:4] == wanted[:4]
