"""materialize: a split's configured sources become examples; write_split_jsonl round-trips them."""

from __future__ import annotations

import pytest
from data_fixtures import GSM8K_RECORDS, SAFETY_RECORDS, write_jsonl

from so8t.config import load_config
from so8t.data.config import materialize
from so8t.data.gsm8k import read_gsm8k
from so8t.data.safety import DECISIONS, SafetyExample, bundled_safety_path, read_safety
from so8t.data.split import SplitData, write_split_jsonl
from so8t.errors import DataError


def _config(tmp_path, body: str):
    path = tmp_path / "run.yaml"
    path.write_text(body)
    return load_config(path)


def test_materialize_combines_files_synthetic_and_bundled_sources(tmp_path, bundled_safety):
    write_jsonl(tmp_path / "data" / "g1.train.jsonl", GSM8K_RECORDS)
    write_jsonl(tmp_path / "data" / "s.train.jsonl", SAFETY_RECORDS)
    cfg = _config(
        tmp_path,
        """
data:
  train: ["data/*.train.jsonl", {builtin: synthetic_gsm8k, n: 7}, {builtin: safety}]
  validation: [{builtin: synthetic_gsm8k, n: 3}]
  test: [{builtin: safety}, {builtin: synthetic_gsm8k, n: 4}]
""",
    )
    train = materialize(cfg.data, "train", cfg.seed)
    assert len(train.gsm8k) == 2 + 7 and len(train.safety) == 3 + 3 and train.skipped == 0
    assert all(isinstance(e, SafetyExample) and e.decision in DECISIONS for e in train.safety)
    test = materialize(cfg.data, "test", cfg.seed)
    assert (len(test.gsm8k), len(test.safety)) == (4, 3)
    validation_questions = {e.question for e in materialize(cfg.data, "validation", cfg.seed).gsm8k}
    assert not validation_questions & {e.question for e in train.gsm8k}


def test_skipped_records_are_counted_per_split(tmp_path):
    write_jsonl(tmp_path / "g.jsonl", GSM8K_RECORDS, ["{oops", '{"question": "q"}'])
    cfg = _config(
        tmp_path,
        """
data:
  train: [g.jsonl]
  validation: []
  test: [g.jsonl]
  on_bad_record: skip
  safety_fraction: 0
train: {eval_strategy: "no"}
eval: {tasks: [so8t_gsm8k_local]}
""",
    )
    split = materialize(cfg.data, "train", cfg.seed)
    assert (len(split.gsm8k), split.skipped) == (2, 2)


def test_a_file_that_went_bad_after_validation_raises_data_error_with_its_line(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", GSM8K_RECORDS)
    cfg = _config(
        tmp_path,
        """
data: {train: [g.jsonl], validation: [], test: [g.jsonl], safety_fraction: 0}
train: {eval_strategy: "no"}
eval: {tasks: [gsm8k]}
""",
    )
    with path.open("a") as handle:
        handle.write('{"answer": "#### 1"}\n')
    with pytest.raises(DataError, match=r"g\.jsonl:3: missing \"question\""):
        materialize(cfg.data, "train", cfg.seed)


def test_write_split_jsonl_round_trips_both_formats(tmp_path):
    split = SplitData(
        gsm8k=read_gsm8k(write_jsonl(tmp_path / "g.jsonl", GSM8K_RECORDS)),
        safety=read_safety(write_jsonl(tmp_path / "s.jsonl", SAFETY_RECORDS)),
        split="test",
    )
    written = write_split_jsonl(split, tmp_path / "out")
    assert {k: p.name for k, p in written.items()} == {
        "gsm8k": "gsm8k_test.jsonl",
        "safety": "safety_test.jsonl",
    }
    assert read_gsm8k(written["gsm8k"]) == split.gsm8k
    assert read_safety(written["safety"]) == split.safety
    only_gsm8k = write_split_jsonl(SplitData(gsm8k=split.gsm8k, split="validation"), tmp_path / "out2")
    assert list(only_gsm8k) == ["gsm8k"]


def test_bundled_safety_path_points_into_the_package():
    path = bundled_safety_path("validation")
    assert path.name == "safety_validation.jsonl" and path.parent.name == "bundled"
    assert path.parent.parent.name == "data"
    with pytest.raises(ValueError):
        bundled_safety_path("dev")


def test_hub_sources_load_through_datasets_only_when_materialized(tmp_path, bundled_safety, monkeypatch):
    import sys
    import types

    calls = []

    def load_dataset(repo, name=None, split=None, revision=None):
        calls.append((repo, name, split))
        if repo == "openai/gsm8k":
            return GSM8K_RECORDS
        return SAFETY_RECORDS + [{"prompt": "p", "decision": "PERHAPS"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    cfg = _config(
        tmp_path,
        """
data:
  train:
    - {hub: openai/gsm8k, name: main, split: "train[:95%]"}
    - {hub: someone/decisions, format: safety}
  on_bad_record: skip
""",
    )
    assert calls == []  # validation never touches the hub
    train = materialize(cfg.data, "train", cfg.seed)
    assert calls == [("openai/gsm8k", "main", "train[:95%]"), ("someone/decisions", None, "train")]
    assert (len(train.gsm8k), len(train.safety), train.skipped) == (2, 3, 1)


def test_repeat_weighs_a_training_source_up_without_touching_the_others(tmp_path, bundled_safety):
    write_jsonl(tmp_path / "s.jsonl", SAFETY_RECORDS)
    cfg = _config(
        tmp_path,
        """
data:
  train: [{path: s.jsonl, repeat: 4}, {builtin: synthetic_gsm8k, n: 5}, {builtin: safety}]
  validation: [{builtin: synthetic_gsm8k, n: 3}]
  test: [{builtin: safety}, {builtin: synthetic_gsm8k, n: 3}]
""",
    )
    train = materialize(cfg.data, "train", cfg.seed)
    assert len(train.gsm8k) == 5
    from_file = [e.prompt for e in train.safety[: 4 * len(SAFETY_RECORDS)]]
    assert from_file == [r["prompt"] for r in SAFETY_RECORDS] * 4
    assert len(train.safety) == 4 * len(SAFETY_RECORDS) + len(read_safety(bundled_safety_path("train")))
