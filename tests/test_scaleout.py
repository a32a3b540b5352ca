"""Scale-out on two CPU processes: lm-eval's data parallelism under `accelerate launch` (stock CLI and
`so8t eval --processes 2`) gives one process's point values, generation tasks handed to another lm-eval backend
merge back into one results file, and `so8t run` with `train.processes: 2` makes the run directory one
process makes, with equal weights for the same global batch."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from train_fixtures import REPO, run_config_dict, subprocess_env, whole_batches_validation

from so8t.layout import RunDir
from so8t.lmeval.evaluate import evaluate
from so8t.results.gate import read_run

pytestmark = pytest.mark.slow

TASKS = ["so8t_gsm8k_local", "so8t_safety_local"]


def _point_values(results: dict) -> dict[tuple[str, str], float]:
    """Every metric value of every task, without standard errors (bootstrap order follows the processes)."""
    return {
        (task, key): value
        for task, entry in results["results"].items()
        for key, value in entry.items()
        if "," in key and "_stderr" not in key and isinstance(value, (int, float))
    }


def _assert_same_points(got: dict, expected: dict) -> None:
    a, b = _point_values(got), _point_values(expected)
    assert a.keys() == b.keys() and a
    for key in a:
        assert (math.isnan(a[key]) and math.isnan(b[key])) or a[key] == pytest.approx(b[key], abs=1e-9), key


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-6000:])
    return proc


@pytest.fixture(scope="module")
def single_process(tiny_so8t, eval_data, tmp_path_factory):
    checkpoint, _, _ = tiny_so8t
    metadata = {
        "data_files": {
            "so8t_gsm8k_local": str(eval_data["gsm8k"]),
            "so8t_safety_local": str(eval_data["safety"]),
        }
    }
    out = tmp_path_factory.mktemp("single") / "results.json"
    results = evaluate(
        str(checkpoint),
        TASKS,
        out,
        batch_size=4,
        bootstrap_iters=10,
        metadata=metadata,
        max_gen_toks=16,
        device="cpu",
    )
    return results, metadata


def test_so8t_eval_on_two_processes_gives_the_single_process_point_values(
    single_process, tiny_so8t, tmp_path
):
    expected, metadata = single_process
    checkpoint, _, _ = tiny_so8t
    out = tmp_path / "two" / "results.json"
    command = [
        sys.executable,
        "-m",
        "so8t",
        "eval",
        str(checkpoint),
        "--tasks",
        ",".join(TASKS),
        "--out",
        str(out),
    ]
    command += ["--batch-size", "4", "--bootstrap-iters", "10", "--max-gen-toks", "16", "--device", "cpu"]
    command += ["--metadata", json.dumps(metadata), "--processes", "2"]
    proc = _run(command, REPO)
    assert proc.stdout.count("results: ") == 1  # the launcher's table only, not rank 0's too
    written = next((tmp_path / "two").glob("results_*.json"))
    got = json.loads(written.read_text())
    _assert_same_points(got, expected)
    assert got["n-samples"] == expected["n-samples"]
    # rank 0 wrote one results file and every document's sample: the gate pairs them as for one process
    assert sorted(read_run([tmp_path / "two"]).documents) == sorted(TASKS)
    assert len(list((tmp_path / "two").glob("results_*.json"))) == 1


def test_stock_accelerate_launch_of_lm_eval_with_so8t_gives_the_single_process_point_values(
    single_process, tiny_so8t, tmp_path
):
    expected, metadata = single_process
    checkpoint, _, _ = tiny_so8t
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2"]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["-m", "lm_eval", "--model", "so8t", "--model_args", f"pretrained={checkpoint}"]
    command += ["--tasks", ",".join(TASKS), "--batch_size", "4", "--device", "cpu"]
    command += ["--gen_kwargs", "max_gen_toks=16", "--metadata", json.dumps(metadata)]
    command += ["--output_path", str(tmp_path / "stock"), "--log_samples"]
    _run(command, REPO)
    written = next((tmp_path / "stock").rglob("results_*.json"))
    _assert_same_points(json.loads(written.read_text()), expected)


def test_generation_tasks_on_another_backend_merge_into_one_results_file(single_process, tiny_so8t, tmp_path):
    """The vLLM split, run with lm-eval's hf backend in vLLM's place (no GPU here): the consolidated folder is a
    plain HF model, so its generations score as on the so8t backend; head-B decisions stay on so8t."""
    from so8t.lmeval.generation_split import evaluate_with_vllm_generation

    expected, metadata = single_process
    checkpoint, _, _ = tiny_so8t
    got = evaluate_with_vllm_generation(
        str(checkpoint),
        TASKS,
        tmp_path / "split" / "results.json",
        generation_backend="hf",
        batch_size=4,
        bootstrap_iters=10,
        metadata=metadata,
        max_gen_toks=16,
        device="cpu",
    )
    assert got["so8t_backends"] == {"so8t_gsm8k_local": "hf", "so8t_safety_local": "so8t"}
    _assert_same_points(got, expected)
    on_disk = json.loads(Path(got["so8t_results_file"]).read_text())
    assert on_disk["so8t_backends"] == got["so8t_backends"]
    assert set(on_disk["configs"]) == set(TASKS) and set(on_disk["versions"]) == set(TASKS)
    # one results file, both tasks' samples beside it under its id, no part left behind
    assert [p.name for p in (tmp_path / "split").iterdir() if p.suffix == ".json"] == [
        Path(got["so8t_results_file"]).name
    ]
    assert not list((tmp_path / "split").glob(".parts-*"))
    assert sorted(read_run([tmp_path / "split"]).documents) == sorted(TASKS)


def _run_config(tiny_base_dir, run_dir: Path, processes: int) -> dict:
    """The same global batch of 4 on `processes` processes; training and evaluation both scaled out."""
    train = {"max_steps": 4, "per_device_batch_size": 4 // processes, "processes": processes}
    train.update({"eval_strategy": "steps", "eval_steps": 2, "save_steps": 2, "logging_steps": 1})
    return run_config_dict(
        tiny_base_dir,
        output_dir=str(run_dir),
        data={
            "validation": whole_batches_validation(),
            "test": [{"builtin": "synthetic_gsm8k", "n": 8}, {"builtin": "safety"}],
        },
        train=train,
        eval={
            "tasks": TASKS,
            "batch_size": 4,
            "max_gen_toks": 8,
            "limit": 8,
            "bootstrap_iters": 10,
            "processes": processes,
        },
    )


def _listing(run_dir: Path) -> set[str]:
    """The run directory's files, each process's RNG state (HF Trainer writes rng_state_<rank>.pth under
    DDP) counted as one."""
    names = set()
    for path in run_dir.rglob("*"):
        if path.is_file() and "wandb" not in path.parts:
            name = str(path.relative_to(run_dir))
            name = re.sub(r"rng_state(_\d+)?\.pth$", "rng_state.pth", name)
            name = re.sub(r"_\d{4}-\d{2}-\d{2}T[\d.-]+\.json", "_<id>.json", name)
            names.add(name)
    return names


def test_so8t_run_on_two_training_processes_makes_the_one_process_run_directory(tiny_base_dir, tmp_path):
    runs = {}
    for processes in (2, 1):
        run_dir = tmp_path / f"p{processes}"
        config = tmp_path / f"p{processes}.yaml"
        config.write_text(yaml.safe_dump(_run_config(tiny_base_dir, run_dir, processes)))
        proc = _run([sys.executable, "-m", "so8t", "run", str(config)], tmp_path)
        runs[processes] = (run_dir, proc)
    (two, proc), (one, _) = runs[2], runs[1]
    assert "on 2 processes (torchrun)" in proc.stderr + proc.stdout
    assert re.findall(r"^checkpoint: ", proc.stdout, re.M) == []  # the ranks leave reporting to so8t run
    assert _listing(two) == _listing(one)
    for name in ("adapter_model.safetensors", "so8t_state.safetensors"):
        a = load_file(two / "checkpoints" / "checkpoint-4" / name)
        b = load_file(one / "checkpoints" / "checkpoint-4" / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    results = [json.loads(RunDir(d).latest_results().read_text()) for d in (two, one)]
    _assert_same_points(*results)
