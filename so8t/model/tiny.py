"""The embedded default base: a BPE tokenizer with a small chat template and a small LlamaForCausalLM, built
here with no downloads.

Cache: `$SO8T_CACHE_DIR/tiny-base-<recipe hash>` or `~/.cache/so8t/tiny-base-<recipe hash>`. The build takes a
file lock and writes to a temporary folder that is renamed into place, so parallel tests and torchrun ranks
never see a half-written folder. Embeddings are untied (`tie_word_embeddings: false`) so the LM head is its
own weight, as in most larger bases. torch/transformers are imported inside the functions only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from so8t.cache import cache_root
from so8t.layout.atomic import atomic_directory

SPECIAL_TOKENS = ["<pad>", "<eos>", "<unk>"]
# A small chat template in the style of instruct models: a role line, each turn ended by EOS, and a default
# system prompt when the conversation brings none (as Qwen's template does), so prompt_format: chat runs end
# to end on the CPU. The role markers are plain text, not new special tokens: the vocabulary, and so every
# plain-format token sequence and the model's weights, stay those of the base without a template.
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|system|>\nYou are a careful assistant.{{ eos_token }}\n"
    "{% endif %}"
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
TINY_RECIPE = {
    "version": 1,
    "chat_template": CHAT_TEMPLATE,
    "vocab_size": 2048,
    "hidden_size": 128,
    "intermediate_size": 384,  # multiples of 64 throughout: bitsandbytes CPU 4-bit kernels need them
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": False,
    "seed": 0,
    "corpus_problems": 3000,
    "corpus_safety_requests": 3000,
}


def _recipe_key(corpus: list[str]) -> str:
    """The recipe and the corpus the tokenizer learns from: a change to the bundled training data or to the
    synthetic generators builds a new base instead of reusing one whose tokenizer learned other text."""
    h = hashlib.sha256(json.dumps(TINY_RECIPE, sort_keys=True).encode())
    for text in corpus:
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def _corpus() -> list[str]:
    """Text the tokenizer learns from: training data only (synthetic GSM8K-style problems, the bundled safety
    train split and synthetic safety requests), so held-out validation and test text never shapes it."""
    from so8t.data.safety import bundled_safety_path, read_safety
    from so8t.data.synthetic import synthetic_split
    from so8t.data.synthetic_safety import synthetic_safety_split

    texts = [
        f"Question: {ex.question}\nAnswer: {ex.answer}"
        for ex in synthetic_split("train", TINY_RECIPE["corpus_problems"], TINY_RECIPE["seed"])
    ]
    safety = read_safety(bundled_safety_path("train"))
    safety += synthetic_safety_split("train", TINY_RECIPE["corpus_safety_requests"], TINY_RECIPE["seed"])
    for rec in safety:
        parts = [f"Request: {rec.prompt}\nDecision: {rec.decision}"]
        parts += [text for text in (rec.rationale, rec.response) if text]
        texts.append("\n".join(parts))
    texts.append("ALLOW ESCALATE REFUSE Request: Decision: Question: Answer: ####")
    return texts


def _build_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_RECIPE["vocab_size"],
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<eos>",
        unk_token="<unk>",
        padding_side="right",
    )
    tokenizer.chat_template = TINY_RECIPE["chat_template"]
    return tokenizer


def _build_model(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    r = TINY_RECIPE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=r["hidden_size"],
        intermediate_size=r["intermediate_size"],
        num_hidden_layers=r["num_hidden_layers"],
        num_attention_heads=r["num_attention_heads"],
        num_key_value_heads=r["num_key_value_heads"],
        max_position_embeddings=r["max_position_embeddings"],
        tie_word_embeddings=r["tie_word_embeddings"],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    # the recipe's seed on a forked generator: the run's own seed, set before the base loads, stays in effect
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(r["seed"])
        return LlamaForCausalLM(config)


def build_tiny_base(cache_dir: str | os.PathLike | None = None) -> Path:
    """Build (once, cached by the hash of its recipe and corpus) and return the tiny base folder: tokenizer +
    LlamaForCausalLM."""
    from filelock import FileLock

    root = Path(cache_dir) if cache_dir is not None else cache_root()
    root.mkdir(parents=True, exist_ok=True)
    corpus = _corpus()
    key = _recipe_key(corpus)
    target = root / f"tiny-base-{key}"
    if (target / "config.json").is_file():
        return target
    with FileLock(str(root / f"tiny-base-{key}.lock")):
        if (target / "config.json").is_file():
            return target
        with atomic_directory(target) as tmp:
            tokenizer = _build_tokenizer(corpus)
            tokenizer.save_pretrained(tmp)
            _build_model(tokenizer).save_pretrained(tmp, safe_serialization=True)
            (tmp / "so8t_tiny_recipe.json").write_text(json.dumps(TINY_RECIPE, indent=1))
    return target
