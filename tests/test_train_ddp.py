"""Scale-out: the same trainer under torchrun with two CPU processes (DDP over gloo)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from train_fixtures import REPO, subprocess_env, write_config

from so8t.config import load_config
from so8t.data.safety import bundled_safety_path, read_safety
from so8t.train.run import build_model, build_trainer, last_complete_checkpoint
from so8t.train.trainer import load_trainable_state

pytestmark = pytest.mark.slow


def test_two_process_torchrun_on_cpu_completes_with_one_checkpoint_set(tiny_base_dir, tmp_path):
    # whole, equal batches of 2 on both ranks: GSM8K problems fill the validation split up to a multiple of 4
    bundled = len(read_safety(bundled_safety_path("validation")))
    validation = [{"builtin": "synthetic_gsm8k", "n": 8 + (-(8 + bundled) % 4)}, {"builtin": "safety"}]
    config = write_config(
        tmp_path / "run.yaml",
        tiny_base_dir,
        data={"validation": validation},
        model={
            "base": str(tiny_base_dir),
            "dtype": "float32",
            "gradient_checkpointing": True,
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "pretrain": {"enabled": False},
        },
        train={
            "max_steps": 4,
            "save_steps": 2,
            "per_device_batch_size": 2,
            "eval_strategy": "steps",
            "eval_steps": 2,
            "save_total_limit": None,
        },
    )
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "so8t.train.run",
            str(config),
            "--output-dir",
            str(out),
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ckpt = last_complete_checkpoint(out / "checkpoints")
    assert ckpt == out / "checkpoints" / "checkpoint-4"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert any("eval_loss" in entry for entry in state["log_history"])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]

    # The validation loss parts cover the whole validation set, gathered over both ranks: one process
    # evaluating the same checkpoint on the same batches (96 examples, 48 batches of 2) logs the same figures.
    logged = next(e for e in state["log_history"] if "eval_lm_loss" in e and e["step"] == 4)
    cfg = load_config(config)
    model, tokenizer, _ = build_model(cfg)
    load_trainable_state(model, str(ckpt))
    trainer, _ = build_trainer(cfg, tmp_path / "single", model, tokenizer)
    assert len(trainer.eval_dataset) % 4 == 0, "both ranks must see whole, equal batches for an exact match"
    single = trainer.evaluate()
    for key in ("eval_lm_loss", "eval_safety_loss", "eval_task_loss"):
        assert logged[key] == pytest.approx(single[key], rel=1e-4), key
