"""GRPO on the SO8T model: the loss's log-probs are the SO8T forward (gate and rotations included), the
SO8T parameters are optimised and saved, a rollout computes the rotations once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from conftest import randomise_so8t
from safetensors.torch import load_file
from train_fixtures import run_config, run_python, subprocess_env, write_config

from so8t.layout import ADAPTER_WEIGHTS, STATE_FILE, TRAINER_STATE
from so8t.layout.so8t_json import SO8T_JSON
from so8t.lmeval.rewards import reward_functions

pytest.importorskip("trl")  # the grpo extra (tox -e lowest runs without it)

GRPO = {"method": "grpo", "max_steps": 2, "per_device_batch_size": 4, "save_steps": 1, "logging_steps": 1}
ROLLOUT = {"num_generations": 4, "max_completion_length": 12}


@pytest.fixture(scope="module")
def grpo_trainer(tiny_base_dir, tmp_path_factory):
    """One So8tGRPOTrainer on the tiny base for the fast checks (gate and rotations far from the identity)."""
    from so8t.train.grpo import build_grpo_model, build_grpo_trainer

    cfg = run_config(tiny_base_dir, train=GRPO, grpo=ROLLOUT)
    model, tokenizer = build_grpo_model(cfg)
    randomise_so8t(model)
    out = tmp_path_factory.mktemp("grpo_trainer")
    trainer, _ = build_grpo_trainer(cfg, out, model, tokenizer, reward_functions(cfg.grpo))
    return trainer


def _gated_log_probs(so8t_model, ids, keep):
    """Reference: the final hidden state turned by R_safe R_cmd (gate.dense()), through the LM head."""
    hf = so8t_model.hf_model
    h = hf.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    logits = F.linear(h @ so8t_model.gate.dense().to(h.dtype), hf.lm_head.weight)
    logps = logits[:, -keep - 1 : -1].float().log_softmax(-1)
    return logps.gather(-1, ids[:, -keep:, None]).squeeze(-1)


def test_grpo_log_probs_are_the_so8t_forward_and_not_the_gateless_fused_head(grpo_trainer):
    trainer = grpo_trainer
    torch.manual_seed(0)
    ids = torch.randint(5, 200, (2, 14))
    keep = 6
    with torch.no_grad():
        got, entropy, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, ids, torch.ones_like(ids), keep, compute_entropy=True
        )
        expected = _gated_log_probs(trainer.so8t_model, ids, keep)
        # TRL's fused LM head multiplies by lm_head.weight directly: the gate is bypassed there
        labels = ids.clone()
        labels[:, :-keep] = -100
        fused = trainer.model(
            input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True
        )
        gateless = fused.log_probs[:, -keep:]
    assert got.shape == (2, keep) and entropy.shape == (2, keep)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (got - gateless).abs().max() > 1e-2


def test_grpo_loss_trains_lora_rotations_gate_and_head_b_and_one_rollout_computes_rotations_once(
    grpo_trainer, tmp_path, monkeypatch
):
    trainer = grpo_trainer
    dataset = trainer.train_dataset
    safety_row = next(row for row in dataset if row["kind"] == "safety")
    rows = [safety_row] * 4
    calls = []
    exp = torch.linalg.matrix_exp
    monkeypatch.setattr(torch.linalg, "matrix_exp", lambda a: calls.append(a.shape) or exp(a))
    trainer.model.eval()
    batch = trainer._generate_and_score_completions(rows)
    assert batch["completion_ids"].shape[1] > 2  # several decode steps ...
    assert len(calls) == 1  # ... one exponential for all rotations of all of them
    monkeypatch.setattr(torch.linalg, "matrix_exp", exp)
    trainer.model.train()
    batch["advantages"] = torch.tensor([1.0, -1.0, 0.5, -0.5])
    assert batch["safety_labels"].tolist() == [safety_row["safety_label"]] * 4
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    model = trainer.so8t_model
    for name, param in [
        ("R_cmd", model.gate.R_cmd.generators),
        ("R_safe", model.gate.R_safe.generators),
        ("layer rotation", next(iter(model.rotations.values())).generators),
        ("head B", next(model.safety_head.parameters())),
        ("LoRA", next(p for n, p in model.named_parameters() if "lora_B" in n)),
    ]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert {id(p) for p in model.parameters() if p.requires_grad} <= in_optimizer
    trainer.save_model(str(tmp_path / "ckpt"))
    assert all((tmp_path / "ckpt" / name).is_file() for name in (SO8T_JSON, STATE_FILE, ADAPTER_WEIGHTS))


# A GRPO run in a fresh interpreter through `so8t train`'s code path; argv: config, optional "kill-after=N"
# or "term-at=N".
GRPO_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from so8t.train import grpo_trainer

    for arg in sys.argv[2:]:
        what, step = arg.split("=")
        step = int(step)
        if what == "kill-after":  # die the hard way right after checkpoint-N is complete
            save = grpo_trainer.So8tGRPOTrainer._save_checkpoint
            def _save_then_die(self, model, trial, _save=save, _step=step):
                _save(self, model, trial)
                if self.state.global_step == _step:
                    os.kill(os.getpid(), signal.SIGKILL)
            grpo_trainer.So8tGRPOTrainer._save_checkpoint = _save_then_die
        if what == "term-at":  # SIGTERM during step N
            step_fn = grpo_trainer.So8tGRPOTrainer.training_step
            def _step_then_term(self, *a, _fn=step_fn, _step=step, **kw):
                if self.state.global_step == _step - 1:
                    os.kill(os.getpid(), signal.SIGTERM)
                return _fn(self, *a, **kw)
            grpo_trainer.So8tGRPOTrainer.training_step = _step_then_term
    from so8t.cli import main
    raise SystemExit(main(["train", sys.argv[1]]))
""")


def _grpo_config(path, base_dir, run_dir, **grpo):
    return write_config(
        path,
        base_dir,
        output_dir=str(run_dir),
        train={**GRPO, "max_steps": 4, "save_steps": 2},
        grpo={**ROLLOUT, **grpo},
    )


def _trained_state(checkpoint):
    state = load_file(checkpoint / ADAPTER_WEIGHTS)
    state.update({f"so8t.{k}": v for k, v in load_file(checkpoint / STATE_FILE).items()})
    return state


@pytest.mark.slow
def test_grpo_killed_after_a_checkpoint_resumes_to_the_same_end(tiny_base_dir, tmp_path):
    whole = run_python(GRPO_SCRIPT, str(_grpo_config(tmp_path / "w.yaml", tiny_base_dir, tmp_path / "whole")))
    assert whole.returncode == 0, whole.stderr[-3000:]
    config = _grpo_config(tmp_path / "r.yaml", tiny_base_dir, tmp_path / "resumed")
    killed = run_python(GRPO_SCRIPT, str(config), "kill-after=2")
    assert killed.returncode == -signal.SIGKILL
    resumed = run_python(GRPO_SCRIPT, str(config))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    end_whole = tmp_path / "whole" / "checkpoints" / "checkpoint-4"
    end_resumed = tmp_path / "resumed" / "checkpoints" / "checkpoint-4"
    a, b = _trained_state(end_whole), _trained_state(end_resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    rewards = [
        [
            e.get("reward")
            for e in json.loads((end / TRAINER_STATE).read_text())["log_history"]
            if "reward" in e
        ]
        for end in (end_whole, end_resumed)
    ]
    assert rewards[0] == pytest.approx(rewards[1]) and len(rewards[0]) == 4


QUESTIONS = ("Pick a number.", "Name a number.", "Say a number.")


@pytest.fixture(scope="module")
def confident_base_dir(tiny_base_dir, tmp_path_factory):
    """The tiny base with its LM head scaled up 10x: the random tiny head caps every logit near 2.5, so no
    adapter can make a token likely; this one can, as a pretrained head can."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("confident_base")
    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir, dtype=torch.float32)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(10.0)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_base_dir).save_pretrained(out)
    return out


def _numbers_file(path, rows, answer):
    path.write_text(
        "".join(json.dumps({"question": QUESTIONS[i % 3], "answer": answer(i)}) + "\n" for i in range(rows))
    )
    return str(path)


@pytest.mark.slow
def test_grpo_after_sft_raises_the_gsm8k_reward_then_consolidates_evaluates_and_reports(
    confident_base_dir, tmp_path
):
    """SFT teaches `#### d` with d uniform; GRPO, rewarded by the GSM8K tasks' numeric match against 7, makes 7
    likelier: with a fixed seed the mean reward of the last steps exceeds the first steps'. Then `so8t run`
    consolidates, evaluates with the so8t lm-eval backend and reports the reward curve, as after SFT."""
    from so8t.layout import RunDir
    from so8t.train.run import train_from_config

    data = {"validation": [], "max_length": 32, "safety_fraction": 0.0}
    digits = _numbers_file(tmp_path / "digits.jsonl", 300, lambda i: f"#### {i % 10}")
    sft = run_config(
        confident_base_dir,
        output_dir=str(tmp_path / "sft"),
        data={**data, "train": [digits]},
        train={
            "max_steps": 40,
            "per_device_batch_size": 8,
            "learning_rate": 5e-3,
            "safety_learning_rate": 5e-3,
            "save_steps": 40,
            "lr_scheduler": "constant",
        },
    )
    train_from_config(sft, tmp_path / "sft")
    sevens = _numbers_file(tmp_path / "sevens.jsonl", 60, lambda i: "#### 7")
    config = write_config(
        tmp_path / "grpo.yaml",
        confident_base_dir,
        output_dir=str(tmp_path / "grpo"),
        data={**data, "train": [sevens], "test": [sevens]},
        train={
            **GRPO,
            "max_steps": 16,
            "per_device_batch_size": 16,
            "save_steps": 16,
            "learning_rate": 5e-4,
            "lr_scheduler": "constant",
        },
        grpo={
            "init_from": str(tmp_path / "sft"),
            "num_generations": 8,
            "max_completion_length": 6,
            "rewards": {"gsm8k_format": 0.0},
        },
        eval={
            "tasks": ["so8t_gsm8k_local"],
            "batch_size": 8,
            "limit": 8,
            "max_gen_toks": 8,
            "bootstrap_iters": 0,
        },
    )
    run = subprocess.run(
        [sys.executable, "-m", "so8t", "run", str(config)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    run_dir = RunDir(tmp_path / "grpo")
    history = json.loads((run_dir.checkpoints / "checkpoint-16" / TRAINER_STATE).read_text())["log_history"]
    rewards = [e["rewards/gsm8k_correct/mean"] for e in history if "rewards/gsm8k_correct/mean" in e]
    assert len(rewards) == 16
    assert sum(rewards[-4:]) / 4 > sum(rewards[:4]) / 4, rewards
    results = json.loads(next(run_dir.root.glob("eval/results_*.json")).read_text())
    assert "so8t_gsm8k_local" in results["results"]
    assert run_dir.report.is_file() and run_dir.curves.is_file()


def test_init_from_without_a_checkpoint_is_a_clear_error(tmp_path):
    from so8t.errors import UserError
    from so8t.train.grpo import start_checkpoint

    with pytest.raises(UserError, match=r"grpo.init_from: .* no so8t training checkpoint.*`so8t run"):
        start_checkpoint(str(tmp_path))


@pytest.mark.slow
def test_sigterm_during_grpo_saves_that_step_and_exits_143(tiny_base_dir, tmp_path):
    config = _grpo_config(tmp_path / "t.yaml", tiny_base_dir, tmp_path / "run")
    stopped = run_python(GRPO_SCRIPT, str(config), "term-at=1")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert "stopped by signal" in stopped.stdout + stopped.stderr
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir() if p.name.startswith("checkpoint-")) == [
        "checkpoint-1"
    ]
    assert (checkpoints / "checkpoint-1" / STATE_FILE).is_file()
