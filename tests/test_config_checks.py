"""Path resolution is a step that returns a new config; the checks after it only report, never rewrite."""

from __future__ import annotations

import json

from data_fixtures import GSM8K_RECORDS, write_jsonl

from so8t.config import RunConfig
from so8t.config.checks import run_checks
from so8t.config.resolve import resolve_paths


def test_resolving_paths_returns_a_new_config_and_the_checks_change_nothing(tmp_path, bundled_safety):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text(json.dumps({"hidden_size": 64, "num_attention_heads": 4}))
    write_jsonl(tmp_path / "data" / "g.jsonl", GSM8K_RECORDS)
    (tmp_path / "baseline.json").write_text(json.dumps({"results": {}}))
    cfg = RunConfig.model_validate(
        {
            "model": {"base": "./base"},
            "data": {"train": ["data/g.jsonl", {"builtin": "safety"}]},
            "gates": {"baseline": "baseline.json", "rules": []},
        }
    )
    written = cfg.model_dump()

    resolved = resolve_paths(cfg, tmp_path)
    assert cfg.model_dump() == written
    assert resolved.model.base == str((tmp_path / "base").resolve())
    assert resolved.data.train[0].path == str(tmp_path / "data" / "g.jsonl")
    assert resolved.gates.baseline == str((tmp_path / "baseline.json").resolve())

    checked = resolved.model_dump()
    report, problems = run_checks(resolved, tmp_path)
    assert problems == []
    assert [(e.format, e.origin, e.count) for e in report["train"]] == [
        ("gsm8k", "files", 2),
        ("safety", "bundled", 3),
    ]
    assert resolved.model_dump() == checked and cfg.model_dump() == written


def test_a_check_names_the_path_as_written_after_resolution(tmp_path, bundled_safety):
    cfg = RunConfig.model_validate({"data": {"test": ["data/*.test.jsonl"]}, "gates": {"baseline": "b.json"}})
    _, problems = run_checks(resolve_paths(cfg, tmp_path), tmp_path)
    assert any(p.startswith("data.test[0]: pattern 'data/*.test.jsonl' (resolved to ") for p in problems)
    assert any(p.startswith("gates.baseline: 'b.json' is not a file") for p in problems)
    assert cfg.data.test[0].path == "data/*.test.jsonl" and cfg.gates.baseline == "b.json"
