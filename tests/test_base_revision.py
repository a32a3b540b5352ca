"""The base's hub revision and trust_remote_code are recorded at training and reach every later load of it:
consolidation, SO8TModel.load_so8t and the consolidation cache's key. (A local folder ignores the revision,
so the tests watch what reaches `from_pretrained`.)"""

from __future__ import annotations

import json
import shutil

import pytest
from train_fixtures import run_config
from transformers import AutoConfig, AutoModelForCausalLM

from so8t.cache import consolidation_key
from so8t.consolidate import consolidate_checkpoint
from so8t.model.so8t import SO8TModel
from so8t.train.run import build_model


@pytest.fixture(scope="module")
def pinned_checkpoint(tiny_base_dir, tmp_path_factory):
    """A checkpoint of a model built by training's own builder from a base pinned at revision v1.0."""
    cfg = run_config(tiny_base_dir, model={"revision": "v1.0", "trust_remote_code": True, "lora": {"r": 4}})
    model, _, _ = build_model(cfg)
    return model.save_so8t(tmp_path_factory.mktemp("pinned") / "ckpt")


def _spy(monkeypatch, cls) -> list[dict]:
    """Record the keyword arguments of every cls.from_pretrained call (and still load)."""
    calls: list[dict] = []
    original = cls.from_pretrained

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(cls, "from_pretrained", spy)
    return calls


def test_training_records_the_revision_and_trust_remote_code(pinned_checkpoint):
    info = json.loads((pinned_checkpoint / "so8t.json").read_text())
    assert info["base_revision"] == "v1.0" and info["trust_remote_code"] is True


def test_consolidation_loads_the_recorded_revision(pinned_checkpoint, tmp_path, monkeypatch):
    models, configs = _spy(monkeypatch, AutoModelForCausalLM), _spy(monkeypatch, AutoConfig)
    out = consolidate_checkpoint(pinned_checkpoint, tmp_path / "out")
    assert models and configs
    for call in models + configs:
        assert call.get("revision") == "v1.0" and call.get("trust_remote_code") is True, call
    info = json.loads((out / "so8t.json").read_text())
    assert info["base_revision"] == "v1.0" and info["trust_remote_code"] is True


def test_loading_a_checkpoint_uses_the_recorded_revision_but_not_for_another_base(
    pinned_checkpoint, tiny_base_dir, tmp_path, monkeypatch
):
    calls = _spy(monkeypatch, AutoModelForCausalLM)
    SO8TModel.load_so8t(pinned_checkpoint)
    assert [(c.get("revision"), c.get("trust_remote_code")) for c in calls] == [("v1.0", True)]
    calls.clear()
    elsewhere = shutil.copytree(tiny_base_dir, tmp_path / "another_base")
    SO8TModel.load_so8t(pinned_checkpoint, base=str(elsewhere))
    assert calls[0].get("revision") is None, "the recorded revision names a version of the recorded base only"


def test_the_recorded_revision_is_part_of_the_consolidation_cache_key(pinned_checkpoint, tmp_path):
    other = shutil.copytree(pinned_checkpoint, tmp_path / "ckpt")
    info = json.loads((other / "so8t.json").read_text())
    assert consolidation_key(other, info["base_model"], None) == consolidation_key(
        pinned_checkpoint, info["base_model"], None
    )
    (other / "so8t.json").write_text(json.dumps({**info, "base_revision": "v2.0"}))
    assert consolidation_key(other, info["base_model"], None) != consolidation_key(
        pinned_checkpoint, info["base_model"], None
    )
