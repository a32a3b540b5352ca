"""The run report's training curves mark the evaluated checkpoint and the report states why it was chosen."""

from __future__ import annotations

import json
from types import SimpleNamespace

from so8t.layout import CHECKPOINTS_DIR, TRAINER_STATE
from so8t.layout.checkpoints import BEST_CHECKPOINT_RULE, checkpoint_name
from so8t.results.report import curves_figure, metric_notes, write_report

HISTORY = [
    {"step": 10, "loss": 2.0, "lm_loss": 1.5},
    {"step": 10, "eval_loss": 1.9, "eval_task_loss": 1.8},
    {"step": 20, "loss": 1.5, "lm_loss": 1.2},
    {"step": 20, "eval_loss": 2.1, "eval_task_loss": 2.0},
]


def test_every_panel_of_the_curves_marks_the_evaluated_step():
    figure = curves_figure(HISTORY, evaluated_step=10)
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["loss", "lm_loss", "eval_loss", "eval_task_loss"]
    for ax in axes:
        marks = [line for line in ax.get_lines() if list(line.get_xdata()) == [10, 10]]
        assert len(marks) == 1, ax.get_title()
    assert "evaluated: step 10" in [t.get_text() for t in axes[0].get_legend().get_texts()]
    unmarked = curves_figure(HISTORY)
    assert all(len(ax.get_lines()) == 1 for ax in unmarked.axes)


def test_the_report_names_the_evaluated_checkpoint_on_the_curves_and_the_selection_rule(tmp_path):
    checkpoint = tmp_path / CHECKPOINTS_DIR / checkpoint_name(10)
    checkpoint.mkdir(parents=True)
    (checkpoint / TRAINER_STATE).write_text(json.dumps({"log_history": HISTORY}))
    cfg = SimpleNamespace(
        model=SimpleNamespace(base="tiny", quantization="none", dtype="float32"),
        train=SimpleNamespace(
            max_steps=20, num_epochs=1, per_device_batch_size=2, gradient_accumulation_steps=1
        ),
        eval=SimpleNamespace(decision_source="head", tasks=["t"]),
    )
    report = write_report(
        tmp_path, cfg=cfg, results={"results": {}}, evaluated_checkpoint=checkpoint
    ).read_text()
    curves = report.split("## Training curves", 1)[1]
    assert f"The dashed line marks step 10, `{checkpoint_name(10)}`" in curves
    assert f"Selection rule: {BEST_CHECKPOINT_RULE}." in curves


def test_the_report_says_which_gsm8k_row_is_the_careful_reading_and_which_are_lm_evals():
    results = {"results": {"so8t_gsm8k_local": {"numeric_match,none": 0.5}, "so8t_safety_local": {}}}
    note = " ".join(metric_notes(results))
    assert "`numeric_match` under the filter `none` is so8t's careful reading" in note
    assert "`strict-match` and `flexible-extract` are lm-eval's own gsm8k definitions" in note
    assert metric_notes({"results": {"so8t_safety_local": {}}}) == []
