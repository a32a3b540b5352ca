"""`so8t leaderboard`: ranking, table content (md, csv), version flags, missing cells and input errors."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path

import pytest

from so8t.cli import main
from so8t.errors import UserError
from so8t.results.leaderboard import build_leaderboard, push_to_wandb, to_csv, to_markdown

FIXTURES = Path(__file__).parent / "fixtures" / "results"
MIXED = [str(FIXTURES / n) for n in ("so8t_qwen05b.json", "hf_qwen05b_base.json", "so8t_qwen7b_4bit.json")]


def _minimal(
    backend: str,
    pretrained: str,
    tasks: dict[str, dict[str, tuple[float, float | str]]],
    directions: dict[str, dict[str, bool]],
    date: float = 1.7e9,
    versions=None,
) -> dict:
    """An lm-eval results dict with only the keys the readers use (plus config and date)."""
    results = {}
    for task, metrics in tasks.items():
        entry = {"alias": task}
        for metric, (value, se) in metrics.items():
            entry[f"{metric},none"] = value
            entry[f"{metric}_stderr,none"] = se
        results[task] = entry
    return {
        "results": results,
        "versions": {t: (versions or {}).get(t, 1.0) for t in tasks},
        "higher_is_better": {t: directions[t] for t in tasks},
        "n-shot": {t: 0 for t in tasks},
        "config": {"model": backend, "model_args": f"pretrained={pretrained}"},
        "date": date,
    }


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_scores_follow_the_documented_aggregate(tmp_path):
    directions = {"safety": {"acc": True, "unsafe_allow_rate": False}, "math": {"exact_match": True}}
    a = _minimal(
        "so8t",
        "runs/a",
        {
            "safety": {"acc": (0.8, 0.02), "unsafe_allow_rate": (0.1, "N/A")},
            "math": {"exact_match": (0.3, 0.01)},
        },
        directions,
    )
    b = _minimal(
        "hf", "org/b", {"safety": {"acc": (0.6, 0.02), "unsafe_allow_rate": (0.0, "N/A")}}, directions
    )
    for name, data in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(data))
    board = build_leaderboard([str(tmp_path / "*.json")])
    # safety: a = (1 + 0) / 2, b = (0 + 1) / 2; math: a = 1, b missing = 0; overall = mean over tasks
    assert [(r.name, r.backend, r.score, r.rank) for r in board.rows] == [
        ("runs/a", "so8t", 0.75, 1),
        ("org/b", "hf", 0.25, 2),
    ]
    rows = _csv_rows(to_csv(board))
    assert rows[1]["math/exact_match,none"] == "" and rows[1]["math/exact_match,none_stderr"] == ""
    assert rows[0]["safety/unsafe_allow_rate,none_stderr"] == ""  # lm-eval's "N/A"
    assert rows[0]["safety/acc,none"] == "0.8" and rows[0]["safety/acc,none_stderr"] == "0.02"
    md = to_markdown(board)
    assert "| 2 | org/b | hf | — | none | — |" in md
    row_b = next(line for line in md.splitlines() if "org/b" in line)
    assert row_b.endswith("| 0.250 | 0.6000 ± 0.0200 | 0.0000 | — |")  # missing stderr: value alone


def test_mixed_so8t_and_hf_results_rank_and_tabulate(tmp_path):
    assert main(["leaderboard", *MIXED, "--out", str(tmp_path), "--title", "mixed"]) == 0
    rows = _csv_rows((tmp_path / "leaderboard.csv").read_text())
    assert [(r["rank"], r["model"], r["backend"], r["quantization"], r["parameters"]) for r in rows] == [
        ("1", "runs/qwen7b/consolidated", "so8t", "4bit", "7615616512"),
        ("2", "Qwen/Qwen2.5-0.5B", "hf", "none", "494032768"),
        ("3", "runs/qwen05b", "so8t", "none", "494032768"),
    ]
    assert rows[0]["so8t_safety/unsafe_allow_rate,none"] == "0.0"
    assert rows[2]["so8t_gsm8k/exact_match,strict-match"] == "0.3214"
    assert rows[0]["arc_easy/acc,none"] == ""  # the 7B run has no arc_easy
    md = (tmp_path / "leaderboard.md").read_text()
    assert md.startswith("# mixed\n")
    header = md.splitlines()[4]
    assert "so8t_safety unsafe_allow_rate ↓" in header and "so8t_gsm8k exact_match [strict-match] ↑" in header
    first = md.splitlines()[6]
    assert first.startswith(
        "| 1 | runs/qwen7b/consolidated | so8t | — | 4bit | 7.62B | 2026-11-24 06:00 | 0.667 |"
    )
    assert first.endswith("| — | — |")  # arc_easy acc, acc_norm
    assert "| 0.9865 ± 0.0210 |" in first


def test_the_same_task_at_different_versions_is_flagged_not_compared(tmp_path):
    board = build_leaderboard([MIXED[0], str(FIXTURES / "so8t_qwen05b_safety_v2.json")])
    safety = [c for c in board.columns if c.task == "so8t_safety"]
    assert {c.version for c in safety} == {"1.0", "2.0"} and all(c.flagged for c in safety)
    md = to_markdown(board)
    assert "so8t_safety acc ⚠ v1.0" in md and "so8t_safety acc ⚠ v2.0" in md
    assert "⚠ so8t_safety was evaluated at different task versions (1.0, 2.0)" in md
    rows = {r["model"]: r for r in _csv_rows(to_csv(board))}
    assert rows["runs/qwen05b-v2"]["so8t_safety/acc,none@v1.0"] == ""
    assert rows["runs/qwen05b"]["so8t_safety/acc,none@v2.0"] == ""
    # each version is its own scored task (4 tasks: gsm8k, safety v1, safety v2, arc_easy): every model is
    # alone, hence best, on the tasks it has, and nothing is compared across versions
    assert {r.name: r.score for r in board.rows} == {"runs/qwen05b": 0.75, "runs/qwen05b-v2": 0.25}


def test_results_of_one_model_in_several_files_share_a_row(tmp_path):
    full = json.loads(Path(MIXED[0]).read_text())
    for task in full["results"]:
        part = copy.deepcopy(full)
        part["results"] = {task: full["results"][task]}
        (tmp_path / f"results_{task}.json").write_text(json.dumps(part))
    board = build_leaderboard([str(tmp_path), MIXED[1]])  # a folder: every results*.json below it
    assert sorted(r.name for r in board.rows) == ["Qwen/Qwen2.5-0.5B", "runs/qwen05b"]
    assert len(next(r for r in board.rows if r.name == "runs/qwen05b").sources) == 3


def test_same_model_with_different_backends_gets_distinct_names(tmp_path):
    directions = {"t": {"acc": True}}
    for backend in ("so8t", "hf"):
        data = _minimal(backend, "runs/x/consolidated", {"t": {"acc": (0.5, 0.1)}}, directions)
        (tmp_path / f"{backend}.json").write_text(json.dumps(data))
    names = sorted(r.name for r in build_leaderboard([str(tmp_path / "*.json")]).rows)
    assert names == ["runs/x/consolidated [hf]", "runs/x/consolidated [so8t]"]


def test_base_and_parameters_come_from_so8t_json_beside_the_model(tmp_path):
    model = tmp_path / "run" / "consolidated"
    model.mkdir(parents=True)
    (model / "so8t.json").write_text(
        json.dumps(
            {"format": "so8t-consolidated", "base_model": "Qwen/Qwen2.5-0.5B", "num_parameters": 494032768}
        )
    )
    data = _minimal("so8t", str(tmp_path / "run"), {"t": {"acc": (0.5, 0.1)}}, {"t": {"acc": True}})
    (tmp_path / "r.json").write_text(json.dumps(data))
    row = build_leaderboard([str(tmp_path / "r.json")]).rows[0]
    assert (row.base, row.parameters_text) == ("Qwen/Qwen2.5-0.5B", "494M")


def test_model_args_recorded_as_a_dict_are_read():
    board = build_leaderboard([str(FIXTURES / "vllm_qwen05b_consolidated.json")])
    assert (board.rows[0].name, board.rows[0].backend) == ("runs/qwen05b/consolidated", "vllm")


def test_the_real_lm_eval_file_is_read():
    row = build_leaderboard([str(FIXTURES / "real_hf_tiny_gpt2.json")]).rows[0]
    assert (row.backend, row.parameters, row.name) == ("hf", 4512, "/tmp/gate_real/model")


def test_a_glob_matching_nothing_is_a_user_error_naming_it(tmp_path, capsys):
    pattern = str(tmp_path / "missing" / "*.json")
    with pytest.raises(UserError, match="matches no file"):
        build_leaderboard([pattern])
    assert main(["leaderboard", MIXED[0], pattern, "--out", str(tmp_path / "o")]) == 2
    assert pattern in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content", ['{"acc": 0.5}', "not json at all", '{"results": {}}'])
def test_a_file_that_is_not_lm_eval_results_is_a_user_error_naming_it(tmp_path, capsys, content):
    bad = tmp_path / "notes.json"
    bad.write_text(content)
    assert main(["leaderboard", MIXED[0], str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and ("not an lm-eval results file" in err or "not readable JSON" in err)


def test_tasks_option_keeps_only_those_tasks(tmp_path):
    board = build_leaderboard(MIXED, tasks=["arc_easy"])
    assert {c.task for c in board.columns} == {"arc_easy"}
    with pytest.raises(UserError, match="no results file holds"):
        build_leaderboard(MIXED, tasks=["mmlu"])


def test_wandb_is_skipped_when_disabled(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert push_to_wandb(build_leaderboard(MIXED)) == "W&B skipped: WANDB_MODE=disabled"


def test_wandb_offline_logs_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert push_to_wandb(build_leaderboard(MIXED)) == "W&B: logged the leaderboard table (offline)"
    tables = list(tmp_path.glob("wandb/offline-run-*/files/media/table/leaderboard_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert [row[1] for row in table["data"]] == [
        "runs/qwen7b/consolidated",
        "Qwen/Qwen2.5-0.5B",
        "runs/qwen05b",
    ]
    assert "so8t_safety/refuse_recall,none" in table["columns"]
