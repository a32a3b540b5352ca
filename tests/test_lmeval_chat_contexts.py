"""A model trained with chat prompts is scored on chat-rendered contexts only: the so8t backend refuses lm-eval's
plain contexts, and docs/scaling.md's stock commands (with the flags `python -m so8t.lmeval.prompt_flags` prints)
hand it the very contexts `so8t eval` does."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from train_fixtures import REPO, subprocess_env

from so8t.data.templates import PromptFormat
from so8t.errors import UserError
from so8t.layout import CONSOLIDATED_DIR
from so8t.layout.so8t_json import SO8T_JSON
from so8t.lmeval.prompt_flags import main as prompt_flags_main

SYSTEM_PROMPT = "You decide for the shop's support desk."
SCALING = REPO / "docs" / "scaling.md"
TASKS = ["so8t_gsm8k_local", "so8t_safety_local"]


@pytest.fixture(scope="module")
def chat_run(tiny_so8t, tmp_path_factory):
    """A run directory whose consolidated model records chat prompts with a system prompt (the tiny model's
    tokenizer has a chat template; what head B learned does not matter to which contexts it is handed)."""
    _, consolidated, _ = tiny_so8t
    run = tmp_path_factory.mktemp("chat") / "my-run"
    shutil.copytree(consolidated, run / CONSOLIDATED_DIR)
    info = json.loads((run / CONSOLIDATED_DIR / SO8T_JSON).read_text())
    info["prompt"] = PromptFormat("chat", SYSTEM_PROMPT).record()
    (run / CONSOLIDATED_DIR / SO8T_JSON).write_text(json.dumps(info))
    return run


def _stock_evaluate(model: Path, eval_data: dict, **options):
    from lm_eval import simple_evaluate

    from so8t.lmeval.evaluate import task_manager
    from so8t.lmeval.plugin import register_model

    register_model()
    metadata = {"data_files": {"so8t_safety_local": str(eval_data["safety"])}}
    return simple_evaluate(
        model="so8t",
        model_args={"pretrained": str(model), **options.pop("model_args", {})},
        tasks=["so8t_safety_local"],
        limit=2,
        batch_size=2,
        device="cpu",
        bootstrap_iters=0,
        task_manager=task_manager(metadata),
        metadata=metadata,
        **options,
    )


def test_a_chat_model_handed_plain_contexts_is_refused_with_the_flags_to_add(chat_run, eval_data):
    with pytest.raises(UserError) as info:
        _stock_evaluate(chat_run, eval_data)
    message = str(info.value)
    assert "trained with chat prompts" in message and "Request: " in message
    assert f"--apply_chat_template --fewshot_as_multiturn --system_instruction {SYSTEM_PROMPT}" in message
    assert "allow_plain_prompts=true" in message


def test_a_chat_model_scores_chat_contexts_and_plain_ones_only_when_asked(chat_run, eval_data):
    rendered = _stock_evaluate(chat_run, eval_data, **PromptFormat("chat", SYSTEM_PROMPT).lm_eval_args())
    context = rendered["samples"]["so8t_safety_local"][0]["arguments"][0][0]
    assert context.startswith(f"<|system|>\n{SYSTEM_PROMPT}")
    plain = _stock_evaluate(chat_run, eval_data, model_args={"allow_plain_prompts": "true"})
    assert plain["samples"]["so8t_safety_local"][0]["arguments"][0][0].startswith("Request: ")


def test_the_prompt_flags_helper_prints_the_flags_so8t_eval_adds(chat_run, tiny_so8t, capsys):
    assert prompt_flags_main([str(chat_run)]) == 0
    printed = capsys.readouterr().out.strip()
    assert shlex.split(printed) == PromptFormat("chat", SYSTEM_PROMPT).lm_eval_cli_flags()
    assert prompt_flags_main([str(tiny_so8t[1])]) == 0
    assert capsys.readouterr().out.strip() == ""


# ----------------------------------------------------------------------------- docs/scaling.md, as written


def _doc_command(marker: str) -> str:
    """The bash block of docs/scaling.md that holds `marker`, its continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", SCALING.read_text(encoding="utf-8"), re.S)
    block = next(b for b in blocks if marker in b)
    return "\n".join(line for line in block.replace("\\\n", " ").splitlines() if not line.startswith("pip "))


# Where the machine differs from the documented one: CPU processes for GPUs, lm-eval's hf backend for vLLM (a
# plain HF folder either way), the local GSM8K task for the hub's, and a small limit.
CPU_STAND_INS = [
    ("accelerate launch --num_processes 4", f"{sys.executable} -m accelerate.commands.launch --cpu "
     "--num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no"),
    ("lm_eval --model vllm", f"{sys.executable} -m lm_eval --model hf"),
    (",gpu_memory_utilization=0.8", ""),
    ("--tasks so8t_gsm8k ", "--tasks so8t_gsm8k_local --metadata '{\"data_files\": \"gsm8k_test.jsonl\"}' "),
    ("python -m so8t", f"{sys.executable} -m so8t"),
]  # fmt: skip
SMALL = " --limit 2 --batch_size 2 --device cpu --gen_kwargs max_gen_toks=8"


def _contexts(folder: Path) -> dict[str, dict[int, list]]:
    """task -> doc_id -> the contexts of its requests, from the samples files under `folder`."""
    out: dict[str, dict[int, list]] = {}
    for path in folder.rglob("samples_*.jsonl"):
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            task = path.name.removeprefix("samples_").rsplit("_", 1)[0]
            arguments = sample["arguments"]
            # lm-eval writes each request's arguments as {"gen_args_i": {"arg_0": context, ...}}
            listed = arguments.values() if isinstance(arguments, dict) else arguments
            contexts = [a["arg_0"] if isinstance(a, dict) else a[0] for a in listed]
            out.setdefault(task, {})[sample["doc_id"]] = contexts
    return out


@pytest.mark.slow
def test_the_documented_stock_commands_give_a_chat_model_the_contexts_of_so8t_eval(chat_run, eval_data):
    from so8t.lmeval.evaluate import evaluate

    work = chat_run.parent
    shutil.copy(eval_data["gsm8k"], work / "gsm8k_test.jsonl")
    shutil.copy(eval_data["safety"], work / "safety_test.jsonl")
    metadata = {"data_files": {t: str(work / f"{t.removesuffix('_local').removeprefix('so8t_')}_test.jsonl")
                               for t in TASKS}}  # fmt: skip
    evaluate(str(chat_run), TASKS, work / "ours" / "results.json", limit=2, batch_size=2, bootstrap_iters=0,
             metadata=metadata, max_gen_toks=8, device="cpu")  # fmt: skip
    expected = _contexts(work / "ours")
    assert expected["so8t_safety_local"][0][0].startswith(f"<|system|>\n{SYSTEM_PROMPT}")
    for marker, out, tasks in (("--model so8t", "eval", TASKS), ("--model vllm", "eval-vllm", TASKS[:1])):
        script = _doc_command(marker).replace("--output_path eval ", f"--output_path {out} ")
        for documented, here in CPU_STAND_INS:
            script = script.replace(documented, here)
        script = script.replace("runs/my-run", str(chat_run)).replace(
            ' "${chat_flags[@]}"', SMALL + ' "${chat_flags[@]}"'
        )
        proc = subprocess.run(["bash", "-c", "set -e\n" + script], cwd=work, env=subprocess_env(),
                              capture_output=True, text=True, timeout=900)  # fmt: skip
        assert proc.returncode == 0, (script, proc.stdout[-3000:], proc.stderr[-6000:])
        got = _contexts(work / out)
        assert sorted(got) == sorted(tasks), marker
        for task in tasks:
            assert got[task] == expected[task], (marker, task)
