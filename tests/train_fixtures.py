"""Helpers for the training tests: small run configs on the session's tiny base."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def run_config_dict(base_dir: Path | str, **sections: Any) -> dict[str, Any]:
    """A few-step run on the tiny base: small data, no pretraining, W&B off; `sections` update the defaults."""
    cfg: dict[str, Any] = {
        "seed": 0,
        "model": {
            "base": str(base_dir),
            "dtype": "float32",
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "pretrain": {"enabled": False},
        },
        "data": {
            "train": [{"builtin": "synthetic_gsm8k", "n": 48}, {"builtin": "safety"}],
            "validation": [{"builtin": "synthetic_gsm8k", "n": 8}, {"builtin": "safety"}],
            "max_length": 96,
            "safety_fraction": 0.5,
        },
        "train": {
            "max_steps": 10,
            "per_device_batch_size": 4,
            "learning_rate": 1e-3,
            "safety_learning_rate": 3e-3,
            "eval_strategy": "no",
            "save_steps": 5,
            "save_total_limit": None,
            "logging_steps": 5,
            "warmup_ratio": 0.0,
        },
        "pet": {"weight": 0.01, "start_fraction": 0.5, "full_fraction": 1.0},
        "logging": {"wandb": {"mode": "disabled"}},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(cfg.get(section), dict):
            cfg[section] = {**cfg[section], **values}
        else:
            cfg[section] = values
    return cfg


def whole_batches_validation() -> list[dict[str, Any]]:
    """A validation split of whole, equal batches of 2 on each of 2 ranks (so two processes evaluate exactly
    what one does): GSM8K problems fill the bundled safety validation split up to a multiple of 4."""
    from so8t.data.safety import bundled_safety_path, read_safety

    bundled = len(read_safety(bundled_safety_path("validation")))
    return [{"builtin": "synthetic_gsm8k", "n": 8 + (-(8 + bundled) % 4)}, {"builtin": "safety"}]


def run_config(base_dir: Path | str, **sections: Any) -> Any:
    from so8t.config import RunConfig

    return RunConfig.model_validate(run_config_dict(base_dir, **sections))


def write_config(path: Path, base_dir: Path | str, **sections: Any) -> Path:
    path.write_text(yaml.safe_dump(run_config_dict(base_dir, **sections)))
    return path


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "WANDB_MODE": "disabled",
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
        }
    )
    return env


def run_python(code: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a Python snippet in a fresh interpreter (for kills and signals that must not hit pytest)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.fixture(scope="session")
def bnb_friendly_base_dir(tiny_base_dir, tmp_path_factory) -> Path:
    """A tiny Llama whose every projection width is a multiple of 32, as bitsandbytes' CPU 4-bit kernel needs."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_base_dir)
    torch.manual_seed(3)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    out = tmp_path_factory.mktemp("bnb_llama")
    LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out
