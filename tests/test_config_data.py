"""Data sources in the config: forms, relative paths, and the shard guard run by load_config."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_fixtures import GSM8K_RECORDS, SAFETY_RECORDS, write_jsonl

from so8t.config import load_config, summarize
from so8t.data.sources.bundled_safety import SafetySource
from so8t.data.sources.files import PathSource
from so8t.data.sources.hub import HubSource
from so8t.data.sources.synthetic_gsm8k import SyntheticSource
from so8t.errors import ConfigError

FILES_CONFIG = """
data:
  train: ["data/*.train.jsonl"]
  validation: ["data/*.val.jsonl"]
  test: ["data/*.test.jsonl"]
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "configs" / "run.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def _files(tmp_path: Path, *splits: str) -> None:
    for split in splits:
        write_jsonl(tmp_path / "configs" / "data" / f"g.{split}.jsonl", GSM8K_RECORDS)
        write_jsonl(tmp_path / "configs" / "data" / f"s.{split}.jsonl", SAFETY_RECORDS)


def _errors(path: Path, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    return info.value.errors


def test_all_source_forms_parse_and_relative_paths_resolve_against_the_config_folder(
    tmp_path, bundled_safety
):
    _files(tmp_path, "train")
    path = _write(
        tmp_path,
        """
data:
  train:
    - data/g.train.jsonl
    - {path: "data/s.*.jsonl", format: safety}
    - {hub: openai/gsm8k, name: main, split: "train[:95%]", format: gsm8k}
    - {builtin: synthetic_gsm8k, n: 5, seed: 1}
    - {builtin: safety}
""",
    )
    cfg = load_config(path)
    sources = cfg.data.train
    assert [type(s) for s in sources] == [PathSource, PathSource, HubSource, SyntheticSource, SafetySource]
    assert sources[0].path == str(tmp_path / "configs" / "data" / "g.train.jsonl")
    assert sources[0].format == "auto" and sources[1].format == "safety"
    assert (sources[2].hub, sources[2].split) == ("openai/gsm8k", "train[:95%]")
    summary = summarize(cfg)
    assert (
        "train 7+ GSM8K (files, hub openai/gsm8k train[:95%], synthetic) + 6 safety (bundled, files)"
        in summary
    )


def test_validation_glob_matching_nothing_is_rejected_before_any_model_loads(tmp_path, bundled_safety):
    _files(tmp_path, "train", "test")
    errors = _errors(_write(tmp_path, FILES_CONFIG))
    assert len(errors) == 1
    assert errors[0].startswith("data.validation[0]: pattern 'data/*.val.jsonl' (resolved to ")
    assert "matched 0 files" in errors[0]
    assert "remove this source from data.validation and set train.eval_strategy: no" in errors[0]


def test_validation_glob_matching_an_empty_shard_is_rejected(tmp_path, bundled_safety):
    _files(tmp_path, "train", "val", "test")
    (tmp_path / "configs" / "data" / "empty.val.jsonl").write_text("")
    errors = _errors(_write(tmp_path, FILES_CONFIG))
    assert len(errors) == 1 and "empty.val.jsonl: empty file" in errors[0]
    assert errors[0].startswith("data.validation[0]: ")


def test_validation_shard_with_a_bad_line_is_rejected_unless_skipping(tmp_path, bundled_safety):
    _files(tmp_path, "train", "val", "test")
    write_jsonl(tmp_path / "configs" / "data" / "bad.val.jsonl", GSM8K_RECORDS * 3, ['{"question": "q"}'])
    path = _write(tmp_path, FILES_CONFIG)
    errors = _errors(path)
    assert len(errors) == 1 and 'bad.val.jsonl: line 7: missing "answer"' in errors[0]
    cfg = load_config(path, ["data.on_bad_record=skip"])
    # which split lost how many of its records, and why
    assert "1 bad record(s) skipped (validation 1 of " in summarize(cfg)
    assert 'bad.val.jsonl:7: missing "answer"' in summarize(cfg)


def test_switching_validation_off_allows_dropping_the_validation_source(tmp_path, bundled_safety):
    _files(tmp_path, "train", "test")
    path = _write(tmp_path, FILES_CONFIG)
    cfg = load_config(path, ["data.validation=[]", "train.eval_strategy=no"])
    assert cfg.data.validation == [] and cfg.train.eval_strategy == "no"


def test_problems_in_several_splits_and_sections_are_reported_together(tmp_path, bundled_safety):
    _files(tmp_path, "train")
    path = _write(tmp_path, FILES_CONFIG + "train: {learning_rate: 0}\n")
    errors = _errors(path)
    assert [e.split(":")[0] for e in errors] == ["train.learning_rate", "data.validation[0]", "data.test[0]"]


def test_training_mix_and_local_tasks_need_the_formats_they_read(tmp_path, bundled_safety):
    path = _write(
        tmp_path,
        """
data:
  train: [{builtin: synthetic_gsm8k, n: 10}]
  test: [{builtin: synthetic_gsm8k, n: 10}]
eval: {tasks: [so8t_gsm8k_local, so8t_safety_local]}
""",
    )
    errors = _errors(path)
    assert any(
        e.startswith("data.safety_fraction: is 0.5 but data.train has no safety source") for e in errors
    )
    assert any(
        e.startswith("eval.tasks: so8t_safety_local reads the safety examples of data.test") for e in errors
    )
    assert len(errors) == 2


def test_malformed_source_items_are_named_by_position(tmp_path, bundled_safety):
    path = _write(
        tmp_path,
        """
data:
  train: [{builtin: safty}, {n: 3}, 7, {builtin: synthetic_gsm8k}, {path: x.jsonl, fromat: gsm8k}]
""",
    )
    errors = _errors(path)
    text = "\n".join(errors)
    assert "data.train[0].builtin: unknown builtin 'safty', did you mean safety?" in text
    assert (
        "data.train[1]: a data source mapping needs one of path, hub, load_from_disk or builtin (found keys: n)"
        in text
    )
    assert "data.train[2]: got 7; a data source is a path string or a mapping" in text
    assert "data.train[3].n: required key is missing" in text
    assert "data.train[4].fromat: unknown key, did you mean data.train[4].format?" in text


def test_repeat_is_for_training_sources_and_the_summary_counts_the_repeats(tmp_path, bundled_safety):
    body = """
data:
  train: [{builtin: synthetic_gsm8k, n: 10}, {builtin: safety, repeat: 3}]
  validation: [{builtin: synthetic_gsm8k, n: 5, repeat: 2}]
  test: [{builtin: synthetic_gsm8k, n: 5}, {builtin: safety, repeat: 2}]
eval: {tasks: [so8t_gsm8k_local]}
"""
    errors = _errors(_write(tmp_path, body))
    assert [e.split(":")[0] for e in errors] == ["data.validation[0].repeat", "data.test[1].repeat"]
    assert "count twice in the metrics" in errors[0]
    assert _errors(_write(tmp_path, body.replace("repeat: 3", "repeat: 0")))[0].startswith(
        "data.train[1].repeat: got 0, must be greater than or equal to 1"
    )
    cfg = load_config(_write(tmp_path, body.replace(", repeat: 2", "")))
    assert f"{3 * len(SAFETY_RECORDS):,} safety (bundled x3)" in summarize(cfg)
