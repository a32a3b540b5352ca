"""`base:` in run configs: a variant is the keys it changes on a parent, resolved before validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from so8t.config import load_config
from so8t.config.inherit import merge_configs, read_run_config
from so8t.errors import ConfigError
from tests.data_fixtures import SAFETY_RECORDS, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = sorted((ROOT / "configs" / "ablations").glob("*.yaml"))


def test_merge_joins_mappings_replaces_lists_and_null_removes_a_key():
    parent = {"train": {"max_steps": 10, "learning_rate": 0.1}, "data": {"train": [1, 2]}, "gates": {"x": 1}}
    child = {"train": {"max_steps": 20}, "data": {"train": [3]}, "gates": None}
    assert merge_configs(parent, child) == {
        "train": {"max_steps": 20, "learning_rate": 0.1},
        "data": {"train": [3]},
    }
    assert parent["train"]["max_steps"] == 10


def test_a_delta_config_is_its_parent_with_the_keys_it_sets(tmp_path, bundled_safety):
    (tmp_path / "parent.yaml").write_text("seed: 3\ntrain: {max_steps: 40, learning_rate: 1.0e-3}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ntrain: {max_steps: 7}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert (cfg.seed, cfg.train.max_steps, cfg.train.learning_rate) == (3, 7, 1.0e-3)


def test_a_parents_relative_data_path_keeps_naming_the_file_beside_the_parent(tmp_path, bundled_safety):
    recipes = tmp_path / "recipes"
    write_jsonl(recipes / "data" / "train.jsonl", SAFETY_RECORDS)
    (recipes / "parent.yaml").write_text("data:\n  train: [data/train.jsonl, {path: data/train.jsonl}]\n")
    variants = tmp_path / "variants"
    variants.mkdir()
    (variants / "child.yaml").write_text("base: ../recipes/parent.yaml\nseed: 1\n")
    cfg = load_config(variants / "child.yaml")
    expected = str((recipes / "data" / "train.jsonl").resolve())
    assert [source.path for source in cfg.data.train] == [expected, expected]


def test_a_chain_of_bases_resolves_and_a_loop_is_an_error_naming_the_files(tmp_path):
    (tmp_path / "a.yaml").write_text("seed: 1\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\ntrain: {max_steps: 5}\n")
    (tmp_path / "c.yaml").write_text("base: b.yaml\nseed: 2\n")
    assert read_run_config(tmp_path / "c.yaml") == {"seed": 2, "train": {"max_steps": 5}}
    (tmp_path / "a.yaml").write_text("base: c.yaml\n")
    with pytest.raises(ConfigError) as info:
        read_run_config(tmp_path / "c.yaml")
    assert "loop" in info.value.errors[0] and "a.yaml" in info.value.errors[0]


def test_a_missing_parent_names_the_base_key_and_where_it_was_looked_for(tmp_path):
    (tmp_path / "child.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "child.yaml")
    (message,) = info.value.errors
    assert message.startswith("base: parent config 'nowhere.yaml' not found") and str(tmp_path) in message


def test_validate_print_shows_the_resolved_config(tmp_path, bundled_safety, capsys):
    from so8t.cli import main

    (tmp_path / "parent.yaml").write_text("train: {max_steps: 40}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\nseed: 9\n")
    assert main(["validate", str(tmp_path / "child.yaml"), "--print"]) == 0
    printed = capsys.readouterr().out
    resolved = yaml.safe_load(printed[printed.index("output_dir:") :])
    assert resolved["seed"] == 9 and resolved["train"]["max_steps"] == 40 and "base" not in resolved


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: p.name)
def test_an_ablation_is_a_delta_on_the_quickstart(path):
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert raw["base"] == "../quickstart.yaml"
    # a delta states only its output folder and the keys it changes
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 20
