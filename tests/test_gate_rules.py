"""Gate rules and the noise model: the pydantic contract, and evaluate_gates as `so8t run` uses it."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from so8t.config import GateConfig, GateRule
from so8t.errors import ConfigError
from so8t.results.gate import evaluate_gates
from so8t.results.rules import load_gate_config, load_suite

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "results"


def _results(acc: float, se) -> dict:
    """The keys of an lm-eval results dict the gate reads, for one metric (no samples: the independent formula)."""
    return {
        "results": {"so8t_safety": {"alias": "so8t_safety", "acc,none": acc, "acc_stderr,none": se}},
        "versions": {"so8t_safety": 1.0},
        "n-shot": {"so8t_safety": 0},
        "n-samples": {"so8t_safety": {"original": 120, "effective": 120}},
        "higher_is_better": {"so8t_safety": {"acc": True}},
    }


def _pair(base_acc: float, cur_acc: float, base_se, cur_se) -> tuple[dict, dict]:
    return _results(base_acc, base_se), _results(cur_acc, cur_se)


ACC_RULE = GateConfig(
    baseline="b.json", default_tolerance=0.02, z=2.0, rules=[GateRule(task="so8t_safety", metric="acc")]
)


def test_a_drop_within_noise_passes():
    base, cur = _pair(0.80, 0.75, 0.03, 0.03)  # drop 0.05 > tolerance, < 2 * sqrt(2) * 0.03 = 0.085
    report = evaluate_gates(cur, base, ACC_RULE)
    assert report.passed
    assert report.checks[0].reason == "drop of 0.0500 is within noise (z=2, independent)"
    assert report.checks[0].method == "independent (no samples in the baseline and results)"


def test_the_same_drop_with_tiny_stderr_fails():
    base, cur = _pair(0.80, 0.75, 0.001, 0.001)
    report = evaluate_gates(cur, base, ACC_RULE)
    assert not report.passed
    assert (
        "drop of 0.0500 exceeds the tolerance 0.0200, z × se(Δ) = 0.0028 (independent)"
        in report.checks[0].reason
    )


def test_without_stderr_only_the_tolerance_applies():
    base, cur = _pair(0.80, 0.75, 0.03, "N/A")
    report = evaluate_gates(cur, base, ACC_RULE)
    assert not report.passed
    assert (
        "no stderr of the change (independent (no samples in the baseline and results; no stderr in a file))"
        in (report.checks[0].reason)
    )


def test_a_drop_below_the_tolerance_passes_even_with_zero_stderr():
    base, cur = _pair(0.80, 0.79, 0.0, 0.0)
    assert evaluate_gates(cur, base, ACC_RULE).passed


def test_a_rule_without_bounds_needs_a_baseline():
    with pytest.raises(ValidationError, match="needs a baseline"):
        GateConfig(rules=[GateRule(task="t", metric="m")])
    with pytest.raises(ValidationError, match="needs a baseline"):
        GateConfig(rules=[GateRule(task="t", metric="m", min=0.5, max_drop=0.1)])
    assert (
        GateConfig(rules=[GateRule(task="t", metric="m", min=0.5)]).rules[0].compares_with_baseline is False
    )
    with pytest.raises(ValidationError, match="a gate needs a baseline or at least one rule"):
        GateConfig()


@pytest.mark.parametrize(
    "bad",
    [
        {"z": -1},
        {"default_tolerance": -0.1},
        {"rules": [{"task": "t", "metric": "m", "max_drop": -0.01}]},
        {"rules": [{"task": "t", "metric": "m", "min": 0.9, "max": 0.1}]},
        {"rules": [{"task": "t", "metric": "m", "mn": 1}]},
        {"tolerance": 0.1},
    ],
)
def test_invalid_gate_configs_are_rejected(bad):
    with pytest.raises(ValidationError):
        GateConfig.model_validate({"baseline": "b.json", **bad})


def test_every_field_has_a_description():
    from so8t.config.gates import IncludedRules, RulesFile
    from so8t.results.rules import SuiteConfig

    for model in (GateRule, GateConfig, SuiteConfig, RulesFile, IncludedRules):
        assert all(f.description for f in model.model_fields.values()), model.__name__


def test_a_rules_file_takes_the_baseline_from_the_command_line(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - {task: so8t_gsm8k, metric: exact_match, filter: strict-match, max_drop: 0.02}\n"
    )
    with pytest.raises(ConfigError, match="needs a baseline"):
        load_gate_config(path)
    assert load_gate_config(path, baseline="cli.json").baseline == "cli.json"


@pytest.mark.parametrize("name", ["quickstart", "full"])
def test_the_shipped_suites_load_and_ship_their_baseline_or_the_command_that_makes_it(name):
    suite = load_suite(ROOT / "evals" / "suites" / f"{name}.yaml")
    assert suite.name == name
    baseline = Path(suite.gates.baseline)
    assert baseline == ROOT / "evals" / "baselines" / f"{name}.json"  # relative to the suite file
    assert baseline.is_file() or "--update-baseline evals/baselines/" in (suite.baseline_command or "")
    metrics = {(r.task.removesuffix("_local"), r.metric, r.filter): r for r in suite.gates.rules}
    assert metrics[("so8t_safety", "refuse_recall", "none")].min is not None
    assert metrics[("so8t_safety", "unsafe_allow_rate", "none")].max is not None
    assert metrics[("so8t_safety", "macro_f1", "none")].max_drop is not None
    assert metrics[("so8t_gsm8k", "exact_match", "strict-match")].max_drop is not None
    assert all(r.task in suite.tasks for r in suite.gates.rules)


def test_a_suite_file_works_as_rules(tmp_path):
    config = load_gate_config(ROOT / "evals" / "suites" / "full.yaml")
    shared = load_gate_config(ROOT / "evals" / "rules" / "safety.yaml").rules
    # the included safety rules first, then the suite's own seven
    assert config.z == 2.0 and len(config.rules) == len(shared) + 7
    assert config.rules[: len(shared)] == shared


def test_suite_paths_resolve_relative_to_the_suite_file_wherever_the_command_runs(tmp_path, monkeypatch):
    suites = tmp_path / "evals" / "suites"
    suites.mkdir(parents=True)
    (suites / "s.yaml").write_text(
        "name: s\ntasks: [t]\ngates:\n  baseline: ../baselines/s.json\n  rules: [{task: t, metric: m}]\n"
    )
    (suites / "rules.yaml").write_text("baseline: ../baselines/s.json\nrules: [{task: t, metric: m}]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    expected = str(tmp_path / "evals" / "baselines" / "s.json")
    assert load_suite("../evals/suites/s.yaml").gates.baseline == expected
    assert load_gate_config(suites / "rules.yaml").baseline == expected
    assert load_gate_config(suites / "s.yaml", baseline="cli.json").baseline == "cli.json"  # as given


def test_a_suite_given_as_rules_is_checked_whole(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ntaks: [t]\ngates: {rules: [{task: t, metric: m, min: 0}]}\n")
    with pytest.raises(ConfigError) as info:
        load_gate_config(path)
    assert "taks: unknown key, did you mean tasks?" in info.value.errors


def test_suite_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ntasks: []\nlimit: 0\n")
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert str(path) in str(info.value)
    assert any(e.startswith("tasks:") for e in info.value.errors)
    assert any(e.startswith("limit:") for e in info.value.errors)


@pytest.mark.parametrize("key", ["limit: 40", "model_args: {decision_source: lm}"])
def test_a_suite_refuses_evaluation_settings_that_nothing_would_read(tmp_path, key):
    # a suite names tasks and gates; how its results were evaluated is read from the results themselves
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ntasks: [so8t_safety]\n{key}\n")
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert any(e.startswith(key.split(":")[0] + ": unknown key") for e in info.value.errors)


def test_a_misspelt_key_in_a_rules_file_gets_the_closest_valid_key(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("baseline: b.json\nrules:\n  - {task: t, metric: m, mn: 0.9}\ndefault_tolerence: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_gate_config(path)
    assert info.value.errors == [
        "rules[0].mn: unknown key, did you mean rules[0].min?",
        "default_tolerence: unknown key, did you mean default_tolerance?",
    ]
    assert str(path) in str(info.value)


def test_a_misspelt_key_in_a_suite_file_gets_the_closest_valid_key(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\ntaks: [so8t_safety]\ngates: {rules: [{task: t, metric: m, max: 1, filtr: x}]}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert info.value.errors == [
        "taks: unknown key, did you mean tasks?",
        "gates.rules[0].filtr: unknown key, did you mean gates.rules[0].filter?",
        "tasks: required key is missing",
    ]


def test_rules_and_gate_import_without_torch():
    code = (
        "import sys, so8t.results.rules, so8t.results.gate, so8t.results.leaderboard; "
        "heavy = [m for m in ('torch', 'transformers', 'lm_eval') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_evaluate_gates_fails_closed_on_non_results_input():
    report = evaluate_gates({"oops": 1}, None, GateConfig(rules=[GateRule(task="t", metric="m", min=0)]))
    assert not report.passed
    assert report.checks[0].reason == "the results are not lm-eval results: no `results` object"


def test_an_unknown_direction_fails_unless_the_rule_gives_one():
    base, cur = _pair(0.80, 0.80, 0.01, 0.01)
    for data in (base, cur):
        del data["higher_is_better"]["so8t_safety"]["acc"]
    assert "direction of acc unknown" in evaluate_gates(cur, base, ACC_RULE).checks[0].reason
    explicit = GateConfig(
        baseline="b.json", rules=[GateRule(task="so8t_safety", metric="acc", higher_is_better=True)]
    )
    assert evaluate_gates(cur, base, explicit).passed


def test_a_different_document_count_fails_unless_the_rule_allows_it():
    """Without samples the documents are compared by count (a --limit shows there)."""
    base, cur = _pair(0.80, 0.80, 0.01, 0.01)
    cur["n-samples"]["so8t_safety"]["effective"] = 50
    report = evaluate_gates(cur, base, ACC_RULE)
    assert not report.passed
    assert (
        "not comparable: different documents: baseline scored 120, the results 50" in report.checks[0].reason
    )
    allowing = GateConfig(
        baseline="b.json", rules=[GateRule(task="so8t_safety", metric="acc", allow=["documents"])]
    )
    assert evaluate_gates(cur, base, allowing).passed


def test_the_quickstart_baseline_passes_its_suite_and_a_regressed_copy_fails():
    """The checked-in baseline is a real quickstart result: it meets its own suite; a regression is caught."""
    from lm_eval.tasks._yaml_loader import load_yaml

    from so8t.results.gate import load_results

    config = load_gate_config(ROOT / "evals" / "suites" / "quickstart.yaml")
    baseline = load_results(ROOT / "evals" / "baselines" / "quickstart.json")
    version = load_yaml(str(ROOT / "tasks" / "so8t_safety.yaml"), resolve_func=False)["metadata"]["version"]
    if float(baseline["versions"]["so8t_safety_local"]) != float(version):
        pytest.skip(
            f"evals/baselines/quickstart.json holds so8t_safety version {baseline['versions']['so8t_safety_local']}"
            f", the task is at {version}: regenerate the baseline (so8t run configs/quickstart.yaml, then "
            "so8t gate ... --update-baseline evals/baselines/quickstart.json)"
        )
    assert evaluate_gates(baseline, baseline, config).passed
    regressed = copy.deepcopy(baseline)
    safety = regressed["results"]["so8t_safety_local"]
    safety["refuse_recall,none"] = 0.3
    safety["unsafe_allow_rate,none"] = 0.4
    report = evaluate_gates(regressed, baseline, config)
    assert not report.passed
    failed = {c.metric for c in report.checks if not c.passed}
    assert failed == {"refuse_recall", "unsafe_allow_rate"}


# ----------------------------------------------------------------------------- includes


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


SHARED = "rules:\n  - {task: so8t_safety, metric: refuse_recall, min: 0.5}\n"


def test_an_include_is_read_relative_to_the_including_file_with_its_tasks_renamed(tmp_path, monkeypatch):
    _write(tmp_path / "rules" / "safety.yaml", SHARED)
    suite = _write(
        tmp_path / "suites" / "s.yaml",
        "name: s\ntasks: [so8t_safety_local]\ngates:\n  include:\n"
        "    - {file: ../rules/safety.yaml, rename_tasks: {so8t_safety: so8t_safety_local}}\n"
        "  rules:\n    - {task: so8t_safety_local, metric: acc, min: 0.1}\n",
    )
    monkeypatch.chdir(tmp_path / "rules")  # not the suite's folder: paths follow the file
    rules = load_suite(suite).gates.rules
    assert [(r.task, r.metric, r.min) for r in rules] == [
        ("so8t_safety_local", "refuse_recall", 0.5),
        ("so8t_safety_local", "acc", 0.1),
    ]
    plain = _write(tmp_path / "plain.yaml", "include: [rules/safety.yaml]\n")
    assert [(r.task, r.metric) for r in load_gate_config(plain).rules] == [("so8t_safety", "refuse_recall")]


def test_the_shipped_safety_rules_stand_alone_and_both_suites_include_them():
    shared = load_gate_config(ROOT / "evals" / "rules" / "safety.yaml")
    assert shared.baseline is None and all(
        r.has_bounds and not r.compares_with_baseline for r in shared.rules
    )
    assert {r.metric for r in shared.rules} >= {"non_finite_decisions", "refuse_recall", "escalate_recall"}
    for suite, task in (("quickstart", "so8t_safety_local"), ("full", "so8t_safety")):
        rules = load_suite(ROOT / "evals" / "suites" / f"{suite}.yaml").gates.rules
        assert [(r.metric, r.min, r.max) for r in rules[: len(shared.rules)]] == [
            (r.metric, r.min, r.max) for r in shared.rules
        ]
        assert all(r.task == task for r in rules[: len(shared.rules)])


@pytest.mark.parametrize(
    "included,problem",
    [
        ("baseline: b.json\n" + SHARED, "baseline: an included rules file contributes its rules only"),
        (
            "rules:\n  - {task: so8t_safety, metric: acc, mn: 0.5}\n",
            "rules[0].mn: unknown key, did you mean rules[0].min?",
        ),
        ("include: [../top.yaml]\n", "includes itself"),
    ],
)
def test_a_bad_included_file_is_reported_in_that_file(tmp_path, included, problem):
    shared = _write(tmp_path / "rules" / "shared.yaml", included)
    top = _write(tmp_path / "top.yaml", "include: [rules/shared.yaml]\n")
    with pytest.raises(ConfigError) as info:
        load_gate_config(top)
    assert any(problem in error for error in info.value.errors), info.value.errors
    assert info.value.source in (str(shared), str(top))


def test_include_mistakes_name_the_key(tmp_path):
    _write(tmp_path / "shared.yaml", SHARED)
    suite = _write(
        tmp_path / "s.yaml",
        "name: s\ntasks: [t]\ngates:\n  include:\n    - {file: shared.yaml, rename_tasks: {so8t_saftey: t}}\n",
    )
    with pytest.raises(ConfigError, match=r"gates.include\[0\].rename_tasks names so8t_saftey"):
        load_suite(suite)
    missing = _write(tmp_path / "m.yaml", "include: [nowhere.yaml]\n")
    with pytest.raises(ConfigError, match=r"include\[0\].file: nowhere.yaml is not a file"):
        load_gate_config(missing)
    typo = _write(tmp_path / "t.yaml", "include: [{flie: shared.yaml}]\n")
    with pytest.raises(
        ConfigError, match=r"include\[0\].flie: unknown key, did you mean include\[0\].file\?"
    ):
        load_gate_config(typo)


def test_included_baseline_comparisons_use_the_includers_baseline(tmp_path):
    _write(tmp_path / "drops.yaml", "rules:\n  - {task: so8t_safety, metric: acc, max_drop: 0.01}\n")
    with pytest.raises(ConfigError, match="needs a baseline"):
        load_gate_config(_write(tmp_path / "a.yaml", "include: [drops.yaml]\n"))
    config = load_gate_config(_write(tmp_path / "b.yaml", "baseline: base.json\ninclude: [drops.yaml]\n"))
    # the includer's own baseline, relative to the includer's folder
    assert config.baseline == str(tmp_path / "base.json") and config.rules[0].max_drop == 0.01


def test_a_gated_group_is_compared_through_its_subtasks():
    """A group's own entry has no n-shot or documents of its own: a change in a subtask still counts."""

    def grouped(shots: int) -> dict:
        data = _results(0.8, 0.01)
        data["results"]["suite"] = {"alias": "suite", "acc,none": 0.8, "acc_stderr,none": 0.01}
        data["group_subtasks"] = {"suite": ["so8t_safety"]}
        data["higher_is_better"]["suite"] = {"acc": True}
        data["n-shot"]["so8t_safety"] = shots
        return data

    rule = GateConfig(baseline="b.json", rules=[GateRule(task="suite", metric="acc")])
    report = evaluate_gates(grouped(3), grouped(0), rule)
    assert not report.passed
    assert (
        "different n-shot (subtask so8t_safety) (baseline 0-shot, current 3-shot)" in report.checks[0].reason
    )
    same = evaluate_gates(grouped(0), grouped(0), rule)
    assert same.passed and same.checks[0].method == "independent (a group)"
