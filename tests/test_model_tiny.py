"""The embedded tiny base: tokenizer and model built here, cached, round-trippable."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from so8t.model.base import resolve_base_path
from so8t.model.tiny import build_tiny_base


def test_tiny_tokenizer_splits_digits_and_has_pad_and_eos(tiny_base_dir):
    tok = AutoTokenizer.from_pretrained(tiny_base_dir)
    pieces = tok.tokenize("#### 2048")
    assert [p for p in pieces if p.strip("Ġ").isdigit()] == ["2", "0", "4", "8"]
    assert tok.pad_token == "<pad>" and tok.eos_token == "<eos>" and tok.pad_token_id != tok.eos_token_id
    assert 1000 <= len(tok) <= 4096
    assert tok.decode(tok("Question: Ann has 15 eggs.")["input_ids"]) == "Question: Ann has 15 eggs."


def test_tiny_model_is_a_small_untied_llama(tiny_base_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir)
    cfg = model.config
    assert cfg.model_type == "llama" and cfg.hidden_size % 8 == 0 and cfg.num_hidden_layers == 4
    assert cfg.tie_word_embeddings is False
    assert (tiny_base_dir / "model.safetensors").is_file()


def test_tiny_model_and_tokenizer_round_trip(tiny_base_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir)
    tok = AutoTokenizer.from_pretrained(tiny_base_dir)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = AutoTokenizer.from_pretrained(tmp_path)(["Question: 3 + 4?"], return_tensors="pt")
    assert torch.equal(ids["input_ids"], tok(["Question: 3 + 4?"], return_tensors="pt")["input_ids"])
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, again(**ids).logits)


def test_build_is_cached_by_recipe_and_embedded_name_resolves(tiny_base_dir, so8t_cache_dir):
    assert build_tiny_base(so8t_cache_dir) == tiny_base_dir
    assert resolve_base_path("embedded:tiny") == str(tiny_base_dir)
    assert resolve_base_path("/some/folder") == "/some/folder"
    assert not list(so8t_cache_dir.glob(".tiny-base-*"))  # no temp folders left behind


def test_the_embedded_base_runs_on_a_4bit_base_on_the_cpu(tiny_base_dir):
    """Every projection width of the tiny base suits bitsandbytes' CPU 4-bit kernels (inference included)."""
    import torch

    from so8t.config import ModelConfig
    from so8t.model.base import load_base

    model, tokenizer = load_base(
        ModelConfig(base=str(tiny_base_dir), quantization="4bit", dtype="float32"), for_training=False
    )
    with torch.no_grad():
        logits = model(**tokenizer(["Question: 2 + 3?\nAnswer:"], return_tensors="pt")).logits
    assert logits.shape[-1] == len(tokenizer) and torch.isfinite(logits).all()


def test_the_tokenizer_learns_from_training_text_only():
    """Held-out text (bundled validation/test requests, synthetic test problems) never shapes the tokenizer."""
    from so8t.data.safety import bundled_safety_path, read_safety
    from so8t.data.synthetic import synthetic_split
    from so8t.model.tiny import _corpus

    corpus = "\n".join(_corpus())
    held_out = [e.prompt for split in ("validation", "test") for e in read_safety(bundled_safety_path(split))]
    held_out += [e.question for e in synthetic_split("test", 200, 0)]
    assert not [text for text in held_out if text in corpus]
    assert read_safety(bundled_safety_path("train"))[0].prompt in corpus


def test_building_the_tiny_model_leaves_the_global_random_state_alone(tiny_base_dir):
    """A run sets its seed, then loads the base: a cold cache builds the tiny model with the recipe's seed,
    and must not reseed the global generator, or LoRA's initialisation would differ between a first run and
    later ones (pretraining off)."""
    import torch
    from transformers import AutoTokenizer

    from so8t.model.tiny import _build_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = _build_model(tokenizer)
    assert torch.equal(torch.get_rng_state(), before)
    second = _build_model(tokenizer)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)  # the recipe's own seed still fixes the weights


def test_the_cache_key_follows_the_corpus_the_tokenizer_learns_from():
    # the bundled training data changing (a new row, an edited one) must build a new base, not reuse the old
    from so8t.model.tiny import _corpus, _recipe_key

    corpus = _corpus()
    assert _recipe_key(corpus) == _recipe_key(list(corpus))
    assert _recipe_key(corpus) != _recipe_key([*corpus, "How do I bake bread?"])
    assert _recipe_key(corpus) != _recipe_key([corpus[0] + "!", *corpus[1:]])
