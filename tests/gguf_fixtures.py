"""Fixtures of the GGUF tests: models exported once per session, prompts, and llama.cpp's greedy tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

# HF's top-1 must lead its top-2 by this much (log-probability, nats) for llama.cpp's greedy token to be
# required to match: below it, f16 rounding may legitimately swap the two (a near tie, counted and reported).
GREEDY_MARGIN_NATS = 0.05
# SmolLM2-135M (30 layers): f16 rounding alone moves its logits by up to 0.16 (measured against fp32), so a
# log-probability lead below 0.5 nats (over twice what that can swap) counts as a near tie there
SMOLLM2_GREEDY_MARGIN_NATS = 0.5
# head B: the consolidated model's top class must lead the next by this much probability to be required equal
DECISION_MARGIN = 0.01


def prompts(n: int) -> list[str]:
    """`n` varied prompts: plain text, numbers, punctuation, safety and question formats."""
    subjects = ["Tom", "the vendor", "Alice's team", "our CFO", "a new hire"]
    actions = [
        "has 12 apples and eats 3",
        "wants to wire $50,000 today",
        "asks for the admin password",
        "needs a summary of the 2024 report",
        "deleted 1,250 rows (by mistake?)",
    ]
    out = []
    for i in range(n):
        text = f"{subjects[i % 5]} {actions[(i // 5) % 5]}; case #{i * 37}."
        out.append(f"Request: {text}\nDecision:" if i % 2 else f"Question: {text}\nAnswer:")
    return out


def export_plain(folder: Path, out: Path, gguf_type: str = "f16") -> Path:
    from so8t.export.gguf_writer import write_gguf

    return write_gguf(folder, out, gguf_type) if not out.is_file() else out


def sharpened(folder: Path, out: Path) -> Path:
    """A copy of a random tiny model with q and k scaled by 4 (attention that depends on positions, so a
    wrong rotary layout shows) and the output scaled by 30 (next-token distributions with clear leaders, so
    greedy comparisons are not all near ties)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".q_proj." in name or ".k_proj." in name:
                param.mul_(4.0)
        model.get_output_embeddings().weight.mul_(30.0)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return out


def qwen2_base(tokenizer_folder: Path, out: Path) -> Path:
    """A tiny Qwen2 whose head_dim is hidden / heads (transformers' GGUF reader assumes so), GQA, tied."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    torch.manual_seed(3)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    Qwen2ForCausalLM(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def gguf_models(tiny_base_dir, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """{shape: (HF folder, its exported f16 GGUF)}, sharpened: `llama` (the embedded base, untied output) and
    `qwen2` (GQA, tied embeddings, q/k/v biases)."""
    root = tmp_path_factory.mktemp("gguf_models")
    bases = {
        "llama": tiny_base_dir,
        "qwen2": qwen2_base(tiny_base_dir, root / "qwen2-base"),
    }
    models = {}
    for name, base in bases.items():
        folder = sharpened(base, root / name)
        models[name] = (folder, export_plain(folder, root / f"{name}.gguf"))
    return models


def llamacpp_server(gguf_file: Path, n_ctx: int = 256):
    from so8t.llamacpp_agent import start_server

    return start_server(gguf_file, n_ctx, threads=1)


def llamacpp_greedy(server, ids: list[int], n: int) -> list[int]:
    """llama.cpp's greedy continuation token ids (its native /completion endpoint returns them all, also a
    last token that ends inside a UTF-8 character)."""
    import json
    import urllib.request

    body = {"prompt": ids, "n_predict": n, "temperature": 0.0, "top_k": 1, "ignore_eos": True}
    body |= {"return_tokens": True, "cache_prompt": False}
    request = urllib.request.Request(
        server.listening_address + "/completion",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return [int(t) for t in json.loads(answer.read())["tokens"]]


def hf_greedy_with_margins(model, ids: list[int], n: int) -> tuple[list[int], list[float]]:
    """HF's greedy continuation and, per step, the lead of its top-1 over its top-2 (log-probabilities)."""
    import torch

    tokens, margins = list(ids), []
    with torch.no_grad():
        for _ in range(n):
            log_probs = model(torch.tensor([tokens])).logits[0, -1].float().log_softmax(-1)
            top = log_probs.topk(2)
            margins.append(float(top.values[0] - top.values[1]))
            tokens.append(int(top.indices[0]))
    return tokens[len(ids) :], margins


def compare_greedy(
    model, server, prompt_ids: list[list[int]], n: int = 8, margin: float = GREEDY_MARGIN_NATS
) -> dict[str, int]:
    """Greedy continuations of HF and llama.cpp compared token by token up to each prompt's first near tie
    (HF's top-1 leading its top-2 by less than GREEDY_MARGIN_NATS): `matched` prompts agree up to there,
    `differed` do not; `near_ties` counts the prompts cut short by one."""
    tally = {"matched": 0, "differed": 0, "near_ties": 0}
    for ids in prompt_ids:
        hf, margins = hf_greedy_with_margins(model, ids, n)
        cut = next((i for i, m in enumerate(margins) if m < margin), n)
        tally["near_ties"] += cut < n
        # the near-tie step itself may go either way; every step before it must agree
        same = llamacpp_greedy(server, ids, n)[:cut] == hf[:cut]
        tally["matched" if same else "differed"] += 1
    return tally


@pytest.fixture(scope="session")
def smollm2_dir(real_base_dir) -> Path:
    """SmolLM2-135M-Instruct as the plain HF folder so8t trains on (the package's Q4_1 file dequantised)."""
    return real_base_dir


def f16_logit_drift(model, back, ids) -> tuple[float, float]:
    """(largest |logit| difference between `back`, a model read back from an f16 GGUF file, and `model` with
    its matrices rounded to f16 as the export rounds them (norms stay f32); the same against `model` itself).

    The first is what the export adds beyond f16 rounding (float32 arithmetic noise when the file is right);
    the second is the f16 drift itself, which grows with depth and is only reported."""
    import copy

    import torch

    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for param in rounded.parameters():
            if param.dim() >= 2:
                param.copy_(param.half().float())
        ids = torch.tensor([ids])
        got = back(ids).logits.float()
        return float((rounded(ids).logits - got).abs().max()), float((model(ids).logits - got).abs().max())
