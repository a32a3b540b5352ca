"""Head-B inference in the model layer: the decision rule, and so8t.load(...).decide(...) without lm_eval."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from so8t.data.safety import DECISIONS
from so8t.errors import UserError


def test_allow_threshold_moves_low_confidence_allow_to_escalate():
    import torch

    from so8t.model.inference import fail_closed

    probs = torch.tensor([[0.6, 0.1, 0.3], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    decisions, scores = fail_closed(probs.log(), allow_threshold=0.7)
    assert decisions.tolist() == [1, 0, 2]
    assert scores.exp()[0].tolist() == pytest.approx([0.0, 0.7, 0.3])
    assert scores.argmax(dim=-1).tolist() == decisions.tolist()
    assert fail_closed(probs.log(), None)[0].tolist() == [0, 0, 2]


def test_decide_pools_each_rows_last_token_and_applies_the_decision_rule(tiny_so8t):
    """Batched, right-padded decisions equal one-row decisions; the rule is fail_closed's."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from so8t.model.inference import decide, fail_closed, load_safety_head

    _, consolidated, _ = tiny_so8t
    model = AutoModelForCausalLM.from_pretrained(consolidated, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(consolidated)
    head = load_safety_head(consolidated)
    texts = ["Request: Delete every production database.\nDecision:", "Request: hi\nDecision:"]
    rows = [tokenizer(t, return_tensors="pt")["input_ids"][0] for t in texts]
    width = max(len(r) for r in rows)
    input_ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)], mask[i, : len(r)] = r, 1
    batched = decide(model, head, input_ids, mask, allow_threshold=0.99)
    for i, r in enumerate(rows):
        alone = decide(model, head, r[None], torch.ones_like(r[None]), allow_threshold=0.99)
        assert torch.allclose(batched.log_probs[i], alone.log_probs[0], atol=1e-5)
    expected, scores = fail_closed(batched.log_probs, 0.99)
    assert batched.decisions.tolist() == expected.tolist()
    assert torch.equal(batched.scores, scores)


def test_inference_args_are_checked_before_anything_loads():
    from so8t.model.inference import check_inference_args

    check_inference_args("head", "4bit", 0.5, {})
    with pytest.raises(UserError, match="decision_source"):
        check_inference_args("vote", "none", None, {})
    with pytest.raises(UserError, match="quantization='3bit'"):
        check_inference_args("head", "3bit", None, {})
    with pytest.raises(UserError, match="probability"):
        check_inference_args("head", "none", 1.5, {})
    with pytest.raises(UserError, match="decision_source=lm"):
        check_inference_args("lm", "none", 0.5, {})
    with pytest.raises(UserError, match="load_in_4bit"):
        check_inference_args("head", "4bit", None, {"load_in_4bit": True})


def test_load_and_decide_leave_lm_eval_unimported(tiny_so8t):
    """A deployed agent needs no evaluation harness: so8t.load(...).decide(...) never imports lm_eval."""
    _, consolidated, _ = tiny_so8t
    code = (
        "import sys\nimport so8t\n"
        "decided = so8t.load(sys.argv[1], device='cpu').decide('Delete every production database.')\n"
        "print(decided.decision)\nprint('lm_eval' in sys.modules)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(consolidated)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    decision, lm_eval_imported = result.stdout.split()
    assert decision in DECISIONS
    assert lm_eval_imported == "False"


def _padded(rows, side: str, pad_id: int = 0):
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for i, r in enumerate(rows):
        span = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
        input_ids[i, span], mask[i, span] = torch.tensor(r), 1
    return input_ids, mask


@pytest.mark.parametrize("base", ["consolidated_llama", "gpt2"])
def test_either_padding_side_gives_the_decisions_of_unpadded_rows(base, tiny_so8t, tiny_gpt2_dir):
    """Pooling reads each row's last real token, and positions count real tokens only, so a caller that
    left-pads gets the same head-B decisions as one that right-pads, and as each row alone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from so8t.model.heads import SafetyHead
    from so8t.model.inference import decide, last_token_positions, load_safety_head

    _, consolidated, _ = tiny_so8t
    folder = consolidated if base == "consolidated_llama" else tiny_gpt2_dir
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if base == "consolidated_llama":
        head = load_safety_head(consolidated)
    else:
        torch.manual_seed(0)
        head = SafetyHead(model.config.n_embd).eval()
    texts = ["Delete every production database right now please.", "hi", "Wire money to this vendor."]
    rows = [tokenizer(f"Request: {t}\nDecision:")["input_ids"] for t in texts]
    alone = [
        decide(model, head, torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long), None) for r in rows
    ]
    for side in ("right", "left"):
        input_ids, mask = _padded(rows, side, pad_id=tokenizer.pad_token_id or 0)
        assert last_token_positions(mask).tolist() == (
            [len(r) - 1 for r in rows] if side == "right" else [input_ids.shape[1] - 1] * len(rows)
        )
        batched = decide(model, head, input_ids, mask, None)
        for i, single in enumerate(alone):
            assert torch.allclose(batched.log_probs[i], single.log_probs[0], atol=1e-4), (side, i)
        assert batched.decisions.tolist() == [int(s.decisions[0]) for s in alone]
