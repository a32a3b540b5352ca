"""Files shipped in so8t/data/bundled/: a missing or malformed one is an error naming it, never a skip."""

from __future__ import annotations

import json
import shutil

import pytest

import so8t.data.safety as safety
import so8t.data.synthetic_safety as gen
import so8t.data.synthetic_safety_vocabulary as vocab
from so8t.data.safety import BUNDLED_DIR, SPLITS
from so8t.errors import DataError

BUNDLED_SAFETY_FILES = [f"safety_{split}.jsonl" for split in SPLITS] + ["safety_challenge.jsonl"]


@pytest.fixture
def bundled_copy(tmp_path, monkeypatch):
    """A copy of the shipped bundled folder that a test may damage; so8t reads the copy."""
    folder = tmp_path / "bundled"
    shutil.copytree(BUNDLED_DIR, folder)
    monkeypatch.setattr(safety, "BUNDLED_DIR", folder)
    return folder


@pytest.fixture
def fresh_vocabulary():
    """Reads of the vocabulary in the test start from the file; the cache is emptied again afterwards."""
    vocab.vocabulary.cache_clear()
    yield
    vocab.vocabulary.cache_clear()


def _assert_names_file_and_fix(error: pytest.ExceptionInfo, path, *fragments: str) -> None:
    text = str(error.value)
    assert str(path) in text and "reinstall so8t" in text
    for fragment in fragments:
        assert fragment in text


# ---------------------------------------------------------------------------------- bundled safety files


@pytest.mark.parametrize("name", BUNDLED_SAFETY_FILES)
def test_a_missing_bundled_safety_file_stops_the_copy_guard_and_generation(bundled_copy, name):
    (bundled_copy / name).unlink()
    with pytest.raises(DataError) as error:
        gen.bundled_prompts()
    _assert_names_file_and_fix(error, bundled_copy / name, "missing")
    with pytest.raises(DataError, match="reinstall so8t"):
        gen.synthetic_safety_split("train", 3, seed=0)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"prompt": "Summarise the notes.", "decision": "ALLOW"', "invalid JSON"),
        ('["Summarise the notes.", "ALLOW"]', "expected a JSON object"),
        ('{"prompt": "Summarise the notes."}', 'missing "decision"'),
        ('{"prompt": "Summarise the notes.", "decision": "MAYBE"}', "\"decision\" is 'MAYBE'"),
    ],
)
def test_a_malformed_line_of_a_bundled_safety_file_is_named_with_its_line(bundled_copy, line, reason):
    path = bundled_copy / "safety_validation.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        gen.bundled_prompts()
    _assert_names_file_and_fix(error, f"{path}:3", reason)
    assert "on_bad_record" not in str(error.value)


def test_a_bundled_safety_file_that_is_not_text_is_an_error(bundled_copy):
    path = bundled_copy / "safety_test.jsonl"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(DataError) as error:
        gen.bundled_prompts()
    _assert_names_file_and_fix(error, path, "not UTF-8")


def test_the_shipped_bundled_files_read_whole():
    counts = {name: len(safety.read_bundled_safety(BUNDLED_DIR / name)) for name in BUNDLED_SAFETY_FILES}
    assert counts["safety_challenge.jsonl"] >= 240 and counts["safety_train.jsonl"] >= 240
    prompts = gen.bundled_prompts()
    for name in BUNDLED_SAFETY_FILES:
        for line in (BUNDLED_DIR / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                assert gen.normalise(json.loads(line)["prompt"]) in prompts


# ------------------------------------------------------------------------- the synthetic safety data file


def test_the_vocabulary_is_read_once_per_process(fresh_vocabulary, monkeypatch):
    reads = []
    real = vocab.load_vocabulary
    monkeypatch.setattr(vocab, "load_vocabulary", lambda path: reads.append(path) or real(path))
    first = vocab.vocabulary()
    gen.synthetic_safety_split("validation", 30, seed=0)
    assert vocab.vocabulary() is first
    assert reads == [vocab.VOCABULARY_PATH]


def test_a_missing_vocabulary_file_stops_generation(fresh_vocabulary, tmp_path, monkeypatch):
    missing = tmp_path / "synthetic_safety.yaml"
    monkeypatch.setattr(vocab, "VOCABULARY_PATH", missing)
    with pytest.raises(DataError) as error:
        gen.synthetic_safety_split("train", 3, seed=0)
    _assert_names_file_and_fix(error, missing, "missing")


def _damaged(tmp_path, old: str, new: str):
    text = vocab.VOCABULARY_PATH.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "synthetic_safety.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ('  weekday: ["Monday",', '  weekday: ["Monday,', ["not valid YAML at line"]),
        ('  years: ["two",', "  years: [2,", ["slots.years[0]", "found 2"]),
        ("categories:\n  ALLOW:", "categories:\n  PERMIT:", ["categories.PERMIT: unknown key"]),
        ("      templates:\n", "      template:\n", ["categories.ALLOW.writing.template: unknown key"]),
        (
            '"Draft {doc} for {audience} about {topic}."',
            '"Draft {doc} for {audiences} about {topic}."',
            ["categories.ALLOW.writing.templates[0]", "{audiences}", "no vocabulary"],
        ),
        ('"Proofread my note', '"Proofread {} my note', ["categories.ALLOW.writing.templates[2]", "holds {}"]),
        ("      weight: 2", "      weight: 0", ["categories.ALLOW.it_access.weight", "found 0"]),
        ('cosmetic_slots: [\n  "name",', 'cosmetic_slots: [\n  "nmae",', ["cosmetic_slots: 'nmae'"]),
        ('  - {text: "Please {}", lowercase_first: true}', '  - {text: "Please", lowercase_first: true}',
         ["imperative_wraps[3].text"]),
        ("closers:", "closer:", ["top level.closer: unknown key"]),
    ],
)  # fmt: skip
def test_a_malformed_vocabulary_file_is_named_with_the_key(tmp_path, old, new, fragments):
    path = _damaged(tmp_path, old, new)
    with pytest.raises(DataError) as error:
        vocab.load_vocabulary(path)
    _assert_names_file_and_fix(error, path, *fragments)


def test_the_shipped_vocabulary_file_reads_and_holds_every_decision():
    words = vocab.load_vocabulary(vocab.VOCABULARY_PATH)
    assert {decision for decision, _ in words.templates} == set(safety.DECISIONS)
    assert set(words.category_weights) == set(words.templates) == set(words.rationales)
    assert words.cosmetic_slots <= set(words.slots)
