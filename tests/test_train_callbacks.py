"""Training logs, sample generations, W&B modes and the pretraining cache."""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

import pytest
from train_fixtures import run_config

from so8t.errors import UserError
from so8t.layout.checkpoints import best_checkpoint, complete_checkpoints
from so8t.layout.run_record import wandb_run_id
from so8t.train.callbacks import configure_wandb
from so8t.train.run import train_from_config


@pytest.mark.slow
def test_training_logs_loss_parts_learning_rates_throughput_and_memory(tiny_base_dir, tmp_path):
    cfg = run_config(
        tiny_base_dir,
        train={
            "max_steps": 4,
            "save_steps": 2,
            "logging_steps": 2,
            "eval_strategy": "steps",
            "eval_steps": 2,
        },
    )
    result = train_from_config(cfg, tmp_path)
    history = json.loads((result.checkpoint_dir / "trainer_state.json").read_text())["log_history"]
    train_logs = [e for e in history if "loss" in e]
    assert train_logs
    for key in (
        "lm_loss",
        "safety_loss",
        "pet",
        "pet_weight",
        "grad_norm",
        "learning_rate_lora",
        "learning_rate_safety",
        "tokens_per_s",
    ):
        assert key in train_logs[-1], key
    assert any(k.startswith("memory_") for k in train_logs[-1])
    first = train_logs[0]  # both groups follow the same schedule, so their ratio is the configured one
    assert first["learning_rate_lora"] > 0
    assert first["learning_rate_safety"] / first["learning_rate_lora"] == pytest.approx(3e-3 / 1e-3)
    eval_logs = [e for e in history if "eval_loss" in e]
    assert {"eval_lm_loss", "eval_safety_loss", "eval_pet"} <= set(eval_logs[-1])
    assert result.best_checkpoint is not None and result.best_checkpoint.is_dir()
    # the discovery fallback, given the same state without the trainer's record, picks the same checkpoint
    state_path = result.checkpoint_dir / "trainer_state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "best_model_checkpoint": None}))
    assert best_checkpoint(complete_checkpoints(tmp_path / "checkpoints")) == result.best_checkpoint
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert {s["kind"] for s in samples} == {"gsm8k", "safety"}
    assert {s["step"] for s in samples} == {2, 4}
    assert all({"prompt", "output", "extracted", "gold"} <= set(s) for s in samples)


def _wandb_cfg(mode: str) -> SimpleNamespace:
    return SimpleNamespace(mode=mode, project="so8t", entity=None, run_name=None)


def test_online_wandb_without_an_api_key_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with pytest.raises(UserError, match="WANDB_API_KEY"):
        configure_wandb(_wandb_cfg("online"), tmp_path)


WANDB_ENV = ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_LOG_MODEL")


def test_offline_wandb_writes_under_the_run_directory_into_its_one_run(monkeypatch, tmp_path):
    for key in WANDB_ENV:  # configure_wandb sets these; monkeypatch restores them afterwards
        monkeypatch.delenv(key, raising=False)
    assert configure_wandb(_wandb_cfg("offline"), tmp_path) == ["wandb"]
    assert os.environ["WANDB_MODE"] == "offline" and os.environ["WANDB_DIR"] == str(tmp_path)
    assert os.environ["WANDB_RUN_ID"] == wandb_run_id(tmp_path) and os.environ["WANDB_RESUME"] == "allow"


@pytest.mark.slow
def test_wandb_offline_keeps_one_run_per_run_directory_with_the_eval_metrics_in_it(
    tiny_base_dir, monkeypatch, tmp_path
):
    """Trained, resumed with more steps, then evaluated: three offline folders (one per process start, as
    offline W&B writes them), one run id, and the evaluation at the last training step."""
    from wandb_records import read_offline_run

    from so8t.pipeline import log_eval_to_wandb

    for key in WANDB_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    offline = {"wandb": {"mode": "offline"}}
    for steps in (2, 4):
        train = {"max_steps": steps, "save_steps": 2, "logging_steps": 1}
        train_from_config(run_config(tiny_base_dir, train=train, logging=offline), run)
        # offline folders are named by the start's second: starts a real run never makes within one second
        time.sleep(1.1)
    cfg = run_config(tiny_base_dir, train={"max_steps": 4}, logging=offline)
    results = {"results": {"so8t_safety_local": {"acc,none": 0.75, "alias": "so8t_safety_local"}}}
    log_eval_to_wandb(cfg, run, results, step=4)
    folders = sorted((run / "wandb").glob("offline-run-*"))
    assert len(folders) == 3
    runs = [read_offline_run(folder) for folder in folders]
    assert {run_id for run_id, _ in runs} == {wandb_run_id(run)}
    rows = [row for _, history in runs for row in history]
    trained = [row["train/global_step"] for row in rows if "train/loss" in row]
    assert trained == [1, 2, 3, 4]
    evaluated = [row for row in rows if "eval/so8t_safety_local/acc,none" in row]
    assert len(evaluated) == 1 and evaluated[0]["eval/so8t_safety_local/acc,none"] == 0.75
    assert evaluated[0]["train/global_step"] >= max(trained)


def test_a_second_run_directory_in_one_process_gets_its_own_wandb_run(monkeypatch, tmp_path):
    """W&B reads its environment once per process: each run directory's settings must still take effect
    (HF's WandbCallback calls wandb.init without a folder or an id)."""
    import wandb

    for key in WANDB_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("first", "second"):
        configure_wandb(_wandb_cfg("offline"), tmp_path / name)
        run = wandb.init()
        assert run.id == wandb_run_id(tmp_path / name)
        run.finish()
        assert [p.name.endswith(run.id) for p in (tmp_path / name / "wandb").glob("offline-run-*")] == [True]


def test_disabled_wandb_reports_nowhere(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert configure_wandb(_wandb_cfg("disabled"), tmp_path) == ["none"]


@pytest.mark.slow
def test_pretraining_learns_is_cached_and_never_reads_held_out_safety(monkeypatch, tmp_path):
    from so8t.config import PretrainConfig
    from so8t.data.safety import bundled_safety_path, read_safety
    from so8t.train import pretrain

    monkeypatch.setattr(pretrain, "cache_root", lambda: tmp_path)
    recipe = PretrainConfig(steps=30, batch_size=8, learning_rate=3e-3, examples=200)
    out = pretrain.pretrained_tiny_base(recipe, seed=0, max_length=96)
    metrics = json.loads((out / "so8t_pretrain.json").read_text())
    assert metrics["pretrain_final_loss"] < metrics["pretrain_first_loss"]
    stamp = (out / "so8t_pretrain.json").stat().st_mtime_ns
    assert pretrain.pretrained_tiny_base(recipe, seed=0, max_length=96) == out
    assert (out / "so8t_pretrain.json").stat().st_mtime_ns == stamp  # reused, not retrained
    texts = "\n".join(pretrain.corpus_texts(200, 0))
    for split in ("validation", "test"):
        assert not any(e.prompt in texts for e in read_safety(bundled_safety_path(split)))
    assert all(e.prompt in texts for e in read_safety(bundled_safety_path("train"))[:20])


def test_a_resumed_run_follows_its_new_learning_rates_schedule_length_and_cadence(tmp_path):
    """Trainer builds the optimizer and scheduler from the new config, then loads the checkpoint's state
    into them, which brings back the old rates; the callback puts the new ones on the restored step."""
    import math

    import torch
    from transformers import get_scheduler
    from transformers.trainer_callback import TrainerState

    from so8t.train.callbacks import ResumedSettings

    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]

    def build(lora_lr: float, safety_lr: float, total: int):
        groups = [
            {"params": [params[0]], "lr": lora_lr, "weight_decay": 0.1, "name": "lora"},
            {"params": [params[1]], "lr": safety_lr, "weight_decay": 0.0, "name": "so8t_no_decay"},
        ]
        optimizer = torch.optim.AdamW(groups)
        return optimizer, get_scheduler("cosine", optimizer, num_warmup_steps=0, num_training_steps=total)

    old_optimizer, old_scheduler = build(1e-3, 3e-3, total=10)
    for _ in range(4):
        old_optimizer.step()
        old_scheduler.step()
    optimizer, scheduler = build(1e-4, 3e-4, total=20)
    optimizer.load_state_dict(old_optimizer.state_dict())
    scheduler.load_state_dict(old_scheduler.state_dict())
    assert scheduler.base_lrs == [1e-3, 3e-3]  # what Trainer leaves behind

    def cosine(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * step / 20))

    (tmp_path / "checkpoint-2").mkdir()
    state = TrainerState(global_step=4, max_steps=20, logging_steps=10, eval_steps=10, save_steps=10)
    state.best_model_checkpoint = "/where/it/was/checkpoints/checkpoint-2"
    args = SimpleNamespace(logging_steps=1, eval_steps=5, save_steps=5, output_dir=str(tmp_path))
    settings = {"lora": {"lr": 1e-4, "weight_decay": 0.2}, "so8t_no_decay": {"lr": 3e-4, "weight_decay": 0.0}}
    ResumedSettings(settings).on_train_begin(args, state, None, optimizer=optimizer, lr_scheduler=scheduler)
    assert scheduler.base_lrs == [1e-4, 3e-4]
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-4 * cosine(4), 3e-4 * cosine(4)])
    assert scheduler.get_last_lr() == pytest.approx([1e-4 * cosine(4), 3e-4 * cosine(4)])
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.2, 0.0]
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 * cosine(5))
    assert (state.logging_steps, state.eval_steps, state.save_steps) == (1, 5, 5)
    assert state.best_model_checkpoint == str(tmp_path / "checkpoint-2")


def test_samples_of_a_step_generated_again_after_a_resume_replace_the_earlier_rows(tmp_path):
    from so8t.train.callbacks import SampleGenerationCallback

    callback = SampleGenerationCallback([], None, tmp_path / "samples.jsonl")
    callback.write_rows([{"step": 2}, {"step": 2}], 2)
    callback.write_rows([{"step": 4}], 4)
    callback.write_rows([{"step": 6, "output": "before the crash"}], 6)
    # the run resumed from checkpoint-4 and evaluates step 6 again
    callback.write_rows([{"step": 6, "output": "after the resume"}], 6)
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 2, 4, 6] and rows[-1]["output"] == "after the resume"
