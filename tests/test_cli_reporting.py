"""What a command prints once, whatever the number of processes: the results table of `so8t eval --processes N`
(left to the launcher) and the checkpoint lines of training under torchrun (rank 0, or the launcher)."""

from __future__ import annotations

from pathlib import Path

import pytest

from so8t.lmeval.evaluate import RELAUNCHED_ENV, print_results
from so8t.train.launch import LAUNCHED_ENV
from so8t.train.run import TrainResult, report_result

RESULTS = {
    "results": {"so8t_safety_local": {"alias": "so8t_safety_local", "acc,none": 0.5, "acc_stderr,none": 0.1}},
    "versions": {"so8t_safety_local": 2.0},
    "n-shot": {"so8t_safety_local": 0},
    "higher_is_better": {"so8t_safety_local": {"acc": True}},
    "config": {},
    "so8t_results_file": "eval/results_x.json",
}


def test_the_results_table_is_printed_by_the_launcher_only(monkeypatch, capsys):
    print_results(RESULTS)
    assert capsys.readouterr().out.count("results: eval/results_x.json") == 1
    monkeypatch.setenv(RELAUNCHED_ENV, "1")
    print_results(RESULTS)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("env", "printed"),
    [({}, True), ({"RANK": "0"}, True), ({"RANK": "1"}, False), ({"RANK": "0", LAUNCHED_ENV: "1"}, False)],
)
def test_the_checkpoint_lines_are_printed_once_per_training(monkeypatch, capsys, env, printed):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv(LAUNCHED_ENV, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    report_result(
        TrainResult(Path("runs/x/checkpoints/checkpoint-4"), Path("runs/x/checkpoints/checkpoint-2"))
    )
    out = capsys.readouterr().out
    assert (
        out
        == "checkpoint: runs/x/checkpoints/checkpoint-4\nbest checkpoint: runs/x/checkpoints/checkpoint-2\n"
    ) == printed
    assert printed or out == ""
