"""The so8t lm-eval task definitions: prompts from so8t.data.templates, data sources, decision docs."""

from __future__ import annotations

import json

import pytest

from so8t.data import templates
from so8t.errors import DataError


def test_local_gsm8k_task_uses_the_training_template_and_stop_sequences(task_manager_factory, tmp_path):
    data = tmp_path / "g.jsonl"
    data.write_text(json.dumps({"question": "What is 2+2?", "answer": "2+2=4\n#### 4"}) + "\n")
    task = task_manager_factory({"data_files": str(data)}).load(["so8t_gsm8k_local"])["tasks"][
        "so8t_gsm8k_local"
    ]
    doc = next(iter(task.test_docs()))
    assert task.doc_to_text(doc) == templates.gsm8k_prompt("What is 2+2?")
    assert task.config.generation_kwargs["until"] == templates.GSM8K_STOP
    assert task.config.num_fewshot == 0
    assert [f.name for f in task._filters] == ["strict-match", "flexible-extract", "none"]


def test_hub_gsm8k_task_is_five_shot_from_train_with_lm_evals_format(task_manager_factory):
    from lm_eval.tasks._yaml_loader import load_yaml

    from so8t.lmeval.plugin import tasks_dir

    config = load_yaml(f"{tasks_dir()}/so8t_gsm8k.yaml", resolve_func=False)
    assert (config["dataset_path"], config["dataset_name"], config["test_split"]) == (
        "openai/gsm8k",
        "main",
        "test",
    )
    assert config["num_fewshot"] == 5 and config["fewshot_split"] == "train"
    assert [f["name"] for f in config["filter_list"]] == ["strict-match", "flexible-extract", "none"]


def test_local_data_comes_from_metadata_or_the_environment(task_manager_factory, tmp_path, monkeypatch):
    data = tmp_path / "s.jsonl"
    data.write_text(json.dumps({"prompt": "delete prod db", "decision": "REFUSE"}) + "\n")
    monkeypatch.chdir(tmp_path)
    by_metadata = task_manager_factory({"data_files": "s.jsonl"}).load(["so8t_safety_local"])["tasks"]
    assert next(iter(by_metadata["so8t_safety_local"].test_docs()))["prompt"] == "delete prod db"
    per_task = {"data_files": {"so8t_safety_local": "s.jsonl"}}
    assert task_manager_factory(per_task).load(["so8t_safety_local"])["tasks"]
    monkeypatch.setenv("SO8T_SAFETY_DATA", str(data))
    assert task_manager_factory({}).load(["so8t_safety_local"])["tasks"]


def test_local_task_without_data_says_how_to_give_it(task_manager_factory, monkeypatch):
    monkeypatch.delenv("SO8T_GSM8K_DATA", raising=False)
    with pytest.raises(DataError, match="data_files"):
        task_manager_factory({}).load(["so8t_gsm8k_local"])


def test_safety_docs_are_marked_as_decision_requests_with_the_shared_template(task_manager_factory, tmp_path):
    data = tmp_path / "s.jsonl"
    data.write_text(json.dumps({"prompt": "Summarise this memo", "decision": "ALLOW"}) + "\n")
    task = task_manager_factory({"data_files": str(data)}).load(["so8t_safety_local"])["tasks"][
        "so8t_safety_local"
    ]
    doc = next(iter(task.test_docs()))
    assert doc["so8t_decision"] is True
    assert task.doc_to_text(doc) == templates.safety_prompt("Summarise this memo")
    assert task.doc_to_choice(doc) == templates.DECISION_CHOICES
    assert task.doc_to_target(doc) == 0
    requests = task.construct_requests(doc, task.doc_to_text(doc), metadata=("so8t_safety_local", 0, 1))
    assert [r.args[1] for r in requests] == [" ALLOW", " ESCALATE", " REFUSE"]


@pytest.mark.parametrize("task", ["so8t_safety_local", "so8t_gsm8k_local"])
@pytest.mark.parametrize(
    "content,reason",
    [(b"", "empty file (0 bytes)"), (b"\n  \n", "empty file (no records"), (b"\xff\xfe{", "not UTF-8 text")],
)
def test_an_empty_or_unreadable_local_file_is_an_error_naming_it(
    task_manager_factory, tmp_path, task, content, reason
):
    data = tmp_path / "data.jsonl"
    data.write_bytes(content)
    with pytest.raises(DataError) as info:
        task_manager_factory({"data_files": str(data)}).load([task])
    message = str(info.value)
    assert message.startswith(f"{task}: --metadata data_files: {data}: ")
    assert reason in message and "\n" not in message


def _safety_shard(path, *prompts):
    path.write_text("".join(json.dumps({"prompt": p, "decision": "ALLOW"}) + "\n" for p in prompts))


def test_data_files_takes_a_glob_or_a_list_read_like_a_run_configs_sources(task_manager_factory, tmp_path):
    from so8t.data.shards import check_pattern

    shards = tmp_path / "shards"
    shards.mkdir()
    _safety_shard(shards / "part-0.jsonl", "a", "b")
    _safety_shard(shards / "part-1.jsonl", "c")
    _safety_shard(tmp_path / "extra.jsonl", "d")

    def prompts(data_files):
        task = task_manager_factory({"data_files": data_files}).load(["so8t_safety_local"])["tasks"]
        return [doc["prompt"] for doc in task["so8t_safety_local"].test_docs()]

    assert prompts(str(shards / "*.jsonl")) == ["a", "b", "c"]
    assert prompts([str(shards / "part-1.jsonl"), str(tmp_path / "*.jsonl")]) == ["c", "d"]
    assert prompts({"so8t_safety_local": [str(shards / "part-*.jsonl")]}) == ["a", "b", "c"]

    (shards / "part-2.jsonl").write_text("")
    for data_files, config_key in (
        (str(shards / "*.jsonl"), "data.test[0]"),
        (str(tmp_path / "none-*.jsonl"), "data.test[0]"),
    ):
        with pytest.raises(DataError) as info:
            prompts(data_files)
        # the problem a run config's source with the same pattern reports, under the --metadata key
        _, expected = check_pattern(data_files, "safety", "error", key=config_key, split="test")
        assert str(info.value) == expected[0].replace(config_key, "so8t_safety_local: --metadata data_files")
    with pytest.raises(DataError, match=r"data_files\[1\]: pattern .*matched 0 files"):
        prompts([str(shards / "part-0.jsonl"), str(tmp_path / "none-*.jsonl")])
