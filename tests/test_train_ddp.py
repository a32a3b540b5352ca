"""Scale-out: the same trainer under torchrun with two CPU processes (DDP over gloo).

One uninterrupted two-process run is shared by the checks: its checkpoints, its logged figures against a
single process with the same global batch, and the end a run stopped by SIGTERM on one rank resumes to.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import REPO, run_config_dict, subprocess_env, whole_batches_validation, write_config

from so8t.config import load_config
from so8t.layout.checkpoints import is_complete_checkpoint, last_complete_checkpoint, read_trainer_state
from so8t.train.run import build_model, build_trainer, train_from_config
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


def uneven_validation() -> list[dict]:
    """whole_batches_validation() and one GSM8K problem more."""
    gsm8k, *rest = whole_batches_validation()
    return [{**gsm8k, "n": gsm8k["n"] + 1}, *rest]


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
    evaluated every 2 steps, logged every step; its validation set is one row past whole batches of 2 on
    each rank, so accelerate pads the last round of batches with rows it has seen."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    model = {"base": str(tiny_base_dir), "pretrain": {"enabled": False}, **MODEL}
    config = write_config(
        tmp_path / "run.yaml",
        tiny_base_dir,
        model=model,
        train=TRAIN,
        data={"validation": uneven_validation()},
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

    # The validation loss parts cover the whole validation set, gathered over both ranks, each row once: one
    # process evaluating the same checkpoint logs the same figures, though the set is no whole number of
    # batches of 2 on each of 2 ranks (the padding rows are not counted).
    logged = next(e for e in state["log_history"] if "eval_lm_loss" in e and e["step"] == 4)
    cfg = load_config(config)
    model, tokenizer, _ = build_model(cfg)
    load_trainable_state(model, str(ckpt))
    trainer, _ = build_trainer(cfg, tmp_path / "single", model, tokenizer)
    assert len(trainer.eval_dataset) % 4 == 1, "the last round of batches must be padded"
    single = trainer.evaluate()
    for key in ("eval_lm_loss", "eval_safety_loss", "eval_pet", "eval_task_loss"):
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


# sitecustomize hooks for the ranks that `so8t run` / `so8t train` launch themselves (see its docstring)
RANK_HOOKS = REPO / "tests" / "fixtures" / "rank_hooks"


def _launched_config(tiny_base_dir, tmp_path) -> tuple[Path, Path]:
    """(config, run directory) of ddp_run's training on train.processes: 2, launched by so8t itself."""
    out = tmp_path / "run"
    model = {"base": str(tiny_base_dir), "pretrain": {"enabled": False}, **MODEL}
    test = [{"builtin": "synthetic_gsm8k", "n": 4}, {"builtin": "safety"}]
    data = {"validation": whole_batches_validation(), "test": test}
    cfg = run_config_dict(
        tiny_base_dir, model=model, train={**TRAIN, "processes": 2}, data=data, output_dir=str(out)
    )
    config = tmp_path / "launched.yaml"
    config.write_text(json.dumps(cfg))
    return config, out


def _with_rank_hooks(**variables: str) -> dict[str, str]:
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(RANK_HOOKS), env["PYTHONPATH"]])
    return {**env, **variables}


def _processes_naming(path: Path) -> list[str]:
    """Command lines of the live processes that name `path` (torchrun and its ranks name the config)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if str(path).encode() in argv:
            found.append(" ".join(a.decode(errors="replace") for a in argv))
    return found


def test_sigterm_to_so8t_run_stops_every_training_process_within_a_step_and_the_rerun_ends_as_uninterrupted(
    ddp_run, tiny_base_dir, tmp_path
):
    """A scheduler's SIGTERM goes to `so8t run`: it forwards it to torchrun and waits, every rank saves the
    step it is in and stops, nothing trains on, and the exit code is 143; the rerun ends where the
    uninterrupted run ends."""
    _, whole = ddp_run
    config, out = _launched_config(tiny_base_dir, tmp_path)
    log = (tmp_path / "run.log").open("w")
    parent = subprocess.Popen(
        [sys.executable, "-m", "so8t", "run", str(config)],
        env=_with_rank_hooks(SO8T_TEST_STEP_SECONDS="1"),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    checkpoints = out / "checkpoints"
    deadline = time.monotonic() + 600
    while not is_complete_checkpoint(checkpoints / "checkpoint-2"):
        assert parent.poll() is None and time.monotonic() < deadline, (tmp_path / "run.log").read_text()[
            -4000:
        ]
        time.sleep(0.05)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=300) == 128 + signal.SIGTERM, (tmp_path / "run.log").read_text()[-4000:]
    assert _processes_naming(config) == []
    output = (tmp_path / "run.log").read_text()
    for rank in (0, 1):
        assert f"rank {rank}: stopped by signal {int(signal.SIGTERM)} at step 3" in output, output[-4000:]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-3"]
    resumed = subprocess.run(
        [sys.executable, "-m", "so8t", "train", str(config)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    end, expected = checkpoints / "checkpoint-4", whole / "checkpoints" / "checkpoint-4"
    a, b = _adapter_and_state(expected), _adapter_and_state(end)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)


def test_a_clean_stop_of_launched_processes_exits_128_plus_the_signal_whichever_rank_received_it(
    tiny_base_dir, tmp_path
):
    """SIGTERM to one rank: every rank saves and stops, torchrun calls that a failure, `so8t train` reports
    the clean stop as one process does (143), not the failed-gate code 1."""
    config, out = _launched_config(tiny_base_dir, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "so8t", "train", str(config)],
        env=_with_rank_hooks(SO8T_TEST_TERM_AT="3@1"),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-4000:]
    assert "training stopped by signal 15: every process saved the step it stopped at" in proc.stderr
    assert read_trainer_state(out / "checkpoints" / "checkpoint-3")["global_step"] == 3
