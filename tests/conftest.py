"""Shared fixtures: tiny bases built once per session (no downloads), W&B off for every test.

The tiny bases are cached in the repository's gitignored `.so8t-cache/` so repeated test runs skip the build.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs two workers (pyproject's addopts), one per core of a 2-core machine: one torch thread
    # each, also in the processes they start, so they do not oversubscribe the cores. Set before torch loads.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_CACHE = Path(__file__).resolve().parent.parent / ".so8t-cache"


@pytest.fixture(autouse=True, scope="session")
def _wandb_disabled():
    """No test talks to W&B."""
    old = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = "disabled"
    yield
    if old is None:
        os.environ.pop("WANDB_MODE", None)
    else:
        os.environ["WANDB_MODE"] = old


@pytest.fixture(scope="session")
def so8t_cache_dir() -> Path:
    REPO_CACHE.mkdir(exist_ok=True)
    os.environ.setdefault("SO8T_CACHE_DIR", str(REPO_CACHE))
    return Path(os.environ["SO8T_CACHE_DIR"])


@pytest.fixture(scope="session")
def tiny_base_dir(so8t_cache_dir) -> Path:
    """The embedded tiny Llama base (tokenizer + model folder)."""
    from so8t.model.tiny import build_tiny_base

    return build_tiny_base(so8t_cache_dir)


def _save_with_tokenizer(model, tiny_base_dir: Path, out: Path) -> Path:
    from transformers import AutoTokenizer

    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_base_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tiny_base_dir, tmp_path_factory) -> Path:
    """A tiny GPT-2 (Conv1D attn.c_proj, tied embeddings) with the tiny tokenizer."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(tiny_base_dir)
    torch.manual_seed(1)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return _save_with_tokenizer(GPT2LMHeadModel(cfg), tiny_base_dir, tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tiny_base_dir, tmp_path_factory) -> Path:
    """A tiny Qwen2: head_dim 24 (heads x head_dim = 96 != hidden 64), GQA, tied embeddings."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_base_dir)
    torch.manual_seed(2)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=24,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    return _save_with_tokenizer(Qwen2ForCausalLM(cfg), tiny_base_dir, tmp_path_factory.mktemp("tiny_qwen2"))


def randomise_so8t(model, seed: int = 0, scale: float = 0.3) -> None:
    """Random rotation generators, LoRA B and head B: a model far from the identity, for parity tests."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "generators" in name or "lora_B" in name or "safety_head" in name:
                param.copy_(
                    torch.randn(param.shape, generator=gen) * (scale if "generators" in name else 0.05)
                )


@pytest.fixture(scope="session")
def make_so8t():
    """Factory: SO8TModel on a base folder with LoRA (random when randomise=True), fp32 unless quantised."""

    def build(
        base_dir,
        *,
        quantization: str = "none",
        randomise: bool = True,
        for_training: bool = False,
        head: str = "linear",
        layers="all",
        seed: int = 0,
    ):
        import torch

        from so8t.config import LoraConfig, ModelConfig
        from so8t.model.base import add_lora, load_base
        from so8t.model.so8t import SO8TModel

        torch.manual_seed(seed)
        base, tokenizer = load_base(
            ModelConfig(base=str(base_dir), quantization=quantization, dtype="float32"),
            for_training=for_training,
        )
        lora = LoraConfig(r=4, alpha=8, dropout=0.0)
        peft_model = add_lora(base, lora, init_lora_weights=not randomise)
        model = SO8TModel(
            peft_model, safety_head_kind=head, mlp_hidden=16 if head == "mlp" else None, layers=layers
        )
        if randomise:
            randomise_so8t(model, seed)
        return model.train(for_training), tokenizer

    return build


# Fixtures shared by several test modules live in their own modules; importing them here registers them.
from data_fixtures import bundled_safety  # noqa: E402,F401
from gguf_base_fixtures import tiny_gguf_file  # noqa: E402,F401
from gguf_fixtures import gguf_models, smollm2_dir  # noqa: E402,F401
from lmeval_fixtures import (  # noqa: E402,F401
    _task_manager_base,
    broken_heads,
    eval_data,
    task_manager_factory,
    tiny_so8t,
)
from real_base import real_base_dir  # noqa: E402,F401
from train_fixtures import bnb_friendly_base_dir  # noqa: E402,F401
