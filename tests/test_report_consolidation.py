"""The run report shows what consolidation folded onto, the dtype, the quantised-weight check and the drifts."""

from __future__ import annotations

import json

from so8t.config import RunConfig
from so8t.results.report import write_report

RECORD = {
    "fold_onto": "trained",
    "fold_target": "the weights the model trained with",
    "dtype": "bfloat16",
    "base_dtype": "bfloat16",
    "trained_quantization": "4bit",
    "quantized_weights": {"recorded": {"sha256": "a"}, "recomputed": {"sha256": "b"}, "match": False},
    "kbit_fp32_tensors": {"tensors": ["lm_head.weight", "model.norm.weight"], "saved_in": "bfloat16"},
    "drift": {
        "probe_prompts": 14,
        "chat_rendered_probe_prompts": 7,
        "trained": {
            "max_abs_logit_diff": 3.1e-7,
            "max_rel_logit_diff": 2.0e-8,
            "max_abs_head_b_prob_diff": 5.2e-8,
        },
        "quantized_eval": {
            "max_abs_logit_diff": 0.0027,
            "max_rel_logit_diff": 1.5e-4,
            "max_abs_head_b_prob_diff": 0.0011,
        },
    },
}


def _report(tmp_path, record) -> str:
    (tmp_path / "consolidated").mkdir()
    info = {"format": "so8t-consolidated", "version": 1, "consolidation": record}
    (tmp_path / "consolidated" / "so8t.json").write_text(json.dumps(info))
    return write_report(tmp_path, cfg=RunConfig(), results={"results": {}}).read_text()


def test_the_report_shows_the_fold_target_dtype_check_and_drifts(tmp_path):
    report = _report(tmp_path, RECORD)
    section = report.split("## Consolidation", 1)[1].split("## Metrics", 1)[0]
    assert "folded onto: trained (the weights the model trained with); trained on a 4-bit base" in section
    assert "saved dtype: bfloat16 (the base's: bfloat16)" in section
    assert "**MISMATCH**" in section and "2 tensor groups in fp32" in section
    assert (
        "| the trained model (dequantise-then-multiply, fp32) | 3.10e-07 | 2.00e-08 | 5.20e-08 |" in section
    )
    assert "| the quantised model's own eval forward | 2.70e-03 | 1.50e-04 | 1.10e-03 |" in section
    # a maximum over the probes, said as such
    assert "the maximum over 14 fixed probe prompts (7 of them chat-rendered), so a lower bound" in section


def test_an_unquantised_run_shows_only_the_drift_against_the_trained_model(tmp_path):
    record = {**RECORD, "trained_quantization": "none", "drift": {**RECORD["drift"], "quantized_eval": None}}
    del record["quantized_weights"], record["kbit_fp32_tensors"]
    section = _report(tmp_path, record).split("## Consolidation", 1)[1]
    assert "trained on an unquantised base" in section and "trained model" in section
    assert "eval forward" not in section and "quantised weights" not in section


def test_report_and_gate_markdown_are_replaced_whole_never_rewritten_in_place(tmp_path, monkeypatch):
    """A reader (or a crash) mid-write never sees half a file: the new text goes to a temporary file that
    is renamed over the old one, so a link to the old file keeps the old text."""
    import os
    from types import SimpleNamespace

    import so8t.results.gate as gate_module
    from so8t import pipeline

    (tmp_path / "consolidated").mkdir()
    (tmp_path / "eval").mkdir()
    for name in ("report.md", "eval/gate.md"):
        (tmp_path / name).write_text("old\n")
        os.link(tmp_path / name, tmp_path / f"{name.replace('/', '_')}.link")
    write_report(tmp_path, cfg=RunConfig(), results={"results": {}})
    gate_report = SimpleNamespace(print=lambda: None, to_markdown=lambda: "new gate\n")
    monkeypatch.setattr(gate_module, "gate_files", lambda files, rules: gate_report)
    pipeline._gate(SimpleNamespace(gates=object()), tmp_path / "results.json", tmp_path)
    assert (tmp_path / "eval" / "gate.md").read_text() == "new gate\n"
    assert (tmp_path / "report.md").read_text().startswith("#")
    assert (tmp_path / "report.md.link").read_text() == "old\n"
    assert (tmp_path / "eval_gate.md.link").read_text() == "old\n"
