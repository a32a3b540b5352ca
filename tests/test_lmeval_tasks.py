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
    [(b"", "holds no records"), (b"\n  \n", "holds no records"), (b"\xff\xfe{", "cannot read")],
)
def test_an_empty_or_unreadable_local_file_is_an_error_naming_it(
    task_manager_factory, tmp_path, task, content, reason
):
    data = tmp_path / "data.jsonl"
    data.write_bytes(content)
    with pytest.raises(DataError) as info:
        task_manager_factory({"data_files": str(data)}).load([task])
    message = str(info.value)
    assert message.startswith(f"{task}: {data.resolve()}") or message.startswith(
        f"{task}: cannot read {data.resolve()}"
    )
    assert reason in message and "\n" not in message
