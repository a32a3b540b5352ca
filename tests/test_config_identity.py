"""What makes two configs the same run: resolved values, data by content, no output_dir; what may change."""

from __future__ import annotations

import shutil

import pytest
import yaml
from data_fixtures import GSM8K_RECORDS, write_jsonl

from so8t.config import RESUMABLE_SETTINGS, load_config, run_identity
from so8t.errors import UserError
from so8t.layout.run_claim import read_config_history


def _config(folder, data_path: str, **train) -> dict:
    return {
        "output_dir": "runs/x",
        "data": {
            "train": [{"path": data_path}, {"builtin": "safety"}],
            "validation": [{"builtin": "safety"}],
            "test": [{"builtin": "safety"}],
        },
        "train": {"max_steps": 10, **train},
        "eval": {"tasks": ["so8t_safety_local"]},
    }


def _load(path, body: dict, overrides=()):
    path.write_text(yaml.safe_dump(body))
    return load_config(path, list(overrides))


def test_data_is_named_by_content_so_another_spelling_or_place_of_the_same_file_is_the_same_run(
    tmp_path, bundled_safety
):
    data = write_jsonl(tmp_path / "cfg" / "data" / "train.jsonl", GSM8K_RECORDS)
    relative = _load(tmp_path / "cfg" / "a.yaml", _config(tmp_path, "data/train.jsonl"))
    absolute = _load(tmp_path / "b.yaml", {**_config(tmp_path, str(data)), "output_dir": str(tmp_path / "x")})
    moved = shutil.copy(data, tmp_path / "elsewhere.jsonl")
    elsewhere = _load(tmp_path / "c.yaml", _config(tmp_path, str(moved)))
    assert run_identity(relative) == run_identity(absolute) == run_identity(elsewhere)
    assert "output_dir" not in run_identity(relative)
    write_jsonl(tmp_path / "elsewhere.jsonl", GSM8K_RECORDS[:1])
    changed = _load(tmp_path / "c.yaml", _config(tmp_path, str(moved)))
    assert run_identity(changed)["data"]["train"] != run_identity(relative)["data"]["train"]


def test_optimisation_and_bookkeeping_may_change_on_resume_but_what_is_trained_may_not(
    tmp_path, bundled_safety
):
    from so8t.train.run import claim

    write_jsonl(tmp_path / "train.jsonl", GSM8K_RECORDS)
    body = {**_config(tmp_path, "train.jsonl"), "output_dir": str(tmp_path / "run")}
    claim(_load(tmp_path / "run.yaml", body))
    resumable = [
        "train.learning_rate=0.01",
        "train.max_steps=20",
        "train.logging_steps=1",
        "train.save_steps=5",
        "train.eval_steps=5",
        "eval.limit=8",
        "logging.wandb.mode=disabled",
    ]
    changes = claim(_load(tmp_path / "run.yaml", body, resumable))
    assert set(changes) == {
        "train.learning_rate",
        "train.max_steps",
        "train.logging_steps",
        "train.save_steps",
        "train.eval_steps",
        "eval.limit",
        "logging.wandb.mode",
    }
    assert all(any(k == p or k.startswith(p + ".") for p in RESUMABLE_SETTINGS) for k in changes)
    assert len(read_config_history(tmp_path / "run")) == 2
    for what_is_trained in (
        "model.lora.r=4",
        "model.so8.layers=[0]",
        "seed=1",
        "train.per_device_batch_size=2",
    ):
        with pytest.raises(UserError, match="alter what is trained") as info:
            claim(_load(tmp_path / "run.yaml", body, [*resumable, what_is_trained]))
        key, value = what_is_trained.split("=")
        assert f"+{key}: " in str(info.value), what_is_trained
    write_jsonl(tmp_path / "train.jsonl", GSM8K_RECORDS[:1])
    with pytest.raises(UserError, match=r"-data\.train: "):
        claim(_load(tmp_path / "run.yaml", body, resumable))


def test_a_run_recorded_before_a_setting_existed_resumes_when_the_setting_has_its_default(
    tmp_path, bundled_safety
):
    """A run directory from an older so8t lacks settings added since (train.processes, say): it was made with
    what is now their default, so resuming it is no change; another value still alters what is trained."""
    import json

    from so8t.layout import RunDir
    from so8t.train.run import claim

    write_jsonl(tmp_path / "train.jsonl", GSM8K_RECORDS)
    body = {**_config(tmp_path, "train.jsonl"), "output_dir": str(tmp_path / "run")}
    claim(_load(tmp_path / "run.yaml", body))
    history = RunDir(tmp_path / "run").config_history
    entry = json.loads(history.read_text())
    del entry["identity"]["train"]["processes"]  # as an older so8t recorded it
    history.write_text(json.dumps(entry) + "\n")
    assert claim(_load(tmp_path / "run.yaml", body)) == {}
    assert len(read_config_history(tmp_path / "run")) == 1, "nothing changed, nothing recorded"
    with pytest.raises(UserError, match=r'-train\.processes: "<unset>"\n\+train\.processes: 2'):
        claim(_load(tmp_path / "run.yaml", body, ["train.processes=2"]))
