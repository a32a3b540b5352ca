"""Checkpoints: adapter-only contents, atomic saves, resume after SIGKILL, SIGTERM and NaN safety nets."""

from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import run_config, run_python, write_config
from transformers import TrainerCallback

from so8t.errors import UserError
from so8t.train.run import last_complete_checkpoint, train_from_config

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


@pytest.mark.slow
def test_run_killed_after_a_checkpoint_resumes_to_the_same_end(tiny_base_dir, tmp_path):
    config = write_config(tmp_path / "run.yaml", tiny_base_dir, train={"max_steps": 10, "save_steps": 4})
    whole = run_python(TRAIN_SCRIPT, str(config), str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = run_python(TRAIN_SCRIPT, str(config), str(tmp_path / "resumed"), "kill-after=4")
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


def test_sigterm_writes_an_emergency_checkpoint_and_exits(tiny_base_dir, tmp_path):
    config = write_config(tmp_path / "run.yaml", tiny_base_dir, train={"max_steps": 20, "save_steps": 100})
    proc = run_python(TRAIN_SCRIPT, str(config), str(tmp_path / "run"), "term-at=3")
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint-3"
    assert last_complete_checkpoint(ckpt.parent) == ckpt
    assert json.loads((ckpt / "trainer_state.json").read_text())["global_step"] == 3


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
