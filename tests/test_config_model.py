"""model.base: embedded, hub ids and local folders, whose rotated widths must be multiples of 8 (read from config.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from so8t.config import load_config
from so8t.errors import ConfigError


def _base(tmp_path: Path, hf_config: dict | None) -> Path:
    folder = tmp_path / "base"
    folder.mkdir()
    if hf_config is not None:
        (folder / "config.json").write_text(json.dumps(hf_config))
    return folder


def _load(tmp_path: Path, base: str, extra: str = ""):
    path = tmp_path / "run.yaml"
    path.write_text(f"model:\n  base: {base}\n{extra}")
    return load_config(path)


def _errors(tmp_path: Path, base: str, extra: str = "") -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, base, extra)
    return info.value.errors


def test_embedded_tiny_is_always_valid_and_trust_remote_code_is_off(tmp_path, bundled_safety):
    cfg = _load(tmp_path, "embedded:tiny")
    assert cfg.model.base == "embedded:tiny" and cfg.model.trust_remote_code is False
    assert _errors(tmp_path, "embedded:huge")[0].startswith(
        "model.base: unknown embedded base 'embedded:huge'"
    )


def test_a_local_folder_with_widths_in_multiples_of_8_is_accepted_and_resolved(tmp_path, bundled_safety):
    _base(tmp_path, {"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2})
    cfg = _load(tmp_path, "./base")
    assert cfg.model.base == str((tmp_path / "base").resolve())


def test_hidden_size_not_a_multiple_of_8_is_rejected(tmp_path, bundled_safety):
    _base(tmp_path, {"hidden_size": 36, "num_attention_heads": 4})
    errors = _errors(tmp_path, "./base")
    assert "hidden size 36, not a multiple of 8" in errors[0] and "config.json" in errors[0]


def test_explicit_head_dim_that_breaks_the_output_projection_width_is_rejected(tmp_path, bundled_safety):
    # hidden 64 is a multiple of 8, but o_proj reads 5 heads x 12 head_dim = 60 features
    _base(tmp_path, {"hidden_size": 64, "num_attention_heads": 5, "head_dim": 12})
    errors = _errors(tmp_path, "./base")
    assert errors == [
        f"model.base: {(tmp_path / 'base' / 'config.json').resolve()} has an attention output projection "
        "input width of 5 heads x 12 head_dim = 60, not a multiple of 8; SO(8) rotations act on 8-dim "
        "blocks, so every rotated width must be a multiple of 8; pick another base"
    ]


def test_head_dim_differing_from_hidden_over_heads_is_fine_when_the_product_is_a_multiple_of_8(
    tmp_path,
    bundled_safety,  # noqa: F811
):
    _base(tmp_path, {"hidden_size": 64, "num_attention_heads": 6, "head_dim": 12})
    _load(tmp_path, "./base")


def test_nested_text_config_and_gpt2_names_are_read(tmp_path, bundled_safety):
    _base(tmp_path, {"model_type": "llava", "text_config": {"hidden_size": 100, "num_attention_heads": 4}})
    assert "hidden size 100" in _errors(tmp_path, "./base")[0]
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"n_embd": 60, "n_head": 6, "n_layer": 2}))
    errors = _errors(tmp_path, str(gpt2))
    assert "hidden size 60" in errors[0] and "6 heads x 10 head_dim = 60" in errors[1]


def test_rotated_layer_indices_must_exist_in_the_base(tmp_path, bundled_safety):
    _base(tmp_path, {"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2})
    errors = _errors(tmp_path, "./base", "  so8: {layers: [0, 2, 5]}\n")
    assert errors[0].startswith("model.so8.layers: [2, 5] out of range")


def test_missing_folder_or_config_json_is_named(tmp_path, bundled_safety):
    assert "does not exist" in _errors(tmp_path, "./nowhere")[0]
    _base(tmp_path, None)
    assert "has no config.json" in _errors(tmp_path, "./base")[0]


def test_hub_ids_are_accepted_without_network_or_transformers(tmp_path, bundled_safety):
    cfg = _load(tmp_path, "Qwen/Qwen2.5-0.5B-Instruct", "  quantization: 8bit\n")
    assert cfg.model.base == "Qwen/Qwen2.5-0.5B-Instruct"


def test_a_base_that_is_neither_a_folder_nor_a_hub_id_is_rejected(tmp_path, bundled_safety):
    assert "neither a local folder nor a hub id" in _errors(tmp_path, "'bad id with spaces'")[0]
