"""End to end with lm-eval itself: simple_evaluate on a tiny random GPT-2 writes the file the gate reads.

The checked-in fixture real_hf_tiny_gpt2.json came from this same recipe; this test proves the readers
still follow the format of the installed lm-eval.
"""

from __future__ import annotations

import json

import pytest

from so8t.cli import main
from so8t.results.gate import iter_metrics, load_results
from so8t.results.leaderboard import build_leaderboard

pytestmark = pytest.mark.slow

TASK_YAML = """
task: tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{q}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
  - {{metric: acc_norm, aggregation: mean, higher_is_better: true}}
metadata:
  version: 1.0
"""


def _tiny_gpt2(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        ["Question: one two three four plus Answer:"],
        trainers.WordLevelTrainer(special_tokens=["<unk>", "<eos>"]),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>"
    )
    config = GPT2Config(
        vocab_size=len(fast), n_positions=64, n_embd=16, n_layer=1, n_head=2, bos_token_id=1, eos_token_id=1
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def test_lm_eval_results_of_a_tiny_local_model_pass_through_gate_and_leaderboard(
    tmp_path, monkeypatch, capsys
):
    pytest.importorskip("torch")
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    data = tmp_path / "choice.jsonl"
    data.write_text(
        "".join(
            json.dumps({"q": f"{a} plus {b}", "choices": ["two", "three", "four"], "label": i}) + "\n"
            for i, (a, b) in enumerate([("one", "one"), ("two", "one"), ("two", "two")])
        )
    )
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tiny_choice.yaml").write_text(TASK_YAML.format(data=data))
    model = _tiny_gpt2(tmp_path / "model")

    tracker = EvaluationTracker(output_path=str(tmp_path / "out" / "results.json"))
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model},dtype=float32",
        tasks=["tiny_choice"],
        task_manager=TaskManager(include_path=str(tasks)),
        device="cpu",
        batch_size=2,
        bootstrap_iters=50,
        evaluation_tracker=tracker,
    )
    results.pop("samples", None)
    tracker.save_results_aggregated(results=results, samples=None)
    (written,) = (tmp_path / "out").glob("results_*.json")

    data = load_results(written)
    assert {(m.task, m.key) for m in iter_metrics(data)} == {
        ("tiny_choice", "acc,none"),
        ("tiny_choice", "acc_norm,none"),
    }
    assert main(["gate", str(written), "--baseline", str(written)]) == 0
    row = build_leaderboard([str(written)]).rows[0]
    assert (row.backend, row.full_name, row.parameters) == (
        "hf",
        str(model),
        data["config"]["model_num_parameters"],
    )
    assert row.name == model.parent.name  # short: the path's last part that is not a generic folder name
    capsys.readouterr()
