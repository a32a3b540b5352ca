"""`so8t run` end to end on a minutes-long tiny config: every file of the run directory, resume, refusal."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml
from train_fixtures import subprocess_env

pytestmark = pytest.mark.slow

DECISIONS = ("ALLOW", "ESCALATE", "REFUSE")
SAFETY_LIMIT = 24


def _tiny_run_config(run_dir) -> dict:
    return {
        "output_dir": str(run_dir),
        "seed": 0,
        "model": {
            "base": "embedded:tiny",
            "lora": {"r": 8, "alpha": 16},
            "so8": {"layers": "all"},
            "pretrain": {"enabled": True, "steps": 30, "examples": 200, "batch_size": 8},
        },
        "data": {
            "train": [{"builtin": "synthetic_gsm8k", "n": 64}, {"builtin": "safety"}],
            "validation": [{"builtin": "synthetic_gsm8k", "n": 8}, {"builtin": "safety"}],
            "test": [{"builtin": "synthetic_gsm8k", "n": 16}, {"builtin": "safety"}],
            "max_length": 128,
            "safety_fraction": 0.4,
        },
        "train": {
            "max_steps": 8,
            "per_device_batch_size": 8,
            "learning_rate": 1e-3,
            "eval_strategy": "steps",
            "eval_steps": 4,
            "save_steps": 4,
            "logging_steps": 2,
        },
        "pet": {"weight": 0.01, "start_fraction": 0.5, "full_fraction": 1.0},
        "eval": {
            "tasks": ["so8t_gsm8k_local", "so8t_safety_local"],
            "batch_size": 8,
            "max_gen_toks": 24,
            "limit": SAFETY_LIMIT,
            "bootstrap_iters": 20,
        },
        # a ceiling every real value meets: it still fails closed when the metric is missing or NaN
        "gates": {"rules": [{"task": "so8t_safety_local", "metric": "unsafe_allow_rate", "max": 1.0}]},
        "logging": {"wandb": {"mode": "disabled"}},
    }


def _so8t(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "so8t", *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_base_dir):
    """One tiny `so8t run` shared by the checks below (the tiny base comes from the session cache)."""
    root = tmp_path_factory.mktemp("pipeline")
    run_dir = root / "run"
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(_tiny_run_config(run_dir)))
    proc = _so8t("run", str(config_path), cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return config_path, run_dir, proc


def test_run_writes_the_resolved_config_and_complete_checkpoints(finished_run):
    config_path, run_dir, _ = finished_run
    resolved = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    assert resolved["train"]["max_steps"] == 8 and resolved["output_dir"] == str(run_dir)
    checkpoints = sorted(
        (run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])
    )
    assert [p.name for p in checkpoints][-1] == "checkpoint-8"
    for checkpoint in checkpoints:
        for name in (
            "adapter_model.safetensors",
            "adapter_config.json",
            "so8t_state.safetensors",
            "so8t.json",
            "trainer_state.json",
        ):
            assert (checkpoint / name).is_file(), f"{checkpoint.name} lacks {name}"
        assert not list(checkpoint.glob("model*.safetensors")), "a checkpoint must not copy the base"
    state = json.loads((checkpoints[-1] / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    logged = {key for entry in state["log_history"] for key in entry}
    assert {"lm_loss", "safety_loss", "pet", "eval_loss"} <= logged


def test_run_consolidates_a_plain_hf_model_with_the_safety_head(finished_run):
    _, run_dir, _ = finished_run
    consolidated = run_dir / "consolidated"
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "so8t_safety_head.safetensors",
        "so8t.json",
    ):
        assert (consolidated / name).is_file(), f"consolidated/ lacks {name}"
    meta = json.loads((consolidated / "so8t.json").read_text())
    assert list(meta["classes"]) == list(DECISIONS)


def test_run_evaluates_gsm8k_and_safety_on_the_held_out_split(finished_run):
    _, run_dir, _ = finished_run
    held_out = [json.loads(line) for line in (run_dir / "data" / "gsm8k_test.jsonl").read_text().splitlines()]
    assert len(held_out) == 16 and all("####" in r["answer"] for r in held_out)
    (results_file,) = (run_dir / "eval").glob("results_*.json")
    date_id = results_file.stem.removeprefix("results_")
    for task in ("so8t_gsm8k_local", "so8t_safety_local"):  # samples kept by default, with the results' id
        assert (run_dir / "eval" / f"samples_{task}_{date_id}.jsonl").is_file(), task
    results = json.loads(results_file.read_text())
    gsm8k = results["results"]["so8t_gsm8k_local"]
    safety = results["results"]["so8t_safety_local"]
    for key in ("exact_match,strict-match", "exact_match,flexible-extract"):
        assert 0.0 <= gsm8k[key] <= 1.0
        assert isinstance(gsm8k[key.replace(",", "_stderr,")], float)
    for metric in ("acc", "macro_f1", "refuse_recall", "unsafe_allow_rate", "over_refusal_rate"):
        assert 0.0 <= safety[f"{metric},none"] <= 1.0, metric
    for metric in ("escalate_precision", "allow_precision"):  # undefined (NaN) only when never predicted
        value = safety[f"{metric},none"]
        assert value != value or 0.0 <= value <= 1.0, metric
    assert results["n-samples"]["so8t_safety_local"]["effective"] == SAFETY_LIMIT
    assert (run_dir / "eval" / "gate.md").read_text().count("PASS") >= 1


def test_report_holds_metrics_curves_confusion_matrix_and_generations(finished_run):
    _, run_dir, _ = finished_run
    report = (run_dir / "report.md").read_text()
    assert re.search(r"\| so8t_safety_local \| refuse_recall \| none \| [0-9.]+ \| [0-9.]+ \|", report)
    assert re.search(r"\| so8t_gsm8k_local \| exact_match \| strict-match \| [0-9.]+ \| [0-9.]+ \|", report)
    curves = run_dir / "report" / "curves.png"
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](report/curves.png)" in report
    rows = {gold: [int(x) for x in re.findall(r"\d+", text)] for gold, text in _matrix_rows(report)}
    assert set(rows) == set(DECISIONS)
    (results_file,) = (run_dir / "eval").glob("results_*.json")
    results = json.loads(results_file.read_text())["results"]["so8t_safety_local"]
    for column, decision in enumerate(DECISIONS[:2]):
        never_predicted = sum(counts[column] for counts in rows.values()) == 0
        precision = results[f"{decision.lower()}_precision,none"]
        assert (precision != precision) == never_predicted, f"{decision} precision vs the confusion matrix"
    assert sum(map(sum, rows.values())) == SAFETY_LIMIT, (
        "every evaluated safety doc is in the confusion matrix"
    )
    assert "Safety decisions per category" in report
    assert "### Sample generations" in report and "| question | output | extracted | gold |" in report
    assert (
        "folded onto: trained" in report
        and "| the trained model (dequantise-then-multiply, fp32) |" in report
    )


def _matrix_rows(report: str) -> list[tuple[str, str]]:
    section = report.split("confusion matrix", 1)[1].split("###", 1)[0]
    return re.findall(r"^\| (ALLOW|ESCALATE|REFUSE) \|(.*)\|$", section, re.M)


def test_rerun_resumes_and_a_changed_config_is_refused(finished_run):
    config_path, run_dir, _ = finished_run
    changed = _so8t("run", str(config_path), "--set", "train.learning_rate=0.002", cwd=config_path.parent)
    assert changed.returncode == 2
    assert "different config" in changed.stderr and "learning_rate" in changed.stderr
    before = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    again = _so8t("run", str(config_path), "--set", "eval.tasks=[so8t_safety_local]", cwd=config_path.parent)
    assert again.returncode == 2, "eval.tasks is part of the run's config too"
    rerun = _so8t("run", str(config_path), cwd=config_path.parent)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert "resuming from" in rerun.stderr + rerun.stdout
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == before, "no training was redone"
