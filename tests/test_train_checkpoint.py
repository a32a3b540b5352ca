"""Checkpoints: adapter-only contents, atomic saves, resume after SIGKILL, SIGTERM and NaN safety nets."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import REPO, run_config, run_python, subprocess_env, write_config
from transformers import TrainerCallback

from so8t.errors import UserError
from so8t.layout.checkpoints import last_complete_checkpoint
from so8t.layout.run_claim import read_config_history
from so8t.train.run import train_from_config

# A training run in a fresh interpreter; argv: config, output dir, optional "kill-after=N" / "term-at=N".
TRAIN_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from so8t.config import load_config
    from so8t.train import trainer as trainer_module
    from so8t.train.run import train_from_config

    cfg = load_config(sys.argv[1])
    for arg in sys.argv[3:]:
        what, step = arg.split("=")
        step = int(step)
        if what == "kill-after":  # die the hard way right after checkpoint-N is complete
            save = trainer_module.So8tTrainer._save_checkpoint
            def _save_then_die(self, model, trial, _save=save, _step=step):
                _save(self, model, trial)
                if self.state.global_step == _step:
                    os.kill(os.getpid(), signal.SIGKILL)
            trainer_module.So8tTrainer._save_checkpoint = _save_then_die
        if what == "kill-after-eval":  # die the hard way right after the evaluation of step N (no checkpoint)
            from so8t.train import callbacks as callbacks_module
            on_evaluate = callbacks_module.SampleGenerationCallback.on_evaluate
            def _evaluate_then_die(self, args, state, *a, _fn=on_evaluate, _step=step, **kw):
                _fn(self, args, state, *a, **kw)
                if state.global_step == _step:
                    os.kill(os.getpid(), signal.SIGKILL)
            callbacks_module.SampleGenerationCallback.on_evaluate = _evaluate_then_die
        if what == "term-at":  # a SIGTERM arriving during step N
            step_fn = trainer_module.So8tTrainer.training_step
            def _step_then_term(self, *a, _fn=step_fn, _step=step, **kw):
                if self.state.global_step == _step - 1:
                    os.kill(os.getpid(), signal.SIGTERM)
                return _fn(self, *a, **kw)
            trainer_module.So8tTrainer.training_step = _step_then_term
    result = train_from_config(cfg, sys.argv[2])
    print("FINAL", result.checkpoint_dir)
""")


def so8t_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "so8t", *args],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )


def _final_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = load_file(checkpoint / "adapter_model.safetensors")
    state.update({f"so8t.{k}": v for k, v in load_file(checkpoint / "so8t_state.safetensors").items()})
    return state


def _last_train_loss(checkpoint: Path) -> float:
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return [e["loss"] for e in history if "loss" in e][-1]


def test_checkpoint_holds_adapter_and_so8t_state_but_no_base_weights(tiny_base_dir, tmp_path):
    cfg = run_config(tiny_base_dir, train={"max_steps": 2, "save_steps": 2})
    result = train_from_config(cfg, tmp_path)
    ckpt = result.checkpoint_dir
    assert ckpt == tmp_path / "checkpoints" / "checkpoint-2"
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "so8t_state.safetensors",
        "so8t.json",
        "trainer_state.json",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
    ):
        assert (ckpt / name).is_file(), name
    assert not list(ckpt.glob("model*.safetensors")) and not list(ckpt.glob("pytorch_model*"))
    adapter = load_file(ckpt / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    base_keys = set(load_file(Path(tiny_base_dir) / "model.safetensors"))
    so8t_keys = set(load_file(ckpt / "so8t_state.safetensors"))
    assert not any(k.endswith(b) or b.endswith(k) for k in so8t_keys | set(adapter) for b in base_keys)
    base_bytes = (Path(tiny_base_dir) / "model.safetensors").stat().st_size
    saved_bytes = sum(f.stat().st_size for f in ckpt.glob("*.safetensors"))
    assert saved_bytes < base_bytes / 2
    assert json.loads((ckpt / "so8t.json").read_text())["format"] == "so8t-checkpoint"


def test_resume_picks_only_complete_checkpoints(tmp_path):
    root = tmp_path / "checkpoints"
    for step, complete in ((5, True), (10, True), (15, False)):
        folder = root / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            for name in ("so8t.json", "so8t_state.safetensors", "trainer_state.json"):
                (folder / name).write_text("{}")
    (root / ".staging-checkpoint-20" / "checkpoint-20").mkdir(parents=True)
    assert last_complete_checkpoint(root) == root / "checkpoint-10"
    assert not (root / ".staging-checkpoint-20").exists()  # a crashed save's leftovers are cleared


def _train_logs(checkpoint: Path) -> dict[int, dict]:
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: e for e in history if "loss" in e}


def _samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_run_killed_after_a_checkpoint_resumes_to_the_same_end(tiny_base_dir, tmp_path):
    config = write_config(
        tmp_path / "run.yaml",
        tiny_base_dir,
        train={
            "max_steps": 10,
            "save_steps": 4,
            "logging_steps": 2,
            "eval_strategy": "steps",
            "eval_steps": 2,
        },
    )
    whole = run_python(TRAIN_SCRIPT, str(config), str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    # killed after the evaluation of step 6, two steps past checkpoint-4: the run resumes from step 4
    killed = run_python(TRAIN_SCRIPT, str(config), str(tmp_path / "resumed"), "kill-after-eval=6")
    assert killed.returncode == -signal.SIGKILL
    ckpts = tmp_path / "resumed" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir() if p.name.startswith("checkpoint-")) == ["checkpoint-4"]
    resumed = run_python(TRAIN_SCRIPT, str(config), str(tmp_path / "resumed"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    end_whole = tmp_path / "whole" / "checkpoints" / "checkpoint-10"
    end_resumed = ckpts / "checkpoint-10"
    assert json.loads((end_resumed / "trainer_state.json").read_text())["global_step"] == 10
    assert _last_train_loss(end_resumed) == pytest.approx(_last_train_loss(end_whole), rel=1e-5)
    a, b = _final_state(end_whole), _final_state(end_resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    # the resumed run logs what the uninterrupted one logs, also at the first log after the resume
    logs_whole, logs_resumed = _train_logs(end_whole), _train_logs(end_resumed)
    assert sorted(logs_resumed) == sorted(logs_whole) == [1, 2, 4, 6, 8, 10]
    for step in logs_whole:
        for key in ("loss", "lm_loss", "safety_loss", "pet", "pet_weight"):
            assert logs_resumed[step][key] == pytest.approx(logs_whole[step][key], rel=1e-4), (step, key)
    # samples.jsonl holds each evaluation once: step 6, generated before the kill and again after the
    # resume, is not repeated
    samples_whole, samples_resumed = _samples(tmp_path / "whole"), _samples(tmp_path / "resumed")
    assert [s["step"] for s in samples_resumed] == [s["step"] for s in samples_whole]
    assert samples_resumed == samples_whole


def test_sigterm_writes_an_emergency_checkpoint_and_exits(tiny_base_dir, tmp_path):
    config = write_config(tmp_path / "run.yaml", tiny_base_dir, train={"max_steps": 20, "save_steps": 100})
    proc = run_python(TRAIN_SCRIPT, str(config), str(tmp_path / "run"), "term-at=3")
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint-3"
    assert last_complete_checkpoint(ckpt.parent) == ckpt
    assert json.loads((ckpt / "trainer_state.json").read_text())["global_step"] == 3


@pytest.mark.slow
def test_a_resume_from_a_checkpoint_between_two_log_lines_logs_what_the_uninterrupted_run_logs(
    tiny_base_dir, tmp_path
):
    """Stopped at step 3 with a log line every 2 steps: the line of step 4 after the resume still averages
    steps 3 and 4, as the uninterrupted run's does."""
    config = write_config(
        tmp_path / "run.yaml", tiny_base_dir, train={"max_steps": 4, "save_steps": 100, "logging_steps": 2}
    )
    whole = run_python(TRAIN_SCRIPT, str(config), str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    stopped = run_python(TRAIN_SCRIPT, str(config), str(tmp_path / "resumed"), "term-at=3")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    resumed = run_python(TRAIN_SCRIPT, str(config), str(tmp_path / "resumed"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    logs_whole = _train_logs(tmp_path / "whole" / "checkpoints" / "checkpoint-4")
    logs_resumed = _train_logs(tmp_path / "resumed" / "checkpoints" / "checkpoint-4")
    assert sorted(logs_resumed) == sorted(logs_whole) == [1, 2, 4]
    for key in ("loss", "lm_loss", "safety_loss", "pet"):
        assert logs_resumed[4][key] == pytest.approx(logs_whole[4][key], rel=1e-5), key


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_base_dir, tmp_path, monkeypatch
):
    from so8t.train import run as run_module

    build = run_module.build_trainer

    def build_with_poison(*args, **kwargs):
        trainer, signal_cb = build(*args, **kwargs)
        poison_at = 7

        class PoisonHeadB(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kw):
                if state.global_step == poison_at:
                    with torch.no_grad():
                        for name, param in model.named_parameters():
                            if param.requires_grad and "lora_" not in name and "generators" not in name:
                                param.fill_(float("nan"))

        trainer.add_callback(PoisonHeadB())
        return trainer, signal_cb

    monkeypatch.setattr(run_module, "build_trainer", build_with_poison)
    cfg = run_config(tiny_base_dir, train={"max_steps": 20, "save_steps": 5})
    with pytest.raises(UserError, match="loss became nan at step 7"):
        train_from_config(cfg, tmp_path)
    root = tmp_path / "checkpoints"
    assert last_complete_checkpoint(root) == root / "checkpoint-5"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-5"]
    assert all(torch.isfinite(t).all() for t in _final_state(root / "checkpoint-5").values())


def test_out_of_memory_writes_an_emergency_checkpoint_and_explains_the_fix(
    tiny_base_dir, tmp_path, monkeypatch
):
    from so8t.train.trainer import So8tTrainer

    compute_loss = So8tTrainer.compute_loss

    def out_of_memory_at_step_3(self, model, inputs, *args, **kwargs):
        if model.training and self.state.global_step == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(So8tTrainer, "compute_loss", out_of_memory_at_step_3)
    cfg = run_config(tiny_base_dir, train={"max_steps": 10, "save_steps": 100})
    with pytest.raises(UserError, match="per_device_batch_size"):
        train_from_config(cfg, tmp_path)
    root = tmp_path / "checkpoints"
    assert last_complete_checkpoint(root) == root / "checkpoint-3"
    assert json.loads((root / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3


def test_out_of_memory_on_one_of_several_processes_saves_nothing_and_calls_no_collective(
    tiny_base_dir, tmp_path, monkeypatch
):
    """The other ranks are inside the step's gradient all-reduce when one runs out of memory: an emergency
    save (which agrees with them on finiteness and the best checkpoint) would hang. Here the world turns
    into two processes at the OOM, with no process group behind it: any collective would fail."""
    from so8t.train import distributed
    from so8t.train.trainer import So8tTrainer

    compute_loss = So8tTrainer.compute_loss

    def out_of_memory_at_step_3(self, model, inputs, *args, **kwargs):
        if model.training and self.state.global_step == 3:
            monkeypatch.setattr(distributed, "world_size", lambda: 2)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(So8tTrainer, "compute_loss", out_of_memory_at_step_3)
    cfg = run_config(tiny_base_dir, train={"max_steps": 10, "save_steps": 2})
    with pytest.raises(UserError, match="No emergency checkpoint was written"):
        train_from_config(cfg, tmp_path)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-2"]


@pytest.mark.slow
def test_evaluating_more_often_than_saving_keeps_and_reports_the_best_saved_checkpoint(
    tiny_base_dir, tmp_path, monkeypatch
):
    """Evaluated every step, saved every 2, one checkpoint kept besides the best: the best evaluation (step 3)
    has no checkpoint, so the best is the best saved one (checkpoint-4), and rotation keeps it rather than an
    earlier, worse one that Trainer's own record would name."""
    from so8t.layout.checkpoints import BEST_METRIC_KEY
    from so8t.train.callbacks import SampleGenerationCallback
    from so8t.train.trainer import So8tTrainer

    scripted = {1: 5.0, 2: 4.0, 3: 1.0, 4: 3.0, 5: 2.0, 6: 3.5}
    evaluation_loop = So8tTrainer.evaluation_loop

    def scripted_task_loss(self, *args, **kwargs):
        output = evaluation_loop(self, *args, **kwargs)
        output.metrics[BEST_METRIC_KEY] = scripted[self.state.global_step]
        return output

    monkeypatch.setattr(So8tTrainer, "evaluation_loop", scripted_task_loss)
    # the sample generations at each evaluation are no part of this
    monkeypatch.setattr(SampleGenerationCallback, "on_evaluate", lambda self, *a, **kw: None)
    cfg = run_config(
        tiny_base_dir,
        data={"validation": [{"builtin": "synthetic_gsm8k", "n": 2}]},
        train={
            "max_steps": 6,
            "save_steps": 2,
            "save_total_limit": 1,
            "eval_strategy": "steps",
            "eval_steps": 1,
            "logging_steps": 1,
        },
    )
    result = train_from_config(cfg, tmp_path)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-4", "checkpoint-6"]
    assert result.best_checkpoint == root / "checkpoint-4"
    state = json.loads((root / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(root / "checkpoint-4") and state["best_metric"] == 3.0


@pytest.mark.slow
def test_an_absurd_learning_rate_leaves_no_non_finite_checkpoint_and_the_printed_command_finishes(
    tiny_base_dir, tmp_path
):
    """Two sane steps, then the same run resumed with an absurd learning rate: its update makes the
    parameters infinite, so checkpoint-3 is never written; the error prints the command that continues from
    checkpoint-2 with lower learning rates, and that command (a resume with changed learning rates) finishes
    with the new rates in its logs."""
    config = write_config(
        tmp_path / "run.yaml",
        tiny_base_dir,
        train={"max_steps": 2, "save_steps": 1, "logging_steps": 1, "lr_scheduler": "constant"},
    )
    run = tmp_path / "run"
    sane = so8t_cli("train", str(config), "--output-dir", str(run))
    assert sane.returncode == 0, sane.stderr[-3000:]
    absurd = ["--set", "train.learning_rate=1.0e+39", "--set", "train.safety_learning_rate=1.0e+39"]
    diverged = so8t_cli("train", str(config), "--output-dir", str(run), "--set", "train.max_steps=6", *absurd)
    assert diverged.returncode == 2, diverged.stderr[-3000:]
    assert "checkpoint-3 was not written" in diverged.stderr
    assert f"The last checkpoint, {run / 'checkpoints' / 'checkpoint-2'}, is finite" in diverged.stderr
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-1", "checkpoint-2"]
    command = shlex.split(next(line for line in diverged.stderr.splitlines() if line.startswith("  so8t ")))
    assert command[:2] == ["so8t", "train"] and "train.max_steps=6" in command
    assert "train.learning_rate=0.0002" in command and "train.safety_learning_rate=0.001" in command
    assert "train.learning_rate=1.0e+39" not in command
    finished = so8t_cli(*command[1:])
    assert finished.returncode == 0, finished.stderr[-3000:]
    end = run / "checkpoints" / "checkpoint-6"
    for checkpoint in (run / "checkpoints").iterdir():
        assert all(torch.isfinite(t).all() for t in _final_state(checkpoint).values()), checkpoint.name
    logs = _train_logs(end)
    assert [logs[s]["learning_rate_lora"] for s in sorted(logs)] == pytest.approx([1e-3] * 2 + [2e-4] * 4)
    assert [logs[s]["learning_rate_safety"] for s in sorted(logs)] == pytest.approx([3e-3] * 2 + [1e-3] * 4)
    assert [logs[s]["learning_rate"] for s in sorted(logs)] == pytest.approx([1e-3] * 2 + [2e-4] * 4)
    history = read_config_history(run)
    assert history[-1]["changed"]["train.learning_rate"] == [1e39, 2e-4]


@pytest.mark.slow
def test_checkpoints_a_learning_rate_of_1e6_exploded_are_never_resumed_and_the_printed_command_finishes(
    tiny_base_dir, tmp_path
):
    """A huge but finite update is saved (save_steps 1) before the loss turns non-finite; such a checkpoint is
    no resume point (so8t.train.resume_point), so the printed lower-rate command does not fail at the same
    step again but trains to the end."""
    from so8t.train.resume_point import judged_checkpoints

    config = write_config(
        tmp_path / "run.yaml",
        tiny_base_dir,
        data={"validation": [{"builtin": "synthetic_gsm8k", "n": 4}]},
        train={
            "max_steps": 4,
            "save_steps": 1,
            "eval_strategy": "steps",
            "eval_steps": 1,
            "logging_steps": 1,
            "learning_rate": 1e6,
            "safety_learning_rate": 1e6,
        },
    )
    run = tmp_path / "run"
    diverged = so8t_cli("train", str(config), "--output-dir", str(run))
    assert diverged.returncode == 2, diverged.stderr[-3000:]
    assert "Exploded checkpoints are never resumed from: checkpoint-1 (" in diverged.stderr, diverged.stderr
    command = shlex.split(next(line for line in diverged.stderr.splitlines() if line.startswith("  so8t ")))
    finished = so8t_cli(*command[1:])
    assert finished.returncode == 0, finished.stderr[-3000:]
    sound, exploded = judged_checkpoints(run / "checkpoints")
    assert exploded == {}
    assert [p.name for p in sound] == [f"checkpoint-{step}" for step in range(1, 5)]


@pytest.mark.slow
def test_a_save_never_writes_a_non_finite_parameter(tiny_base_dir, tmp_path, monkeypatch):
    from so8t.train import run as run_module

    build = run_module.build_trainer

    def build_with_poison(*args, **kwargs):
        trainer, guard = build(*args, **kwargs)

        class PoisonBeforeTheSave(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kw):
                if state.global_step == 4:  # a save step: the parameters break after the update
                    with torch.no_grad():
                        next(p for p in model.parameters() if p.requires_grad).fill_(float("inf"))

        trainer.add_callback(PoisonBeforeTheSave())
        return trainer, guard

    monkeypatch.setattr(run_module, "build_trainer", build_with_poison)
    cfg = run_config(tiny_base_dir, train={"max_steps": 10, "save_steps": 2})
    with pytest.raises(
        UserError, match="parameters became non-finite at step 4; checkpoint-4 was not written"
    ):
        train_from_config(cfg, tmp_path)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-2"]
