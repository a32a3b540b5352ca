"""Brief causal-LM pretraining of the embedded tiny base, so the quickstart fine-tunes a model that can read.

The tiny base is built with random weights; a few hundred steps on the synthetic GSM8K training corpus and
the bundled safety TRAIN split (never validation or test) teach it the templates and the arithmetic format.
A plain loop is enough for a from-scratch LM this small. The result is cached by a hash of the recipe under
the same cache root as the tiny base, behind a file lock, so parallel runs and tests build it once.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import PretrainConfig

from so8t.cache import cache_root
from so8t.layout.atomic import replace_directory, staging_path
from so8t.progress import current as current_progress

PRETRAIN_FORMAT_VERSION = 1
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)


def corpus_texts(examples: int, seed: int, safety_examples: int = 0) -> list[str]:
    """Training texts, templated: synthetic GSM8K train-split problems, the bundled safety train split and
    `safety_examples` synthetic safety requests (train split only: validation and test stay unseen)."""
    from so8t.data import templates
    from so8t.data.safety import bundled_safety_path, read_safety
    from so8t.data.synthetic import synthetic_split
    from so8t.data.synthetic_safety import synthetic_safety_split

    texts = [
        templates.gsm8k_prompt(e.question) + templates.gsm8k_target(e.answer)
        for e in synthetic_split("train", examples, seed)
    ]
    texts += [
        templates.safety_prompt(e.prompt) + templates.safety_target(e)
        for e in read_safety(bundled_safety_path("train"))
    ]
    if safety_examples:
        texts += [
            templates.safety_prompt(e.prompt) + templates.safety_target(e)
            for e in synthetic_safety_split("train", safety_examples, seed)
        ]
    return texts


def recipe_hash(tiny_dir: Path, pretrain_cfg: PretrainConfig, seed: int, max_length: int) -> str:
    """Hash of everything the pretrained weights depend on: tiny base files, recipe, corpus."""
    from so8t.data.safety import bundled_safety_path

    h = hashlib.sha256()
    # the tokenizer's files too: a changed chat template or special token must rebuild the pretrained base
    for name in ("config.json", *TOKENIZER_FILES):
        path = tiny_dir / name
        if path.is_file():
            h.update(path.read_bytes())
    h.update(bundled_safety_path("train").read_bytes())
    h.update(
        json.dumps(
            {
                "recipe": pretrain_cfg.model_dump(),
                "seed": seed,
                "max_length": max_length,
                "version": PRETRAIN_FORMAT_VERSION,
            },
            sort_keys=True,
        ).encode()
    )
    return h.hexdigest()[:16]


def _train(
    tiny_dir: Path, out_dir: Path, pretrain_cfg: PretrainConfig, seed: int, max_length: int
) -> dict[str, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    model.config.use_cache = False
    model.train()
    eos = tokenizer.eos_token or ""
    encoded = [
        ids[:max_length]
        for ids in tokenizer(
            [t + eos for t in corpus_texts(pretrain_cfg.examples, seed, pretrain_cfg.safety_examples)],
            add_special_tokens=True,
        )["input_ids"]
    ]
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=pretrain_cfg.learning_rate, weight_decay=0.01, betas=(0.9, 0.95)
    )
    steps = pretrain_cfg.steps
    scheduler = get_cosine_schedule_with_warmup(optimizer, max(1, steps // 20), steps)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    bs = pretrain_cfg.batch_size
    first = last = math.nan
    order: list[int] = []
    display = current_progress()
    display.update(0, steps, unit="pretrain step")
    for step in range(steps):
        if len(order) < bs:
            fresh = list(range(len(encoded)))
            rng.shuffle(fresh)
            order += fresh
        batch_ids = [encoded[i] for i in order[:bs]]
        del order[:bs]
        width = max(len(x) for x in batch_ids)
        input_ids = torch.full((len(batch_ids), width), pad, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for i, ids in enumerate(batch_ids):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            mask[i, : len(ids)] = 1
        labels = input_ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if step == 0:
            first = value
        last = value
        display.update(step + 1, steps, unit="pretrain step")
    model.config.use_cache = True
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    for extra in ("generation_config.json",):
        if (tiny_dir / extra).is_file() and not (out_dir / extra).is_file():
            shutil.copy(tiny_dir / extra, out_dir / extra)
    metrics = {"pretrain_first_loss": first, "pretrain_final_loss": last, "pretrain_steps": steps}
    (out_dir / "so8t_pretrain.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def pretrained_tiny_base(pretrain_cfg: PretrainConfig, seed: int = 0, max_length: int = 256) -> Path:
    """The embedded tiny base after pretraining (built and cached on first use; later calls reuse it)."""
    from filelock import FileLock

    from so8t.model.tiny import build_tiny_base

    tiny_dir = Path(build_tiny_base())
    key = recipe_hash(tiny_dir, pretrain_cfg, seed, max_length)
    root = cache_root() / "pretrained"
    root.mkdir(parents=True, exist_ok=True)
    out_dir = root / f"tiny-{key}"
    with FileLock(str(root / f"tiny-{key}.lock")):
        if (out_dir / "so8t_pretrain.json").is_file():
            return out_dir
        staging = staging_path(out_dir)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _train(tiny_dir, staging, pretrain_cfg, seed, max_length)
        replace_directory(staging, out_dir)
    return out_dir
