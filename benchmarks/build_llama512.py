"""Build the random width-512 Llama that the throughput and memory benchmarks take as `--base`.

A Llama with hidden size 512, MLP width 1536, 4 layers and 8 attention heads (15.7 M parameters, embeddings
untied) and the embedded tiny base's tokenizer, random weights from seed 0, saved as a Hugging Face folder:
large enough that the SO8T extras are a realistic share of a step, small enough for a 2-core CPU.

    python benchmarks/build_llama512.py [--out /tmp/llama512]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def build_llama512(out: Path) -> int:
    """Write the model and tokenizer to `out`; returns the parameter count."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from so8t.model.tiny import build_tiny_base

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_base())
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=4,
        num_attention_heads=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    return sum(p.numel() for p in model.parameters())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/llama512"), help="folder to write")
    args = parser.parse_args()
    parameters = build_llama512(args.out)
    print(f"{args.out}: random Llama, {parameters / 1e6:.1f} M parameters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
