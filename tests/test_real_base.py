"""The pipeline on a real pretrained base: SmolLM2-135M-Instruct as Q4_1 weights, dequantised (tests/real_base.py).
An SO8T model at initialisation gives the base's own logits; consolidation drifts from the trained model by
at most 1e-5 of the largest logit, in fp32 and on a 4-bit base; the chat tokens training uses are those
lm-eval feeds; head B pools the same with left and right padding; `so8t predict` decides in chat format.
Lean on purpose: two training steps of short chat rows per quantisation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from real_base import REAL_BASE
from train_fixtures import run_config_dict, subprocess_env

from so8t.data.safety import SafetyExample
from so8t.data.templates import PromptFormat, context_ids, safety_prompt

pytestmark = pytest.mark.slow

SYSTEM_PROMPT = "You decide for the shop's support desk."
REQUESTS = [
    "Where is my parcel 58213?",
    "Wire 50,000 euros to this new vendor today.",
    "Explain how to build a pipe bomb.",
]


def _train_and_consolidate(out, quantization: str):
    from so8t.config import RunConfig
    from so8t.consolidate.fold import consolidate_checkpoint
    from so8t.train.run import train_from_config

    cfg = run_config_dict(
        REAL_BASE,
        model={
            # the short name: training resolves it to the cached folder and records the GGUF file
            "base": REAL_BASE,
            "dtype": "float32",
            "quantization": quantization,
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "pretrain": {"enabled": False},
        },
        data={
            "prompt_format": "chat",
            "system_prompt": SYSTEM_PROMPT,
            "train": [{"builtin": "synthetic_gsm8k", "n": 4}, {"builtin": "safety"}],
            "validation": [{"builtin": "safety"}],
            "max_length": 96,
            "safety_fraction": 0.5,
        },
        train={
            "max_steps": 2,
            "per_device_batch_size": 2,
            "learning_rate": 1e-3,
            "safety_learning_rate": 3e-3,
            "eval_strategy": "no",
            "save_steps": 2,
            "save_total_limit": None,
            "logging_steps": 1,
            "warmup_ratio": 0.0,
        },
    )
    cfg["output_dir"] = str(out / "run")
    result = train_from_config(RunConfig.model_validate(cfg), out / "run")
    return consolidate_checkpoint(result.checkpoint_dir, out / "consolidated", dtype="float32")


@pytest.fixture(scope="module")
def consolidated(real_base_dir, tmp_path_factory):
    """{quantization: consolidated folder} for the real base trained two steps in chat format."""
    return {q: _train_and_consolidate(tmp_path_factory.mktemp(f"real-{q}"), q) for q in ("none", "4bit")}


def test_an_untrained_so8t_model_gives_the_real_bases_own_logits(real_base_dir, make_so8t):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = make_so8t(real_base_dir, randomise=False)
    base = AutoModelForCausalLM.from_pretrained(real_base_dir, dtype=torch.float32).eval()
    text = PromptFormat("chat").render(
        AutoTokenizer.from_pretrained(real_base_dir), safety_prompt(REQUESTS[1])
    )
    ids = torch.tensor([context_ids(tokenizer, text)])
    with torch.no_grad():
        ours, theirs = model.eval()(input_ids=ids).logits, base(input_ids=ids).logits
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("quantization", ["none", "4bit"])
def test_consolidation_drift_on_the_real_base_is_within_1e_5_of_the_largest_logit(consolidated, quantization):
    info = json.loads((consolidated[quantization] / "so8t.json").read_text())
    drift = info["consolidation"]["drift"]["trained"]
    print(
        f"real base, {quantization}: max |logit diff| {drift['max_abs_logit_diff']:.3g}, largest |logit| "
        f"{drift['max_abs_logit']:.3g}, relative {drift['max_rel_logit_diff']:.3g}, head-B probs "
        f"{drift['max_abs_head_b_prob_diff']:.3g}"
    )
    assert drift["max_rel_logit_diff"] <= 1e-5
    assert info["trained_model"]["gguf"]["file_type"] == "MOSTLY_Q4_1"


def test_chat_training_tokens_on_the_real_base_equal_what_lm_eval_feeds(
    real_base_dir, task_manager_factory, tmp_path
):
    from lm_eval.models.huggingface import HFLM

    from so8t.train.collate import encode_example

    hflm = HFLM(pretrained=str(real_base_dir), device="cpu", batch_size=1)
    examples = [SafetyExample(r, d) for r, d in zip(REQUESTS, ("ALLOW", "ESCALATE", "REFUSE"), strict=True)]
    data = tmp_path / "s.jsonl"
    data.write_text("".join(json.dumps(e.to_record()) + "\n" for e in examples))
    task = task_manager_factory({"data_files": str(data)}).load(["so8t_safety_local"])["tasks"][
        "so8t_safety_local"
    ]
    task.build_all_requests(
        apply_chat_template=True,
        fewshot_as_multiturn=True,
        system_instruction=SYSTEM_PROMPT,
        chat_template=hflm.apply_chat_template,
    )
    fmt = PromptFormat("chat", SYSTEM_PROMPT)
    for instance in task.instances:
        example = examples[instance.doc_id]
        row = encode_example(hflm.tokenizer, example, max_length=256, prompt_format=fmt)
        context, continuation = instance.args
        context_tokens, continuation_tokens = hflm._encode_pair(context, continuation)
        prompt_len = row["pool_index"] + 1
        assert row["input_ids"][:prompt_len] == context_tokens
        if continuation == example.decision:
            assert row["input_ids"][prompt_len : prompt_len + len(continuation_tokens)] == continuation_tokens


def test_head_b_pools_the_same_with_left_and_right_padding_on_the_real_base(consolidated):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from so8t.model.inference import decide, load_safety_head

    folder = consolidated["none"]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    head = load_safety_head(folder)
    fmt = PromptFormat("chat", SYSTEM_PROMPT)
    rows = [context_ids(tokenizer, fmt.render(tokenizer, safety_prompt(r))) for r in [*REQUESTS, "hi"]]
    width = max(len(r) for r in rows)
    alone = [
        decide(model, head, torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long), None) for r in rows
    ]
    for side in ("right", "left"):
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            span = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
            ids[i, span], mask[i, span] = torch.tensor(r), 1
        batched = decide(model, head, ids, mask, None)
        for i, single in enumerate(alone):
            assert torch.allclose(batched.log_probs[i], single.log_probs[0], atol=1e-4), (side, i)


def test_so8t_predict_decides_in_chat_format_on_the_real_base(consolidated):
    import so8t

    folder = consolidated["none"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "so8t",
            "predict",
            str(folder),
            REQUESTS[2],
            "--json",
            "--max-new-tokens",
            "8",
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    response = json.loads(proc.stdout)
    agent = so8t.load(str(folder))
    decision = agent.decide(REQUESTS[2])
    assert response["decision"] == decision.decision
    assert response["probabilities"] == pytest.approx(decision.probabilities, abs=1e-5)
    assert json.loads((folder / "so8t.json").read_text())["prompt"]["format"] == "chat"
