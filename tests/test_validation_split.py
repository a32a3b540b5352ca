"""`data.validation: {split_from: train, size: 0.05 | N}`: a validation split held out of the training data,
disjoint, stratified, chosen from the seed; validate reports an empty one; a run with it trains and evaluates."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from so8t.config import load_config
from so8t.data.config import DataConfig, materialize
from so8t.errors import ConfigError

TRAIN = [{"builtin": "synthetic_gsm8k", "n": 40}, {"builtin": "safety"}]


def _data(size, train=TRAIN) -> DataConfig:
    return DataConfig.model_validate({"train": train, "validation": {"split_from": "train", "size": size}})


def _keys(split) -> list[tuple]:
    return [("gsm8k", e.question) for e in split.gsm8k] + [
        ("safety", e.prompt, e.decision) for e in split.safety
    ]


def test_the_held_out_part_is_disjoint_stratified_and_the_same_for_the_same_seed():
    data = _data(0.1)
    everything = materialize(DataConfig.model_validate({"train": TRAIN}), "train", 0)
    train, validation = materialize(data, "train", 0), materialize(data, "validation", 0)
    assert sorted(_keys(train) + _keys(validation)) == sorted(_keys(everything))
    assert not set(_keys(train)) & set(_keys(validation))
    assert len(validation) == round(0.1 * len(everything))
    # each group gives its share (within the one example of rounding)
    assert abs(len(validation.gsm8k) - 0.1 * len(everything.gsm8k)) < 1
    whole = Counter(e.decision for e in everything.safety)
    held = Counter(e.decision for e in validation.safety)
    assert all(abs(held[d] - 0.1 * n) < 1 for d, n in whole.items())
    assert _keys(materialize(data, "validation", 0)) == _keys(validation)
    assert _keys(materialize(data, "validation", 1)) != _keys(validation)


def test_a_count_holds_out_that_many_and_repeats_weigh_only_the_training_part():
    train = [{"builtin": "synthetic_gsm8k", "n": 30, "repeat": 3}]
    data = _data(7, train)
    validation, training = materialize(data, "validation", 5), materialize(data, "train", 5)
    assert len(validation) == 7 and len(training) == 3 * 23
    assert not {e.question for e in validation.gsm8k} & {e.question for e in training.gsm8k}


def _config(tmp_path: Path, size, n: int = 10) -> Path:
    path = tmp_path / "run.yaml"
    body = {
        "output_dir": str(tmp_path / "run"),
        "data": {
            "train": [{"builtin": "synthetic_gsm8k", "n": n}],
            "validation": {"split_from": "train", **(size if isinstance(size, dict) else {"size": size})},
            "test": [{"builtin": "synthetic_gsm8k", "n": 4}],
            "safety_fraction": 0,
        },
        "eval": {"tasks": ["so8t_gsm8k_local"]},
    }
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (0.01, "data.validation.size: 0.01 of 10 training examples gives an empty validation split"),
        (10, "data.validation.size: 10 would take all 10 training examples, leaving none to train on"),
        (2.5, "neither a fraction below 1 nor a whole count"),
        ({"sise": 0.05}, "data.validation.sise: unknown key, did you mean data.validation.size?"),
    ],
)
def test_validate_reports_a_split_that_would_come_out_empty(tmp_path, size, message):
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, size))
    assert message in str(info.value)


def test_validate_summarises_the_held_out_share(tmp_path):
    from so8t.config import summarize

    assert "validation 20% of train (held out, stratified)" in summarize(load_config(_config(tmp_path, 0.2)))


@pytest.mark.slow
def test_a_run_with_split_from_train_and_a_chatml_template_validates_trains_and_evaluates(
    tmp_path, tiny_base_dir
):
    """One short run covers both settings: the held-out split, and data.chat_template saved with the model."""
    from train_fixtures import subprocess_env

    from so8t.layout import RunDir

    config = {
        "output_dir": str(tmp_path / "run"),
        "seed": 3,
        "model": {"base": "embedded:tiny", "lora": {"r": 4, "alpha": 8}, "pretrain": {"enabled": False}},
        "data": {
            "train": [{"builtin": "synthetic_gsm8k", "n": 24}, {"builtin": "safety"}],
            "validation": {"split_from": "train", "size": 0.05},
            "test": [{"builtin": "safety"}],
            "max_length": 96,
            "prompt_format": "chat",
            "chat_template": "chatml",
        },
        "train": {"max_steps": 2, "per_device_batch_size": 4, "eval_strategy": "steps", "eval_steps": 2},
        "eval": {"tasks": ["so8t_safety_local"], "batch_size": 8, "limit": 6, "bootstrap_iters": 0},
        "logging": {"wandb": {"mode": "disabled"}},
    }
    config["train"]["save_steps"] = 2
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [sys.executable, "-m", "so8t", "run", str(path)],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = RunDir(tmp_path / "run")
    record = json.loads(run.validation_split.read_text())
    assert (record["split_from"], record["size"], record["seed"]) == ("train", 0.05, 3)
    held_out = [json.loads(line) for line in (run.data / "safety_validation.jsonl").read_text().splitlines()]
    assert sum(record["validation"].values()) == len(held_out) + record["validation"].get("gsm8k", 0) > 0
    # the same seed holds out the same examples
    expected = materialize(load_config(path).data, "validation", 3)
    assert [r["prompt"] for r in held_out] == [e.prompt for e in expected.safety]
    state = json.loads(next(run.checkpoints.glob("checkpoint-*/trainer_state.json")).read_text())
    assert any("eval_loss" in entry for entry in state["log_history"]), "validation never ran"
    results = run.latest_results()
    assert results is not None
    from transformers import AutoTokenizer

    from so8t.data.chat_templates import CHATML

    assert AutoTokenizer.from_pretrained(run.consolidated).chat_template == CHATML
    samples = next(results.parent.glob("samples_so8t_safety_local_*.jsonl")).read_text().splitlines()
    assert json.loads(samples[0])["arguments"]["gen_args_0"]["arg_0"].startswith(
        "<|im_start|>user\nRequest: "
    )
