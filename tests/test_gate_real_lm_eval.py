"""End to end with lm-eval itself: simple_evaluate on a tiny random GPT-2 writes the file the gate reads.

The checked-in fixture real_hf_tiny_gpt2.json came from this same recipe; this test proves the readers
still follow the format of the installed lm-eval.
"""

from __future__ import annotations

import pytest
from tiny_gpt2_recipe import evaluate_tiny_gpt2

from so8t.cli import main
from so8t.results.gate import iter_metrics, load_results
from so8t.results.leaderboard import build_leaderboard

pytestmark = pytest.mark.slow


def test_lm_eval_results_of_a_tiny_local_model_pass_through_gate_and_leaderboard(
    tmp_path, monkeypatch, capsys
):
    pytest.importorskip("torch")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    written, model = evaluate_tiny_gpt2(tmp_path)

    data = load_results(written)
    assert {(m.task, m.key) for m in iter_metrics(data)} == {
        ("tiny_choice", "acc,none"),
        ("tiny_choice", "acc_norm,none"),
    }
    assert main(["gate", str(written), "--baseline", str(written)]) == 0
    row = build_leaderboard([str(written)]).rows[0]
    assert (row.backend, row.full_name, row.parameters) == (
        "hf",
        str(model),
        data["config"]["model_num_parameters"],
    )
    # short: the path's last part that is not a generic folder name, the backend and what it measured with
    assert row.name == f"{model.parent.name} [hf] dtype=float32"
    capsys.readouterr()
