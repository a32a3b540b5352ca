"""The SO8T agent inside llama.cpp: head B's decisions from llama.cpp's embedding and the sidecar equal the
consolidated model's, it runs without torch, and a malformed GGUF file or a missing sidecar is a clear error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from gguf_fixtures import DECISION_MARGIN, SMOLLM2_GREEDY_MARGIN_NATS

from so8t.errors import UserError

pytest.importorskip("xllamacpp")


@pytest.fixture(scope="session")
def exported_so8t(tiny_so8t, tmp_path_factory):
    """{type: GGUF file} of the tiny SO8T model, each with its head-B sidecar."""
    from so8t.export.gguf_export import export_gguf

    _, consolidated, _ = tiny_so8t
    root = tmp_path_factory.mktemp("exported_so8t")
    return {
        kind: export_gguf(consolidated, root / f"tiny-{kind}.gguf", kind).path for kind in ("f16", "q8_0")
    }


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path):
    from so8t.llamacpp_agent import read_gguf_metadata

    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf file at all" * 4)
    with pytest.raises(UserError, match="not a readable GGUF file"):
        read_gguf_metadata(bad)


@pytest.mark.slow
def test_a_truncated_gguf_file_is_a_clear_error(exported_so8t, tmp_path):
    import so8t

    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(exported_so8t["f16"].read_bytes()[:200_000])
    with pytest.raises(UserError, match="not a readable GGUF file"):
        so8t.load(truncated)


@pytest.mark.slow
def test_a_gguf_file_without_its_sidecar_cannot_decide(exported_so8t, tmp_path):
    import shutil

    import so8t

    alone = shutil.copy(exported_so8t["f16"], tmp_path / "alone.gguf")
    with pytest.raises(UserError, match=r"alone\.so8t-head\.(safetensors|json) is missing"):
        so8t.load(alone)


@pytest.mark.slow
def test_the_sidecar_holds_head_b_as_the_consolidated_folder_does(tiny_so8t, exported_so8t):
    import numpy as np

    from so8t.export.sidecar import read_sidecar
    from so8t.model.inference import load_safety_head

    _, consolidated, _ = tiny_so8t
    head, info = read_sidecar(exported_so8t["f16"])
    expected = load_safety_head(consolidated).state_dict()
    assert np.array_equal(head.layers[0][0], expected["net.0.weight"].numpy())
    assert info.classes == ["ALLOW", "ESCALATE", "REFUSE"] and info.pooling == "last_prompt_token"


def _decisions(agent, prompts):
    return [agent.decide(p) for p in prompts]


@pytest.mark.slow
def test_head_b_decisions_in_llama_cpp_equal_the_consolidated_models_on_the_bundled_test_set(
    tiny_so8t, exported_so8t
):
    import so8t
    from so8t.data.safety import bundled_safety_path, read_safety

    _, consolidated, _ = tiny_so8t
    prompts = [record.prompt for record in read_safety(bundled_safety_path("test"))]
    reference = _decisions(so8t.load(consolidated, device="cpu"), prompts)
    agreement = {}
    for kind, path in exported_so8t.items():
        got = _decisions(so8t.load(path), prompts)
        clear = [
            i
            for i, d in enumerate(reference)
            if (lambda p: p[0] - p[1])(sorted(d.probabilities.values(), reverse=True)) >= DECISION_MARGIN
        ]
        same = [i for i in range(len(prompts)) if got[i].decision == reference[i].decision]
        agreement[kind] = (len(same), len(prompts), len(prompts) - len(clear))
        if kind == "f16":
            assert set(clear) <= set(same), [prompts[i] for i in set(clear) - set(same)]
    print("head-B decisions equal to the consolidated model's (equal, of, near ties):", agreement)
    assert len(prompts) >= 80


@pytest.mark.slow
def test_predict_on_a_gguf_file_decides_and_answers_without_importing_torch(exported_so8t):
    code = (
        "import json, sys\n"
        "from so8t.cli import main\n"
        "code = main(['predict', sys.argv[1], 'Summarise the attached memo.', '--json', '--max-new-tokens', '8'])\n"
        "assert code == 0\n"
        "import so8t\n"
        "agent = so8t.load(sys.argv[1], allow_threshold=1.0)\n"
        "decided = agent.decide('What is 12 times 7?')\n"
        "assert decided.decision in ('ESCALATE', 'REFUSE'), decided\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(exported_so8t["f16"])], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "NO-TORCH"
    response = json.loads("\n".join(lines[:-1]))
    assert response["decision"] in ("ALLOW", "ESCALATE", "REFUSE")
    assert response["generated"] == (response["decision"] == "ALLOW")


@pytest.mark.slow
def test_an_so8t_model_on_smollm2_exports_and_runs_in_llama_cpp_as_in_hf(smollm2_dir, make_so8t, tmp_path):
    """SmolLM2-135M-Instruct with random LoRA, rotations and head B (not trained: the export and the two
    engines are compared, not the model's quality), consolidated, exported f16."""
    import torch
    from gguf_fixtures import compare_greedy, f16_logit_drift, prompts
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import so8t
    from so8t.consolidate import consolidate_checkpoint
    from so8t.data.safety import bundled_safety_path, read_safety
    from so8t.export.gguf_export import export_gguf

    model, _ = make_so8t(smollm2_dir, seed=5)
    model.save_so8t(tmp_path / "checkpoint")
    consolidated = consolidate_checkpoint(tmp_path / "checkpoint", tmp_path / "consolidated")
    gguf_file = export_gguf(consolidated, tmp_path / "smollm2-so8t.gguf").path

    plain = AutoModelForCausalLM.from_pretrained(consolidated, dtype=torch.float32).eval()
    back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=gguf_file.name).eval()
    tokenizer = AutoTokenizer.from_pretrained(consolidated)
    back_tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file=gguf_file.name)
    texts = prompts(100)
    assert [back_tokenizer.encode(t) for t in texts] == [tokenizer.encode(t) for t in texts]
    beyond_f16, f16_drift = f16_logit_drift(plain, back, tokenizer.encode(texts[1]))
    print(f"SmolLM2 SO8T: logits read back vs f16-rounded {beyond_f16:.2e}, vs the model {f16_drift:.2e}")
    assert beyond_f16 <= 1e-3

    agent = so8t.load(gguf_file)
    tally = compare_greedy(
        plain, agent.server, [tokenizer.encode(t) for t in texts[:10]], margin=SMOLLM2_GREEDY_MARGIN_NATS
    )
    print(f"SmolLM2 SO8T f16 greedy, 10 prompts x 8 tokens: {tally}")
    assert tally["differed"] == 0
    # every third request of the bundled test split, all three decisions among them (the whole split is checked
    # on the tiny base above; here each request costs two forwards of a 135M model)
    records = read_safety(bundled_safety_path("test"))[::3]
    assert {record.decision for record in records} == {"ALLOW", "ESCALATE", "REFUSE"}
    requests = [record.prompt for record in records]
    reference = _decisions(so8t.load(consolidated, device="cpu"), requests)
    got_decisions = _decisions(agent, requests)
    clear = [
        i
        for i, d in enumerate(reference)
        if (lambda p: p[0] - p[1])(sorted(d.probabilities.values(), reverse=True)) >= DECISION_MARGIN
    ]
    assert all(got_decisions[i].decision == reference[i].decision for i in clear)
    print(f"SmolLM2 SO8T head-B decisions: {len(clear)} clear of {len(requests)}, all equal")
