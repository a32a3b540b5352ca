"""The leaderboard's rank: ranked columns, fixed references, noise bands.

1. **The ranked columns.** Each ranked task is scored on one column of the board (task version, n-shot,
   documents). `--rank-tasks` or `--suite` declares the tasks (so8t.results.rank_columns: a declaration may
   pin the version, n-shot and documents, `so8t_safety:v2.0:0-shot:87-docs`); a declaration that pins its
   column in full fixes it. Anything else is inferred from the models shown: by default the tasks every
   model ran, and for a task run several ways the column most models ran. An inferred column is said so on
   the page and in the CLI output, with the declaration that fixes it. A model missing a ranked column is
   not ranked: it is listed apart with its coverage. With the inferred set, a task whose headline metric no
   model's results carry is left out with a note.
2. **Unit scores**: each task counts on its headline metric normalised against a fixed reference
   (so8t.results.headlines: `clip((v - chance) / (best - chance), 0, 1)`); a group counts once, as the mean
   of its subtasks' scores.
3. **Score** = the mean of the unit scores. It depends on the model's own results and the ranked columns
   only, so while the ranked columns are fixed, adding or removing a model never changes another model's
   score or reorders the others.
4. **Rank bands**: models in score order; the first opens a band; each next model joins the current band
   when `top - score <= z * se(top - score)` against the band's top model, else it opens a new band. Models
   in a band share its top's rank (competition ranking: 1, 1, 3). What a band promises: every model in it
   is within z standard errors of its top model, and each band's top is more than z standard errors below
   the previous band's top. Bands are greedy, so they depend on the models shown: adding or removing a
   model can merge or split the others' bands and change their rank numbers, never their order.
   `se(top - score) = sqrt(sum_u se_u^2) / U` over the U ranked tasks, each `se_u` the standard error of
   that task's normalised difference: paired over the documents when both models logged samples of the
   same documents (so8t.results.paired, as the gate does), else `sqrt(se_top,u^2 + se_u^2)` from the two
   models' own standard errors (a bootstrap over the logged documents when a file has none), divided by
   `best - chance`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from so8t.errors import UserError
from so8t.results.board import Leaderboard, ModelRow, RunKey
from so8t.results.documents import document_difference
from so8t.results.paired import bootstrap_stderr, paired_noise
from so8t.results.rank_columns import FORMAT, choose_column, declaration_of, parse_declaration
from so8t.results.results_file import as_number, recorded_aggregation

BAND_BOOTSTRAP_ITERS = 200
RANKING_RULE = (
    "Ranked over fixed columns: each ranked task is scored on one column (task version, n-shot, document "
    "set), declared with --rank-tasks or --suite; a column that is not declared in full is inferred from the "
    "models shown, and the board says so below. Each task counts on its headline metric, normalised against "
    "a fixed reference: clip((value − chance) / (best − chance), 0, 1); a group counts once, as the mean of "
    "its subtasks. The score is the mean over the ranked tasks: it depends on a model's own results and the "
    "ranked columns only, so while those columns stay the same, adding or removing a model never changes "
    "another's score or reorders the others. Bands: every model in a band is within z standard errors of "
    "the band's top model, and each band's top is more than z standard errors below the previous band's top "
    "(the difference's standard error is paired over the documents when both models logged samples of the "
    "same documents). Bands are formed greedily in score order, so adding or removing a model can merge or "
    "split the others' bands and change their rank numbers, never their order. Models that did not run every "
    "ranked column are listed apart with their coverage."
)


@dataclass(frozen=True)
class UnitScore:
    value: float
    stderr: float | None


def _top_level(row: ModelRow) -> set[RunKey]:
    inside = {
        key
        for key, run in row.runs.items()
        for group in row.runs.values()
        if group.source == run.source and run.task in group.members
    }
    return set(row.runs) - inside


def _declared(board: Leaderboard, names: Sequence[str], *, inferred: bool) -> list[RunKey]:
    """One column per declared task; each column not pinned in full is recorded as inferred."""
    coverage = {k: sum(k in r.runs for r in board.rows) for k in board.keys}
    chosen = []
    for name in names:
        declaration = parse_declaration(name)
        found = choose_column(declaration, board.keys, coverage)
        if found is None:
            runs = [declaration_of(k) for k in board.keys if k.task == declaration.task]
            if not runs:
                raise UserError(f"--rank-tasks names {declaration.task}, which no results file holds.")
            raise UserError(
                f"--rank-tasks entry {name!r} matches no run of {declaration.task}; its runs: "
                f"{', '.join(runs)} ({FORMAT})."
            )
        key = found.key
        if not found.fixed and not inferred:
            board.inferred.append(
                f"{key.task}: ranked on the column {key.label}, inferred from the models shown; declare "
                f"--rank-tasks {declaration_of(key)} to fix it."
            )
        if found.others:
            board.notes.append(
                f"{key.task}: ranked on the column {key.label}; other runs "
                f"({'; '.join(k.label for k in found.others)}) are shown but not ranked."
            )
        chosen.append(key)
    return chosen


def _carries_headline(board: Leaderboard, key: RunKey) -> bool:
    headline = board.headlines.get(key.task)
    return headline is not None and any(
        key in row.runs and row.runs[key].metric(headline.metric, headline.filter) is not None
        for row in board.rows
    )


def _inferred_set(board: Leaderboard) -> list[RunKey]:
    """The tasks every model ran, each on the column most models ran; tasks without a headline left out."""
    candidates = set().union(*(_top_level(r) for r in board.rows)) if board.rows else set()
    everyone = [k for k in board.keys if k in candidates and all(k in r.runs for r in board.rows)]
    keys = _declared(board, list(dict.fromkeys(k.task for k in everyone)), inferred=True)
    if not keys and board.rows:
        board.notes.append(
            "No task was run by every model, so nothing is ranked; declare the ranked tasks with "
            "--rank-tasks or --suite."
        )
    kept = []
    for key in keys:
        members = board.members.get(key, [])
        if all(_carries_headline(board, m) for m in members or [key]):
            kept.append(key)
        else:
            board.notes.append(
                f"{key.task} is left out of the inferred ranked set: no model's results carry its headline "
                "metric."
            )
    if kept:
        board.inferred.append(
            "The ranked columns were inferred from the models shown (the tasks every model ran): adding or "
            "removing a model can change them and so reorder the others. Declare them to fix them: "
            f"--rank-tasks {','.join(declaration_of(k) for k in kept)}."
        )
    return kept


def ranked_set(board: Leaderboard, names: Sequence[str] | None) -> list[RunKey]:
    """The columns the rank is computed over (groups standing for their subtasks)."""
    keys = _declared(board, names, inferred=False) if names else _inferred_set(board)
    inside = {m for k in keys for m in board.members.get(k, [])}
    keys = [k for k in keys if k not in inside]
    rankable = []
    for key in keys:
        tasks = [m.task for m in board.members.get(key, [])] or [key.task]
        lacking = [t for t in tasks if t not in board.headlines]
        if lacking:
            board.notes.append(f"{key.task} is not ranked: no headline metric for {', '.join(lacking)}.")
        else:
            rankable.append(key)
    return rankable


def _task_unit(board: Leaderboard, row: ModelRow, key: RunKey) -> UnitScore | str:
    cached = board.units.get((id(row), key))
    if cached is None:
        cached = board.units[(id(row), key)] = _compute_task_unit(board, row, key)
    return cached


def _compute_task_unit(board: Leaderboard, row: ModelRow, key: RunKey) -> UnitScore | str:
    run = row.runs[key]
    headline = board.headlines[key.task]
    found = run.metric(headline.metric, headline.filter)
    value = as_number(found.value)[0] if found is not None else None
    if found is None or value is None:
        return f"{key.task} has no numeric {headline.key}"
    stderr = found.stderr
    if stderr is None and run.documents is not None:
        values = run.documents.values(headline.metric, headline.filter)
        if values is not None:
            aggregation = recorded_aggregation(run.data, key.task, headline.metric)
            stderr = bootstrap_stderr(values, aggregation=aggregation, metric=headline.metric)
    return UnitScore(headline.normalise(value), None if stderr is None else headline.normalise_stderr(stderr))


def unit_score(board: Leaderboard, row: ModelRow, key: RunKey) -> UnitScore | str:
    members = _members(board, row, key)
    if members == [key]:
        return _task_unit(board, row, key)
    scores = [_task_unit(board, row, m) for m in members]
    problems = [s for s in scores if isinstance(s, str)]
    if problems:
        return "; ".join(problems)
    units = [s for s in scores if isinstance(s, UnitScore)]
    ses = [u.stderr for u in units]
    stderr = None if None in ses else math.sqrt(sum(s * s for s in ses if s is not None)) / len(units)
    return UnitScore(sum(u.value for u in units) / len(units), stderr)


def _score(board: Leaderboard, row: ModelRow, keys: list[RunKey]) -> None:
    missing = [k for k in keys if k not in row.runs]
    units = {k: unit_score(board, row, k) for k in keys if k not in missing}
    problems = [u for u in units.values() if isinstance(u, str)]
    if missing or problems:
        have = len(keys) - len(missing) - len(problems)
        reasons = [f"missing {k.task} ({k.label})" for k in missing] + problems
        row.coverage = f"{have}/{len(keys)} ranked tasks: " + "; ".join(reasons)
        return
    scored = [u for u in units.values() if isinstance(u, UnitScore)]
    row.score = sum(u.value for u in scored) / len(scored)
    if any(u.stderr is None for u in scored):
        no_se = [k.task for k, u in units.items() if isinstance(u, UnitScore) and u.stderr is None]
        board.notes.append(
            f"{row.name}: no standard error for {', '.join(no_se)}; its noise counts as 0 in the bands."
        )
    row.score_stderr = math.sqrt(sum((u.stderr or 0.0) ** 2 for u in scored)) / len(scored)
    row.coverage = f"{len(keys)}/{len(keys)} ranked tasks"


def _members(board: Leaderboard, row: ModelRow, key: RunKey) -> list[RunKey]:
    """The subtask columns of a model's group run (from the same file), or the column itself."""
    found = [
        k for k in board.members.get(key, []) if k in row.runs and row.runs[k].source == row.runs[key].source
    ]
    return found or [key]


def _paired_unit_se(board: Leaderboard, top: ModelRow, row: ModelRow, key: RunKey) -> float | None:
    """se of the difference of one task's normalised score between two models on the same documents."""
    headline = board.headlines[key.task]
    runs = (top.runs[key], row.runs[key])
    if (
        runs[0].documents is None
        or runs[1].documents is None
        or document_difference(runs[0].documents, runs[1].documents)
    ):
        return None
    values = [r.documents.values(headline.metric, headline.filter) for r in runs if r.documents is not None]
    found = [r.metric(headline.metric, headline.filter) for r in runs]
    if None in values or None in found:
        return None
    noise = paired_noise(
        values[0],
        values[1],
        aggregation=recorded_aggregation(runs[1].data, key.task, headline.metric),
        metric=headline.metric,
        reported=(float(found[0].value), float(found[1].value)),  # type: ignore[union-attr]
        iters=BAND_BOOTSTRAP_ITERS,
    )
    if isinstance(noise, str) or noise.stderr is None:
        return None
    return headline.normalise_stderr(noise.stderr)


def difference_stderr(board: Leaderboard, top: ModelRow, row: ModelRow) -> tuple[float, bool]:
    """se of `top.score - row.score` and whether every task was paired over its documents.

    Per ranked task: paired over the documents when both models logged samples of the same documents,
    else the two models' own standard errors combined; a group's is that of the mean of its subtasks.
    """
    total, paired = 0.0, True
    for key in board.ranked:
        members = _members(board, top, key)
        if members != _members(board, row, key):
            members = [key]
        unit = 0.0
        for member in members:
            se = (
                _paired_unit_se(board, top, row, member)
                if member in top.runs and member in row.runs
                else None
            )
            if se is None:
                paired = False
                scores = [_task_unit(board, r, member) for r in (top, row)]
                ses = [s.stderr or 0.0 for s in scores if isinstance(s, UnitScore)]
                se = math.sqrt(sum(x * x for x in ses))
            unit += se * se
        total += unit / len(members) ** 2
    return math.sqrt(total) / len(board.ranked), paired


def _bands(board: Leaderboard, rows: list[ModelRow], z: float) -> None:
    """Greedy bands in score order, each model compared with its band's top; competition ranks."""
    top: ModelRow | None = None
    methods = set()
    for position, row in enumerate(rows, start=1):
        if top is not None:
            assert top.score is not None and row.score is not None
            stderr, paired = difference_stderr(board, top, row)
            methods.add(paired)
            if top.score - row.score <= z * stderr + 1e-12:
                row.rank = top.rank
                continue
        top = row
        row.rank = position
    if False in methods:
        board.notes.append(
            "Some band comparisons used the models' own standard errors combined (no samples of the same "
            "documents on both sides); the others are paired over the documents."
        )


def rank(board: Leaderboard, names: Sequence[str] | None) -> None:
    """Score every model on the ranked set, band and order them; models that cannot be ranked go apart."""
    board.ranked = ranked_set(board, names)
    if not board.ranked:
        board.apart, board.rows = board.rows, []
        for row in board.apart:
            row.coverage = "nothing ranked"
        return
    for row in board.rows:
        _score(board, row, board.ranked)
    ranked = sorted((r for r in board.rows if r.score is not None), key=lambda r: (-(r.score or 0.0), r.name))
    apart = sorted((r for r in board.rows if r.score is None), key=lambda r: r.name)
    _bands(board, ranked, board.z)
    board.rows, board.apart = ranked, apart
    if ranked and apart:
        board.notes.append(
            f"The rank is among the {len(ranked)} model(s) that ran every ranked column; {len(apart)} other(s) "
            "are listed apart, however they score."
        )
