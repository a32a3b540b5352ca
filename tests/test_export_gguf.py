"""`so8t export gguf`: the GGUF file round-trips through transformers' GGUF reader and runs in llama.cpp as
the HF model does (tokens, greedy continuations); the traps that fail silently (q/k permutation,
pre-tokenizer) are shown to matter."""

from __future__ import annotations

import json
import shutil

import pytest
from gguf_fixtures import compare_greedy, export_plain, f16_logit_drift, llamacpp_server, prompts

from so8t.errors import UserError

pytest.importorskip("gguf")


def test_an_architecture_llama_cpp_is_not_given_is_a_clear_error(tiny_gpt2_dir, tmp_path):
    from so8t.export.gguf_writer import write_gguf

    with pytest.raises(
        UserError, match="model_type 'gpt2' cannot be exported to GGUF.*llama, mistral, qwen2"
    ):
        write_gguf(tiny_gpt2_dir, tmp_path / "m.gguf")
    assert not list(tmp_path.iterdir())


def test_a_qwen2_whose_attention_is_wider_than_the_model_is_refused(tiny_qwen2_dir, tmp_path):
    from so8t.export.gguf_writer import write_gguf

    with pytest.raises(UserError, match="heads x head_dim = 4 x 24 != hidden_size 64"):
        write_gguf(tiny_qwen2_dir, tmp_path / "m.gguf")


def test_a_pre_tokenizer_without_a_llama_cpp_equivalent_is_refused(tiny_base_dir, tmp_path):
    from so8t.export.gguf_writer import write_gguf

    folder = shutil.copytree(tiny_base_dir, tmp_path / "base")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Whitespace"}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match="no known llama.cpp equivalent"):
        write_gguf(folder, tmp_path / "m.gguf")


def test_the_embedded_base_gets_the_smollm_pre_tokenizer(tiny_base_dir):
    from so8t.export.gguf_vocab import pre_tokenizer_name

    spec = json.loads((tiny_base_dir / "tokenizer.json").read_text())
    assert pre_tokenizer_name(spec, str(tiny_base_dir)) == "smollm"


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["llama", "qwen2"])
def test_round_trip_through_transformers_gguf_reader(gguf_models, shape):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf_file = gguf_models[shape]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    back = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    back_tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    texts = prompts(100)
    assert [back_tokenizer.encode(t) for t in texts] == [tokenizer.encode(t) for t in texts]
    beyond_f16, f16_drift = f16_logit_drift(model, back, tokenizer.encode(texts[1]))
    print(f"{shape}: logits read back vs f16-rounded {beyond_f16:.2e}, vs the model itself {f16_drift:.2e}")
    assert beyond_f16 <= 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["llama", "qwen2"])
def test_llama_cpp_tokenises_chat_rendered_prompts_as_hf_and_continues_greedily_as_hf(gguf_models, shape):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from so8t.llamacpp_agent import LlamaCppTokenizer, read_gguf_metadata

    folder, gguf_file = gguf_models[shape]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    server = llamacpp_server(gguf_file)
    llama_tokenizer = LlamaCppTokenizer(server.listening_address, read_gguf_metadata(gguf_file))
    texts = prompts(20)
    for text in texts:
        messages = [{"role": "user", "content": text}]
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert llama_tokenizer.apply_chat_template(messages, add_generation_prompt=True) == rendered
        assert llama_tokenizer.encode(rendered) == tokenizer.encode(rendered)
        assert llama_tokenizer.encode(text) == tokenizer.encode(text)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tally = compare_greedy(model, server, [tokenizer.encode(t) for t in texts])
    print(f"{shape} f16 greedy, 20 prompts x 8 tokens: {tally}")
    assert tally["differed"] == 0
    assert tally["near_ties"] < len(texts) // 2, "too many near ties for the comparison to mean anything"


@pytest.mark.slow
def test_without_the_qk_permutation_llama_cpp_continues_differently(gguf_models, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import so8t.export.gguf_writer as writer

    folder, _ = gguf_models["llama"]
    monkeypatch.setattr(writer, "permute_qk", lambda weights, n_head: weights)
    unpermuted = export_plain(folder, tmp_path / "unpermuted.gguf")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    server = llamacpp_server(unpermuted)
    tally = compare_greedy(model, server, [tokenizer.encode(t) for t in prompts(20)])
    assert tally["differed"] > 0


@pytest.mark.slow
def test_without_the_pre_tokenizer_llama_cpp_tokenises_differently(gguf_models, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    import so8t.export.gguf_vocab as vocab
    from so8t.llamacpp_agent import LlamaCppTokenizer, read_gguf_metadata

    folder, _ = gguf_models["llama"]
    monkeypatch.setattr(vocab, "pre_tokenizer_name", lambda spec, where: "default")
    plain = export_plain(folder, tmp_path / "default-pre.gguf")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    server = llamacpp_server(plain)
    llama_tokenizer = LlamaCppTokenizer(server.listening_address, read_gguf_metadata(plain))
    differing = [t for t in prompts(20) if llama_tokenizer.encode(t) != tokenizer.encode(t)]
    assert differing


@pytest.mark.slow
def test_q8_0_is_smaller_and_its_greedy_agreement_is_measured(gguf_models, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, f16 = gguf_models["llama"]
    q8 = export_plain(folder, tmp_path / "q8_0.gguf", "q8_0")
    assert q8.stat().st_size < 0.7 * f16.stat().st_size
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    server = llamacpp_server(q8)
    tally = compare_greedy(model, server, [tokenizer.encode(t) for t in prompts(20)])
    print(f"llama q8_0 greedy, 20 prompts x 8 tokens: {tally}")
    assert tally["matched"] + tally["differed"] == 20


def test_export_cli_writes_a_plain_base_without_a_head_and_refuses_another_suffix(
    tiny_base_dir, tmp_path, capsys
):
    from so8t.cli import main
    from so8t.export.sidecar import sidecar_paths

    out = tmp_path / "base.gguf"
    assert main(["export", "gguf", str(tiny_base_dir), "--out", str(out), "--type", "q8_0"]) == 0
    assert out.is_file() and not any(p.exists() for p in sidecar_paths(out))
    assert "no head B" in capsys.readouterr().out
    assert main(["export", "gguf", str(tiny_base_dir), "--out", str(tmp_path / "base.bin")]) == 2
    assert "ending in .gguf" in capsys.readouterr().err


def test_a_mistral_model_is_written_as_llama_cpps_llama(tiny_base_dir, tmp_path):
    import gguf
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    from so8t.export.gguf_writer import write_gguf

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    MistralForCausalLM(config).save_pretrained(tmp_path / "mistral")
    tokenizer.save_pretrained(tmp_path / "mistral")
    reader = gguf.GGUFReader(str(write_gguf(tmp_path / "mistral", tmp_path / "m.gguf")))
    assert reader.fields["general.architecture"].contents() == "llama"
    assert "output.weight" in {t.name for t in reader.tensors}
