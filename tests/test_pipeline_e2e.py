"""`so8t run` end to end on a minutes-long tiny config: every file of the run directory, resume, refusal."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from train_fixtures import subprocess_env

from so8t.layout import SAFETY_HEAD_FILE, RunDir
from so8t.layout.checkpoints import BEST_CHECKPOINT_RULE

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


def _so8t(*args: str, cwd, log=None) -> subprocess.CompletedProcess:
    """`so8t ARGS`; with `log`, stdout and stderr go to that file (as `> log 2>&1` would) and stdout holds it."""
    if log is None:
        return subprocess.run(
            [sys.executable, "-m", "so8t", *args],
            cwd=cwd,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=900,
        )
    with open(log, "w") as handle:
        proc = subprocess.run(
            [sys.executable, "-m", "so8t", *args],
            cwd=cwd,
            env=subprocess_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    return subprocess.CompletedProcess(proc.args, proc.returncode, Path(log).read_text(), "")


def _mtimes(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns
        for p in folder.rglob("*")
        if p.is_file() and not str(p.relative_to(folder)).startswith(skip)
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_base_dir):
    """One tiny `so8t run` shared by the checks below (the tiny base comes from the session cache)."""
    root = tmp_path_factory.mktemp("pipeline")
    run_dir = root / "run"
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(_tiny_run_config(run_dir)))
    proc = _so8t("run", str(config_path), cwd=root, log=root / "run.log")
    assert proc.returncode == 0, proc.stdout[-6000:]
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
        SAFETY_HEAD_FILE,
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
    # the curves mark the evaluated checkpoint, chosen by the one rule the report states
    evaluated = re.search(r"- evaluated: `(checkpoint-\d+)`", report).group(1)
    step = evaluated.split("-")[1]
    assert f"The dashed line marks step {step}, `{evaluated}`" in report
    assert f"Selection rule: {BEST_CHECKPOINT_RULE}." in report


def _matrix_rows(report: str) -> list[tuple[str, str]]:
    section = report.split("confusion matrix", 1)[1].split("###", 1)[0]
    return re.findall(r"^\| (ALLOW|ESCALATE|REFUSE) \|(.*)\|$", section, re.M)


def test_the_run_log_written_to_a_file_holds_one_line_records_and_no_redraws(finished_run):
    _, _, proc = finished_run
    log = proc.stdout
    assert "\r" not in log and len(log.encode()) < 100_000
    stages = re.findall(r"^\[so8t\] stage (\d)/8 (\w+)(?::| done| )", log, re.M)
    assert [name for _, name in stages][:3] == ["validate", "validate", "data"]
    assert {name for _, name in stages} == {
        "validate",
        "data",
        "pretrain",
        "train",
        "consolidate",
        "evaluate",
        "gate",
        "report",
    }


def test_a_model_changing_edit_is_refused_with_the_diff_and_an_absolute_spelling_is_accepted(finished_run):
    config_path, run_dir, _ = finished_run
    changed = _so8t("run", str(config_path), "--set", "model.lora.r=4", cwd=config_path.parent)
    assert changed.returncode == 2
    assert "alter what is trained" in changed.stderr
    assert "-model.lora.r: 8\n+model.lora.r: 4" in changed.stderr
    # the same config and run directory spelled as relative paths from another folder: the same run
    elsewhere = config_path.parent / "elsewhere"
    elsewhere.mkdir()
    relative = _so8t("run", "../tiny.yaml", "--output-dir", "../run", cwd=elsewhere)
    assert relative.returncode == 0, relative.stderr[-4000:]
    assert "finished and up to date" in relative.stderr


def test_rerunning_a_finished_run_is_a_no_op_also_on_a_copy_of_the_run_directory(finished_run, tmp_path):
    config_path, run_dir, _ = finished_run
    before = _mtimes(run_dir)
    rerun = _so8t("run", str(config_path), cwd=config_path.parent)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert (
        f"{run_dir} is finished and up to date, nothing to do: report {run_dir / 'report.md'}" in rerun.stderr
    )
    assert "consolidate" not in rerun.stderr.split("nothing to do")[0] and "resuming" not in rerun.stderr
    assert _mtimes(run_dir) == before, "nothing in the run directory was rewritten"
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    copied = _mtimes(copy)
    again = _so8t("run", str(config_path), "--output-dir", str(copy), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-4000:]
    assert f"{copy} is finished and up to date" in again.stderr
    assert _mtimes(copy) == copied


def test_changing_only_the_eval_section_re_evaluates_without_training(finished_run, tmp_path):
    config_path, run_dir, _ = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    kept = _mtimes(copy, skip=("eval", "report", "run_record.json", "config", "data"))
    proc = _so8t("run", str(config_path), "--output-dir", str(copy), "--set", "eval.limit=8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "stage 4/8 train: skipped" in proc.stderr and "stage 5/8 consolidate: skipped" in proc.stderr
    assert "stage 6/8 evaluate: so8t_gsm8k_local, so8t_safety_local" in proc.stderr
    assert _mtimes(copy, skip=("eval", "report", "run_record.json", "config", "data")) == kept, (
        "no checkpoint, consolidated file or sample changed"
    )
    results = json.loads(RunDir(copy).latest_results().read_text())
    assert results["n-samples"]["so8t_safety_local"]["effective"] == 8
    history = [json.loads(line) for line in (copy / "config_history.jsonl").read_text().splitlines()]
    assert history[-1]["changed"] == {"eval.limit": [SAFETY_LIMIT, 8]}


def test_the_quickstart_log_written_to_a_file_stays_small(tmp_path):
    """The quickstart recipe, cut down by --set to a minute, with its output redirected to a file: stage
    lines and periodic one-line records, no progress-bar redraws, far under 100 KB."""
    cut_down = {
        "model.pretrain.steps": "20",
        "model.pretrain.examples": "200",
        "model.pretrain.safety_examples": "0",
        "data.train": "[{builtin: synthetic_gsm8k, n: 64}, {builtin: safety}]",
        "data.test": "[{builtin: synthetic_gsm8k, n: 16}, {builtin: safety}]",
        "train.max_steps": "20",
        "train.eval_steps": "10",
        "train.save_steps": "10",
        "eval.limit": "16",
        "eval.max_gen_toks": "32",
        "logging.wandb.mode": "disabled",
    }
    overrides = [part for key, value in cut_down.items() for part in ("--set", f"{key}={value}")]
    config = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
    log = tmp_path / "quickstart.log"
    proc = _so8t("run", str(config), "--output-dir", str(tmp_path / "run"), *overrides, cwd=tmp_path, log=log)
    assert proc.returncode == 0, proc.stdout[-6000:]
    text = log.read_text()
    assert "\r" not in text and log.stat().st_size < 100_000
    assert "[so8t] stage 8/8 report done" in text
    # the training log lines: steps 1, 10 and 20, and the evaluations at 10 and 20
    assert len([line for line in text.splitlines() if line.startswith("[so8t] step ")]) == 5


def test_configuring_a_gguf_export_exports_and_reports_it_without_training_again(finished_run, tmp_path):
    pytest.importorskip("xllamacpp")
    config_path, run_dir, _ = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    kept = _mtimes(copy, skip=("report", "run_record.json", "config", "gguf", "eval/gate.md"))
    args = ("run", str(config_path), "--output-dir", str(copy), "--set", "export.gguf=q8_0")
    proc = _so8t(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "stage 4/8 train: skipped" in proc.stderr and "stage 5/8 consolidate: skipped" in proc.stderr
    assert _mtimes(copy, skip=("report", "run_record.json", "config", "gguf", "eval/gate.md")) == kept
    gguf_file = copy / "gguf" / "model-q8_0.gguf"
    assert gguf_file.is_file() and (copy / "gguf" / "model-q8_0.so8t-head.safetensors").is_file()
    figures = json.loads((copy / "run_record.json").read_text())["exported"]["figures"]
    assert figures["size_bytes"] == gguf_file.stat().st_size and figures["decisions_total"] >= 80
    report = (copy / "report.md").read_text()
    assert "## GGUF export (llama.cpp)" in report
    assert f"| {figures['decisions_equal']} / {figures['decisions_total']} |" in report
    again = _so8t(*args, cwd=tmp_path)
    assert again.returncode == 0 and "is finished and up to date" in again.stderr, again.stderr[-3000:]
