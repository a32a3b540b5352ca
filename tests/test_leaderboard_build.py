"""`so8t leaderboard`: a sound rank (declared set, fixed references, groups once, noise bands, stable order)
and columns that keep runs comparable apart, on real runs of the tiny models (tests/fixtures/results)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from results_fixtures import FIXTURES, column, copy_with_samples, documents, run_data, version

from so8t.cli import main
from so8t.errors import UserError
from so8t.results.headlines import HEADLINES
from so8t.results.leaderboard import build_leaderboard
from so8t.results.leaderboard_render import display_columns, to_csv, to_markdown
from so8t.results.leaderboard_write import push_to_wandb

TRAINED = ["quickstart", "quickstart-lm", "quickstart-hf", "base-hf"]


def _board(*names: str, **kwargs):
    return build_leaderboard([str(FIXTURES / n) for n in names], **kwargs)


def _order(board) -> list[str]:
    return [row.name for row in board.rows]


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _headline(name: str, task: str) -> float:
    headline = HEADLINES[task]
    return run_data(name)["results"][task][headline.key]


def test_scores_are_normalised_against_fixed_references_not_the_models_shown():
    board = _board("quickstart")
    (row,) = board.rows
    gsm8k = _headline("quickstart", "so8t_gsm8k_local")
    safety = (_headline("quickstart", "so8t_safety") - 1 / 3) / (1 - 1 / 3)  # macro F1 above chance
    assert row.score == pytest.approx((gsm8k + max(0.0, safety)) / 2)
    assert [k.task for k in board.ranked] == ["so8t_gsm8k_local", "so8t_safety"]


def _identity(row) -> tuple:
    return (row.full_name, row.backend, tuple(sorted(row.args.items())))


def test_adding_or_removing_a_model_never_reorders_the_others():
    full = _board(*TRAINED, "random")
    order = [_identity(r) for r in full.rows]
    scores = {_identity(r): r.score for r in full.rows}
    fixture_of = {_identity(_board(name).all_rows[0]): name for name in TRAINED}
    top = fixture_of[order[0]]
    for smaller in (_board(*TRAINED), _board(*[n for n in TRAINED if n != top], "random")):
        kept = [_identity(r) for r in smaller.rows]
        assert kept == [i for i in order if i in kept]  # a weak model added, or the top one removed
        assert all(r.score == scores[_identity(r)] for r in smaller.rows)


def test_a_chance_level_model_that_ran_more_tasks_never_outranks_a_better_model():
    """The random model also ran the challenge set; the default rank is over the tasks every model ran."""
    board = _board("quickstart", "random")
    assert {k.task for k in board.ranked} == {"so8t_gsm8k_local", "so8t_safety"}
    assert _order(board) == ["quickstart", "fixture-random"]
    assert board.rows[1].score < board.rows[0].score
    # declaring the extra task ranks only the model that ran it; the other is listed apart with its coverage
    declared = _board(
        "quickstart", "random", rank_tasks=["so8t_gsm8k_local", "so8t_safety", "so8t_safety_local"]
    )
    assert _order(declared) == ["fixture-random"]
    (apart,) = declared.apart
    assert apart.name == "quickstart" and apart.coverage.startswith(
        "2/3 ranked tasks: missing so8t_safety_local"
    )
    # a chance-level model ranked first says among whom: the page's notes and the command's output
    assert any(n.startswith("The rank is among the 1 model(s)") for n in declared.notes)


def test_a_group_counts_once_as_the_mean_of_its_subtasks():
    grouped = _board("quickstart-group")
    (key,) = grouped.ranked
    assert key.task == "so8t_fixture_suite"
    assert [m.task for m in grouped.members[key]] == ["so8t_gsm8k_local", "so8t_safety"]
    standalone = _board("quickstart")
    assert grouped.rows[0].score == pytest.approx(standalone.rows[0].score)  # not the group and its subtasks
    columns = display_columns(grouped)
    assert [(c.task_label, c.role) for c in columns][:2] == [
        ("so8t_fixture_suite", "group"),
        ("so8t_fixture_suite › so8t_gsm8k_local", "headline"),
    ]


def test_a_3_shot_and_a_0_shot_run_of_one_task_are_separate_columns():
    board = _board("quickstart", "quickstart-3shot")
    (row,) = board.rows  # one model
    safety = sorted((k for k in row.runs if k.task == "so8t_safety"), key=lambda k: k.n_shot)
    assert [k.n_shot for k in safety] == [0, 3]
    assert [k.label.split(" · ")[1] for k in safety] == ["0-shot", "3-shot"]
    assert [k.n_shot for k in board.ranked if k.task == "so8t_safety"] == [0]  # a task counts once
    zero, three = column("quickstart", "so8t_safety"), column("quickstart-3shot", "so8t_safety")
    assert any(f"so8t_safety: ranked on the column {zero}" in n for n in board.notes)
    md = to_markdown(board)
    assert f"so8t_safety macro_f1 ↑ ({zero})" in md
    assert f"so8t_safety macro_f1 ↑ ({three})" in md


def test_a_limited_run_is_its_own_column():
    board = _board("quickstart", "quickstart-limit40")
    counts = sorted(k.documents for k in board.rows[0].runs if k.task == "so8t_safety")
    assert counts == [documents("quickstart-limit40", "so8t_safety"), documents("quickstart", "so8t_safety")]
    assert counts[0] == 40  # the command's --limit


def test_identical_runs_of_one_model_keep_the_newest_and_say_so():
    board = _board("quickstart", "quickstart-rerun")
    (row,) = board.rows
    assert len(row.runs) == 2
    assert any("the newest is shown" in note for note in board.notes)


def test_names_are_short_with_the_full_name_kept():
    board = _board(*TRAINED, "random")
    names = {row.name: row.full_name for row in board.rows}
    assert names == {
        "quickstart": "runs/quickstart/consolidated",
        "quickstart decision_source=lm": "runs/quickstart/consolidated",
        "quickstart [hf] dtype=float32": "runs/quickstart/consolidated",
        "runs/fixture-base [hf] dtype=float32": "runs/fixture-base",
        "fixture-random": "runs/fixture-random/consolidated",
    }
    # a name depends on the model alone: the same on every board it is shown on
    for name in TRAINED:
        (alone,) = _board(name).all_rows
        assert names[alone.name] == alone.full_name
    # the base a so8t run recorded (config.so8t.base_model): a short name, the full path kept for hovering
    recorded = run_data("quickstart")["config"]["so8t"]["base_model"]
    row = next(r for r in board.rows if r.name == "quickstart")
    assert (row.base, row.base_full) == (recorded.rstrip("/").rsplit("/", 1)[-1], recorded)


def test_models_within_noise_share_a_rank_band_formed_from_its_top():
    board = _board(*TRAINED, "random", z=100.0)  # everything within noise: one band
    assert {row.rank for row in board.rows} == {1}
    exact = _board(*TRAINED, "random", z=0.0)  # no noise allowance: distinct scores, distinct ranks
    scores = [row.score for row in exact.rows]
    assert [row.rank for row in exact.rows] == [1 + scores.index(s) for s in scores]


def test_markdown_and_csv_carry_the_rank_rule_the_columns_and_every_metric(tmp_path):
    board = _board(*TRAINED, "random")
    md = to_markdown(board)
    assert "## Ranking" in md and "clip((value − chance) / (best − chance), 0, 1)" in md
    assert f"so8t_safety ({column('quickstart', 'so8t_safety')}): macro_f1,none, chance 0.333, best 1" in md
    rows = _csv_rows(to_csv(board))
    assert {r["model"] for r in rows} == {row.name for row in board.rows}
    quick = next(r for r in rows if r["model"] == "quickstart")
    results = run_data("quickstart")["results"]
    assert float(quick["so8t_safety/acc,none"]) == results["so8t_safety"]["acc,none"]
    assert (
        float(quick["so8t_gsm8k_local/exact_match,strict-match"])
        == results["so8t_gsm8k_local"]["exact_match,strict-match"]
    )
    assert main(["leaderboard", *(str(FIXTURES / n) for n in TRAINED), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "leaderboard.csv").read_text() == to_csv(_board(*TRAINED))


def test_a_suite_declares_the_ranked_tasks(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks: [so8t_safety]\n")
    assert (
        main(
            ["leaderboard", str(FIXTURES / "quickstart"), "--suite", str(suite), "--out", str(tmp_path / "o")]
        )
        == 0
    )
    board = _board("quickstart", rank_tasks=["so8t_safety"])
    assert [k.task for k in board.ranked] == ["so8t_safety"]
    with pytest.raises(UserError, match="--rank-tasks names mmlu"):
        _board("quickstart", rank_tasks=["mmlu"])


def test_a_task_at_another_version_is_its_own_column_and_not_ranked_against_the_first(tmp_path):
    today = version("quickstart", "so8t_safety")
    later = float(today) + 1.0
    bumped = copy_with_samples(
        "quickstart-lm", tmp_path, edit=lambda d: d["versions"].update(so8t_safety=later)
    )
    board = build_leaderboard([str(FIXTURES / "quickstart"), str(bumped)])
    versions = sorted(k.version for k in board.keys if k.task == "so8t_safety")
    assert versions == sorted([today, str(later)])
    assert [k.task for k in board.ranked] == ["so8t_gsm8k_local"]  # not every model has either version


def test_model_args_recorded_as_a_dict_are_read():
    """A hand-made file (vLLM needs a GPU): the shape vLLM's runs record, read, never shown as a result."""
    board = build_leaderboard([str(FIXTURES / "synthetic" / "synthetic_vllm_model_args_dict.json")])
    row = (board.rows + board.apart)[0]
    assert (row.full_name, row.backend) == ("runs/qwen05b/consolidated", "vllm")


def test_the_real_lm_eval_file_is_read():
    board = build_leaderboard([str(FIXTURES / "real_hf_tiny_gpt2.json")])
    row = board.rows[0]
    recorded = json.loads((FIXTURES / "real_hf_tiny_gpt2.json").read_text())["config"]["model_num_parameters"]
    assert (row.backend, row.parameters, row.full_name) == ("hf", recorded, "/tmp/gate_real/model")
    assert [k.task for k in board.ranked] == ["tiny_choice"]  # the recipe's task (tests/tiny_gpt2_recipe.py)


def test_a_glob_matching_nothing_is_a_user_error_naming_it(tmp_path, capsys):
    pattern = str(tmp_path / "missing" / "*.json")
    with pytest.raises(UserError, match="matches no file"):
        build_leaderboard([pattern])
    assert main(["leaderboard", str(FIXTURES / "quickstart"), pattern, "--out", str(tmp_path / "o")]) == 2
    assert pattern in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content", ['{"acc": 0.5}', "not json at all", '{"results": {}}'])
def test_a_file_that_is_not_lm_eval_results_is_a_user_error_naming_it(tmp_path, capsys, content):
    bad = tmp_path / "notes.json"
    bad.write_text(content)
    assert main(["leaderboard", str(FIXTURES / "quickstart"), str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and ("not an lm-eval results file" in err or "not readable JSON" in err)


def test_tasks_option_keeps_only_those_tasks():
    board = _board(*TRAINED, tasks=["so8t_safety"])
    assert {k.task for k in board.keys} == {"so8t_safety"}
    with pytest.raises(UserError, match="no results file holds"):
        _board(*TRAINED, tasks=["mmlu"])


def test_wandb_is_skipped_when_disabled(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert push_to_wandb(_board(*TRAINED)) == "W&B skipped: WANDB_MODE=disabled"


def test_wandb_offline_logs_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    board = _board(*TRAINED)
    assert push_to_wandb(board) == "W&B: logged the leaderboard table (offline)"
    tables = list(tmp_path.glob("wandb/offline-run-*/files/media/table/leaderboard_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert [row[1] for row in table["data"]] == [row.name for row in board.all_rows]
    assert any(column.startswith("so8t_safety macro_f1") for column in table["columns"])
