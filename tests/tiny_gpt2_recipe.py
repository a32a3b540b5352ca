"""The recipe of tests/fixtures/results/real_hf_tiny_gpt2.json: stock lm-eval (`--model hf`) on a 4.5K-parameter
random GPT-2 and a three-question multiple-choice task. tests/test_gate_real_lm_eval.py runs it against the
installed lm-eval; tests/fixtures/results/regenerate.py writes the fixture from it."""

from __future__ import annotations

import json
from pathlib import Path

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


def evaluate_tiny_gpt2(folder: Path) -> tuple[Path, Path]:
    """Write the task and the model under `folder`, evaluate with lm-eval; (results file, model folder)."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    data = folder / "choice.jsonl"
    data.write_text(
        "".join(
            json.dumps({"q": f"{a} plus {b}", "choices": ["two", "three", "four"], "label": i}) + "\n"
            for i, (a, b) in enumerate([("one", "one"), ("two", "one"), ("two", "two")])
        )
    )
    tasks = folder / "tasks"
    tasks.mkdir()
    (tasks / "tiny_choice.yaml").write_text(TASK_YAML.format(data=data))
    model = _tiny_gpt2(folder / "model")
    tracker = EvaluationTracker(output_path=str(folder / "out" / "results.json"))
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
    (written,) = (folder / "out").glob("results_*.json")
    return written, model
