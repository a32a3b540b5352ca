"""`so8t validate` in a fresh process: exit codes, output, no heavy imports; docs/config.md is current."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_fixtures import GSM8K_RECORDS, SAFETY_RECORDS, write_jsonl

from so8t.config import load_config
from so8t.config.reference import config_reference_markdown
from so8t.data.safety import bundled_safety_path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "datasets")

CONFIG = """
data:
  train: ["data/*.train.jsonl"]
  validation: ["data/*.val.jsonl"]
  test: ["data/*.test.jsonl"]
"""


def _project(tmp_path: Path, splits=("train", "val", "test")) -> Path:
    for split in splits:
        write_jsonl(tmp_path / "data" / f"g.{split}.jsonl", GSM8K_RECORDS)
        write_jsonl(tmp_path / "data" / f"s.{split}.jsonl", SAFETY_RECORDS)
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG)
    return path


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


VALIDATE_AND_LIST_MODULES = """
import json, sys
from so8t.cli import main
code = main(["validate", *sys.argv[1:]])
print(json.dumps({"code": code, "heavy": sorted(m for m in ("torch", "transformers", "datasets") if m in sys.modules)}))
"""


def test_validate_prints_ok_and_the_summary_without_importing_torch_transformers_or_datasets(tmp_path):
    result = _python(VALIDATE_AND_LIST_MODULES, str(_project(tmp_path)))
    lines = result.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == {"code": 0, "heavy": []}, result.stderr
    assert lines[0] == "OK"
    assert "train 2 GSM8K (files) + 3 safety (files)" in lines[1]


def test_empty_validation_glob_is_rejected_before_torch_loads(tmp_path):
    config = _project(tmp_path, splits=("train", "test"))
    result = _python(VALIDATE_AND_LIST_MODULES, str(config), "--set", "train.max_steps=0")
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"code": 2, "heavy": []}
    assert "train.max_steps: got 0, must be greater than 0" in result.stderr
    assert "data.validation[0]: pattern 'data/*.val.jsonl'" in result.stderr
    assert "set train.eval_strategy: no" in result.stderr


def test_console_script_exits_2_with_the_errors(tmp_path):
    config = _project(tmp_path, splits=("train", "test"))
    result = subprocess.run(
        [sys.executable, "-m", "so8t", "validate", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: 1 problem(s) in {config}:")
    assert result.stdout == ""


def test_docs_config_md_is_generated_from_the_models():
    docs = ROOT / "docs" / "config.md"
    expected = config_reference_markdown() + "\n"
    assert docs.is_file() and docs.read_text() == expected, (
        "docs/config.md is stale; regenerate it with: python -m so8t.config.reference > docs/config.md"
    )


def test_reference_lists_every_key_path():
    text = config_reference_markdown()
    for key in ("model.lora.r", "data.on_bad_record", "train.eval_strategy", "logging.wandb.mode", "gates"):
        assert f"| `{key}` |" in text


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_validate(name, request):
    if not bundled_safety_path("train").is_file():  # the shipped set is checked once it is in the package
        request.getfixturevalue("bundled_safety")
    load_config(ROOT / "configs" / name)


def test_validate_piped_into_a_reader_that_closes_early_ends_without_a_traceback(tmp_path):
    """`so8t validate cfg.yaml | head -1`: the reader is gone before so8t writes (its end closed first)."""
    config = _project(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "so8t", "validate", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_the_export_section_is_validated_without_importing_torch(tmp_path):
    config = _project(tmp_path)
    ok = _python(VALIDATE_AND_LIST_MODULES, str(config), "--set", "export.gguf=q8_0")
    assert json.loads(ok.stdout.strip().splitlines()[-1]) == {"code": 0, "heavy": []}, ok.stderr
    bad = _python(VALIDATE_AND_LIST_MODULES, str(config), "--set", "export.gguf=q4")
    assert json.loads(bad.stdout.strip().splitlines()[-1]) == {"code": 2, "heavy": []}
    assert "export.gguf" in bad.stderr and "q8_0" in bad.stderr
