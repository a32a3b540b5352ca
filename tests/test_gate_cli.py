"""`so8t gate`: pass on the baseline, exit 1 on regressions, fail closed on bad or missing data.

The baseline is a real run (tests/fixtures/results/quickstart: the quickstart model through `so8t eval`);
a test that needs a condition (a lower value, a NaN, a missing metric) changes a copy of it."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from results_fixtures import FIXTURES, run_data, run_file

from so8t.cli import main
from so8t.results.gate import BASELINE_KEY, iter_metrics, load_results

BASELINE = run_file("quickstart")
N_METRICS = len(list(iter_metrics(run_data("quickstart"))))


def _results() -> dict:
    return run_data("quickstart")


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=2))  # NaN is written as NaN, as lm-eval's json.dumps does
    return path


def _gate(capsys, *argv: str) -> tuple[int, str]:
    code = main(["gate", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_gate_passes_on_the_baseline_itself(capsys):
    code, out = _gate(capsys, BASELINE, "--baseline", BASELINE)
    assert code == 0
    assert (
        f"gate PASSED: {N_METRICS}/{N_METRICS} checks passed" in out
    )  # every baseline metric, default tolerance
    assert "paired differences" in out  # the samples beside the file are read


def test_a_regressed_copy_exits_1_and_names_the_metric(tmp_path, capsys):
    data = _results()
    # beyond the family's Holm allowance: the copy has no samples, so every comparison is independent
    data["results"]["so8t_safety"]["acc,none"] -= 0.30
    code, out = _gate(capsys, _write(tmp_path / "cur.json", data), "--baseline", BASELINE)
    assert code == 1
    assert f"gate FAILED: {N_METRICS - 1}/{N_METRICS} checks passed" in out
    assert "drop of 0.3000 exceeds the tolerance 0.0200" in out
    assert (
        "(independent, Holm over" in out
    )  # no samples in the copy: the family falls back to Holm  # the edited copy has none: said in the table


def test_a_missing_metric_fails_with_its_reason(tmp_path, capsys):
    data = _results()
    del data["results"]["so8t_safety"]["macro_f1,none"]
    code, out = _gate(capsys, _write(tmp_path / "cur.json", data), "--baseline", BASELINE)
    assert code == 1
    assert "metric macro_f1,none is missing from results[so8t_safety]" in out


def test_a_missing_task_fails_with_its_reason(tmp_path, capsys):
    data = _results()
    del data["results"]["so8t_gsm8k_local"]
    code, out = _gate(capsys, _write(tmp_path / "cur.json", data), "--baseline", BASELINE)
    assert code == 1
    assert "task so8t_gsm8k_local is missing from the results" in out


def test_a_nan_fails_with_its_reason(tmp_path, capsys):
    data = _results()
    data["results"]["so8t_safety"]["acc,none"] = math.nan
    path = _write(tmp_path / "cur.json", data)
    assert "NaN" in path.read_text()
    code, out = _gate(capsys, path, "--baseline", BASELINE)
    assert code == 1
    assert "current acc,none is NaN" in out


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{ not json", "is not readable JSON"),
        ('{"accuracy": 0.9}', "is not an lm-eval results file: no `results` object"),
        ('{"results": {"so8t_safety": {"alias": "so8t_safety"}}}', "holds no `metric,filter` keys"),
    ],
)
def test_a_corrupt_results_file_fails_closed_with_its_reason(tmp_path, capsys, content, reason):
    path = tmp_path / "corrupt.json"
    path.write_text(content)
    code, out = _gate(capsys, path, "--baseline", BASELINE, "--junit", tmp_path / "gate.xml")
    assert code == 1
    assert reason in out
    failure = ET.parse(tmp_path / "gate.xml").getroot().find(".//failure")
    assert failure is not None and reason in failure.get("message")


def test_a_corrupt_baseline_fails_closed(tmp_path, capsys):
    bad = tmp_path / "baseline.json"
    bad.write_text("[]")
    code, out = _gate(capsys, BASELINE, "--baseline", bad)
    assert code == 1
    assert "the top level is a list" in out


def test_a_missing_file_on_the_command_line_is_bad_input(tmp_path, capsys):
    code, out = _gate(capsys, tmp_path / "nope.json", "--baseline", BASELINE)
    assert code == 2
    assert "Results file not found" in out and "nope.json" in out
    code, out = _gate(capsys, BASELINE, "--baseline", tmp_path / "gone.json")
    assert code == 2
    assert "Baseline file not found" in out


def test_gate_without_baseline_or_rules_is_bad_input(capsys):
    code, out = _gate(capsys, BASELINE)
    assert code == 2
    assert "needs --baseline FILE, --rules FILE" in out


def test_a_typo_in_the_rules_file_is_bad_input_with_the_closest_key(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {task: so8t_safety, metric: acc, minimum: 0.5}\n")
    code, out = _gate(capsys, BASELINE, "--rules", rules)
    assert code == 2
    assert f"problem(s) in {rules}" in out
    assert "rules[0].minimum: unknown key, did you mean rules[0].min?" in out
    assert "Extra inputs are not permitted" not in out


def test_an_improvement_in_a_lower_is_better_metric_passes_and_a_rise_fails(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {task: so8t_safety, metric: unsafe_allow_rate, max_drop: 0.005, z: 0}\n")
    base = _results()["results"]["so8t_safety"]["unsafe_allow_rate,none"]
    assert base > 0
    better = _results()
    better["results"]["so8t_safety"]["unsafe_allow_rate,none"] = 0.0
    code, out = _gate(
        capsys, _write(tmp_path / "better.json", better), "--baseline", BASELINE, "--rules", rules
    )
    assert code == 0
    assert "improved" in out
    worse = _results()
    worse["results"]["so8t_safety"]["unsafe_allow_rate,none"] = base + 0.01  # a rise is the bad direction
    code, out = _gate(
        capsys, _write(tmp_path / "worse.json", worse), "--baseline", BASELINE, "--rules", rules
    )
    assert code == 1
    assert "rise of 0.0100 exceeds the tolerance 0.0050" in out


def test_floor_and_ceiling_rules_need_no_baseline(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    recall = _results()["results"]["so8t_safety"]["refuse_recall,none"]
    rules.write_text(
        "rules:\n"
        f"  - {{task: so8t_safety, metric: refuse_recall, min: {recall + 0.01}}}\n"
        "  - {task: so8t_safety, metric: unsafe_allow_rate, max: 1.0}\n"
    )
    code, out = _gate(capsys, BASELINE, "--rules", rules)
    assert code == 1
    assert f"{recall:.4f} is below the floor {recall + 0.01:.4f}" in out
    assert "gate FAILED: 1/2 checks passed" in out


def test_junit_xml_has_one_testcase_per_check_and_the_failures(tmp_path, capsys):
    data = _results()
    recall = data["results"]["so8t_safety"]["refuse_recall,none"]
    strict = data["results"]["so8t_gsm8k_local"]["exact_match,strict-match"]
    data["results"]["so8t_safety"]["refuse_recall,none"] = recall - 0.5
    data["results"]["so8t_gsm8k_local"]["exact_match,strict-match"] = strict - 0.3
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"baseline: {BASELINE}\n"
        "rules:\n"
        f"  - {{task: so8t_safety, metric: refuse_recall, min: {recall - 0.1}, max_drop: 0.02}}\n"
        "  - {task: so8t_safety, metric: unsafe_allow_rate, max: 1.0}\n"
        "  - {task: so8t_gsm8k_local, metric: exact_match, filter: strict-match, max_drop: 0.02}\n"
    )
    junit, markdown = tmp_path / "ci" / "gate.xml", tmp_path / "ci" / "gate.md"
    code, _ = _gate(
        capsys,
        _write(tmp_path / "cur.json", data),
        "--rules",
        rules,
        "--junit",
        junit,
        "--markdown",
        markdown,
    )
    assert code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert (suite.get("tests"), suite.get("failures")) == ("4", "3")
    assert len(cases) == 4
    failed = {c.get("name"): c.find("failure").get("message") for c in cases if c.find("failure") is not None}
    assert set(failed) == {
        "so8t_safety refuse_recall,none floor",
        "so8t_safety refuse_recall,none vs baseline",
        "so8t_gsm8k_local exact_match,strict-match vs baseline",
    }
    floor = f"{recall - 0.5:.4f} is below the floor {recall - 0.1:.4f}"
    assert floor in failed["so8t_safety refuse_recall,none floor"]
    text = markdown.read_text()
    assert text.startswith("**❌ gate FAILED: 1/4 checks passed**")
    row = f"| so8t_gsm8k_local exact_match [strict-match] | vs baseline | {strict:.4f} | {strict - 0.3:.4f} | -0.3000 |"
    assert row in text


def test_a_changed_task_version_is_not_compared(tmp_path, capsys):
    data = _results()
    version = data["versions"]["so8t_safety"]
    data["versions"]["so8t_safety"] = version + 1
    code, out = _gate(capsys, _write(tmp_path / "cur.json", data), "--baseline", BASELINE)
    assert code == 1
    assert f"not comparable: task version changed (baseline {version}, current {version + 1})" in out


def test_results_split_over_files_are_merged_and_duplicates_rejected(tmp_path, capsys):
    full = _results()
    parts = []
    for task in full["results"]:
        part = copy.deepcopy(full)
        part["results"] = {task: full["results"][task]}
        parts.append(_write(tmp_path / f"{task}.json", part))
    code, out = _gate(capsys, *parts, "--baseline", BASELINE)
    assert code == 0, out
    code, out = _gate(capsys, BASELINE, parts[0], "--baseline", BASELINE)
    assert code == 2
    assert "appears in both" in out


def test_update_baseline_round_trip(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out_path = tmp_path / "evals" / "baselines" / "new.json"
    code, out = _gate(capsys, BASELINE, "--update-baseline", out_path)
    assert code == 0 and "wrote baseline" in out
    written = json.loads(out_path.read_text())
    original = _results()
    assert written["results"] == original["results"]
    assert written["higher_is_better"] == original["higher_is_better"]
    meta = written[BASELINE_KEY]
    assert meta["sources"] == [str(BASELINE.resolve())]
    assert meta["model"] == {
        "backend": "so8t",
        "model_name": "runs/quickstart/consolidated",
        "model_args": original["config"]["model_args"],
    }
    assert meta["results_git_hash"] == original["git_hash"]
    assert meta["evaluated_at"].startswith("20")
    assert "git_commit" in meta and len(meta["sources_sha256"][str(BASELINE.resolve())]) == 64
    # the per-document values of every task travel inside the baseline
    assert set(meta["documents"]) == {"so8t_gsm8k_local", "so8t_safety"}
    assert len(meta["documents"]["so8t_safety"]) == original["n-samples"]["so8t_safety"]["effective"]
    load_results(out_path)  # still an lm-eval results file
    code, out = _gate(capsys, BASELINE, "--baseline", out_path)
    assert code == 0, out
    assert "independent" not in out  # paired on both sides: the results' samples, the baseline's own


def test_update_baseline_refuses_infinite_results(tmp_path, capsys):
    data = _results()
    data["results"]["so8t_safety"]["acc,none"] = math.inf
    code, out = _gate(capsys, _write(tmp_path / "cur.json", data), "--update-baseline", tmp_path / "b.json")
    assert code == 2
    assert "so8t_safety acc,none is infinite" in out
    assert not (tmp_path / "b.json").exists()


def test_update_baseline_leaves_an_undefined_metric_out_and_a_rule_on_it_fails(tmp_path, capsys):
    """A NaN (a precision whose class was never decided) is undefined, not broken: the rest is a baseline."""
    data = _results()
    data["results"]["so8t_safety"]["escalate_precision,none"] = math.nan
    data["results"]["so8t_safety"]["escalate_precision_stderr,none"] = math.nan
    current = _write(tmp_path / "cur.json", data)
    code, out = _gate(capsys, current, "--update-baseline", tmp_path / "b.json")
    assert code == 0, out
    assert "left out, undefined on these results" in out and "so8t_safety escalate_precision,none" in out
    written = json.loads((tmp_path / "b.json").read_text())["results"]["so8t_safety"]
    assert "escalate_precision,none" not in written and "escalate_precision_stderr,none" not in written
    assert "refuse_recall,none" in written
    code, out = _gate(capsys, current, "--baseline", tmp_path / "b.json")
    assert code == 0, out
    assert f"{N_METRICS - 1}/{N_METRICS - 1} checks passed" in out
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {task: so8t_safety, metric: escalate_precision, max_drop: 0.05}\n")
    code, out = _gate(capsys, BASELINE, "--baseline", tmp_path / "b.json", "--rules", rules)
    assert code == 1  # defined now, but there is nothing to compare it with
    assert "escalate_precision,none vs baseline" in out and "is missing from the baseline" in out


def test_update_baseline_refuses_results_with_nothing_defined(tmp_path, capsys):
    data = _results()
    for task in data["results"].values():
        for key in [k for k in task if "," in k and "_stderr" not in k]:
            task[key] = math.nan
    code, out = _gate(capsys, _write(tmp_path / "cur.json", data), "--update-baseline", tmp_path / "b.json")
    assert code == 2 and "is NaN" in out
    assert not (tmp_path / "b.json").exists()


def test_the_real_lm_eval_results_file_gates_against_itself():
    """A file written by lm-eval's simple_evaluate + EvaluationTracker on a tiny random GPT-2."""
    real = FIXTURES / "real_hf_tiny_gpt2.json"
    assert main(["gate", str(real), "--baseline", str(real)]) == 0
