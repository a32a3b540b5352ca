"""The tokenizer of an HF folder as llama.cpp reads it from a GGUF file: tokens, token types, merges, special
tokens, the pre-tokenizer's name and the chat template.

llama.cpp tokenises a byte-level BPE vocabulary with one of its own named pre-tokenizers (`tokenizer.ggml.pre`);
a wrong or missing name runs without an error but splits text differently (more tokens, other ids). The name
is chosen here from the folder's own `tokenizer.json` pre-tokenizer, matched against the ones whose llama.cpp
equivalent is known; anything else is refused rather than guessed. Special (added, `special: true`) tokens are
CONTROL tokens, other added tokens USER_DEFINED, ids past the tokenizer up to the model's vocab_size UNUSED.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from so8t.errors import UserError

# llama.cpp's regex of the Llama 3 and Qwen2 pre-tokenizers, as their tokenizer.json files state them
_LLAMA3_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
_QWEN2_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)


def _pieces(pre_tokenizer: dict | None) -> list[dict]:
    if pre_tokenizer is None:
        return []
    if pre_tokenizer.get("type") == "Sequence":
        return list(pre_tokenizer.get("pretokenizers") or [])
    return [pre_tokenizer]


def _signature(piece: dict) -> tuple:
    """What of one pre-tokenizer step decides how text splits (offset bookkeeping left out)."""
    kind = piece.get("type")
    if kind == "ByteLevel":
        return (kind, bool(piece.get("add_prefix_space")), bool(piece.get("use_regex", True)))
    if kind == "Digits":
        return (kind, bool(piece.get("individual_digits")))
    if kind == "Split":
        pattern = piece.get("pattern") or {}
        return (kind, pattern.get("Regex"), piece.get("behavior"), bool(piece.get("invert")))
    return (kind, json.dumps(piece, sort_keys=True))


# tokenizer.json pre-tokenizer -> llama.cpp's name for the same split (llama-vocab.cpp's pre-tokenizer types)
KNOWN_PRE_TOKENIZERS: dict[tuple, str] = {
    # SmolLM2, StarCoder and the embedded tiny base: single digits, then GPT-2's byte-level regex
    (("Digits", True), ("ByteLevel", False, True)): "smollm",
    (("ByteLevel", False, True),): "gpt-2",
    (("Split", _LLAMA3_SPLIT, "Isolated", False), ("ByteLevel", False, False)): "llama-bpe",
    (("Split", _QWEN2_SPLIT, "Isolated", False), ("ByteLevel", False, False)): "qwen2",
}
# normalizers llama.cpp applies the same way for a given pre-tokenizer (Qwen2's NFC is applied there too)
_ALLOWED_NORMALIZERS = {None, "NFC"}


def pre_tokenizer_name(tokenizer_json: dict, where: str) -> str:
    """llama.cpp's pre-tokenizer name for a byte-level BPE tokenizer.json, or a UserError naming the folder."""
    pre = tokenizer_json.get("pre_tokenizer")
    signature = tuple(_signature(piece) for piece in _pieces(pre))
    name = KNOWN_PRE_TOKENIZERS.get(signature)
    normalizer = (tokenizer_json.get("normalizer") or {}).get("type")
    if name is None or normalizer not in _ALLOWED_NORMALIZERS:
        raise UserError(
            f"{where}/tokenizer.json splits text with a pre-tokenizer (normalizer {normalizer}, steps "
            f"{[s[0] for s in signature]}) that has no known llama.cpp equivalent, so llama.cpp would tokenise "
            f"differently. GGUF export supports the pre-tokenizers {sorted(set(KNOWN_PRE_TOKENIZERS.values()))}."
        )
    return name


@dataclass
class GgufVocab:
    """What the GGUF file's tokenizer.* keys hold."""

    tokens: list[str]
    token_types: list[int]
    pre: str
    add_bos: bool
    add_eos: bool
    chat_template: str | None


def read_vocab(folder: str | Path, vocab_size: int) -> GgufVocab:
    """The folder's tokenizer as GGUF vocabulary data, padded to the model's `vocab_size` (UNUSED ids)."""
    import gguf
    from transformers import AutoTokenizer

    folder = Path(folder)
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise UserError(
            f"{folder} has no tokenizer.json: GGUF export reads the fast (tokenizers) form of the tokenizer. "
            "Save the tokenizer with `AutoTokenizer.from_pretrained(...).save_pretrained(folder)` first."
        )
    spec = json.loads(path.read_text(encoding="utf-8"))
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise UserError(
            f"{path} is a {model.get('type')} tokenizer{' with byte fallback' if model.get('byte_fallback') else ''}; "
            "GGUF export supports byte-level BPE tokenizers (GPT-2 style: Llama 3, Qwen2, SmolLM2, the embedded "
            "base)."
        )
    pre = pre_tokenizer_name(spec, str(folder))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    by_id = {int(i): t for t, i in model["vocab"].items()}
    added = {int(t["id"]): t for t in spec.get("added_tokens") or []}
    by_id.update({i: t["content"] for i, t in added.items()})
    if by_id and max(by_id) >= vocab_size:
        raise UserError(
            f"{folder}: the tokenizer has token id {max(by_id)}, beyond the model's vocab_size {vocab_size}."
        )
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
        elif i in added:
            tokens.append(by_id[i])
            special = added[i].get("special")
            types.append(int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED))
        else:
            tokens.append(by_id[i])
            types.append(int(gguf.TokenType.NORMAL))
    with_special, plain = tokenizer.encode("a"), tokenizer.encode("a", add_special_tokens=False)
    return GgufVocab(
        tokens=tokens,
        token_types=types,
        pre=pre,
        add_bos=len(with_special) > len(plain) and with_special[0] == tokenizer.bos_token_id,
        add_eos=len(with_special) > len(plain) and with_special[-1] == tokenizer.eos_token_id,
        chat_template=tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None,
    )


def add_vocab(writer: Any, folder: str | Path, vocab: GgufVocab) -> None:
    """Write the tokenizer.* keys: the vocabulary, its merges and special token ids (gguf.SpecialVocab reads
    them from the folder), add_bos/add_eos as the HF tokenizer encodes, and the chat template."""
    import gguf

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    special = gguf.SpecialVocab(Path(folder), load_merges=True, n_vocab=len(vocab.tokens))
    special.add_special_token["bos"] = vocab.add_bos
    special.add_special_token["eos"] = vocab.add_eos
    special.chat_template = vocab.chat_template
    special.add_to_gguf(writer, quiet=True)
