"""benchmarks/grpo_before_after.py: its plumbing (a GRPO run per seed from an SFT run, the starting model
evaluated on the same test files with both decision sources, differences paired by document, the reward
curve read back) runs end to end at a tiny budget on the tiny base."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from train_fixtures import run_config, subprocess_env, write_config

pytest.importorskip("trl")  # the grpo extra

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "grpo_before_after.py"


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end_at_a_tiny_budget(tiny_base_dir, tmp_path):
    from so8t.train.run import train_from_config

    sft = run_config(tiny_base_dir, output_dir=str(tmp_path / "sft"), train={"max_steps": 2, "save_steps": 2})
    train_from_config(sft, tmp_path / "sft")
    test = [{"builtin": "synthetic_gsm8k", "n": 4}, {"builtin": "safety"}]
    config = write_config(
        tmp_path / "grpo.yaml",
        tiny_base_dir,
        data={"train": [{"builtin": "synthetic_gsm8k", "n": 16}, {"builtin": "safety"}], "test": test},
        train={
            "method": "grpo",
            "max_steps": 2,
            "per_device_batch_size": 4,
            "save_steps": 2,
            "logging_steps": 1,
        },
        grpo={"init_from": str(tmp_path / "sft"), "num_generations": 4, "max_completion_length": 8},
        eval={"tasks": ["so8t_gsm8k_local", "so8t_safety_local"], "max_gen_toks": 8, "bootstrap_iters": 0},
    )
    out = tmp_path / "bench"
    command = [sys.executable, str(SCRIPT), "--config", str(config), "--seeds", "0", "--out", str(out)]
    command += ["--limit", "6"]
    proc = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = json.loads((out / "table.json").read_text())
    [run] = table["runs"]
    exact_match = run["differences"]["GSM8K exact match"]
    assert exact_match["delta"] == pytest.approx(exact_match["after"] - exact_match["before"])
    assert exact_match["noise"].startswith("paired")
    for source in ("head", "lm"):
        assert run["differences"][f"refuse_recall ({source})"] is not None
    assert [point["step"] for point in run["reward_curve"]] == [1, 2]
    assert all("reward" in point for point in run["reward_curve"])
    # the starting model is evaluated once per test split, on the run's own test files
    [before] = out.glob("before-*")
    assert sorted(p.name for p in before.iterdir() if p.is_dir()) == ["head", "lm"]
    assert "GSM8K exact match" in (out / "table.md").read_text()


def test_the_reward_curves_give_each_seeds_reward_and_each_rewards_mean_over_the_seeds_that_logged_it():
    import importlib.util

    spec = importlib.util.spec_from_file_location("grpo_before_after", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runs = [
        {"seed": 0, "reward_curve": [{"step": 5, "reward": 0.5, "rewards/gsm8k_correct/mean": 0.25}]},
        {
            "seed": 1,
            "reward_curve": [
                {"step": 5, "reward": 1.0, "rewards/gsm8k_correct/mean": 0.75},
                {"step": 10, "reward": 2.0, "rewards/safety_decision/mean": -0.5},
            ],
        },
    ]
    lines = module._curve_lines(runs)
    rows = {
        line.split(" | ")[0]: line for line in lines if line.startswith("| 5 ") or line.startswith("| 10 ")
    }
    assert rows["| 5"].startswith("| 5 | 0.500 | 1.000 | 0.750 | 0.500 | — | — |")
    assert rows["| 10"].startswith("| 10 | — | 2.000 | 2.000 | — | — | -0.500 |")
    curve = [{"step": step, "reward": float(step)} for step in range(1, 9)]
    assert module._first_last(curve, "reward", 5) == (2.5, 6.5)  # 8 logged steps: 4 first, 4 last
    assert module._first_last(curve[:1], "reward", 5) == (None, None)
