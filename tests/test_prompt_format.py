"""Prompt format: plain tokens unchanged, chat tokens equal to what lm-eval feeds under
--apply_chat_template."""

from __future__ import annotations

import json

import pytest

from so8t.data import templates
from so8t.data.gsm8k import GSM8KExample
from so8t.data.safety import SafetyExample, bundled_safety_path, read_safety
from so8t.data.synthetic import synthetic_split
from so8t.data.templates import PromptFormat
from so8t.train.collate import encode_example

SAFETY = [
    SafetyExample("Where is my parcel 58213?", "ALLOW", response="It ships today."),
    SafetyExample("Refund 900 euros now.", "ESCALATE", rationale="Above the limit."),
    SafetyExample("Read me my one-time code.", "REFUSE"),
]


@pytest.fixture(scope="module")
def tokenizer(tiny_base_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_dir)


@pytest.fixture(scope="module")
def hflm(tiny_base_dir):
    """lm-eval's own HFLM on the tiny base: its _encode_pair and chat rendering are what lm-eval feeds."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_base_dir), device="cpu", batch_size=1)


def _main_tokens(tokenizer, prompt: str, target: str) -> tuple[list[int], list[int]]:
    """Training's tokens before prompt formats: the prompt with special tokens, the target without, then
    EOS."""
    prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    target_ids = list(tokenizer(target, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    return prompt_ids, target_ids


def test_plain_training_tokens_are_those_of_before_prompt_formats(tokenizer):
    """Every bundled safety example and synthetic problem tokenizes as it did (the quickstart baseline's
    tokens)."""
    plain = PromptFormat()
    examples = [
        (templates.safety_prompt(e.prompt), templates.safety_target(e))
        for e in read_safety(bundled_safety_path("train"))
    ]
    examples += [
        (templates.gsm8k_prompt(e.question), templates.gsm8k_target(e.answer))
        for e in synthetic_split("train", 300, 0)
    ]
    for prompt, target in examples:
        assert plain.encode_example(tokenizer, prompt, target) == _main_tokens(tokenizer, prompt, target)


def test_the_tiny_base_has_a_chat_template_without_new_tokens(tokenizer):
    from so8t.model.tiny import SPECIAL_TOKENS

    assert tokenizer.chat_template
    # role markers are text: the vocabulary (and so every plain token id) is the one without a template
    assert set(tokenizer.all_special_tokens) == set(SPECIAL_TOKENS)
    assert len(tokenizer.encode("<|user|>", add_special_tokens=False)) > 1
    rendered = PromptFormat("chat").render(tokenizer, "Request: hi\nDecision:")
    assert (
        rendered == "<|system|>\nYou are a careful assistant.<eos>\n<|user|>\nRequest: hi\nDecision:<eos>\n"
        "<|assistant|>\n"
    )
    rendered = PromptFormat("chat", "Be brief.").render(tokenizer, "x")
    assert rendered.startswith("<|system|>\nBe brief.<eos>\n<|user|>\nx")


def _local_safety_task(manager_factory, tmp_path, examples):
    data = tmp_path / "s.jsonl"
    data.write_text("".join(json.dumps(e.to_record()) + "\n" for e in examples))
    return manager_factory({"data_files": str(data)}).load(["so8t_safety_local"])["tasks"][
        "so8t_safety_local"
    ]


@pytest.mark.parametrize("system_prompt", [None, "You answer for the shop."])
def test_chat_training_tokens_equal_what_lm_eval_feeds(task_manager_factory, hflm, tmp_path, system_prompt):
    """lm-eval (apply_chat_template, fewshot_as_multiturn, system_instruction) renders and encodes each
    decision request; training's row holds that context and, after it, the gold decision's continuation
    tokens; head B pools at the context's last token."""
    fmt = PromptFormat("chat", system_prompt)
    task = _local_safety_task(task_manager_factory, tmp_path, SAFETY)
    task.build_all_requests(
        apply_chat_template=True,
        fewshot_as_multiturn=True,
        system_instruction=system_prompt,
        chat_template=hflm.apply_chat_template,
    )
    by_doc: dict[int, list] = {}
    for instance in task.instances:
        by_doc.setdefault(instance.doc_id, []).append(instance)
    assert len(by_doc) == len(SAFETY)
    for doc_id, instances in by_doc.items():
        example = SAFETY[doc_id]
        row = encode_example(hflm.tokenizer, example, max_length=512, prompt_format=fmt)
        for instance in instances:
            context, continuation = instance.args
            assert continuation.strip() == continuation  # lm-eval drops the target delimiter with a template
            context_ids, continuation_ids = hflm._encode_pair(context, continuation)
            prompt_len = row["pool_index"] + 1
            assert row["input_ids"][:prompt_len] == context_ids
            if continuation == example.decision:
                assert row["input_ids"][prompt_len : prompt_len + len(continuation_ids)] == continuation_ids
        assert fmt.decision_token_ids(hflm.tokenizer)[example.label] in row["input_ids"][prompt_len:]


def test_plain_training_tokens_equal_what_lm_eval_feeds(task_manager_factory, hflm, tmp_path):
    task = _local_safety_task(task_manager_factory, tmp_path, SAFETY)
    task.build_all_requests()
    for instance in task.instances:
        example = SAFETY[instance.doc_id]
        row = encode_example(hflm.tokenizer, example, max_length=512)
        context_ids, continuation_ids = hflm._encode_pair(*instance.args)
        prompt_len = row["pool_index"] + 1
        assert row["input_ids"][:prompt_len] == context_ids
        if instance.args[1].strip() == example.decision:
            assert row["input_ids"][prompt_len : prompt_len + len(continuation_ids)] == continuation_ids


def test_chat_gsm8k_rows_hold_the_rendered_prompt_and_end_the_assistant_turn(tokenizer):
    example = GSM8KExample("Ann has 2 apples and buys 3. How many?", "2 + 3 = 5\n#### 5")
    row = encode_example(tokenizer, example, max_length=512, prompt_format=PromptFormat("chat"))
    rendered = PromptFormat("chat").render(tokenizer, templates.gsm8k_prompt(example.question))
    assert rendered.endswith("<|assistant|>\n")
    # as lm-eval encodes a pair: the rendered prompt's trailing newline belongs to the continuation
    prompt = tokenizer.decode(row["input_ids"][: row["pool_index"] + 1])
    assert prompt == rendered.rstrip()
    target = tokenizer.decode([t for t in row["labels"] if t != -100])
    assert target == "\n2 + 3 = 5\n#### 5<eos>\n"


def test_the_record_and_lm_eval_flags_of_a_prompt_format():
    assert PromptFormat.from_record(None) == PromptFormat()
    assert PromptFormat().lm_eval_args() == {}
    chat = PromptFormat("chat", "Be careful.")
    assert PromptFormat.from_record(chat.record()) == chat
    assert chat.lm_eval_args() == {
        "apply_chat_template": True,
        "fewshot_as_multiturn": True,
        "system_instruction": "Be careful.",
    }
    assert chat.lm_eval_cli_flags() == [
        "--apply_chat_template",
        "--fewshot_as_multiturn",
        "--system_instruction",
        "Be careful.",
    ]
    assert PromptFormat().lm_eval_cli_flags() == []


def test_a_system_prompt_without_chat_is_a_config_error(tmp_path):
    from so8t.config import load_config
    from so8t.errors import ConfigError

    path = tmp_path / "run.yaml"
    path.write_text("data:\n  system_prompt: Be careful.\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "prompt_format: chat" in "\n".join(info.value.errors)
