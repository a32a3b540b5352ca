"""Where results come from (so8t.results.inputs): a file, an lm-eval --output_path folder, a glob, and the
same layouts through `so8t gate`."""

from __future__ import annotations

import json
import shutil

import pytest
from results_fixtures import FIXTURES, documents, run_data, run_file

from so8t.cli import main
from so8t.errors import UserError
from so8t.results.gate import read_run
from so8t.results.inputs import expand_inputs

OUTPUT_PATH = FIXTURES / "output_path"


def test_an_output_path_folder_with_two_timestamped_runs_reads_the_newest():
    """lm-eval's folder layout (one subfolder per model, a results file per run): the newest run is read,
    the older one named in a note, and the gate takes the newest run's samples with it."""
    (model,) = [p for p in OUTPUT_PATH.iterdir() if p.is_dir()]
    older, newer = sorted(model.glob("results_*.json"))
    selection = expand_inputs([str(OUTPUT_PATH)])
    assert selection.files == [newer]
    assert selection.notes() == [
        f"{model}: newest run {newer.name} read; older {older.name} not read (pass a file to read another run)"
    ]
    run = read_run([OUTPUT_PATH])
    assert json.loads(newer.read_text())["results"] == run.data["results"]
    assert json.loads(older.read_text())["results"] != run.data["results"]  # the older run had a threshold
    assert run.documents["so8t_safety"].source.endswith(
        newer.name.replace("results_", "samples_so8t_safety_") + "l"
    )


def test_the_gate_reads_a_folder_on_either_side(capsys):
    assert main(["gate", str(OUTPUT_PATH), "--baseline", str(OUTPUT_PATH)]) == 0
    out = capsys.readouterr().out
    assert f"paired differences, {documents('quickstart', 'so8t_safety')} docs" in out and "newest run" in out


def test_a_file_and_a_glob_are_read_as_they_are(tmp_path):
    assert expand_inputs([str(run_file("quickstart"))]).files == [run_file("quickstart")]
    pattern = str(FIXTURES / "quickstart*" / "results_*.json")
    names = {p.parent.name for p in expand_inputs([pattern]).files}
    assert {"quickstart", "quickstart-rerun", "quickstart-limit40", "quickstart-3shot"} <= names


def test_a_folder_without_dated_results_names_what_it_found(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(run_data("quickstart")))
    with pytest.raises(UserError, match="It holds results.json: pass such a file itself"):
        expand_inputs([str(tmp_path)])
    assert expand_inputs([str(tmp_path / "results.json")]).files == [tmp_path / "results.json"]


def test_a_path_or_glob_matching_nothing_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="Results file not found"):
        expand_inputs([str(tmp_path / "nope.json")])
    with pytest.raises(UserError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.json")])


def test_samples_are_paired_with_their_results_file_by_id(tmp_path):
    """A samples file of another run in the same folder is never taken for this one's."""
    folder = tmp_path / "run"
    shutil.copytree(FIXTURES / "quickstart", folder)
    (results,) = folder.glob("results_*.json")
    stray = folder / "samples_so8t_safety_2001-01-01T00-00-00.jsonl"
    stray.write_text("not json\n")
    run = read_run([results])
    assert set(run.documents) == {"so8t_gsm8k_local", "so8t_safety"}
    renamed = results.with_name("results.json")  # undated: no id, so no samples
    results.rename(renamed)
    assert read_run([renamed]).documents == {}
