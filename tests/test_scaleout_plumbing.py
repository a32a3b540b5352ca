"""Scale-out plumbing that needs no second process: the relaunched evaluation's arguments, the launch lines,
the task split for vLLM, the errors where vLLM cannot run, and the config fields."""

from __future__ import annotations

import json

import pytest
from train_fixtures import run_config

from so8t.cli import build_parser, main
from so8t.errors import UserError
from so8t.lmeval.flags import LmEvalFlags
from so8t.lmeval.generation_split import check_vllm, generation_command, split_tasks
from so8t.lmeval.processes import evaluation_argv, launch_command
from so8t.train.launch import torchrun_command


def _eval_args(argv: list[str]):
    return build_parser(["eval", *argv]).parse_args(["eval", *argv])


def test_the_relaunched_evaluation_parses_back_to_the_same_options():
    options = {
        "limit": 0.5,
        "model_args": {"decision_source": "lm", "allow_threshold": 0.8},
        "batch_size": "auto",
        "bootstrap_iters": 17,
        "metadata": {"data_files": {"so8t_safety_local": "/data/s.jsonl"}},
        "log_samples": False,
        "max_gen_toks": 32,
        "device": "cpu",
        "flags": LmEvalFlags(num_fewshot=1, gen_kwargs={"top_k": 3}, seed=(5, None, 5, 5), include_path="t"),
    }
    args = _eval_args(
        evaluation_argv("runs/x/consolidated", ["so8t_safety_local", "gsm8k"], "out/r.json", **options)
    )
    from so8t.lmeval.evaluate import parse_metadata, parse_model_args_option

    assert args.model == "runs/x/consolidated" and args.tasks == "so8t_safety_local,gsm8k"
    assert args.out == "out/r.json" and args.limit == 0.5 and args.batch_size == "auto"
    assert parse_model_args_option(args.model_args) == {"decision_source": "lm", "allow_threshold": 0.8}
    assert parse_metadata(args.metadata) == options["metadata"]
    assert (args.log_samples, args.max_gen_toks, args.device, args.bootstrap_iters) == (False, 32, "cpu", 17)
    assert args.processes == 1, "the relaunched processes must not relaunch again"
    assert LmEvalFlags.from_args(args) == options["flags"]


def test_launch_lines():
    line = launch_command(2, ["-m", "so8t.cli", "eval", "m"], cpu=True)
    assert line[1:3] == ["-m", "accelerate.commands.launch"]
    assert line[line.index("--num_processes") + 1] == "2" and "--cpu" in line
    assert line[-4:] == ["-m", "so8t.cli", "eval", "m"]
    assert "--cpu" not in launch_command(2, ["-m", "x"], cpu=False)
    run = torchrun_command(4, ["cfg.yaml", "--set", "seed=1"])
    assert (
        run[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=4" in run and "--standalone" in run
    )
    assert run[-5:] == ["-m", "so8t.train.run", "cfg.yaml", "--set", "seed=1"]


def test_generation_tasks_go_to_vllm_and_the_rest_stays_on_so8t(task_manager_factory, tmp_path):
    manager = task_manager_factory()
    generation, rest = split_tasks(manager, ["so8t_gsm8k_local", "so8t_safety_local", "gsm8k", "arc_easy"])
    assert generation == ["so8t_gsm8k_local", "gsm8k"]
    assert rest == ["so8t_safety_local", "arc_easy"]
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text("group: mixed_suite\ntask:\n  - so8t_gsm8k_local\n  - so8t_safety_local\n")
    with pytest.raises(UserError, match="mixed.yaml mixes generation and scoring tasks"):
        split_tasks(manager, [str(mixed)])


def test_the_generation_command_is_the_stock_lm_eval_cli(tmp_path):
    line = generation_command(
        "vllm",
        tmp_path / "consolidated",
        ["gsm8k"],
        tmp_path / "out.json",
        limit=10,
        metadata={"data_files": "x.jsonl"},
        max_gen_toks=64,
        log_samples=True,
    )
    assert line[1:5] == ["-m", "lm_eval", "--model", "vllm"]
    assert line[line.index("--model_args") + 1] == f"pretrained={tmp_path / 'consolidated'}"
    assert (
        json.loads(line[line.index("--gen_kwargs") + 1]) == {"max_gen_toks": 64} and "--log_samples" in line
    )
    assert json.loads(line[line.index("--metadata") + 1]) == {"data_files": "x.jsonl"}
    assert "--apply_chat_template" not in line


def test_the_generation_command_passes_the_users_lm_eval_flags_on(tmp_path):
    from so8t.data.templates import PromptFormat
    from so8t.lmeval.flags import LmEvalFlags

    chat = PromptFormat("chat", "Be brief.").lm_eval_cli_flags()
    flags = LmEvalFlags(
        num_fewshot=3, gen_kwargs={"temperature": 0}, seed=(1, 2, 3, 4), apply_chat_template=False
    )
    line = generation_command(
        "vllm", tmp_path, ["gsm8k"], tmp_path / "o.json", limit=None, metadata=None, max_gen_toks=8,
        log_samples=False, prompt_flags=chat, flags=flags,
    )  # fmt: skip
    assert json.loads(line[line.index("--gen_kwargs") + 1]) == {"temperature": 0, "max_gen_toks": 8}
    assert line[line.index("--num_fewshot") + 1] == "3" and line[line.index("--seed") + 1] == "1,2,3,4"
    assert "--apply_chat_template" not in line and "--no-apply-chat-template" not in line
    forced = LmEvalFlags(apply_chat_template="chatml")
    line = generation_command(
        "vllm", tmp_path, ["gsm8k"], tmp_path / "o.json", limit=None, metadata=None, max_gen_toks=None,
        log_samples=False, prompt_flags=chat, flags=forced,
    )  # fmt: skip
    assert line[-5:] == [
        "--apply_chat_template",
        "chatml",
        "--fewshot_as_multiturn",
        "--system_instruction",
        "Be brief.",
    ]


def test_the_generation_command_renders_a_chat_models_prompts_as_so8t_eval_does(tmp_path):
    from so8t.data.templates import PromptFormat

    flags = PromptFormat("chat", "Be brief.").lm_eval_cli_flags()
    line = generation_command(
        "vllm", tmp_path, ["gsm8k"], tmp_path / "o.json", limit=None, metadata=None, max_gen_toks=None,
        log_samples=False, prompt_flags=flags,
    )  # fmt: skip
    assert line[-4:] == [
        "--apply_chat_template",
        "--fewshot_as_multiturn",
        "--system_instruction",
        "Be brief.",
    ]


def test_vllm_without_vllm_or_a_gpu_is_a_clear_error(monkeypatch, capsys, tmp_path):
    import importlib.util

    import torch

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )
    with pytest.raises(UserError, match="needs vLLM: `pip install vllm`"):
        check_vllm()
    code = main(
        [
            "eval",
            str(tmp_path),
            "--tasks",
            "gsm8k",
            "--out",
            str(tmp_path / "r.json"),
            "--generation-backend",
            "vllm",
        ]
    )
    assert code == 2 and "needs vLLM" in capsys.readouterr().err
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a)
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="needs a CUDA GPU and none is visible"):
        check_vllm()


def test_process_counts_are_checked(tiny_base_dir, capsys, tmp_path, monkeypatch):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="train.processes|processes"):
        run_config(tiny_base_dir, train={"processes": 0})
    with pytest.raises(ValidationError, match="processes"):
        run_config(tiny_base_dir, eval={"processes": 0})
    code = main(
        ["eval", str(tmp_path), "--tasks", "gsm8k", "--out", str(tmp_path / "r.json"), "--processes", "0"]
    )
    assert code == 2 and "--processes must be >= 1" in capsys.readouterr().err
    import torch

    from so8t.lmeval import processes
    from so8t.train import launch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UserError, match="4 evaluation processes asked for, but 2 GPU"):
        processes.check_processes(4, None)
    assert processes.check_processes(4, "cpu") is True
    with pytest.raises(UserError, match="train.processes is 3 but 2 GPU"):
        launch.check_processes(3)


def test_the_number_of_evaluation_processes_does_not_re_evaluate(tiny_base_dir):
    from so8t.config import eval_identity

    one = run_config(tiny_base_dir)
    two = run_config(tiny_base_dir, eval={"processes": 2})
    assert eval_identity(one) == eval_identity(two)
    assert eval_identity(one) != eval_identity(run_config(tiny_base_dir, eval={"limit": 3}))


def test_each_training_process_loads_a_quantised_base_onto_its_own_gpu():
    from so8t.train.build import process_device_map

    ddp = {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    assert process_device_map("4bit", True, ddp) == {"": 1}
    assert process_device_map("8bit", True, {"WORLD_SIZE": "2", "LOCAL_RANK": "0"}) == {"": 0}
    assert process_device_map("none", True, ddp) is None  # the Trainer moves an unquantised base itself
    assert process_device_map("4bit", False, ddp) is None  # CPU processes
    assert process_device_map("4bit", True, {}) is None  # one process
