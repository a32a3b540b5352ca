"""Shard guard: patterns must match files, files must hold well-formed records (checked without torch)."""

from __future__ import annotations

import json

import pytest
from data_fixtures import GSM8K_RECORDS, SAFETY_RECORDS, write_jsonl

from so8t.data.shards import ShardProblem, check_pattern, check_shard, detect_format, expand_pattern


def _check(tmp_path, pattern, split="validation", fmt="auto", on_bad_record="error"):
    return check_pattern(
        str(tmp_path / pattern), fmt, on_bad_record, key=f"data.{split}[0]", split=split, shown=pattern
    )


def test_val_glob_matching_nothing_names_the_pattern_and_the_eval_strategy_fix(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", GSM8K_RECORDS)
    reports, problems = _check(tmp_path, "*.val.jsonl")
    assert reports == []
    assert len(problems) == 1
    problem = problems[0]
    assert problem.startswith("data.validation[0]: pattern '*.val.jsonl'")
    assert "matched 0 files" in problem
    assert "remove this source from data.validation and set train.eval_strategy: no" in problem


def test_val_glob_matching_an_empty_shard_is_rejected(tmp_path):
    write_jsonl(tmp_path / "a.val.jsonl", GSM8K_RECORDS)
    (tmp_path / "b.val.jsonl").write_text("")
    reports, problems = _check(tmp_path, "*.val.jsonl")
    assert [r.path.name for r in reports] == ["a.val.jsonl"]
    assert len(problems) == 1
    assert "b.val.jsonl: empty file" in problems[0]
    assert "train.eval_strategy: no" in problems[0]


def test_val_shard_with_a_bad_line_names_file_line_and_reason(tmp_path):
    lines = (
        [json.dumps(GSM8K_RECORDS[0])] * 6 + ['{"question": "What?"}'] + [json.dumps(GSM8K_RECORDS[1])] * 3
    )
    (tmp_path / "x.val.jsonl").write_text("\n".join(lines) + "\n")
    reports, problems = _check(tmp_path, "*.val.jsonl")
    assert reports == []
    assert 'x.val.jsonl: line 7: missing "answer"' in problems[0]
    assert "data.on_bad_record: skip" in problems[0]


def test_a_bad_line_at_the_very_end_of_a_long_file_is_found(tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", GSM8K_RECORDS * 2000, ["{truncated"])
    with pytest.raises(ShardProblem, match="line 4001: invalid JSON"):
        check_shard(path)


def test_skip_mode_counts_bad_lines_but_a_file_of_only_bad_lines_still_fails(tmp_path):
    path = write_jsonl(
        tmp_path / "s.jsonl", SAFETY_RECORDS, ['{"prompt": "p", "decision": "MAYBE"}', "[1, 2]"]
    )
    report = check_shard(path, on_bad_record="skip")
    assert (report.format, report.records, report.skipped) == ("safety", 3, 2)
    only_bad = write_jsonl(tmp_path / "bad.jsonl", [], ["nope", "{}"])
    with pytest.raises(ShardProblem, match="no well-formed records"):
        check_shard(only_bad, on_bad_record="skip")


def test_formats_are_detected_from_records_and_declared_formats_are_enforced(tmp_path):
    assert detect_format(GSM8K_RECORDS[0]) == "gsm8k"
    assert detect_format(SAFETY_RECORDS[0]) == "safety"
    assert detect_format({"text": "x"}) is None
    safety = write_jsonl(tmp_path / "s.jsonl", SAFETY_RECORDS)
    assert check_shard(safety).format == "safety"
    with pytest.raises(ShardProblem, match="a safety record in a gsm8k source"):
        check_shard(safety, "gsm8k")
    other = write_jsonl(tmp_path / "o.jsonl", [{"text": "hello"}])
    with pytest.raises(ShardProblem, match="neither a GSM8K record"):
        check_shard(other)


def test_blank_only_file_folder_and_recursive_globs(tmp_path):
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(ShardProblem, match="empty file"):
        check_shard(tmp_path / "blank.jsonl")
    write_jsonl(tmp_path / "deep" / "er" / "a.jsonl", GSM8K_RECORDS)
    assert [p.name for p in expand_pattern(str(tmp_path / "**" / "a.jsonl"))] == ["a.jsonl"]
    _, problems = _check(tmp_path, "deep", split="train")
    assert "is a folder" in problems[0] and "eval_strategy" not in problems[0]
