"""The rank's promise, worded to hold exactly: while the ranked columns are fixed, adding or removing a model
never reorders the others; a board that infers its columns says so. The counterexamples that broke the old
wording (a model that ran a subset, runs at another n-shot, runs on other documents) are built from a real
fixture file with the headline values set by the test."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest
from results_fixtures import FIXTURES, run_data

from so8t.cli import main
from so8t.errors import UserError
from so8t.results.headlines import HEADLINES
from so8t.results.leaderboard import build_leaderboard
from so8t.results.leaderboard_html import to_html
from so8t.results.leaderboard_render import to_markdown
from so8t.results.rank_columns import declaration_of, parse_declaration

GSM8K, SAFETY = "so8t_gsm8k_local", "so8t_safety"


def _model(
    folder: Path, name: str, units: dict[str, float], *, n_shot: int = 0, limit: int | None = None
) -> str:
    """A results file of model `name` holding only `units`' tasks, each headline set so that its normalised
    score is the given unit score, at the given n-shot and document count."""
    data = copy.deepcopy(run_data("quickstart"))
    data["config"]["model_args"] = {"pretrained": f"runs/{name}/consolidated"}
    data["model_name"] = f"runs/{name}/consolidated"
    for section in ("results", "configs", "versions", "n-shot", "higher_is_better", "n-samples"):
        data[section] = {t: v for t, v in data[section].items() if t in units}
    for task, unit in units.items():
        headline = HEADLINES[task]
        data["results"][task][headline.key] = headline.chance + unit * (headline.best - headline.chance)
        data["n-shot"][task] = n_shot
        if limit is not None:
            data["n-samples"][task]["effective"] = limit
    path = folder / f"{name}-{n_shot}shot-{limit}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def _order(board) -> list[str]:
    return [row.name for row in board.rows]


def test_a_model_that_ran_a_subset_reorders_an_inferred_set_and_the_board_says_so(tmp_path, capsys):
    x = _model(tmp_path, "x", {GSM8K: 0.9, SAFETY: 0.4})
    y = _model(tmp_path, "y", {GSM8K: 0.6, SAFETY: 0.9})
    z = _model(tmp_path, "z", {GSM8K: 0.2})
    two = build_leaderboard([x, y])
    assert _order(two) == ["y", "x"]
    assert two.inferred and "inferred from the models shown" in two.inferred[0]
    # z ran only GSM8K: the inferred set shrinks to it and x goes first; the page and the CLI say why
    three = build_leaderboard([x, y, z])
    assert _order(three) == ["x", "y", "z"]
    assert "**Inferred:**" in to_markdown(three) and "<b>Inferred:</b>" in to_html(three)
    assert main(["leaderboard", x, y, z, "--out", str(tmp_path / "out")]) == 0
    assert "inferred: The ranked columns were inferred" in capsys.readouterr().out
    # the same columns declared in full: z is listed apart and x, y keep their order
    declared = [declaration_of(k) for k in two.ranked]
    fixed = build_leaderboard([x, y, z], rank_tasks=declared)
    assert _order(fixed) == ["y", "x"] and [r.name for r in fixed.apart] == ["z"]
    assert fixed.inferred == []


def test_runs_at_another_n_shot_never_switch_a_declared_column(tmp_path):
    x = [_model(tmp_path, "x", {SAFETY: 0.9}), _model(tmp_path, "x", {SAFETY: 0.4}, n_shot=3)]
    y = [_model(tmp_path, "y", {SAFETY: 0.5}), _model(tmp_path, "y", {SAFETY: 0.9}, n_shot=3)]
    others = [_model(tmp_path, n, {SAFETY: 0.1}, n_shot=3) for n in ("p", "q")]
    bare = build_leaderboard([*x, *y], rank_tasks=[SAFETY])
    assert _order(bare) == ["x", "y"]
    # two models that ran only 3-shot make the 3-shot column the most run one: a bare task name follows
    # them, x and y swap, and the board says the column was inferred
    switched = build_leaderboard([*x, *y, *others], rank_tasks=[SAFETY])
    assert [k.n_shot for k in switched.ranked] == [3] and _order(switched)[:2] == ["y", "x"]
    assert any("inferred from the models shown" in line for line in switched.inferred)
    # declared in full (the board's own declaration of the 0-shot column), the order holds
    (zero_shot,) = bare.ranked
    fixed = build_leaderboard([*x, *y, *others], rank_tasks=[declaration_of(zero_shot)])
    assert _order(fixed) == ["x", "y"] and {r.name for r in fixed.apart} == {"p", "q"}
    assert fixed.inferred == []


def test_runs_on_other_documents_or_missing_the_set_never_reorder_a_declared_board(tmp_path):
    documents = run_data("quickstart")["n-samples"][SAFETY]["effective"]
    models = {
        "a": _model(tmp_path, "a", {GSM8K: 0.3, SAFETY: 0.8}),
        "b": _model(tmp_path, "b", {GSM8K: 0.7, SAFETY: 0.2}),
        "c": _model(tmp_path, "c", {GSM8K: 0.5, SAFETY: 0.7}),
    }
    extras = {
        "limited": _model(tmp_path, "limited", {GSM8K: 1.0, SAFETY: 1.0}, limit=documents // 2),
        "subset": _model(tmp_path, "subset", {SAFETY: 1.0}),
        "shots": _model(tmp_path, "shots", {GSM8K: 1.0, SAFETY: 1.0}, n_shot=5),
    }
    declared = [declaration_of(k) for k in build_leaderboard(list(models.values())).ranked]
    full = build_leaderboard([*models.values(), *extras.values()], rank_tasks=declared)
    order = _order(full)
    assert order == ["c", "a", "b"] and full.inferred == []
    names = list(models) + list(extras)
    paths = {**models, **extras}
    for leave_out in names:
        kept = [paths[n] for n in names if n != leave_out]
        board = build_leaderboard(kept, rank_tasks=declared)
        assert _order(board) == [n for n in order if n != leave_out]
        assert board.inferred == []


def test_rank_bands_keep_what_they_promise():
    names = ["quickstart", "quickstart-lm", "quickstart-hf", "base-hf", "random"]
    board = build_leaderboard([str(FIXTURES / n) for n in names])
    from so8t.results.ranking import difference_stderr

    tops = []
    for row in board.rows:
        top = next(r for r in board.rows if r.rank == row.rank)
        if top is row:
            tops.append(row)
            continue
        stderr, _ = difference_stderr(board, top, row)
        assert top.score - row.score <= board.z * stderr + 1e-12  # within z se of the band's top
    for previous, top in itertools.pairwise(tops):
        stderr, _ = difference_stderr(board, previous, top)
        assert previous.score - top.score > board.z * stderr  # a new band opens beyond z se
    # removing a model keeps the others' order (their rank numbers may change: bands are greedy)
    declared = [declaration_of(k) for k in board.ranked]
    identity = {r.full_name + r.backend + str(sorted(r.args.items())): r.name for r in board.rows}
    order = list(identity)
    for name in names:
        smaller = build_leaderboard([str(FIXTURES / n) for n in names if n != name], rank_tasks=declared)
        kept = [r.full_name + r.backend + str(sorted(r.args.items())) for r in smaller.rows]
        assert kept == [i for i in order if i in kept] and len(kept) == len(order) - 1


def test_a_declaration_pins_version_n_shot_documents_and_digest():
    declaration = parse_declaration("so8t_safety:v2.0:3-shot:87-docs:#abcd12")
    assert (declaration.version, declaration.n_shot, declaration.documents, declaration.digest) == (
        "2.0",
        3,
        87,
        "abcd12",
    )
    with pytest.raises(UserError, match="'3shot' is not a qualifier"):
        parse_declaration("so8t_safety:3shot")
    with pytest.raises(UserError, match="matches no run of so8t_safety; its runs: so8t_safety:v"):
        build_leaderboard([str(FIXTURES / "quickstart")], rank_tasks=["so8t_safety:7-shot"])


def test_an_inferred_task_without_its_headline_metric_is_left_out_with_a_note(tmp_path):
    def without_headline(name: str) -> str:
        path = Path(_model(tmp_path, name, {GSM8K: 0.5, SAFETY: 0.5}))
        data = json.loads(path.read_text())
        del data["results"][GSM8K][HEADLINES[GSM8K].key]
        path.write_text(json.dumps(data))
        return str(path)

    board = build_leaderboard([without_headline("m"), without_headline("n")])
    assert [k.task for k in board.ranked] == [SAFETY] and len(board.rows) == 2
    assert any(f"{GSM8K} is left out of the inferred ranked set" in note for note in board.notes)
    # declared, it stays ranked: every model is then listed apart with the reason
    declared = build_leaderboard([without_headline("m"), without_headline("n")], rank_tasks=[GSM8K, SAFETY])
    assert declared.rows == [] and all("has no numeric" in r.coverage for r in declared.apart)
