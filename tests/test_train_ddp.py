"""Scale-out: the same trainer under torchrun with two CPU processes (DDP over gloo).

One uninterrupted two-process run is shared by the checks: its checkpoints, its logged figures against a
single process with the same global batch, and the end a run stopped by SIGTERM on one rank resumes to.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import REPO, subprocess_env, whole_batches_validation, write_config

from so8t.config import load_config
from so8t.layout import read_trainer_state
from so8t.train.run import build_model, build_trainer, last_complete_checkpoint, train_from_config
from so8t.train.trainer import load_trainable_state

pytestmark = pytest.mark.slow

# The torchrun entry point (`python -m so8t.train.run`'s own main) with test hooks: arguments of the form
# "term-at=N@R" (SIGTERM to rank R itself during step N) or "nan-at=N@R" (rank R's loss is NaN in step N).
DDP_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from so8t.train import trainer as trainer_module
    from so8t.train.run import _ddp_main

    rank = int(os.environ["RANK"])
    hooks = [a for a in sys.argv[1:] if a.startswith(("term-at=", "nan-at="))]
    sys.argv = [a for a in sys.argv if a not in hooks]
    for hook in hooks:
        what, at = hook.split("=")
        step, on_rank = (int(x) for x in at.split("@"))
        if on_rank != rank:
            continue
        if what == "term-at":
            step_fn = trainer_module.So8tTrainer.training_step
            def _step_then_term(self, *a, _fn=step_fn, _step=step, **kw):
                if self.state.global_step == _step - 1 and not getattr(self, "_sent", False):
                    self._sent = True
                    os.kill(os.getpid(), signal.SIGTERM)
                return _fn(self, *a, **kw)
            trainer_module.So8tTrainer.training_step = _step_then_term
        if what == "nan-at":
            loss_fn = trainer_module.So8tTrainer.compute_loss
            def _nan_loss(self, model, inputs, *a, _fn=loss_fn, _step=step, **kw):
                loss = _fn(self, model, inputs, *a, **kw)
                if model.training and self.state.global_step == _step - 1:
                    self.stop_guard.report_nonfinite("The training loss became nan on rank %d" % rank)
                return loss
            trainer_module.So8tTrainer.compute_loss = _nan_loss
    raise SystemExit(_ddp_main())
""")

TRAIN = {
    "max_steps": 4,
    "save_steps": 2,
    "per_device_batch_size": 2,
    "eval_strategy": "steps",
    "eval_steps": 2,
    "logging_steps": 1,
    "save_total_limit": None,
}
MODEL = {"dtype": "float32", "gradient_checkpointing": True, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}


def torchrun(tmp_path, config, out, *hooks: str) -> subprocess.CompletedProcess:
    script = tmp_path / "ddp_entry.py"
    script.write_text(DDP_SCRIPT)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(config),
            "--output-dir",
            str(out),
            *hooks,
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def ddp_run(tiny_base_dir, tmp_path_factory):
    """(config, run directory) of one uninterrupted two-process run: 4 steps of 2 x 2 rows, saved and
    evaluated every 2 steps, logged every step."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    model = {"base": str(tiny_base_dir), "pretrain": {"enabled": False}, **MODEL}
    config = write_config(
        tmp_path / "run.yaml",
        tiny_base_dir,
        model=model,
        train=TRAIN,
        data={"validation": whole_batches_validation()},
    )
    out = tmp_path / "run"
    proc = torchrun(tmp_path, config, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return config, out


def test_two_process_torchrun_on_cpu_completes_with_one_checkpoint_set(ddp_run, tmp_path):
    config, out = ddp_run
    ckpt = last_complete_checkpoint(out / "checkpoints")
    assert ckpt == out / "checkpoints" / "checkpoint-4"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert any("eval_loss" in entry for entry in state["log_history"])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]

    # The validation loss parts cover the whole validation set, gathered over both ranks: one process
    # evaluating the same checkpoint on the same batches (whole batches of 2) logs the same figures.
    logged = next(e for e in state["log_history"] if "eval_lm_loss" in e and e["step"] == 4)
    cfg = load_config(config)
    model, tokenizer, _ = build_model(cfg)
    load_trainable_state(model, str(ckpt))
    trainer, _ = build_trainer(cfg, tmp_path / "single", model, tokenizer)
    assert len(trainer.eval_dataset) % 4 == 0, "both ranks must see whole, equal batches for an exact match"
    single = trainer.evaluate()
    for key in ("eval_lm_loss", "eval_safety_loss", "eval_task_loss"):
        assert logged[key] == pytest.approx(single[key], rel=1e-4), key


def _train_logs(checkpoint) -> dict[int, dict]:
    return {e["step"]: e for e in read_trainer_state(checkpoint)["log_history"] if "loss" in e}


def test_two_processes_log_the_loss_and_its_parts_of_one_process_with_the_same_global_batch(
    ddp_run, tiny_base_dir, tmp_path
):
    """Each rank holds its share of every figure; summed over ranks at log time they are the global ones,
    the figures of one process reading both ranks' rows at once (4 rows per step, in the same order)."""
    config, out = ddp_run
    cfg = load_config(config, ["train.per_device_batch_size=4", f"output_dir={tmp_path / 'single'}"])
    single = train_from_config(cfg, tmp_path / "single")
    two, one = _train_logs(out / "checkpoints" / "checkpoint-4"), _train_logs(single.checkpoint_dir)
    assert sorted(two) == sorted(one) == [1, 2, 3, 4]
    for step in one:
        for key in ("loss", "lm_loss", "safety_loss", "pet", "pet_weight", "grad_norm"):
            assert two[step][key] == pytest.approx(one[step][key], rel=1e-4), (step, key)
    assert all(two[step]["safety_loss"] > 0 for step in two), "every step has safety rows on some rank"


def _adapter_and_state(checkpoint) -> dict[str, torch.Tensor]:
    state = load_file(checkpoint / "adapter_model.safetensors")
    state.update({f"so8t.{k}": v for k, v in load_file(checkpoint / "so8t_state.safetensors").items()})
    return state


def test_sigterm_to_one_rank_stops_both_at_the_same_step_and_the_resume_ends_as_an_uninterrupted_run(
    ddp_run, tmp_path
):
    config, whole = ddp_run
    out = tmp_path / "run"
    stopped = torchrun(tmp_path, config, out, "term-at=3@1")
    assert stopped.returncode != 0
    output = stopped.stdout + stopped.stderr
    for rank in (0, 1):
        assert f"rank {rank}: stopped by signal {int(signal.SIGTERM)} at step 3" in output, output[-4000:]
    checkpoints = out / "checkpoints"
    # one resumable checkpoint of the stop step beside the regular one, nothing half-written
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-3"]
    assert last_complete_checkpoint(checkpoints) == checkpoints / "checkpoint-3"
    assert read_trainer_state(checkpoints / "checkpoint-3")["global_step"] == 3
    resumed = torchrun(tmp_path, config, out)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    end, expected = checkpoints / "checkpoint-4", whole / "checkpoints" / "checkpoint-4"
    a, b = _adapter_and_state(expected), _adapter_and_state(end)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    assert _train_logs(end)[4]["loss"] == pytest.approx(_train_logs(expected)[4]["loss"], rel=1e-5)


def test_a_non_finite_loss_on_one_rank_stops_both_before_the_update(ddp_run, tmp_path):
    config, _ = ddp_run
    out = tmp_path / "run"
    proc = torchrun(tmp_path, config, out, "nan-at=3@1")
    assert proc.returncode != 0
    # rank 0 saw a finite loss, learnt of rank 1's at the end of the step, and says so once
    assert proc.stderr.count("error: The training loss became non-finite on another rank at step 2") == 1
    assert "is finite (no non-finite checkpoint is ever written)" in proc.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2"]
