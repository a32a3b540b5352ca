"""`so8t eval` takes lm-eval's flags under lm-eval's names and meanings: the same command line gives the same
results file as `lm_eval --model so8t`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from so8t.lmeval.flags import LmEvalFlags

USER_TASK = """
task: user_qa
dataset_path: json
dataset_kwargs:
  data_files: {data}
test_split: train
fewshot_split: train
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n\\n"]
  do_sample: false
  max_gen_toks: 32
metric_list:
  - metric: exact_match
metadata:
  version: 1.0
"""


def _parse(argv: list[str]):
    from so8t.cli import build_parser

    full = ["eval", "MODEL", "--tasks", "t", "--out", "o", *argv]
    return build_parser(full).parse_args(full)


def test_lm_eval_flags_parse_as_lm_eval_parses_them_and_round_trip():
    args = _parse(
        [
            "--num_fewshot",
            "2",
            "--gen_kwargs",
            "temperature=0,top_p=0.5",
            "--seed",
            "7",
            "--include_path",
            "x",
        ]
    )
    flags = LmEvalFlags.from_args(args)
    assert flags == LmEvalFlags(2, {"temperature": 0, "top_p": 0.5}, (7, 7, 7, 7), "x", None)
    assert LmEvalFlags.from_args(_parse(flags.argv())) == flags
    for chat, expected in ((["--apply_chat_template"], True), (["--no-apply-chat-template"], False)):
        chosen = LmEvalFlags.from_args(_parse(chat))
        assert chosen.apply_chat_template is expected
        assert LmEvalFlags.from_args(_parse(chosen.argv())) == chosen


def test_the_chat_flags_override_the_models_recorded_prompt_format():
    from so8t.data.templates import PromptFormat

    chat = PromptFormat("chat", "Be brief.")
    assert "apply_chat_template" not in LmEvalFlags(apply_chat_template=False).simple_evaluate_kwargs(chat)
    forced = LmEvalFlags(apply_chat_template=True).simple_evaluate_kwargs(PromptFormat())
    assert forced["apply_chat_template"] is True and forced["fewshot_as_multiturn"] is True
    kept = LmEvalFlags(apply_chat_template=True).simple_evaluate_kwargs(chat)
    assert kept["system_instruction"] == "Be brief."
    seeded = LmEvalFlags(seed=(1, None, 3, 4), gen_kwargs={"top_k": 2}).simple_evaluate_kwargs(chat, 16)
    assert (seeded["random_seed"], seeded["numpy_random_seed"], seeded["fewshot_random_seed"]) == (1, None, 4)
    assert seeded["gen_kwargs"] == {"top_k": 2, "max_gen_toks": 16}


def test_an_include_path_that_is_not_a_folder_is_a_clear_error(tmp_path):
    from so8t.errors import UserError
    from so8t.lmeval.evaluate import task_manager

    with pytest.raises(UserError, match="--include_path .*missing"):
        task_manager({}, str(tmp_path / "missing"))


def _newest_results(folder: Path) -> Path:
    return max(folder.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)


# the parts of a results file that depend on when and where it ran, not on what was evaluated
VOLATILE = {"date", "start_time", "end_time", "total_evaluation_time_seconds", "pretty_env_info"}
VOLATILE |= {"git_hash", "transformers_version", "lm_eval_version", "upper_git_hash", "model_name_sanitized"}


def _comparable(results_file: Path) -> dict:
    data = json.loads(results_file.read_text())
    data = {k: v for k, v in data.items() if k not in VOLATILE and not k.startswith("so8t_")}
    # so8t eval's own settings (its batch size, --bootstrap-iters) are not lm-eval flags passed through
    own = {"model_args", "batch_sizes", "batch_size", "bootstrap_iters"}
    data["config"] = {k: v for k, v in data["config"].items() if k not in own}
    return data


def _differences(ours: dict, theirs: dict) -> dict:
    return {
        k: (ours.get(k), theirs.get(k)) for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)
    }


def _samples(results_file: Path) -> list[dict]:
    rows = []
    for path in sorted(results_file.parent.glob("samples_*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(rows, key=lambda r: (r["doc_id"], r["filter"]))


@pytest.mark.slow
def test_so8t_eval_with_lm_evals_flags_writes_the_results_file_lm_eval_writes(
    tiny_so8t, tmp_path, monkeypatch
):
    from lm_eval.__main__ import cli_evaluate

    from so8t.cli import main
    from so8t.lmeval.plugin import register_model

    _, consolidated, _ = tiny_so8t
    tasks = tmp_path / "my_tasks"
    tasks.mkdir()
    docs = tmp_path / "qa.jsonl"
    rows = [(f"What is {i} plus {i}?", str(2 * i)) for i in range(6)]
    docs.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in rows))
    (tasks / "user_qa.yaml").write_text(USER_TASK.format(data=docs))
    flags = ["--num_fewshot", "2", "--gen_kwargs", "max_gen_toks=5", "--seed", "3", "--limit", "3"]
    flags += ["--include_path", str(tasks), "--apply_chat_template"]
    common = ["--tasks", "user_qa", "--device", "cpu", *flags]

    assert main(["eval", str(consolidated), "--out", str(tmp_path / "ours"), *common]) == 0
    register_model()
    stock = ["lm_eval", "--model", "so8t", "--model_args", f"pretrained={consolidated}", "--batch_size", "8"]
    stock += ["--output_path", str(tmp_path / "theirs"), "--log_samples"]
    stock += common
    monkeypatch.setattr(sys, "argv", stock)
    cli_evaluate()

    ours, theirs = _newest_results(tmp_path / "ours"), _newest_results(tmp_path / "theirs")
    recorded, stock_recorded = _comparable(ours), _comparable(theirs)
    assert _differences(recorded["config"], stock_recorded.pop("config")) == {}
    assert _differences(recorded, stock_recorded) == {"config": (recorded["config"], None)}
    assert recorded["n-shot"]["user_qa"] == 2 and recorded["config"]["random_seed"] == 3
    assert (
        recorded["config"]["gen_kwargs"]["max_gen_toks"] == 5
        and recorded["n-samples"]["user_qa"]["effective"] == 3
    )
    assert recorded["chat_template"] and recorded["fewshot_as_multiturn"] is True
    assert _samples(ours) == _samples(theirs)


def test_only_a_run_that_names_a_built_in_task_pays_for_lm_evals_full_task_index(
    tmp_path, _task_manager_base
):
    own = tmp_path / "own"
    own.mkdir()
    (own / "my_task.yaml").write_text("task: my_task\ndataset_path: json\noutput_type: loglikelihood\n")
    narrow = _task_manager_base({}, str(own), ["so8t_safety_local", "my_task"])
    assert {"so8t_safety_local", "so8t_xstest", "my_task"} <= set(narrow.all_tasks)
    assert "arc_easy" not in narrow.all_tasks  # lm-eval's built-in tasks were not scanned
    full = _task_manager_base({}, str(own), ["so8t_safety_local", "arc_easy"])
    assert {"so8t_safety_local", "my_task", "arc_easy"} <= set(full.all_tasks)
    for name in ("so8t_safety_local", "my_task"):  # the same task whichever index found it
        assert narrow.task_index[name].cfg == full.task_index[name].cfg
