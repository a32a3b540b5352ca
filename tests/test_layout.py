"""The file contract (so8t.layout): the run directory's claim, discovery, the best-checkpoint rule, atomic
writes, so8t.json, and the names other libraries own."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import so8t.layout as layout
from so8t.errors import UserError
from so8t.layout import atomic, checkpoints, locate, run_claim, run_record, so8t_json
from so8t.layout.run_claim import claim_run_dir


def test_first_claim_writes_the_config_and_the_same_config_claims_again(tmp_path):
    run = tmp_path / "run"
    claim_run_dir(run, "seed: 0\n")
    assert (run / "config.resolved.yaml").read_text() == "seed: 0\n"
    assert oct((run / "config.resolved.yaml").stat().st_mode & 0o777) == oct(0o644)
    claim_run_dir(run, "seed: 0\n")
    # no temporary file left, and the history holds the one start
    assert sorted(p.name for p in run.iterdir()) == ["config.resolved.yaml", "config_history.jsonl"]
    assert [e["changed"] for e in run_claim.read_config_history(run)] == [{}]


def test_a_changed_config_is_refused_with_the_difference_and_the_ways_out(tmp_path):
    claim_run_dir(tmp_path, "seed: 0\nlr: 1\n")
    with pytest.raises(UserError) as info:
        claim_run_dir(tmp_path, "seed: 0\nlr: 2\n")
    message = str(info.value)
    assert "-lr: 1" in message and "+lr: 2" in message and "another --output-dir" in message
    assert (tmp_path / "config.resolved.yaml").read_text() == "seed: 0\nlr: 1\n"
    assert len(run_claim.read_config_history(tmp_path)) == 1


def test_a_resumable_change_is_accepted_recorded_in_the_history_and_becomes_the_resolved_config(tmp_path):
    root = tmp_path / "run"
    first = {"seed": 0, "train": {"learning_rate": 1.0, "logging_steps": 10}, "model": {"r": 8}}
    claim_run_dir(root, "first\n", first, ("train.learning_rate", "train.logging_steps"))
    _checkpoint(root / layout.CHECKPOINTS_DIR, 40)
    second = {"seed": 0, "train": {"learning_rate": 0.1, "logging_steps": 10}, "model": {"r": 8}}
    changes = claim_run_dir(root, "second\n", second, ("train.learning_rate", "train.logging_steps"))
    assert changes == {"train.learning_rate": (1.0, 0.1)}
    history = run_claim.read_config_history(root)
    assert [e["changed"] for e in history] == [{}, {"train.learning_rate": [1.0, 0.1]}]
    assert history[-1]["from_step"] == 40 and history[-1]["identity"] == second
    assert (root / layout.RESOLVED_CONFIG).read_text() == "second\n"
    # the same again adds nothing; a change outside the allowed keys is refused, naming only that key
    claim_run_dir(root, "second\n", second, ("train.learning_rate",))
    assert len(run_claim.read_config_history(root)) == 2
    third = {**second, "model": {"r": 4}, "train": {"learning_rate": 0.01, "logging_steps": 10}}
    with pytest.raises(UserError) as info:
        claim_run_dir(root, "third\n", third, ("train.learning_rate",))
    assert (
        "-model.r: 8\n+model.r: 4" in str(info.value)
        and "learning_rate" not in str(info.value).split("\n")[1]
    )


def test_the_output_dir_is_no_part_of_the_run_so_a_moved_run_directory_claims_again(tmp_path):
    claim_run_dir(tmp_path / "a", "output_dir: /somewhere/a\nseed: 0\n")
    moved = tmp_path / "b"
    (tmp_path / "a").rename(moved)
    assert claim_run_dir(moved, f"output_dir: {moved}\nseed: 0\n") == {}
    # the same run: nothing is written
    assert (moved / layout.RESOLVED_CONFIG).read_text() == "output_dir: /somewhere/a\nseed: 0\n"
    assert len(run_claim.read_config_history(moved)) == 1


def test_ranks_claiming_the_same_directory_at_once_all_succeed(tmp_path, monkeypatch):
    """Under torchrun every rank claims the run directory at the same moment: here a second claim runs
    between the first one's write and its rename, as another rank would."""
    real_replace = os.replace
    calls = []

    def replace_after_another_rank(src, dst):
        calls.append(src)
        if len(calls) == 1:
            claim_run_dir(tmp_path / "run", "seed: 0\n")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_another_rank)
    claim_run_dir(tmp_path / "run", "seed: 0\n")
    # each claim renamed its own temporary files, and the run holds one config and one start
    assert len(calls) >= 2 and len(set(calls)) == len(calls)
    assert (tmp_path / "run" / "config.resolved.yaml").read_text() == "seed: 0\n"
    assert len(run_claim.read_config_history(tmp_path / "run")) == 1
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "config.resolved.yaml",
        "config_history.jsonl",
    ]


# ----------------------------------------------------------------------------- names other libraries own


def test_names_owned_by_peft_and_transformers_match_theirs():
    from peft.utils.constants import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME
    from transformers.trainer import TRAINER_STATE_NAME
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    assert layout.ADAPTER_CONFIG == CONFIG_NAME
    assert layout.ADAPTER_WEIGHTS == SAFETENSORS_WEIGHTS_NAME
    assert layout.TRAINER_STATE == TRAINER_STATE_NAME
    assert layout.CHECKPOINT_PREFIX == PREFIX_CHECKPOINT_DIR


@pytest.mark.parametrize("output_path", ["out/results.json", "out"])
def test_results_and_samples_names_are_the_ones_lm_eval_writes_and_its_helpers_read(tmp_path, output_path):
    """lm-eval's EvaluationTracker writes the files; layout predicts their names, and a results file and its
    samples share one id. lm-eval's own helpers pick the same newest file and skip an undated results.json."""
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.utils import get_latest_filename, get_results_filenames

    written = []
    for _ in range(2):
        tracker = EvaluationTracker(output_path=str(tmp_path / output_path))
        tracker.general_config_tracker.log_experiment_args("hf", "pretrained=org/model", None, None, False)
        tracker.save_results_aggregated(results={"results": {}}, samples=None)
        sample = {"arguments": [["a", "b"]], "resps": [], "filtered_resps": [], "target": 0, "doc_hash": "h"}
        tracker.save_results_samples(task_name="so8t_safety", samples=[sample])
        (found,) = set(tmp_path.rglob("*.json")) - set(written)
        assert found == layout.results_file_for(tmp_path / output_path, tracker.date_id, "org__model")
        assert layout.date_id_of(found) == tracker.date_id
        assert layout.samples_file_for(found, "so8t_safety", tracker.date_id).is_file()
        assert (
            layout.samples_task_of(layout.samples_file_for(found, "so8t_safety", tracker.date_id))
            == "so8t_safety"
        )
        written.append(found)
    (found.parent / "results.json").write_text("{}")
    assert layout.results_files_in(found.parent) == written
    assert layout.newest_results_file(layout.results_files_in(found.parent)) == written[-1]
    if output_path == "out":  # lm-eval's helpers know only the folder form's results_<id>.json
        names = [str(p) for p in found.parent.iterdir()]
        assert sorted(get_results_filenames(names)) == sorted(map(str, written))
        assert get_latest_filename(get_results_filenames(names)) == str(written[-1])
    assert layout.evaluation_date_id() > tracker.date_id


def test_the_local_tasks_read_the_files_the_pipeline_writes_for_the_test_split(tmp_path):
    from data_fixtures import GSM8K_RECORDS, SAFETY_RECORDS

    from so8t.data.gsm8k import GSM8KExample
    from so8t.data.safety import SafetyExample
    from so8t.data.split import SplitData, write_split_jsonl

    split = SplitData(
        split="test",
        gsm8k=[GSM8KExample(**r) for r in GSM8K_RECORDS],
        safety=[SafetyExample(**r) for r in SAFETY_RECORDS],
    )
    written = write_split_jsonl(split, layout.RunDir(tmp_path).data)
    for spec in layout.LOCAL_TASKS.values():
        assert written[spec.data_format] == tmp_path / layout.DATA_DIR / spec.file_name
    assert layout.LOCAL_TASK_FORMATS == {t: s.data_format for t, s in layout.LOCAL_TASKS.items()}


# ----------------------------------------------------------------------------- discovery and the best checkpoint


def _checkpoint(root, step: int, state: dict | None = None):
    folder = root / checkpoints.checkpoint_name(step)
    folder.mkdir(parents=True)
    so8t_json.write_so8t_json(folder, {"format": so8t_json.CHECKPOINT_FORMAT})
    (folder / layout.STATE_FILE).write_bytes(b"")
    (folder / layout.TRAINER_STATE).write_text(json.dumps(state or {}))
    return folder


def test_discovery_lists_complete_checkpoints_by_step_not_by_name(tmp_path):
    for step in (5, 40, 100):
        _checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-7").mkdir()  # a folder without the files of a checkpoint
    (tmp_path / "checkpoint-final").mkdir()
    assert [p.name for p in checkpoints.complete_checkpoints(tmp_path)] == [
        "checkpoint-5",
        "checkpoint-40",
        "checkpoint-100",
    ]
    assert checkpoints.last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-100"
    assert checkpoints.last_complete_checkpoint(tmp_path / "missing") is None


def test_a_run_directory_is_also_found_as_trainers_own_output_folder(tmp_path):
    _checkpoint(tmp_path, 3)
    located = locate.locate_so8t_model(tmp_path)
    assert located.kind == "run directory" and located.target == tmp_path / "checkpoint-3"


def _trainers_choice(history: list[dict], tmp_path) -> int | None:
    """The step Trainer itself records as best: its own _determine_best_metric over each evaluation, with
    the TrainingArguments so8t trains with."""
    from types import SimpleNamespace

    from train_fixtures import run_config
    from transformers import Trainer
    from transformers.trainer_callback import TrainerState

    from so8t.train.arguments import training_arguments

    train = {"eval_strategy": "steps", "eval_steps": 10, "save_steps": 10, "max_steps": 40}
    args = training_arguments(run_config("embedded:tiny", train=train), tmp_path / "args", report_to=[])
    trainer = SimpleNamespace(args=args, state=TrainerState())
    for entry in history:
        trainer.state.global_step = entry["step"]
        metrics = {key: value for key, value in entry.items() if key != "step"}
        Trainer._determine_best_metric(trainer, metrics, trial=None)
    return trainer.state.best_global_step


def test_without_a_recorded_best_discovery_picks_the_checkpoint_the_trainer_picks(tmp_path):
    """PET's weight grows late in training, so the loss that holds it (eval_loss) keeps falling where the task
    loss does not: the lowest eval_loss (the old fallback) is checkpoint-40, the trainer's best is
    checkpoint-20 (checkpoint-30 ties it, and a tie keeps the earlier one)."""
    history = [
        {"step": 10, "eval_loss": 0.90, "eval_task_loss": 0.80},
        {"step": 20, "eval_loss": 0.70, "eval_task_loss": 0.60},
        {"step": 30, "eval_loss": 0.65, "eval_task_loss": 0.60},
        {"step": 40, "eval_loss": 0.60, "eval_task_loss": 0.62},
    ]
    root = tmp_path / layout.CHECKPOINTS_DIR
    for entry in history:
        _checkpoint(root, entry["step"], {"log_history": [e for e in history if e["step"] <= entry["step"]]})
    trainer_step = _trainers_choice(history, tmp_path)
    assert trainer_step == 20
    assert min(history, key=lambda e: e["eval_loss"])["step"] == 40
    assert checkpoints.best_checkpoint(
        checkpoints.complete_checkpoints(root)
    ) == root / checkpoints.checkpoint_name(20)
    assert locate.locate_so8t_model(tmp_path).target == root / checkpoints.checkpoint_name(20)


def test_the_recorded_best_wins_and_no_evaluation_means_the_last_checkpoint(tmp_path):
    history = [{"step": 1, "eval_task_loss": 0.1}, {"step": 2, "eval_task_loss": 0.5}]
    _checkpoint(tmp_path, 1)
    _checkpoint(tmp_path, 2, {"best_model_checkpoint": "/moved/checkpoint-2", "log_history": history})
    assert checkpoints.best_checkpoint(checkpoints.complete_checkpoints(tmp_path)).name == "checkpoint-2"
    (tmp_path / "checkpoint-2" / layout.TRAINER_STATE).write_text(json.dumps({"log_history": [{"loss": 1}]}))
    assert checkpoints.best_checkpoint(checkpoints.complete_checkpoints(tmp_path)).name == "checkpoint-2"


def test_the_trainer_selects_on_the_metric_the_rule_names(tmp_path):
    from train_fixtures import run_config

    from so8t.train.arguments import training_arguments

    train = {"eval_strategy": "steps", "eval_steps": 10, "save_steps": 10}
    args = training_arguments(run_config("embedded:tiny", train=train), tmp_path, report_to=[])
    assert args.metric_for_best_model == checkpoints.BEST_METRIC and args.greater_is_better is False
    assert checkpoints.BEST_METRIC_KEY in checkpoints.BEST_CHECKPOINT_RULE


# ----------------------------------------------------------------------------- atomic writes and so8t.json


def test_a_failed_text_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = atomic.atomic_write_json(tmp_path / "x.json", {"a": 1})

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write_text(path, "new")
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_failed_directory_write_leaves_the_old_folder_and_no_staging(tmp_path):
    target = tmp_path / "out"
    with atomic.atomic_directory(target) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_directory(target) as tmp:
        (tmp / "a").write_text("half")
        raise RuntimeError("crash")
    assert (target / "a").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with atomic.atomic_directory(target) as tmp:
        (tmp / "b").write_text("new")
    assert [p.name for p in target.iterdir()] == ["b"]


def test_a_resave_moves_the_old_folder_aside_and_a_crash_between_the_renames_recovers(tmp_path, monkeypatch):
    root = tmp_path / layout.CHECKPOINTS_DIR
    old = _checkpoint(root, 3)
    (old / "marker").write_text("old")
    new = _checkpoint(tmp_path / "staging", 3)
    (new / "marker").write_text("new")
    real_replace = os.replace
    moves = []

    def crash_on_the_second_rename(src, dst):
        moves.append((Path(src).name, Path(dst).name))
        if len(moves) == 2:
            raise KeyboardInterrupt("killed between the renames")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        atomic.replace_directory(new, old)
    monkeypatch.setattr(os, "replace", real_replace)
    assert moves[0] == ("checkpoint-3", ".replaced-checkpoint-3") and not old.exists()
    # start-up puts the old checkpoint back: one whole checkpoint of the step, as before the save
    assert checkpoints.last_complete_checkpoint(root) == old and (old / "marker").read_text() == "old"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-3"]
    # without a crash the new folder replaces it and nothing is left aside
    atomic.replace_directory(new, old)
    assert (old / "marker").read_text() == "new" and sorted(p.name for p in root.iterdir()) == [
        "checkpoint-3"
    ]
    # a crash after the new one moved in: the old one aside is simply deleted
    aside = root / ".replaced-checkpoint-3"
    aside.mkdir()
    assert checkpoints.last_complete_checkpoint(root) == old and not aside.exists()


def test_a_run_directory_has_one_wandb_run_id_and_the_first_writer_wins(tmp_path, monkeypatch):
    first = run_record.wandb_run_id(tmp_path)
    assert first == run_record.wandb_run_id(tmp_path) and len(first) == 16
    other = tmp_path / "other"
    real_link = os.link

    def another_rank_was_first(src, dst):
        Path(dst).write_text("theirs\n")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", another_rank_was_first)
    assert run_record.wandb_run_id(other) == "theirs"
    assert sorted(p.name for p in other.iterdir()) == [layout.WANDB_RUN_ID]


def test_the_checkpoint_digest_reads_what_consolidation_reads_and_not_where_it_lies(tmp_path):
    a = _checkpoint(tmp_path / "a", 5)
    (a / layout.ADAPTER_WEIGHTS).write_bytes(b"weights")
    digest = run_record.checkpoint_digest(a)
    (a / "optimizer.pt").write_bytes(b"anything")
    import shutil

    copy = shutil.copytree(a, tmp_path / "elsewhere" / a.name)
    assert run_record.checkpoint_digest(a) == digest == run_record.checkpoint_digest(copy)
    (copy / layout.ADAPTER_WEIGHTS).write_bytes(b"other weights")
    assert run_record.checkpoint_digest(copy) != digest


def test_so8t_json_is_checked_when_written_and_when_read(tmp_path):
    with pytest.raises(
        UserError, match="field format: Input should be 'so8t-checkpoint' or 'so8t-consolidated'"
    ):
        so8t_json.write_so8t_json(tmp_path, {"format": "so8t-other"})
    assert not (tmp_path / so8t_json.SO8T_JSON).exists()
    with pytest.raises(UserError, match=r"so8t\.json is missing\. Point to one of the training checkpoints"):
        so8t_json.read_checkpoint_info(tmp_path)
    so8t_json.write_so8t_json(tmp_path, {"format": so8t_json.CONSOLIDATED_FORMAT})
    with pytest.raises(UserError, match="format is 'so8t-consolidated', expected 'so8t-checkpoint'"):
        so8t_json.read_checkpoint_info(tmp_path)
    (tmp_path / so8t_json.SO8T_JSON).write_text("{oops")
    with pytest.raises(UserError, match="not readable JSON"):
        so8t_json.so8t_format(tmp_path)


def test_a_refused_change_deep_in_a_long_value_shows_the_part_that_differs(tmp_path):
    """A data source is one long value (its files, columns and content hash); the diff shows where the two
    differ, not two identical cut-off beginnings."""
    source = {"files": "/data/" + "x" * 150 + ".jsonl", "format": "jsonl", "files_sha256": "a" * 64}
    claim_run_dir(tmp_path, "first\n", {"data": {"train": [source]}})
    changed = {**source, "files_sha256": "b" * 64}
    with pytest.raises(UserError) as info:
        claim_run_dir(tmp_path, "second\n", {"data": {"train": [changed]}})
    old_line, new_line = (
        line for line in str(info.value).splitlines() if line.startswith(("-data.train", "+data.train"))
    )
    assert old_line[1:] != new_line[1:]
    assert '"files_sha256": "aaaa' in old_line and '"files_sha256": "bbbb' in new_line
    assert len(old_line) < 240 and len(new_line) < 240


def test_a_copied_run_directory_is_a_new_wandb_run_and_a_moved_one_stays_the_same(tmp_path):
    """Syncing an original and its copy must not merge two trainings into one W&B run: a run directory found
    at another place while its original still holds the same id takes an id of its own (the same on every
    rank: derived, not drawn); one moved away from its old place keeps its id."""
    import shutil

    original = tmp_path / "original"
    first = run_record.wandb_run_id(original)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    copied = run_record.wandb_run_id(copy)
    assert copied != first and len(copied) == 16
    assert run_record.wandb_run_id(copy) == copied and run_record.wandb_run_id(original) == first
    moved = tmp_path / "moved"
    copy.rename(moved)
    assert run_record.wandb_run_id(moved) == copied
    assert run_record.wandb_run_id(original) == first
