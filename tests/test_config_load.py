"""load_config: defaults, overrides, and every problem reported at once as a readable line."""

from __future__ import annotations

import pytest
import yaml
from pydantic import BaseModel

from so8t.config import RunConfig, load_config, resolved_config_yaml, summarize
from so8t.errors import ConfigError, UserError

WANDB_LIKE_KEY = "0123456789abcdef0123456789abcdef01234567"


def _load(tmp_path, body: str, overrides=()):
    path = tmp_path / "run.yaml"
    path.write_text(body)
    return load_config(path, list(overrides))


def _errors(tmp_path, body: str, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, body, overrides)
    assert isinstance(info.value, UserError)
    return info.value.errors


def test_empty_config_gives_the_documented_defaults(tmp_path, bundled_safety):
    cfg = _load(tmp_path, "")
    assert cfg.model.base == "embedded:tiny" and cfg.model.quantization == "none"
    assert cfg.model.trust_remote_code is False
    assert cfg.train.max_steps == 300 and cfg.train.eval_strategy == "steps"
    assert [s.builtin for s in cfg.data.train] == ["synthetic_gsm8k", "safety"]
    assert cfg.data.train[0].n == 2000 and cfg.gates is None


def test_every_field_has_a_description_and_every_section_forbids_unknown_keys():
    def walk(cls):
        assert cls.model_config.get("extra") == "forbid", cls.__name__
        for name, info in cls.model_fields.items():
            assert info.description, f"{cls.__name__}.{name} has no description"
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation)

    walk(RunConfig)
    from so8t.data.sources import SOURCES

    for cls in SOURCES.forms():
        walk(cls)


def test_typo_key_suggests_the_full_path_of_the_closest_key(tmp_path, bundled_safety):
    errors = _errors(tmp_path, "train:\n  learnig_rate: 0.001\n")
    assert errors == ["train.learnig_rate: unknown key, did you mean train.learning_rate?"]


def test_key_in_the_wrong_section_points_at_where_it_belongs(tmp_path, bundled_safety):
    assert _errors(tmp_path, "train:\n  lora: {r: 4}\n") == [
        "train.lora: unknown key, did you mean model.lora?"
    ]


def test_all_problems_are_collected_in_one_error(tmp_path, bundled_safety):
    errors = _errors(
        tmp_path,
        """
model: {lora: {r: 0}, dtype: fp8}
train: {learning_rate: -0.001, gradient_accumulation_steps: 0, warmup_ratio: 2, lr_schedular: cosine}
pet: {start_fraction: 0.9, full_fraction: 0.5}
safety: {class_weights: [1, 2]}
""",
    )
    text = "\n".join(errors)
    assert "model.lora.r: got 0, must be greater than 0" in text
    assert "train.learning_rate: got -0.001, must be greater than 0" in text
    assert "train.gradient_accumulation_steps: got 0, must be greater than or equal to 1" in text
    assert "train.warmup_ratio: got 2, must be less than 1" in text
    assert "model.dtype: got 'fp8', must be 'auto', 'float32', 'bfloat16' or 'float16'" in text
    assert "train.lr_schedular: unknown key, did you mean train.lr_scheduler?" in text
    assert "pet: start_fraction 0.9 is after full_fraction 0.5" in text
    assert "safety.class_weights: got [1.0, 2.0], must be 3 positive numbers" in text
    assert len(errors) == 8
    assert all("\n" not in e for e in errors)


def test_quantization_is_one_field_and_legacy_double_flags_are_rejected(tmp_path, bundled_safety):
    errors = _errors(tmp_path, "model:\n  load_in_8bit: true\n  load_in_4bit: true\n")
    assert len(errors) == 1
    assert "model.load_in_8bit and model.load_in_4bit are both true" in errors[0]
    assert "model.quantization" in errors[0]
    single = _errors(tmp_path, "model:\n  load_in_4bit: true\n")
    assert single == [
        "model.load_in_4bit: not a so8t key; quantisation is one field, set model.quantization: "
        "4bit (none, 8bit or 4bit) instead"
    ]
    bad = _errors(tmp_path, "model: {quantization: 16bit}\n")
    assert bad == ["model.quantization: got '16bit', must be 'none', '8bit' or '4bit'"]
    assert _load(tmp_path, "model: {quantization: 4bit}\n").model.quantization == "4bit"


def test_overrides_are_typed_by_yaml_and_checked_like_the_file(tmp_path, bundled_safety):
    cfg = _load(
        tmp_path,
        "train: {max_steps: 10}\n",
        [
            "train.max_steps=50",
            "train.learning_rate=1.0e-3",
            "model.so8.layers=[0, 1]",
            "data.train.0.n=12",
            "train.eval_strategy=no",
            "data.validation=[]",
            "logging.wandb.entity=me",
        ],
    )
    assert cfg.train.max_steps == 50 and cfg.train.learning_rate == pytest.approx(1e-3)
    assert cfg.model.so8.layers == [0, 1] and cfg.data.train[0].n == 12
    assert cfg.train.eval_strategy == "no" and cfg.data.validation == []
    errors = _errors(tmp_path, "", ["train.max_stepz=5", "noequals", "train.max_steps=-1", "seed.x=1"])
    text = "\n".join(errors)
    assert "train.max_stepz: unknown key, did you mean train.max_steps?" in text
    assert "--set 'noequals': expected KEY=VALUE" in text
    assert "train.max_steps: got -1, must be greater than 0" in text
    assert "--set seed.x: seed is 0, not a mapping" in text


def test_a_list_item_is_overridden_by_the_bracket_form_every_message_prints(tmp_path, bundled_safety):
    cfg = _load(tmp_path, "", ["data.train[0].n=12", "model.so8.layers=[0, 1]", "model.so8.layers[1]=3"])
    assert cfg.data.train[0].n == 12 and cfg.model.so8.layers == [0, 3]
    text = "\n".join(_errors(tmp_path, "", ["data.train[7].n=1"]))
    assert "--set data.train[7].n: data.train is a list of" in text and "'7' is not an index in it" in text


def test_validation_on_with_empty_validation_data_is_an_error(tmp_path, bundled_safety):
    errors = _errors(tmp_path, "data: {validation: []}\n")
    assert errors == [
        "data.validation: is empty but train.eval_strategy is 'steps'; add a validation source, "
        "or set train.eval_strategy: no to train without validation"
    ]
    assert _load(tmp_path, "data: {validation: []}\ntrain: {eval_strategy: no}\n").data.validation == []


@pytest.mark.parametrize(
    "key", ["api_key", "wandb_api_key", "apikey", "hf_token", "token", "secret", "password", "client_secret"]
)
def test_secret_named_keys_are_rejected_anywhere(tmp_path, bundled_safety, key):
    errors = _errors(tmp_path, f"logging:\n  wandb:\n    {key}: hunter2\n")
    assert len(errors) == 1
    assert errors[0].startswith(f"logging.wandb.{key}: looks like a secret")
    assert "WANDB_API_KEY" in errors[0] and "hunter2" not in errors[0]


def test_wandb_key_shaped_values_are_rejected_and_never_echoed(tmp_path, bundled_safety):
    errors = _errors(tmp_path, f"logging:\n  wandb: {{entity: {WANDB_LIKE_KEY}}}\n")
    assert len(errors) == 1 and "WANDB_API_KEY" in errors[0] and WANDB_LIKE_KEY not in errors[0]
    overridden = _errors(tmp_path, "", [f"logging.wandb.run_name={WANDB_LIKE_KEY}"])
    assert "logging.wandb.run_name" in overridden[0] and WANDB_LIKE_KEY not in "\n".join(overridden)


def test_a_commit_hash_revision_is_not_mistaken_for_a_secret(tmp_path, bundled_safety):
    cfg = _load(tmp_path, f"model: {{base: some-org/some-model, revision: {WANDB_LIKE_KEY}}}\n")
    assert cfg.model.revision == WANDB_LIKE_KEY


def test_resolved_yaml_round_trips_and_holds_no_secret(tmp_path, bundled_safety, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "env-secret-value-1234")
    cfg = _load(tmp_path, "seed: 3\nlogging: {wandb: {run_name: env-secret-value-1234}}\n")
    text = resolved_config_yaml(cfg)
    assert "env-secret-value-1234" not in text
    data = yaml.safe_load(text)
    assert data["seed"] == 3 and data["model"]["lora"]["r"] == 16
    assert data["data"]["train"][1] == {"builtin": "safety", "repeat": 1}
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(resolved_config_yaml(_load(tmp_path, "seed: 3\n")))
    assert resolved_config_yaml(load_config(resolved)) == resolved.read_text()


def test_yaml_syntax_errors_and_missing_files_are_config_errors(tmp_path):
    errors = _errors(tmp_path, "train: [unclosed\n")
    assert errors[0].startswith("not valid YAML (line")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    assert _errors(tmp_path, "- a\n- b\n") == ["the top level must be a mapping of keys, found list"]


def test_summary_is_one_paragraph_with_counts_per_split_and_format(tmp_path, bundled_safety):
    summary = summarize(_load(tmp_path, "eval: {tasks: [so8t_gsm8k_local, so8t_safety_local]}\n"))
    assert "\n" not in summary
    assert "Model embedded:tiny" in summary
    assert "train 2,000 GSM8K (synthetic) + 3 safety (bundled)" in summary
    assert "validation 100 GSM8K (synthetic)" in summary and "test 200 GSM8K" in summary
    assert "300 steps" in summary and "so8t_gsm8k_local, so8t_safety_local" in summary


def test_yaml_spellings_are_read_as_meant(tmp_path, bundled_safety):
    cfg = _load(
        tmp_path,
        "model: {quantization: 8}\ntrain: {eval_strategy: no}\ndata: {validation: []}\neval: {limit: 50}\n",
    )
    assert cfg.model.quantization == "8bit" and cfg.train.eval_strategy == "no"
    assert cfg.eval.limit == 50 and isinstance(cfg.eval.limit, int)
    assert _load(tmp_path, "eval: {limit: 0.25}\n").eval.limit == 0.25
    assert _errors(tmp_path, "eval: {limit: 2.5}\n") == [
        "eval.limit: got 2.5, must be a whole count (>= 1) or a fraction (< 1)"
    ]
